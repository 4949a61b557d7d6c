"""Run many independent jobs (suite cases, sweep variants) in this process, in local worker
processes (`--workers N`), or as Ray tasks (`--ray [ADDRESS]`). Imports nothing of comfyless.

The job function is the same in every mode: a module-level function taking one picklable job
and returning one picklable result. Results come back in job order, whatever order they finish
in; `on_result(index, result)` is called in that order as soon as every earlier job is done,
so a caller can print as it goes and the output reads the same as a sequential run's.

A job whose process dies (os._exit, a segfault, the OOM killer) or whose function raises becomes
`on_crash(job, message)` — that job's result — and the other jobs still run:
- local processes (concurrent.futures, 'spawn' context: each worker starts with a fresh
  interpreter and clean torch state): a dead worker breaks the whole pool, and the pool cannot
  say which job killed it. Every job left unfinished is then run again, each alone in a
  one-process pool, so only the job that dies by itself is reported as dead.
- Ray: one task per job, `max_retries=0` (a job that kills its worker is reported once, not
  retried three times); Ray reports the dead worker on that task's result alone.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

RAY_INSTALL = 'pip install "comfyless[ray]"'
DEAD_WORKER = ("the worker process running it died without a result (a crash, os._exit, "
               "or the out-of-memory killer)")


class DispatchError(Exception):
    """Parallel execution cannot start (Ray missing, bad worker count): a usage error."""


@dataclass(frozen=True)
class Dispatch:
    """How to run the jobs: `workers` local processes, or Ray when `ray` is set.

    With Ray, `ray_address` None joins the cluster $RAY_ADDRESS names or one `ray start` began on
    this machine, else starts a local one; `workers` (optional) caps how many jobs run at once.
    """

    workers: int | None = None
    ray: bool = False
    ray_address: str | None = None
    # Ray prints its workers' output and its own error notes ("(raylet) A worker died ...")
    # on the driver's stdout from a background thread; True sends them to stderr instead
    # (`--json`: stdout carries only the JSON).
    clean_stdout: bool = False

    @property
    def parallel(self) -> bool:
        return self.ray or self.workers is not None

    def describe(self) -> str:
        if self.ray:
            where = self.ray_address or "a local Ray cluster"
            return f"Ray ({where})"
        if self.workers is not None:
            return f"{self.workers} local worker process{'es' if self.workers != 1 else ''}"
        return "this process"


def ray_installed() -> bool:
    return importlib.util.find_spec("ray") is not None


def require_ray(flag: str = "--ray") -> None:
    """DispatchError (exit 2) naming the install command when Ray is not installed."""
    if not ray_installed():
        raise DispatchError(f"{flag} needs Ray, which is not installed; install it with: "
                            f"{RAY_INSTALL}")


# -- command-line flags (`comfyless test`, `comfyless run --sweep`) --------------------------

def add_dispatch_flags(p: argparse.ArgumentParser, what: str) -> None:
    """--workers N and --ray [ADDRESS] (shared by `comfyless run --sweep`)."""
    p.add_argument("--workers", type=_workers, default=None, metavar="N",
                   help=f"run the {what} in N local worker processes (a fresh interpreter "
                   "each; results as a sequential run's)")
    p.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help=f"run the {what} as Ray tasks: on the cluster at ADDRESS, else a local "
                   "one ($RAY_ADDRESS is honoured); put it after the positional argument or "
                   "write --ray=ADDRESS. Needs: pip install \"comfyless[ray]\"")


def positive_int(what: str) -> Callable[[str], int]:
    """`type=` for argparse: an int >= 1, else "expected {what} >= 1, got ..."."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = 0
        if value < 1:
            raise argparse.ArgumentTypeError(f"expected {what} >= 1, got {text!r}")
        return value

    return parse


_workers = positive_int("a number of processes")


def dispatch_of(args: argparse.Namespace) -> Dispatch:
    """dispatch.Dispatch from --workers/--ray; DispatchError (exit 2) when Ray is missing.
    With --json, what Ray prints goes to stderr: stdout carries only the JSON."""
    if args.ray is not None:
        require_ray()
    return Dispatch(workers=args.workers, ray=args.ray is not None,
                    ray_address=args.ray or None, clean_stdout=bool(getattr(args, "json", False)))


def run_jobs(func: Callable[[Any], Any], jobs: Sequence[Any], dispatch: Dispatch, *,
             on_crash: Callable[[Any, str], Any],
             on_result: Callable[[int, Any], None] | None = None) -> list[Any]:
    """func(job) for every job, as `dispatch` says; the results in job order."""
    emitter = _InOrder(len(jobs), on_result)
    if dispatch.ray:
        _run_ray(func, jobs, dispatch, on_crash, emitter)
    elif dispatch.workers is not None:
        _run_local(func, jobs, dispatch.workers, on_crash, emitter)
    else:
        for index, job in enumerate(jobs):
            emitter.put(index, func(job))
    return emitter.results


class _InOrder:
    """Results by index; calls on_result for each index once all earlier ones are in."""

    def __init__(self, count: int, on_result) -> None:
        self.results: list[Any] = [None] * count
        self._done = [False] * count
        self._next = 0
        self._on_result = on_result

    def put(self, index: int, result: Any) -> None:
        self.results[index], self._done[index] = result, True
        while self._next < len(self.results) and self._done[self._next]:
            if self._on_result is not None:
                self._on_result(self._next, self.results[self._next])
            self._next += 1


def _describe_exception(exc: BaseException) -> str:
    first = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {first[0]}" if first else type(exc).__name__


# -- local processes ------------------------------------------------------------------------

def _pool(workers: int):
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))


def _run_local(func, jobs, workers: int, on_crash, emitter: _InOrder) -> None:
    from concurrent.futures.process import BrokenProcessPool

    if workers < 1:
        raise DispatchError(f"--workers: expected a number of processes >= 1, got {workers}")
    unfinished = []
    pool = _pool(min(workers, max(len(jobs), 1)))
    try:
        futures = [pool.submit(func, job) for job in jobs]
        for index, future in enumerate(futures):
            try:
                emitter.put(index, future.result())
            except BrokenProcessPool:
                unfinished.append(index)  # this job, or another one, killed a worker
            except Exception as exc:  # noqa: BLE001 - the job's own failure is its result
                emitter.put(index, on_crash(jobs[index], _describe_exception(exc)))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    if unfinished:
        _run_isolated(func, jobs, unfinished, workers, on_crash, emitter)


def _run_isolated(func, jobs, indices: list[int], workers: int, on_crash, emitter) -> None:
    """Each job alone in a one-process pool (up to `workers` at once): a pool that breaks now
    was broken by its own job."""
    from concurrent.futures import ThreadPoolExecutor

    def alone(index: int):
        from concurrent.futures.process import BrokenProcessPool

        with _pool(1) as pool:
            try:
                return pool.submit(func, jobs[index]).result()
            except BrokenProcessPool:
                return on_crash(jobs[index], DEAD_WORKER)
            except Exception as exc:  # noqa: BLE001
                return on_crash(jobs[index], _describe_exception(exc))

    with ThreadPoolExecutor(max_workers=workers) as threads:
        for index, result in zip(indices, threads.map(alone, indices), strict=True):
            emitter.put(index, result)


# -- Ray ------------------------------------------------------------------------------------

def _run_ray(func, jobs, dispatch: Dispatch, on_crash, emitter: _InOrder) -> None:
    require_ray()
    import ray

    started_here = not ray.is_initialized()  # else: the caller's cluster, left running
    # No num_cpus: an address of None may still join a running cluster ($RAY_ADDRESS, or one
    # `ray start` began on this machine), which refuses it; --workers caps tasks in flight.
    options: dict[str, Any] = {"include_dashboard": False, "logging_level": "WARNING"}
    redirect = (contextlib.redirect_stdout(sys.stderr) if dispatch.clean_stdout
                else contextlib.nullcontext())
    with redirect:
        if started_here:
            ray.init(address=dispatch.ray_address, **options)
        try:
            _ray_tasks(ray, func, jobs, dispatch.workers, on_crash, emitter)
        finally:
            if started_here:
                ray.shutdown()  # stops Ray's printing thread before stdout is ours again


def _ray_tasks(ray, func, jobs, workers: int | None, on_crash, emitter: _InOrder) -> None:
    """One task per job, at most `workers` (else all) submitted at once."""
    task = ray.remote(num_cpus=1, max_retries=0)(func)
    limit = workers or len(jobs)
    waiting = list(range(len(jobs)))
    running: dict[Any, int] = {}
    while waiting or running:
        while waiting and len(running) < limit:
            index = waiting.pop(0)
            running[task.remote(jobs[index])] = index
        ready, _ = ray.wait(list(running), num_returns=1)
        for ref in ready:
            index = running.pop(ref)
            emitter.put(index, _ray_result(ray, ref, jobs[index], on_crash))


def _ray_result(ray, ref, job, on_crash):
    try:
        return ray.get(ref)
    except (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError,
            ray.exceptions.LocalRayletDiedError):
        return on_crash(job, DEAD_WORKER.replace("worker process", "Ray worker"))
    except ray.exceptions.RayTaskError as exc:  # the job function raised
        cause = exc.cause if getattr(exc, "cause", None) is not None else exc
        return on_crash(job, _describe_exception(cause))
    except ray.exceptions.RayError as exc:
        return on_crash(job, _describe_exception(exc))
