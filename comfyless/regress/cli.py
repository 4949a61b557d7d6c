"""`comfyless test SUITE [--update] [--junit FILE] [--json] [--base-dir D] [-k PATTERN]
[--deterministic] [--threads N]`.

Exit codes: 0 every case passed (or was recorded), 1 a case failed or changed, 2 usage or I/O
error (including a malformed suite).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from ..threads import ENV_THREADS, argparse_threads

# Nothing here imports torch at module level: `comfyless test` first applies --threads /
# COMFYLESS_THREADS, which must happen before torch is loaded (see comfyless/threads.py).

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
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
    p.add_argument("--custom-nodes", action="append", default=[], metavar="DIR",
                   help="also load ComfyUI-style custom node packs from DIR (this RUNS their "
                   "code; repeatable). The base dir's custom_nodes/ is loaded when it exists")
    return p


def thread_flag(args: argparse.Namespace):
    """--threads; with --deterministic and no choice anywhere, a fixed 1 (never `auto`)."""
    if args.deterministic and args.threads is None and not os.environ.get(ENV_THREADS):
        return 1
    return args.threads


def make_deterministic() -> None:
    """Same inputs, same bits: deterministic kernels, no TF32 (threads: `thread_flag`)."""
    import torch

    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False


def cli_main(argv: list[str]) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    from ..cli import UsageError, apply_threads, load_nodes

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


def _print_case(result) -> None:
    seeds = ", ".join(f"{k}={v}" for k, v in result.seeds.items())
    print(f"{result.status.upper():8} {result.name} ({result.seconds:.1f} s)"
          + (f" seeds: {seeds}" if seeds else ""))
    for line in result.messages:
        print(f"    {line}")
    for path in result.diff_images:
        print(f"    diff image: {path}")
