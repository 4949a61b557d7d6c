"""Seconds per training step of `comfyless run lora-train`, measured the way issue 13 measured
ComfyUI: (wall time of an 18-step run - wall time of a 2-step run) / 16, fastest of --tries
runs of each, so start-up, loading, encoding, saving and the sampling tail cancel out.

The runs are the real command line in fresh processes (`python -m comfyless run lora-train`)
on the workflow and files bench/startup.py builds (its `prepare` and `run_args`; default: the
issue's reference, tiny-unet checkpoint with full-size CLIP-L and VAE, 8 images 256 px,
training_dtype fp32, lora_dtype bf16, gradient checkpointing on, batch 1, rank 8, AdamW).
CPU seconds per step come from the children's rusage the same way (fastest pair). ComfyUI's
figure in the issue, on a 2-core AVX2 EPYC: 6.9-9.5 s/step.

    python bench/cli_step_time.py [--size tiny-unet] [--steps 2,18] [--tries 3] [--threads 1]
                                  [--lora-dtype bf16] [--dtype fp32] [--base-dir D]

The machine may be shared: wall times are noisy, hence the fastest of --tries.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from startup import prepare, run_args  # noqa: E402


def timed_run(argv: list[str]) -> tuple[float, float]:
    """(wall s, CPU s: user + system) of one `comfyless` child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "comfyless", *argv], capture_output=True,
                          text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"comfyless run failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="tiny-unet", choices=("tiny", "small", "full", "tiny-unet"))
    ap.add_argument("--steps", default="2,18", help="short,long step counts")
    ap.add_argument("--tries", type=int, default=3)
    ap.add_argument("--threads", default="1", help="the CLI's --threads (its default: 1)")
    ap.add_argument("--lora-dtype", default="bf16", choices=("fp32", "bf16"))
    ap.add_argument("--dtype", default="fp32", choices=("fp32", "bf16"))
    ap.add_argument("--gc", default="on", choices=("on", "off"))
    ap.add_argument("--px", type=int, default=256)
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--base-dir", default=None)
    args = ap.parse_args()
    short, long = map(int, args.steps.split(","))
    base = Path(args.base_dir or Path(tempfile.gettempdir()) / "comfyless-bench-startup")
    ckpt = prepare(base, args.size, args.px, args.images)
    print(f"comfyless run lora-train: sd15 {args.size}, {args.images} images {args.px} px, "
          f"{args.dtype} training, {args.lora_dtype} LoRA, checkpointing {args.gc}, "
          f"threads {args.threads}; fastest of {args.tries}")
    best: dict[int, tuple[float, float]] = {}
    for attempt in range(args.tries):
        for steps in (short, long):
            wall, cpu = timed_run(run_args(argparse.Namespace(**{**vars(args), "steps": steps}),
                                           base, ckpt))
            print(f"  try {attempt + 1}: {steps:3d} steps  wall {wall:7.2f} s  cpu {cpu:7.2f} s",
                  flush=True)
            old = best.get(steps, (float("inf"), float("inf")))
            best[steps] = (min(old[0], wall), min(old[1], cpu))
    span = long - short
    wall_step = (best[long][0] - best[short][0]) / span
    cpu_step = (best[long][1] - best[short][1]) / span
    print(f"s/step (wall): {wall_step:.3f}   cpu s/step: {cpu_step:.3f}   "
          f"(ComfyUI in issue 13: 6.9-9.5 s/step -> ratio {wall_step / 9.5:.3f}-"
          f"{wall_step / 6.9:.3f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
