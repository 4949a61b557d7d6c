"""`comfyless test --workers N | --ray [ADDRESS]`: one case per worker call, same verdicts.

`run_case_job(job)` is what a worker process or Ray task runs: it sets up the process the way
the sequential run set up its own (thread count, --deterministic, the node registry with the
same custom_nodes packs; once per process) and then calls runner.run_case, the function the
sequential run calls. Each case already runs in its own base-dir view (runner.ScratchPaths:
the base dir's models/input, a scratch output/temp), so cases never share output files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .runner import CaseResult, run_case
from .suite import Case, Suite

_SET_UP: set[tuple] = set()  # (threads, deterministic) this process was set up with


@dataclass(frozen=True)
class CaseJob:
    """Everything a worker needs to run one case (picklable; paths as the worker sees them)."""

    case: Case
    suite: Suite
    base_dir: str | None
    update: bool
    report_dir: str
    custom_nodes: tuple[str, ...] = ()
    threads: int | None = None  # the driver's torch thread count: goldens record it
    deterministic: bool = False


def make_deterministic() -> None:
    """Same inputs, same bits: deterministic kernels, no TF32 (threads: cli.thread_flag)."""
    import torch

    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False


def run_case_job(job: CaseJob) -> CaseResult:
    """Run one case in this (worker) process; the verdict is a picklable CaseResult."""
    from ..engine.plugins import worker_registry

    _set_up_process(job.threads, job.deterministic)
    return run_case(job.case, job.suite, base_dir=job.base_dir, update=job.update,
                    report_dir=Path(job.report_dir),
                    registry=worker_registry(job.custom_nodes, job.base_dir))


def crashed_case(job: CaseJob, message: str) -> CaseResult:
    """The verdict of a case whose worker died or raised: an error naming what happened."""
    return CaseResult(job.case.name, "error", messages=[message])


def _set_up_process(threads: int | None, deterministic: bool) -> None:
    key = (threads, deterministic)
    if key in _SET_UP:
        return
    from ..threads import configure

    configure(threads)  # before torch is imported in a fresh worker (OpenMP reads env once)
    if deterministic:
        make_deterministic()
    _SET_UP.add(key)


def absolute_suite(suite: Suite) -> Suite:
    """The suite with absolute paths: a Ray worker need not share the driver's working dir."""
    cases = tuple(Case(c.name, c.workflow.resolve(), c.overrides, c.tolerance)
                  for c in suite.cases)
    return Suite(suite.root.resolve(), suite.golden.resolve(), cases)
