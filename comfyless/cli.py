"""Command line: `comfyless run|validate|nodes|convert|...`. Argument parsing only.

Each subcommand is one small function registered in COMMANDS. Imports are lazy: `validate`,
`nodes` and `convert` never import torch (CI lints hundreds of workflows in well under a
second); only `run` may, through the nodes it executes. Plugins and custom_nodes packs
(engine/plugins.py, docs/plugins.md) are loaded by every command that builds the node list;
a pack may import torch itself.

Exit codes: 0 ok, 1 workflow invalid, 2 usage or I/O error, 3 a node failed, 130 interrupted,
141 the output pipe was closed by its reader.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Overrides (--set) are engine code; UsageError is raised there and caught here (exit 2).
from .engine.overrides import UsageError, apply_overrides

EXIT_OK, EXIT_INVALID, EXIT_USAGE, EXIT_NODE_FAILED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

# Subcommands whose code lives in a module of its own (comfyless/commands/, demo.py, regress/):
# name -> ("module:function", help). Each function takes argv (list[str]) and returns an exit
# code. A missing or misspelt module is an ImportError when this module is imported (below).
EXTERNAL: dict[str, tuple[str, str]] = {
    "make-checkpoint": ("comfyless.commands.make_checkpoint:cli_main",
                        "write a tiny/small/full random-weight SD checkpoint"),
    "demo": ("comfyless.demo:cli_main", "train a small LoRA end to end on the CPU"),
    "test": ("comfyless.regress.cli:cli_main",
             "run a regression suite of workflows against golden outputs"),
}


def _check_external() -> None:
    """Every EXTERNAL module exists (found, not imported: `validate` stays torch-free)."""
    import importlib.util

    for name, (target, _help) in EXTERNAL.items():
        module = target.partition(":")[0]
        if importlib.util.find_spec(module) is None:
            raise ImportError(f"comfyless command {name!r}: no module {module!r}", name=module)


_check_external()


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=repr))


def _load_full(path: str, registry):
    """LoadedWorkflow (workflow, UI JSON or None, notes) from a file or a shipped workflow."""
    from .commands.sweep import resolve_workflow_file
    from .engine.load import load_workflow_info

    return load_workflow_info(Path(resolve_workflow_file(path)), registry)


def _load(path: str, registry):
    return _load_full(path, registry).workflow


# -- nodes from plugins and custom_nodes/ (engine/plugins.py; docs/plugins.md) -------------------
def add_custom_nodes_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--custom-nodes", action="append", default=[], metavar="DIR",
                   help="also load ComfyUI-style custom node packs from DIR (this RUNS their "
                   "code; repeatable). The base dir's custom_nodes/ is loaded when it exists")


def load_nodes(custom_nodes: list[str] | None, base_dir: str | None):
    """engine.plugins.LoadedNodes: built-ins + entry points + custom_nodes packs; each problem
    is one line on stderr (the run goes on without that pack)."""
    from .engine.plugins import registry_with_plugins

    loaded = registry_with_plugins(custom_nodes or (), base_dir=base_dir)
    for problem in loaded.problems:
        print(f"custom nodes: {problem}", file=sys.stderr)
    return loaded


# -- run ------------------------------------------------------------------------------------
def _add_run(p: argparse.ArgumentParser) -> None:
    from .dispatch import add_dispatch_flags, positive_int

    p.add_argument("workflow", help="workflow JSON (API or UI format)")
    p.add_argument("--set", dest="overrides", action="append", default=[],
                   metavar="ID.INPUT=VALUE", help="override an input (VALUE parsed as JSON if it "
                   "parses, else taken as a string); repeatable")
    p.add_argument("--base-dir", help="models/, input/, output/ live here "
                   "(default: $COMFYLESS_BASE_DIR or ./comfyless-data)")
    p.add_argument("--json", action="store_true", help="print the result (or errors) as JSON")
    p.add_argument("--save-every", type=positive_int("a whole number of steps"), default=None,
                   metavar="N",
                   help="TrainLoraNode saves what it has trained every N steps "
                   "(the newest 2 of the run are kept; see README)")
    add_custom_nodes_flag(p)
    _add_threads(p)
    p.add_argument("--sweep", action="append", default=[], metavar="ID.INPUT=VALUES",
                   help="run every variant of a grid: VALUES is A..B (whole numbers) or a "
                   "comma list (each like a --set value); repeatable (every combination). "
                   "Each variant writes into its own folder under output/sweep-<workflow>-"
                   "<time>/, with a summary sweep.json (docs/scale-out.md)")
    add_dispatch_flags(p, "sweep variants")
    p.add_argument("--fsdp", action="store_true",
                   help="under torchrun: shard the frozen weights of the network being trained "
                   "across the ranks while TrainLoraNode trains (FSDP2); the adapters, and "
                   "the LoRA, are as without it (docs/distributed-training.md)")


def _add_threads(p: argparse.ArgumentParser) -> None:
    from .threads import ENV_THREADS, argparse_threads

    p.add_argument("--threads", type=argparse_threads, default=None, metavar="N|auto",
                   help=f"CPU threads for torch (default: ${ENV_THREADS}, else 1; see README)")


def apply_threads(flag) -> None:
    """--threads / COMFYLESS_THREADS, applied before torch is first imported."""
    from .threads import ThreadsError, configure

    try:
        configure(flag)
    except ThreadsError as exc:
        raise UsageError(str(exc)) from exc


def cmd_run(args: argparse.Namespace) -> int:
    """Validate and run one workflow (or, with --sweep, every variant of a grid)."""
    import signal

    if _runs_many(args):
        return _run_sweep(args)
    apply_threads(args.threads)  # before anything imports torch
    from .engine.context import RunContext
    from .engine.execute import run_workflow
    from .engine.workflow import to_api_json
    from .typesys.errors import Interrupted, NodeExecutionError, WorkflowError, WorkflowInvalid

    registry = load_nodes(args.custom_nodes, args.base_dir).registry
    from .progress import ProgressDisplay

    progress = ProgressDisplay(quiet=args.json)
    ctx = RunContext.create(args.base_dir, listeners=[progress], save_every=args.save_every)

    # First Ctrl-C or SIGTERM: stop at the next step boundary (TrainLoraNode then keeps what it
    # trained); a second Ctrl-C stops at once, a second SIGTERM kills as usual.
    def on_signal(signum, frame):
        ctx.interrupt.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        loaded = _load_full(args.workflow, registry)
        workflow, ui_json = loaded.workflow, loaded.ui_json
        apply_overrides(workflow, args.overrides, registry, loaded.notes.primitives)
        ctx.prompt = to_api_json(workflow)  # what SaveImage embeds in PNGs
        ctx.extra_pnginfo = {"workflow": ui_json} if ui_json is not None else None
        result = run_workflow(workflow, ctx, registry)
    except WorkflowInvalid as exc:
        return _fail(args, exc.to_dict(), str(exc), EXIT_INVALID)
    except Interrupted as exc:  # its message names a LoRA file kept, if any
        return _fail(args, {"error": exc.to_dict()}, str(exc), EXIT_INTERRUPTED)
    except KeyboardInterrupt:
        return _fail(args, {"error": {"type": "execution_interrupted"}}, "interrupted",
                     EXIT_INTERRUPTED)
    except NodeExecutionError as exc:
        return _fail(args, {"error": exc.to_dict()}, str(exc), EXIT_NODE_FAILED)
    except WorkflowError as exc:  # a malformed file: the workflow is invalid
        return _fail(args, {"error": exc.to_dict(), "node_errors": {}}, str(exc), EXIT_INVALID)
    finally:
        progress.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if args.json:
        _print_json({"status": "success", "outputs": result.ui, "executed": result.executed,
                     "cached": result.cached,
                     **({"saved": progress.saved} if progress.saved else {})})
    else:
        for node_id, ui in result.ui.items():
            for key, values in ui.items():
                for value in values:
                    print(f"{node_id} {key}: {_describe(value)}")
    return EXIT_OK


def _run_sweep(args: argparse.Namespace) -> int:
    """`run --sweep ...` (commands/sweep.py); flags are checked before anything loads."""
    from .dispatch import DispatchError, dispatch_of
    from .engine.sweep import expand_grid, parse_sweep

    if not args.sweep:
        raise UsageError("--workers and --ray run the variants of a sweep; add at least one "
                         "--sweep ID.INPUT=VALUES (e.g. --sweep 3.seed=1..4)")
    expand_grid([parse_sweep(text) for text in args.sweep])  # syntax errors before any work
    try:
        dispatch = dispatch_of(args)
    except DispatchError as exc:
        raise UsageError(str(exc)) from exc
    apply_threads(args.threads)
    from .commands.sweep import run_sweep

    registry = load_nodes(args.custom_nodes, args.base_dir).registry
    return run_sweep(args, registry, dispatch)


def _runs_many(args: argparse.Namespace) -> bool:
    """Whether `run` runs a grid of variants (--sweep, or its --workers / --ray)."""
    return bool(args.sweep) or args.workers is not None or args.ray is not None


def cmd_run_any(args: argparse.Namespace) -> int:
    """`run`; in every rank when torchrun started this process (docs/distributed-training.md)."""
    from .distributed import launched_by_torchrun

    many = _runs_many(args)
    if args.fsdp and many:
        raise UsageError("--fsdp shards one training run across torchrun ranks; it does not "
                         "combine with --sweep, --workers or --ray")
    if many and launched_by_torchrun():  # each rank would run (and write) every variant
        raise UsageError("--sweep, --workers and --ray run many workflows from one process; "
                         "under torchrun every rank would run them all. Run the sweep without "
                         "torchrun, or launch torchrun once per variant with --set")
    if not launched_by_torchrun():
        if args.fsdp:
            raise UsageError("--fsdp shards the weights across the ranks of a torchrun launch; "
                             "start the run with: torchrun --nproc-per-node N -m comfyless "
                             "run WORKFLOW --fsdp")
        return cmd_run(args)
    from .commands.torchrun import run_as_rank

    return run_as_rank(args, cmd_run, {UsageError: EXIT_USAGE, OSError: EXIT_USAGE,
                                       KeyboardInterrupt: EXIT_INTERRUPTED})


def _describe(value: Any) -> str:
    if isinstance(value, dict) and "filename" in value:
        sub = value.get("subfolder") or ""
        return f"{value.get('type', 'output')}/{sub + '/' if sub else ''}{value['filename']}"
    return str(value)


def _fail(args: argparse.Namespace, body: dict[str, Any], text: str, code: int) -> int:
    if args.json:
        _print_json({"status": "error", **body})
    else:
        print(f"error: {text}", file=sys.stderr)
    return code


# -- validate -------------------------------------------------------------------------------
def _add_validate(p: argparse.ArgumentParser) -> None:
    p.add_argument("workflows", nargs="+", help="workflow JSON files (API or UI format), or "
                   "directories: every *.json directly in them")
    p.add_argument("--base-dir", help="checks file choices against this base dir")
    p.add_argument("--json", action="store_true", help="one report per file, as JSON")
    p.add_argument("--junit", metavar="FILE", help="also write a JUnit XML report")
    add_custom_nodes_flag(p)


def _validate_one(path: str, registry, paths) -> tuple[str, dict[str, Any]]:
    """('ok' | 'invalid' | 'io', report) for one file."""
    from .engine.validate import check_workflow, invalid
    from .typesys.errors import WorkflowError

    try:
        workflow = _load(path, registry)
    except OSError as exc:
        return "io", {"error": {"type": "io_error", "message": str(exc)}, "node_errors": {}}
    except WorkflowError as exc:
        return "invalid", {"error": exc.to_dict(), "node_errors": {}}
    checked = check_workflow(workflow, registry, paths)
    if checked.errors:
        return "invalid", invalid(checked).to_dict()
    return "ok", {}


def cmd_validate(args: argparse.Namespace) -> int:
    """Validate many workflows without running (never imports torch)."""
    from .engine.paths import BasePaths

    paths = BasePaths.resolve(args.base_dir)
    registry = load_nodes(args.custom_nodes, args.base_dir).registry
    reports = {path: _validate_one(path, registry, paths) for path in _workflow_files(args)}
    if args.junit:
        _write_junit(Path(args.junit), reports)
    if args.json:
        _print_json({p: {"valid": s == "ok", **r} for p, (s, r) in reports.items()})
    else:
        for path, (status, report) in reports.items():
            print(f"{'ok' if status == 'ok' else 'FAIL'}  {path}")
            for line in _error_lines(report):
                print(f"    {line}")
        print(_summary(reports))
    statuses = {s for s, _ in reports.values()}
    return EXIT_USAGE if "io" in statuses else EXIT_INVALID if "invalid" in statuses else EXIT_OK


def _workflow_files(args: argparse.Namespace) -> list[str]:
    """The files named, with each directory replaced by the *.json files directly in it."""
    files: list[str] = []
    for given in args.workflows:
        folder = Path(given)
        if not folder.is_dir():
            files.append(given)
            continue
        found = sorted(str(p) for p in folder.glob("*.json") if p.is_file())
        if not found:
            raise UsageError(f"{given}: a directory with no *.json workflow files in it")
        files += found
    return files


def _summary(reports: dict[str, tuple[str, dict[str, Any]]]) -> str:
    """`N valid, M invalid` (files that could not be read count as invalid, and are named)."""
    valid = sum(1 for s, _ in reports.values() if s == "ok")
    unreadable = sum(1 for s, _ in reports.values() if s == "io")
    text = f"{valid} valid, {len(reports) - valid} invalid"
    return text + (f" ({unreadable} unreadable)" if unreadable else "")


def _error_lines(report: dict[str, Any]) -> list[str]:
    lines = []
    error = report.get("error")
    if error and not report.get("node_errors"):
        lines.append(f"[{error.get('type')}] {error.get('message')}")
    for entry in report.get("node_errors", {}).values():
        lines += [f"[{e['type']}] {e['message']}" for e in entry["errors"]]
    return lines


def _write_junit(target: Path, reports: dict[str, tuple[str, dict[str, Any]]]) -> None:
    from xml.etree import ElementTree as ET

    failed = sum(1 for s, _ in reports.values() if s != "ok")
    suite = ET.Element("testsuite", name="comfyless validate", tests=str(len(reports)),
                       failures=str(failed), errors="0")
    for path, (status, report) in reports.items():
        case = ET.SubElement(suite, "testcase", classname="workflows", name=path)
        if status != "ok":
            lines = _error_lines(report)
            failure = ET.SubElement(case, "failure", type=status,
                                    message=lines[0] if lines else status)
            failure.text = "\n".join(lines)
    target.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(suite).write(target, encoding="utf-8", xml_declaration=True)


# -- nodes ----------------------------------------------------------------------------------
def _add_nodes(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="ComfyUI's /object_info shape")
    p.add_argument("--base-dir", help="list file choices from this base dir")
    add_custom_nodes_flag(p)


def cmd_nodes(args: argparse.Namespace) -> int:
    """Print the node catalogue; each line ends with where the node came from."""
    from .engine.object_info import object_info
    from .engine.paths import BasePaths

    loaded = load_nodes(args.custom_nodes, args.base_dir)
    registry = loaded.registry
    paths = BasePaths.resolve(args.base_dir) if args.json else None
    if args.json:  # origin: python_module ("custom_nodes.<pack>" for packs, as ComfyUI's)
        _print_json(object_info(registry, paths))
        return EXIT_OK
    for class_type in registry:
        schema = registry[class_type].schema
        ins = ", ".join(f"{i.name}:{i.type.name}" + ("?" if i.optional else "")
                        for i in schema.inputs)
        outs = ", ".join(f"{o.name}:{o.type.name}" for o in schema.outputs)
        flag = "  [output]" if schema.output_node else ""
        print(f"{class_type}({ins}) -> ({outs}){flag}  ({loaded.origin(class_type)})")
    return EXIT_OK


# -- convert --------------------------------------------------------------------------------
def _add_convert(p: argparse.ArgumentParser) -> None:
    p.add_argument("workflow", help="workflow JSON (UI or API format)")
    p.add_argument("--json", action="store_true",
                   help='print {"status", "prompt": <API form>, "warnings": [...]} instead of '
                        "the bare API form (warnings then stay off stderr)")
    p.add_argument("--to", choices=("api", "python"), default="api",
                   help="api: the API JSON (default); python: a script that rebuilds it with "
                   "the node functions (docs/scripting.md)")
    p.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    p.add_argument("--run-code", action="store_true",
                   help="with --to python: the script runs the workflow when called with "
                   "--run [BASE_DIR] (without it, it only prints the API JSON)")
    add_custom_nodes_flag(p)


def cmd_convert(args: argparse.Namespace) -> int:
    """Print the API form of a workflow; warn about node types whose widgets were dropped."""
    from .engine.load import load_workflow_info
    from .engine.workflow import to_api_json
    from .typesys.errors import WorkflowError

    source = Path(args.workflow)
    if source.is_dir():
        raise OSError(f"{args.workflow}: is a directory, not a workflow file")
    if not source.is_file():
        raise OSError(f"{args.workflow}: no such file")
    registry = load_nodes(args.custom_nodes, None).registry
    try:
        loaded = load_workflow_info(source, registry)
    except WorkflowError as exc:
        return _fail(args, {"error": exc.to_dict()}, str(exc), EXIT_INVALID)
    if args.to == "python":
        return _convert_to_python(args, loaded, registry, source.name)
    prompt = to_api_json(loaded.workflow)
    if args.json:
        _print_json({"status": "success", "prompt": prompt, "warnings": loaded.notes.warnings})
        return EXIT_OK
    for warning in loaded.notes.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    _emit(args, json.dumps(prompt, indent=2, default=repr) + "\n")
    return EXIT_OK


def _convert_to_python(args: argparse.Namespace, loaded, registry, name: str) -> int:
    from .script_writer import workflow_to_python
    from .typesys.errors import WorkflowError

    try:
        script = workflow_to_python(loaded.workflow, registry, source=name, run=args.run_code,
                                    custom_nodes=args.custom_nodes)
    except WorkflowError as exc:
        return _fail(args, {"error": exc.to_dict()}, str(exc), EXIT_INVALID)
    if args.json:
        _print_json({"status": "success", "script": script, "warnings": loaded.notes.warnings})
        return EXIT_OK
    for warning in loaded.notes.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    _emit(args, script)
    return EXIT_OK


def _emit(args: argparse.Namespace, text: str) -> None:
    """`text` to -o FILE (written atomically) or to stdout."""
    if not args.output:
        sys.stdout.write(text)
        return
    from .files import write_atomic

    write_atomic(Path(args.output), lambda tmp: tmp.write_text(text, encoding="utf-8"))
    print(f"wrote {args.output}", file=sys.stderr)


# -- stubs ----------------------------------------------------------------------------------
def _add_stubs(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="typings", metavar="DIR",
                   help="write DIR/comfyless/nodes/api.pyi (default: ./typings, pyright's "
                   "stubPath; for mypy set mypy_path = DIR)")
    p.add_argument("--base-dir", help="its custom_nodes/ is loaded too "
                   "(default: $COMFYLESS_BASE_DIR or ./comfyless-data)")
    add_custom_nodes_flag(p)


def cmd_stubs(args: argparse.Namespace) -> int:
    """Type stubs for the node functions (comfyless.nodes.api) of every node loaded."""
    from .nodes.stubgen import write

    loaded = load_nodes(args.custom_nodes, args.base_dir)
    target = write(loaded.registry, args.out)
    print(f"wrote {target} ({len(loaded.registry)} nodes)")
    return EXIT_OK


# -- dispatch -------------------------------------------------------------------------------
COMMANDS: dict[str, tuple[Callable[[argparse.ArgumentParser], None],
                          Callable[[argparse.Namespace], int], str]] = {
    "run": (_add_run, cmd_run_any, "validate and run a workflow"),
    "validate": (_add_validate, cmd_validate, "check workflows without running them"),
    "nodes": (_add_nodes, cmd_nodes, "list the supported nodes"),
    "convert": (_add_convert, cmd_convert,
                "print the API form of a workflow, or a Python script that builds it"),
    "stubs": (_add_stubs, cmd_stubs, "write type stubs (.pyi) for the node functions"),
}


def _external(name: str) -> Callable[[list[str]], int] | None:
    entry = EXTERNAL.get(name)
    if entry is None:
        return None
    import importlib

    module, _, func = entry[0].partition(":")
    return getattr(importlib.import_module(module), func)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="comfyless", description="Run ComfyUI workflows headlessly; train LoRAs.")
    parser.add_argument("--version", action="store_true", help="print the version")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (add_args, _func, help_text) in COMMANDS.items():
        add_args(sub.add_parser(name, help=help_text, description=help_text))
    for name, (_target, help_text) in EXTERNAL.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def _parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """parse_args; with --json, argparse's own usage errors come out as JSON too."""
    if "--json" not in argv:
        return parser.parse_args(argv)
    import contextlib
    import io

    said = io.StringIO()
    try:
        with contextlib.redirect_stderr(said):
            return parser.parse_args(argv)
    except SystemExit as exc:
        if exc.code == EXIT_USAGE:
            lines = said.getvalue().strip().splitlines()
            _print_json({"status": "error", "node_errors": {}, "error": {
                "type": "usage_error", "message": lines[-1] if lines else "bad arguments",
                "details": "\n".join(lines[:-1]), "extra_info": {}}})
        else:
            sys.stderr.write(said.getvalue())
        raise


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `comfyless` command; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and (external := _external(argv[0])) is not None:
        return int(external(argv[1:]) or 0)
    parser = build_parser()
    try:
        args = _parse(parser, argv)
    except SystemExit as exc:  # argparse: --help is 0, bad usage 2
        return int(exc.code or 0)
    if args.version:
        from . import __version__

        print(f"comfyless {__version__}")
        return EXIT_OK
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        code = COMMANDS[args.command][1](args)
        sys.stdout.flush()  # a closed pipe shows up here, not at interpreter exit
        return code
    except BrokenPipeError:
        return _pipe_closed()
    except UsageError as exc:
        return _usage_failure(args, "usage_error", exc, exc.info)
    except OSError as exc:
        return _usage_failure(args, "io_error", exc, {})
    except KeyboardInterrupt:
        return _fail(args, {"error": {"type": "execution_interrupted"}}, "interrupted",
                     EXIT_INTERRUPTED)


EXIT_PIPE_CLOSED = 128 + 13  # as a process killed by SIGPIPE (`yes | head -1`)


def _pipe_closed() -> int:
    """The reader went away (`comfyless nodes | head -1`): stop quietly, as Unix tools do."""
    import os

    try:  # later flushes (at exit) must not raise again: send stdout to /dev/null
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass  # stdout has no file descriptor (captured): nothing is flushed at exit
    return EXIT_PIPE_CLOSED


def _usage_failure(args: argparse.Namespace, kind: str, exc: Exception,
                   info: dict[str, Any]) -> int:
    """Exit 2; in --json mode the error is a JSON body like every other failure's."""
    message = f"comfyless {args.command}: {exc}"
    if getattr(args, "json", False):
        body = {"type": kind, "message": str(exc), "details": "", "extra_info": info}
        return _fail(args, {"error": body, "node_errors": {}}, message, EXIT_USAGE)
    print(message, file=sys.stderr)
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
