"""Which thread policy keeps `comfyless demo` fast on an idle AND on a loaded CPU.

Runs `comfyless demo --steps N` (the demo's training + sampling, fewer training steps so each
measurement stays short) in a fresh subprocess per measurement - OpenMP reads its environment
once, at load - under each candidate policy, first on the machine as it is ("idle") and then
with one CPU-bound process (`while True: pass`, started and killed here) running beside it
("loaded"). Prints seconds per run and loaded/idle.

    python bench/threads.py [--steps 40] [--repeat 1] [--policies default,torch,1,2-passive,load]

Policies:
  default    comfyless's default (no thread variables set): what the goal is measured on
  torch      torch's own default: one thread per core, OpenMP's default spin-then-sleep wait
  1          COMFYLESS_THREADS=1
  2-passive  COMFYLESS_THREADS=2 (comfyless sets OMP_WAIT_POLICY=PASSIVE for > 1 thread)
  2-active   COMFYLESS_THREADS=2 with OMP_WAIT_POLICY=ACTIVE (threads spin while waiting)
  load       one thread per CPU not busy at start (comfyless.threads.load_based_threads)

Goal (issue 9): with the default policy, loaded <= 2x idle. The bench exits 1 if that fails.
"Idle" is whatever else runs on the machine: on a shared box, run it when it is quiet.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
THREAD_VARIABLES = ("COMFYLESS_THREADS", "OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT",
                    "MKL_NUM_THREADS", "KMP_BLOCKTIME")
ALL_POLICIES = ("default", "torch", "1", "2-passive", "2-active", "load")

# Run inside the measured process: pick the load-based count there, at the moment it starts.
LOAD_DRIVER = """
import os, sys
from comfyless import threads
os.environ["COMFYLESS_THREADS"] = str(threads.load_based_threads())
print("load-based choice:", os.environ["COMFYLESS_THREADS"], "thread(s)", file=sys.stderr)
from comfyless.cli import main
sys.exit(main(sys.argv[1:]))
"""


def policy_env(policy: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARIABLES}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    if policy == "torch":  # what torch does alone: OMP_NUM_THREADS = cores, so comfyless leaves it
        env["OMP_NUM_THREADS"] = str(os.cpu_count() or 1)
    elif policy == "1":
        env["COMFYLESS_THREADS"] = "1"
    elif policy == "2-passive":
        env["COMFYLESS_THREADS"] = "2"
    elif policy == "2-active":
        env["COMFYLESS_THREADS"] = "2"
        env["OMP_WAIT_POLICY"] = "ACTIVE"
    elif policy not in ("default", "load"):
        raise SystemExit(f"unknown policy {policy!r}; known: {', '.join(ALL_POLICIES)}")
    return env


def measure(policy: str, base: Path, steps: int) -> float:
    demo_args = ["demo", "--base-dir", str(base), "--steps", str(steps)]
    if policy == "load":
        command = [sys.executable, "-c", LOAD_DRIVER, *demo_args]
    else:
        command = [sys.executable, "-m", "comfyless", *demo_args]
    started = time.perf_counter()
    done = subprocess.run(command, env=policy_env(policy), capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{policy}: the demo failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return seconds


class Hog:
    """One CPU-bound process beside the measurement, for as long as the `with` lasts."""

    def __enter__(self) -> Hog:
        self.process = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        time.sleep(1.0)  # let it reach full speed
        return self

    def __exit__(self, *exc) -> None:
        self.process.kill()
        self.process.wait()


def prepare(base: Path) -> None:
    """The demo's checkpoint and images, written once, outside the timings."""
    code = "import sys; from pathlib import Path; from comfyless.demo import prepare_base_dir; " \
           "prepare_base_dir(Path(sys.argv[1]))"
    subprocess.run([sys.executable, "-c", code, str(base)], env=policy_env("1"), check=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=40, help="demo training steps (default 40)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per cell; the median is shown")
    parser.add_argument("--policies", default=",".join(ALL_POLICIES))
    parser.add_argument("--base-dir", help="reuse a demo base dir (default: a temporary one)")
    args = parser.parse_args()
    policies = [p.strip() for p in args.policies.split(",") if p.strip()]
    for policy in policies:
        policy_env(policy)  # unknown names fail before anything runs
    with tempfile.TemporaryDirectory(prefix="comfyless-bench-threads-") as scratch:
        base = Path(args.base_dir or scratch)
        prepare(base)
        print(f"comfyless demo --steps {args.steps}, {os.cpu_count()} CPUs, load at start "
              f"{os.getloadavg()[0]:.2f}; seconds (median of {args.repeat})", flush=True)
        print(f"{'policy':10} {'idle':>8} {'loaded':>8} {'loaded/idle':>12}", flush=True)
        ok = True
        for policy in policies:
            idle = _median([measure(policy, base, args.steps) for _ in range(args.repeat)])
            with Hog():
                loaded = _median([measure(policy, base, args.steps) for _ in range(args.repeat)])
            ratio = loaded / idle
            print(f"{policy:10} {idle:8.1f} {loaded:8.1f} {ratio:12.2f}", flush=True)
            if policy == "default" and ratio > 2.0:
                ok = False
    if not ok:
        print("goal missed: the default policy is more than 2x slower with one busy process")
    return 0 if ok else 1


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


if __name__ == "__main__":
    sys.exit(main())
