"""How many CPU threads torch uses, and how its OpenMP threads wait. Torch-free until `apply`.

Why this exists: on a shared CPU (a CI runner, a 2-core box with one other busy process) torch's
default - one OpenMP thread per core, spinning while it waits for the others - made training
3-10x slower than one thread. Every parallel region ends at a barrier; when one thread has lost
its core to another process, the others spin at the barrier until the scheduler gives it a
time slice back. The models comfyless trains on a CPU are small, so a second thread gains little
even on an idle machine (bench/threads.py measures it).

The policy (`choose`), first match wins:
1. `--threads N` on `comfyless run|demo|test` (N >= 1, or `auto`);
2. the environment variable COMFYLESS_THREADS (same values);
3. an OMP_NUM_THREADS set by the user: comfyless then leaves OpenMP alone entirely (count and
   wait policy), as torch itself would;
4. the default, `auto`: DEFAULT_THREADS threads (1; chosen from bench/threads.py: one thread is
   never more than a little slower on an idle machine and stays fast when the cores are taken).

Whenever more than one thread is used and the user has not set OMP_WAIT_POLICY or
GOMP_SPINCOUNT, waiting threads sleep (OMP_WAIT_POLICY=PASSIVE) instead of spinning, so a
waiting thread never takes a core from the one it waits for.

OpenMP reads its environment once, when torch loads it: `apply` sets the variables in
os.environ first and only then imports torch and calls torch.set_num_threads. If torch was
already imported (e.g. inside a test process) the thread count still changes; the wait policy
does not (`Policy.wait_applied` is False then).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

ENV_THREADS = "COMFYLESS_THREADS"
DEFAULT_THREADS = 1
AUTO = "auto"
# Environment variables by which a user already controls how OpenMP threads wait.
WAIT_VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")


class ThreadsError(ValueError):
    """A thread count that is not a positive integer or `auto` (a usage error)."""


@dataclass(frozen=True)
class Policy:
    threads: int | None  # None: leave torch's own choice (the user set OMP_NUM_THREADS)
    wait_policy: str | None  # "PASSIVE" to set, None to leave as it is
    source: str  # where the count came from, for messages: "--threads", "COMFYLESS_THREADS", ...
    wait_applied: bool = True


def parse_threads(text: str | int, where: str) -> int | None:
    """`auto` -> None, a positive integer -> itself; anything else raises ThreadsError."""
    if isinstance(text, int) and not isinstance(text, bool):
        value = text
    else:
        word = str(text).strip().lower()
        if word == AUTO:
            return None
        try:
            value = int(word)
        except ValueError:
            raise ThreadsError(f"{where}: expected a positive number of threads or "
                               f"{AUTO!r}, got {text!r}") from None
    if value < 1:
        raise ThreadsError(f"{where}: expected a positive number of threads or {AUTO!r}, "
                           f"got {text!r}")
    return value


def argparse_threads(text: str) -> int | str:
    """`type=` for argparse: a positive int, or `auto`."""
    import argparse

    try:
        value = parse_threads(text, "--threads")
    except ThreadsError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return AUTO if value is None else value


def choose(flag: int | str | None = None, environ: dict[str, str] | None = None) -> Policy:
    """The thread count and wait policy for this process (see the module docstring)."""
    env = os.environ if environ is None else environ
    if flag is not None and parse_threads(flag, "--threads") is not None:
        threads, source = parse_threads(flag, "--threads"), "--threads"
    elif flag is None and env.get(ENV_THREADS, "").strip():
        threads = parse_threads(env[ENV_THREADS], ENV_THREADS)
        source = ENV_THREADS if threads is not None else f"{ENV_THREADS}={AUTO}"
    elif flag is None and env.get("OMP_NUM_THREADS", "").strip():
        return Policy(None, None, "OMP_NUM_THREADS")
    else:
        threads, source = None, "default"
    if threads is None:
        threads = DEFAULT_THREADS
    user_wait = any(env.get(name) for name in WAIT_VARIABLES)
    wait = "PASSIVE" if threads > 1 and not user_wait else None
    return Policy(threads, wait, source)


def apply(policy: Policy, environ: dict[str, str] | None = None) -> Policy:
    """Set the OpenMP environment, then torch's thread count; returns what took effect."""
    env = os.environ if environ is None else environ
    torch_loaded = "torch" in sys.modules
    if policy.threads is not None:
        # Also for libraries that read it (MKL, numpy's BLAS) and for child processes.
        env["OMP_NUM_THREADS"] = str(policy.threads)
    if policy.wait_policy is not None:
        env["OMP_WAIT_POLICY"] = policy.wait_policy
    import torch  # after the environment: OpenMP reads it when torch loads it

    if policy.threads is not None and torch.get_num_threads() != policy.threads:
        torch.set_num_threads(policy.threads)
    return Policy(policy.threads, policy.wait_policy, policy.source,
                  wait_applied=policy.wait_policy is None or not torch_loaded)


def configure(flag: int | str | None = None) -> Policy:
    """`choose` from the flag and os.environ, then `apply`."""
    return apply(choose(flag))


def describe(policy: Policy) -> str:
    """One line for logs and golden records, e.g. '1 thread (default)'."""
    if policy.threads is None:
        return f"torch's own thread count ({policy.source} set)"
    plural = "s" if policy.threads > 1 else ""
    wait = f", OMP_WAIT_POLICY={policy.wait_policy}" if policy.wait_policy else ""
    return f"{policy.threads} thread{plural} ({policy.source}{wait})"


def busy_cpus() -> float:
    """CPUs other processes keep busy now: the larger of the 1-minute load average and the
    tasks runnable at this instant (from /proc/loadavg, minus this process). The load average
    lags a minute behind a process that just started; the instant count sees it at once."""
    try:
        one_minute = os.getloadavg()[0]
    except OSError:  # not available on this platform
        one_minute = 0.0
    try:
        with open("/proc/loadavg") as handle:
            running = int(handle.read().split()[3].split("/")[0]) - 1
    except (OSError, IndexError, ValueError):
        running = 0
    return max(one_minute, float(running))


def load_based_threads(cpus: int | None = None, busy: float | None = None) -> int:
    """One thread per CPU that no other process is using (at least 1)."""
    cpus = cpus or os.cpu_count() or 1
    busy = busy_cpus() if busy is None else busy
    return max(1, min(cpus, cpus - int(round(busy))))
