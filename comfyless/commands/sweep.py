"""`comfyless run WF --sweep ID.INPUT=VALUES ... [--workers N | --ray [ADDRESS]]`.

Runs every variant of the grid (engine/sweep.py) of one workflow, in this process, in local
worker processes or as Ray tasks (comfyless/dispatch.py), and writes one summary.

Where files go: output/sweep-<workflow>-<UTC time>/ holds one sub-folder per variant
(`<n>_<ID.INPUT=value>...`), which is that variant's output/ (and temp/sweep-.../<n>_... its
temp/), so two variants never write the same file; `sweep.json` beside them is the summary:
the grid, and per variant its overrides, status, exit code, seconds, the files it wrote
(relative to the sweep folder) and key numbers (`final_loss` per TrainLoraNode-style node: the
last value of its LOSS_MAP output).

Before anything runs: every --sweep is parsed, every target node/input is checked (as --set
checks), and every variant is validated; a mistake is a usage error (exit 2) or, for a value a
node does not accept, the invalid variant's errors (exit 1). Afterwards the exit code is 0 when
every variant succeeded, else 3.
"""

from __future__ import annotations

import copy
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..engine.overrides import UsageError, apply_overrides, set_input
from ..engine.paths import BasePaths
from ..engine.sweep import SweepAxis, Variant, expand_grid, parse_sweep

EXIT_OK, EXIT_INVALID, EXIT_USAGE, EXIT_NODE_FAILED = 0, 1, 2, 3
SUMMARY_FILE = "sweep.json"


@dataclass(frozen=True)
class VariantJob:
    """One variant, as a worker runs it (picklable; absolute paths for Ray)."""

    workflow: str
    sets: tuple[str, ...]  # the run's --set flags
    variant: Variant
    folder: str  # sub-path of output/ (and temp/) for this variant's files
    base_dir: str | None
    custom_nodes: tuple[str, ...] = ()
    threads: int | None = None
    save_every: int | None = None


@dataclass
class VariantResult:
    index: int
    folder: str
    overrides: dict[str, Any]
    status: str  # "succeeded", "invalid", "failed" (a node raised), "error" (I/O, dead worker)
    exit_code: int
    seconds: float = 0.0
    outputs: list[str] = field(default_factory=list)
    final_loss: dict[str, float] = field(default_factory=dict)
    error: str | None = None


@dataclass
class VariantPaths(BasePaths):
    """The base dir's folders, with output/ and temp/ moved into the variant's sub-folder."""

    sub: str = ""

    @classmethod
    def over(cls, paths: BasePaths, sub: str) -> VariantPaths:
        return cls(paths.base, paths.extra, sub=sub)

    @property
    def output_dir(self) -> Path:
        return self.base / "output" / self.sub

    @property
    def temp_dir(self) -> Path:
        return self.base / "temp" / self.sub


# -- the driver -----------------------------------------------------------------------------

def run_sweep(args, registry, dispatch) -> int:
    """`comfyless run` with --sweep: check everything, run the variants, write the summary."""
    axes = [parse_sweep(text) for text in args.sweep]
    variants = expand_grid(axes)
    workflow_path = resolve_workflow_file(args.workflow)
    loaded = _load(workflow_path, args.overrides, registry)
    _check_targets(loaded, args.overrides, axes, registry)
    invalid = _invalid_variants(loaded, variants, registry, args.base_dir)
    if invalid:
        for variant, lines in invalid:
            print(f"error: sweep variant {variant.index} ({variant.label()}) is invalid:",
                  file=sys.stderr)
            for line in lines:
                print(f"    {line}", file=sys.stderr)
        return EXIT_INVALID
    paths = BasePaths.resolve(args.base_dir)
    sweep_folder = _new_sweep_folder(paths.output_dir, Path(workflow_path).stem)
    width = len(str(len(variants)))
    base_dir = str(paths.base.resolve()) if dispatch.ray else args.base_dir
    packs = tuple(str(Path(p).resolve()) if dispatch.ray else p for p in args.custom_nodes)
    jobs = [VariantJob(str(Path(workflow_path).resolve()) if dispatch.ray else workflow_path,
                       tuple(args.overrides), v, f"{sweep_folder.name}/{v.folder(width)}",
                       base_dir, packs, threads=_thread_count(), save_every=args.save_every)
            for v in variants]
    if not args.json:
        print(f"sweep: {len(variants)} variant(s) of {args.workflow} on {dispatch.describe()}; "
              f"output in {sweep_folder}")
    on_result = None if args.json else (lambda _i, r: print(_row_line(r)))
    results = _run(jobs, dispatch, on_result)
    summary = _summary(args, axes, dispatch, sweep_folder, results)
    summary_file = sweep_folder / SUMMARY_FILE
    summary_file.parent.mkdir(parents=True, exist_ok=True)
    from ..files import write_atomic

    write_atomic(summary_file, lambda tmp: tmp.write_text(json.dumps(summary, indent=1)))
    if args.json:
        print(json.dumps({"status": "success" if _all_ok(results) else "error",
                          "summary_file": str(summary_file), **summary}, indent=2))
    else:
        print(format_table(summary["variants"], [a.target for a in axes]))
        print(f"summary: {summary_file}")
    return EXIT_OK if _all_ok(results) else EXIT_NODE_FAILED


def _run(jobs, dispatch, on_result):
    from ..dispatch import run_jobs

    return run_jobs(run_variant, jobs, dispatch, on_crash=crashed_variant, on_result=on_result)


def _all_ok(results: list[VariantResult]) -> bool:
    return all(r.status == "succeeded" for r in results)


def _thread_count() -> int:
    import torch  # threads were applied by the caller (comfyless/threads.py)

    return torch.get_num_threads()


def resolve_workflow_file(text: str) -> str:
    """A workflow file, else a shipped workflow of that name (OSError: neither)."""
    from ..workflows import find_shipped, shipped_workflows

    source = Path(text)
    if source.is_dir():
        raise OSError(f"{text}: is a directory, not a workflow file")
    if source.is_file():
        return text
    shipped = find_shipped(text)
    if shipped is None:
        names = ", ".join(shipped_workflows()) or "none"
        raise OSError(f"{text}: no such file, and no shipped workflow of that name "
                      f"(shipped: {names})")
    return str(shipped)


def _load(workflow_path: str, sets, registry):
    from ..engine.load import load_workflow_info

    loaded = load_workflow_info(Path(workflow_path), registry)
    apply_overrides(loaded.workflow, list(sets), registry, loaded.notes.primitives)
    return loaded


def _check_targets(loaded, sets, axes: list[SweepAxis], registry) -> None:
    """Every --sweep names a node and input of the workflow, and none is also a --set
    (sets each target to its first value: every variant sets them all again)."""
    from ..engine.overrides import parse_override

    set_targets = {".".join(parse_override(text)[:2]) for text in sets}
    for axis in axes:
        if axis.target in set_targets:
            raise UsageError(f"--sweep {axis.target} and --set {axis.target} both set it; "
                             "keep one")
        set_input(loaded.workflow, axis.node_id, axis.name, axis.values[0],
                  source=f"--sweep {axis.target}", registry=registry,
                  primitives=loaded.notes.primitives)


def _invalid_variants(loaded, variants, registry, base_dir):
    """[(variant, error lines)] for variants that do not validate (no torch: quick)."""
    from ..engine.validate import check_workflow

    paths = BasePaths.resolve(base_dir)
    bad = []
    for variant in variants:
        workflow = copy.deepcopy(loaded.workflow)
        for node_id, name, value in variant.overrides:
            set_input(workflow, node_id, name, value, source="--sweep", registry=registry,
                      primitives=loaded.notes.primitives)
        errors = check_workflow(workflow, registry, paths).errors
        if errors:
            bad.append((variant, [str(e) for e in errors]))
    return bad


def _new_sweep_folder(output_dir: Path, stem: str) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    folder = output_dir / f"sweep-{stem}-{stamp}"
    suffix = 2
    while folder.exists():
        folder = output_dir / f"sweep-{stem}-{stamp}-{suffix}"
        suffix += 1
    folder.mkdir(parents=True)
    return folder


def _summary(args, axes, dispatch, sweep_folder: Path, results) -> dict[str, Any]:
    return {"workflow": args.workflow, "set": list(args.overrides),
            "sweep": {a.target: list(a.values) for a in axes},
            "ran_on": dispatch.describe(), "folder": str(sweep_folder),
            "variants": [asdict(r) for r in results]}


# -- one variant (in a worker) ------------------------------------------------------------------

def run_variant(job: VariantJob) -> VariantResult:
    """Run one variant in this process; the outcome as a picklable VariantResult."""
    from ..engine.context import RunContext
    from ..engine.execute import run_workflow
    from ..engine.plugins import worker_registry
    from ..engine.workflow import to_api_json
    from ..threads import configure
    from ..typesys.errors import NodeExecutionError, WorkflowError, WorkflowInvalid

    configure(job.threads)
    started = time.perf_counter()
    overrides = {f"{n}.{i}": v for n, i, v in job.variant.overrides}
    result = VariantResult(job.variant.index, job.folder, overrides, "succeeded", EXIT_OK)
    registry = worker_registry(job.custom_nodes, job.base_dir)
    paths = VariantPaths.over(BasePaths.resolve(job.base_dir), job.folder)
    try:
        loaded = _load(job.workflow, job.sets, registry)
        for node_id, name, value in job.variant.overrides:
            set_input(loaded.workflow, node_id, name, value, source="--sweep",
                      registry=registry, primitives=loaded.notes.primitives)
        ctx = RunContext(paths, save_every=job.save_every)
        ctx.prompt = to_api_json(loaded.workflow)  # what SaveImage embeds in PNGs
        ctx.extra_pnginfo = {"workflow": loaded.ui_json} if loaded.ui_json is not None else None
        ran = run_workflow(loaded.workflow, ctx, registry)
        result.final_loss = _final_losses(loaded.workflow, ran, registry)
    except WorkflowInvalid as exc:
        result.status, result.exit_code, result.error = "invalid", EXIT_INVALID, str(exc)
    except NodeExecutionError as exc:
        result.status, result.exit_code, result.error = "failed", EXIT_NODE_FAILED, str(exc)
    except WorkflowError as exc:
        result.status, result.exit_code, result.error = "invalid", EXIT_INVALID, str(exc)
    except (OSError, UsageError) as exc:
        result.status, result.exit_code, result.error = "error", EXIT_USAGE, str(exc)
    result.outputs = _files_in(paths.output_dir)
    result.seconds = round(time.perf_counter() - started, 3)
    return result


def crashed_variant(job: VariantJob, message: str) -> VariantResult:
    """A variant whose worker died or raised: an error, with the files it got to write."""
    overrides = {f"{n}.{i}": v for n, i, v in job.variant.overrides}
    written = _files_in(VariantPaths.over(BasePaths.resolve(job.base_dir), job.folder).output_dir)
    return VariantResult(job.variant.index, job.folder, overrides, "error", EXIT_NODE_FAILED,
                         outputs=written, error=message)


def _final_losses(workflow, ran, registry) -> dict[str, float]:
    """{node id: last loss} for every node that produced a LOSS_MAP ({'loss': [...]})."""
    losses = {}
    for node_id, slots in ran.outputs.items():
        schema = registry[workflow[node_id].class_type].schema
        for output, values in zip(schema.outputs, slots, strict=False):
            if output.type.name != "LOSS_MAP":
                continue
            for value in values:
                curve = value.get("loss") if isinstance(value, dict) else None
                if curve:
                    losses[node_id] = float(curve[-1])
    return losses


def _files_in(folder: Path) -> list[str]:
    """The files a variant wrote, relative to the sweep folder (its parent)."""
    if not folder.is_dir():
        return []
    return sorted(str(p.relative_to(folder.parent)) for p in folder.rglob("*") if p.is_file())


# -- the printed table ----------------------------------------------------------------------

def format_table(rows: list[dict[str, Any]], targets: list[str]) -> str:
    """One line per variant: index, the swept values, status, seconds, final loss, files."""
    header = ["#", *targets, "status", "time", "final loss", "outputs"]
    lines = [[str(r["index"]), *(json.dumps(r["overrides"][t]) for t in targets), r["status"],
              f"{r['seconds']:.1f}s", _loss_text(r["final_loss"]), str(len(r["outputs"]))]
             for r in rows]
    widths = [max(len(row[i]) for row in [header, *lines]) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True))
                     .rstrip() for row in [header, *lines])


def _loss_text(losses: dict[str, float]) -> str:
    if not losses:
        return "-"
    if len(losses) == 1:
        return f"{next(iter(losses.values())):.6g}"
    return ", ".join(f"{k}:{v:.6g}" for k, v in losses.items())


def _row_line(result: VariantResult) -> str:
    values = ", ".join(f"{k}={json.dumps(v)}" for k, v in result.overrides.items())
    line = f"{result.status.upper():9} variant {result.index} ({values}) {result.seconds:.1f} s"
    if result.final_loss:
        line += f" final loss {_loss_text(result.final_loss)}"
    if result.error:
        line += f"\n    {result.error.splitlines()[0] if result.error.strip() else ''}"
    return line
