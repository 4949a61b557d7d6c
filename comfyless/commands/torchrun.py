"""`comfyless run` as one rank of a torchrun launch (docs/distributed-training.md).

Every rank runs the workflow as a plain run would (TrainLoraNode trains its share of each
batch, comfyless/lora/training.py). Around that run:
- the process group is joined first (comfyless/distributed.py), so RunContext sends the files
  of ranks other than 0 to their scratch folder and the device "cuda" means this rank's GPU;
- rank 0 shows progress and logs live; the other ranks' output is captured and dropped,
  except their own error;
- what the run prints on stdout (the result, or --json's body) is held until the final status
  round: when every rank succeeded, rank 0 prints its result; when a rank failed, rank 0
  prints that rank's error (its --json body when --json) and every rank exits with its code.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
from collections.abc import Callable
from contextlib import nullcontext, redirect_stderr, redirect_stdout
from typing import Any

from .. import distributed

ENV_DEVICE = "COMFYLESS_DEVICE"  # the run's device (engine/context.py RunContext.device)


def run_as_rank(args: argparse.Namespace, run: Callable[[argparse.Namespace], int],
                exit_codes: dict[type[BaseException], int]) -> int:
    """`run(args)` in this rank; `exit_codes`: the code main() gives an exception `run` lets
    through (UsageError, OSError, KeyboardInterrupt), re-raised here after the final round."""
    group = distributed.init_from_env(os.environ.get(ENV_DEVICE, "cpu"),
                                      fsdp=getattr(args, "fsdp", False))
    os.environ[ENV_DEVICE] = group.device
    out, err = io.StringIO(), io.StringIO()
    escaped: BaseException | None = None
    try:
        quiet = redirect_stderr(err) if group.rank != 0 else nullcontext()
        with redirect_stdout(out), quiet:
            try:
                code = run(args)
            except tuple(exit_codes) as exc:
                escaped, code = exc, _code_of(exc, exit_codes)
        failure = None if code == 0 else _failure(group, code, out, err, escaped)
        failures = group.final_round(failure)
        return _finish(group, code, out, escaped, failures, failure)
    finally:
        distributed.shutdown()


def _code_of(exc: BaseException, exit_codes: dict[type[BaseException], int]) -> int:
    return next(code for kind, code in exit_codes.items() if isinstance(exc, kind))


def _failure(group: distributed.Group, code: int, out: io.StringIO, err: io.StringIO,
             escaped: BaseException | None) -> dict[str, Any]:
    """What rank 0 needs to report this rank's failure as its own."""
    lines = [line for line in err.getvalue().splitlines() if line.startswith("error:")]
    if escaped is not None:
        lines.append(f"error: {escaped}")
    return {"code": code, "message": lines[-1][len("error: "):] if lines else f"exit {code}",
            "stderr": lines, "stdout": out.getvalue() if group.rank != 0 else "",
            "interrupted": code == 130}


def _finish(group: distributed.Group, code: int, out: io.StringIO,
            escaped: BaseException | None, failures: list[dict[str, Any]],
            own: dict[str, Any] | None) -> int:
    first = group.first_failure() if failures else None
    if group.rank != 0:  # its own error on its own stderr; all else was captured
        if own is not None and (group.abandoned or first is not None and
                                first.rank == group.rank):
            for line in own["stderr"]:
                print(f"[rank {group.rank}] {line}", file=sys.stderr)
        return code if code != 0 or first is None else first.failure.get("code", 1)
    if first is None or first.rank == 0 or code != 0:
        # rank 0's own output: its result, its own error, or its error naming the failed rank
        sys.stdout.write(out.getvalue())
        if escaped is not None:
            raise escaped
        return code if first is None or first.rank == 0 else first.failure.get("code", code)
    # rank 0 succeeded, another rank did not: that rank's error is the run's
    sys.stdout.write(first.failure.get("stdout", ""))
    for line in first.failure.get("stderr", []):
        print(line.replace("error: ", f"error: rank {first.rank}: ", 1), file=sys.stderr)
    return int(first.failure.get("code", 1))
