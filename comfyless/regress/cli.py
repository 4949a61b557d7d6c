"""`comfyless test SUITE [--update] [--junit FILE] [--json] [--base-dir D] [-k PATTERN]
[--deterministic] [--threads N] [--workers N | --ray [ADDRESS]]`.

--workers N runs the cases in N local processes, --ray on a Ray cluster (regress/parallel.py,
comfyless/dispatch.py); the verdicts and reports are those of a sequential run.

Exit codes: 0 every case passed (or was recorded), 1 a case failed or changed, 2 usage or I/O
error (including a malformed suite).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from ..dispatch import add_dispatch_flags, dispatch_of
from ..threads import ENV_THREADS, argparse_threads

# Nothing here imports torch at module level: `comfyless test` first applies --threads /
# COMFYLESS_THREADS, which must happen before torch is loaded (see comfyless/threads.py).

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    from ..cli import add_custom_nodes_flag

    p = argparse.ArgumentParser(prog="comfyless test",
                                description="Run a regression suite of workflows.")
    p.add_argument("suite", help="a folder of workflow JSON files, or a .toml manifest")
    p.add_argument("--update", action="store_true", help="record the outputs as the new golden")
    p.add_argument("--junit", metavar="FILE", help="write a JUnit XML report")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--base-dir", help="models/, input/, output/ live here")
    p.add_argument("-k", dest="pattern", metavar="PATTERN",
                   help="only cases whose name matches this regular expression")
    p.add_argument("--report-dir", default="comfyless-test-report",
                   help="where diff images of failing cases go (default: %(default)s)")
    p.add_argument("--deterministic", action="store_true",
                   help="torch deterministic algorithms and a fixed thread count "
                        f"(--threads, else ${ENV_THREADS}, else 1)")
    p.add_argument("--threads", type=argparse_threads, default=None, metavar="N|auto",
                   help=f"CPU threads for torch (default: ${ENV_THREADS}, else 1; the golden "
                        "records the count it was made with)")
    add_custom_nodes_flag(p)
    add_dispatch_flags(p, "cases")
    return p


def thread_flag(args: argparse.Namespace):
    """--threads; with --deterministic and no choice anywhere, a fixed 1 (never `auto`)."""
    if args.deterministic and args.threads is None and not os.environ.get(ENV_THREADS):
        return 1
    return args.threads


def make_deterministic() -> None:
    """Same inputs, same bits: deterministic kernels, no TF32 (threads: `thread_flag`)."""
    from .parallel import make_deterministic as deterministic

    deterministic()


def cli_main(argv: list[str]) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    from ..cli import UsageError, apply_threads, load_nodes
    from ..dispatch import DispatchError

    try:
        dispatch = dispatch_of(args)  # before anything runs: Ray missing is a usage error
    except DispatchError as exc:
        print(f"comfyless test: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        apply_threads(thread_flag(args))  # before the imports below load torch
    except UsageError as exc:
        print(f"comfyless test: {exc}", file=sys.stderr)
        return EXIT_USAGE
    from .suite import SuiteError, load_suite

    try:
        suite = load_suite(args.suite)
    except SuiteError as exc:
        print(f"comfyless test: {exc}", file=sys.stderr)
        return EXIT_USAGE
    from .runner import results_json, run_case, select_cases, write_junit

    cases = select_cases(suite, args.pattern)
    if not cases:
        print(f"comfyless test: no case matches -k {args.pattern!r}", file=sys.stderr)
        return EXIT_USAGE
    if args.deterministic:
        make_deterministic()
    try:
        registry = load_nodes(args.custom_nodes, args.base_dir).registry
    except OSError as exc:
        print(f"comfyless test: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if dispatch.parallel:
        try:
            results = _run_parallel(args, suite, dispatch)
        except DispatchError as exc:
            print(f"comfyless test: {exc}", file=sys.stderr)
            return EXIT_USAGE
    else:
        results = []
        for case in cases:
            result = run_case(case, suite, base_dir=args.base_dir, update=args.update,
                              report_dir=Path(args.report_dir), registry=registry)
            results.append(result)
            if not args.json:
                _print_case(result)
    if args.junit:
        write_junit(results, Path(args.junit), suite_name=Path(args.suite).stem)
    if args.json:
        print(json.dumps(results_json(results), indent=2))
    else:
        passed = sum(r.ok for r in results)
        print(f"{passed}/{len(results)} case(s) {'recorded' if args.update else 'passed'}")
    if any(r.status == "error" for r in results):
        return EXIT_USAGE
    return EXIT_OK if all(r.ok for r in results) else EXIT_FAILED


def _run_parallel(args: argparse.Namespace, suite, dispatch) -> list:
    """The selected cases through dispatch.run_jobs, one parallel.run_case_job each."""
    import torch

    from ..dispatch import run_jobs
    from .parallel import CaseJob, absolute_suite, crashed_case, run_case_job
    from .runner import select_cases

    base_dir, report_dir, packs = args.base_dir, args.report_dir, args.custom_nodes
    if dispatch.ray:  # a Ray worker's working dir is not ours: every path made absolute
        from ..engine.paths import BasePaths

        suite = absolute_suite(suite)
        base_dir = str(BasePaths.resolve(args.base_dir).base.resolve())
        report_dir = str(Path(report_dir).resolve())
        packs = [str(Path(p).resolve()) for p in packs]
    jobs = [CaseJob(case, suite, base_dir, args.update, str(report_dir), tuple(packs),
                    threads=torch.get_num_threads(), deterministic=args.deterministic)
            for case in select_cases(suite, args.pattern)]
    on_result = None if args.json else (lambda _index, result: _print_case(result))
    return run_jobs(run_case_job, jobs, dispatch, on_crash=crashed_case, on_result=on_result)


def _print_case(result) -> None:
    seeds = ", ".join(f"{k}={v}" for k, v in result.seeds.items())
    print(f"{result.status.upper():8} {result.name} ({result.seconds:.1f} s)"
          + (f" seeds: {seeds}" if seeds else ""))
    for line in result.messages:
        print(f"    {line}")
    for path in result.diff_images:
        print(f"    diff image: {path}")
