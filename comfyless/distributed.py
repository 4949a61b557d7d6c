"""Runs launched by torchrun: the process group, where other ranks write, and how all ranks
agree that a run failed (docs/distributed-training.md).

`torchrun --nproc-per-node N -m comfyless run WF` starts N processes with RANK, WORLD_SIZE,
LOCAL_RANK, MASTER_ADDR and MASTER_PORT set. Each runs the whole workflow; `init_from_env`
joins them in one process group (NCCL when the run's device is CUDA, gloo on the CPU). Without
those variables (or with WORLD_SIZE 1) nothing here runs: a plain run has no distributed code
path at all.

Status rounds (the one protocol between ranks besides the training gradients): every rank
calls `check` / `final_round` at the same points — before each training iteration's backward,
before the gradient wrapper is built, and once after the run. A round is one all-reduce of a
small CPU tensor: one failure flag per rank, plus a value to sum (the training loss). If any
flag is set, the ranks exchange what failed (one all_gather_object) and stop; the failing
rank raises its own error, the others `RankFailed` naming it. A rank that has seen a failed
round makes no further collective call (its peers are leaving too), so nothing waits for a
rank that is gone. A rank that fails inside a gradient all-reduce (its backward) cannot
reach its peers with a round — they wait in the all-reduce — so it leaves the group at once
(`Group.abandon`) and exits; its peers' all-reduce then fails (gloo: the connection closed) or
torchrun stops them as soon as a worker exits with an error. The same holds for a rank that
is killed. Never a silent hang.

A small module of its own (no torch import at module level, nothing of ours imported) so the
engine (where files go) and lora/ (the training loop) can both use it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

# torchrun sets all of these; RANK and WORLD_SIZE decide.
ENV_RANK, ENV_WORLD, ENV_LOCAL_RANK = "RANK", "WORLD_SIZE", "LOCAL_RANK"
# How long a collective (a status round included) waits for a peer that neither answers nor
# closes its connection (a hung node). torch's default is 30 min (gloo) / 10 min (NCCL).
ENV_TIMEOUT = "COMFYLESS_DIST_TIMEOUT"
DEFAULT_TIMEOUT_S = 600
# How long a finished rank waits for the others to finish before leaving anyway.
FAREWELL_TIMEOUT_S = 60


class RankFailed(RuntimeError):
    """Another rank failed; this one stops too. `.rank` failed with `.failure`:
    {"message", "type", "interrupted", and from the CLI "code", "stdout", "stderr"}."""

    def __init__(self, rank: int, failure: dict[str, Any]) -> None:
        super().__init__(f"rank {rank} failed: {failure.get('message', '')}")
        self.rank, self.failure = rank, failure

    @property
    def interrupted(self) -> bool:
        return bool(self.failure.get("interrupted"))


@dataclass
class Group:
    """This process's place in the run, and the state of the status protocol."""

    rank: int
    world_size: int
    local_rank: int
    device: str  # this rank's device: "cpu", or "cuda:<local rank>" for a device "cuda"
    backend: str  # "gloo" | "nccl"
    fsdp: bool = False  # --fsdp: frozen weights sharded while training (lora/sharding.py)
    status_group: Any = None  # gloo group for status rounds when the main backend is NCCL
    scratch: Path | None = None  # rank != 0: where this rank's files go (removed at the end)
    # payloads of the round that reported a failure; once set, no more collective calls
    failures: list[dict[str, Any]] | None = field(default=None)
    abandoned: bool = False  # left the group after a failure peers could not be told of

    def abandon(self) -> None:
        """This rank failed while its peers may be waiting in a gradient all-reduce (no status
        round can reach them): leave the group at once, so that their collective fails
        (gloo: the connection closes) or torchrun stops them when this rank exits, instead of
        every rank waiting for the timeout. No collective call follows."""
        import torch.distributed as dist

        self.failures, self.abandoned = [], True
        if dist.is_initialized():
            dist.destroy_process_group()

    # -- status rounds ----------------------------------------------------------------------
    def check(self, error: BaseException | None = None, value: float = 0.0) -> float:
        """One status round. Returns the sum of `value` over ranks. If any rank reports an
        error: this rank re-raises `error` when it has one, else raises RankFailed."""
        failed, total = self._round(error is not None, value)
        if not failed:
            return total
        self._exchange(failure_info(error) if error is not None else None)
        if error is not None:
            raise error
        raise self.first_failure()

    def final_round(self, failure: dict[str, Any] | None) -> list[dict[str, Any]]:
        """After the run: every rank's failure payloads (empty when all succeeded). A rank that
        has already seen a failed round does not call its peers again."""
        if self.failures is not None:
            return self.failures
        failed, _ = self._round(failure is not None, 0.0)
        if not failed:
            return []
        return self._exchange(failure)

    def first_failure(self) -> RankFailed:
        """The failure of the lowest-numbered rank whose own error started the stop."""
        primary = [f for f in self.failures or [] if not f.get("secondary")] or self.failures
        first = min(primary, key=lambda f: f["rank"])
        return RankFailed(first["rank"], first)

    def _round(self, failed: bool, value: float) -> tuple[list[int], float]:
        import torch
        import torch.distributed as dist

        status = torch.zeros(self.world_size + 1, dtype=torch.float64)
        status[self.rank] = 1.0 if failed else 0.0
        status[-1] = float(value)
        dist.all_reduce(status, group=self.status_group)
        flags = status[:-1].tolist()
        return [r for r, f in enumerate(flags) if f > 0], float(status[-1])

    def _exchange(self, mine: dict[str, Any] | None) -> list[dict[str, Any]]:
        import torch.distributed as dist

        payloads: list[Any] = [None] * self.world_size
        dist.all_gather_object(payloads, None if mine is None else {**mine, "rank": self.rank},
                               group=self.status_group)
        self.failures = [p for p in payloads if p is not None]
        return self.failures


def failure_info(error: BaseException) -> dict[str, Any]:
    """What other ranks are told about this rank's error."""
    from .typesys.errors import Interrupted

    stop = (Interrupted, KeyboardInterrupt)  # also as the cause of a TrainingStopped
    info = {"message": str(error), "type": type(error).__name__,
            "interrupted": isinstance(error, stop) or isinstance(error.__cause__, stop)}
    if isinstance(error, RankFailed):  # stopping because of another rank: not the cause
        info.update(secondary=True, interrupted=error.interrupted)
    return info


_current: list[Group | None] = [None]


def launched_by_torchrun(env: dict[str, str] | None = None) -> bool:
    """Whether this process is one of several ranks (RANK and WORLD_SIZE > 1 set)."""
    env = os.environ if env is None else env
    try:
        return ENV_RANK in env and int(env.get(ENV_WORLD, "1")) > 1
    except ValueError:
        return False


def current() -> Group | None:
    """The group this process joined (`init_from_env`), or None in a single-process run."""
    return _current[0]


def init_from_env(device: str = "cpu", fsdp: bool = False) -> Group:
    """Join the process group torchrun's variables describe (once per process).

    `device` is the run's device (COMFYLESS_DEVICE): "cuda" becomes this rank's GPU,
    cuda:<LOCAL_RANK>, and the backend NCCL (with a gloo group beside it for status rounds,
    which stay on the CPU so they never wait for the GPU); anything else trains over gloo."""
    if _current[0] is not None:
        return _current[0]
    import torch
    import torch.distributed as dist

    rank, world = int(os.environ[ENV_RANK]), int(os.environ[ENV_WORLD])
    local_rank = int(os.environ.get(ENV_LOCAL_RANK, "0"))
    timeout = timedelta(seconds=float(os.environ.get(ENV_TIMEOUT, DEFAULT_TIMEOUT_S)))
    if device.startswith("cuda"):
        index = int(device.split(":", 1)[1]) if ":" in device else local_rank
        torch.cuda.set_device(index)
        device, backend = f"cuda:{index}", "nccl"
    else:
        backend = "gloo"
    dist.init_process_group(backend, rank=rank, world_size=world, timeout=timeout)
    status = dist.new_group(backend="gloo", timeout=timeout) if backend != "gloo" else None
    scratch = None
    if rank != 0:  # only rank 0 writes into the base dir; the others write here, then drop it
        scratch = Path(tempfile.mkdtemp(prefix=f"comfyless-rank{rank}-"))
    _current[0] = Group(rank, world, local_rank, device, backend, fsdp=fsdp,
                        status_group=status, scratch=scratch)
    return _current[0]


def shutdown() -> None:
    """Wait for the other ranks to finish too, leave the process group, remove this rank's
    scratch folder. The wait lets rank 0 print the run's result or error before any rank
    exits: torchrun stops the remaining workers as soon as one exits with an error."""
    group = _current[0]
    if group is None:
        return
    _current[0] = None
    import gc

    import torch.distributed as dist

    gc.collect()  # objects still holding the process group (a DDP reducer) go before it
    if dist.is_initialized():
        try:  # every rank gets here once, after its last status round; a dead peer: an error
            dist.monitored_barrier(group=group.status_group,
                                   timeout=timedelta(seconds=FAREWELL_TIMEOUT_S))
        except RuntimeError:
            pass
        dist.destroy_process_group()
    if group.scratch is not None:
        shutil.rmtree(group.scratch, ignore_errors=True)


def scratch_dir() -> Path | None:
    """Where this process writes its files instead of the base dir (ranks other than 0)."""
    group = _current[0]
    return group.scratch if group is not None else None
