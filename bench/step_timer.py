"""Shared by the training benches: a progress callback that times each step (wall and CPU),
and this process's peak resident set."""

from __future__ import annotations

import time


def hwm() -> int:
    """Peak resident set of this process (bytes; /proc/self/status VmHWM)."""
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


class StepTimer:
    """`progress(step, total, loss)` callback for train_lora recording each step's wall and CPU
    seconds; `restart()` just before training so the first step excludes set-up."""

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []
        self.restart()

    def restart(self) -> None:
        self._last = time.perf_counter(), time.process_time()

    def __call__(self, step: int, total: int, loss: float) -> None:
        now = time.perf_counter(), time.process_time()
        self.wall.append(now[0] - self._last[0])
        self.cpu.append(now[1] - self._last[1])
        self._last = now

    def medians(self, warmup: int) -> tuple[float, float]:
        """(wall, CPU) seconds per step: the median of the steps after `warmup`."""
        wall, cpu = sorted(self.wall[warmup:]), sorted(self.cpu[warmup:])
        return wall[len(wall) // 2], cpu[len(cpu) // 2]
