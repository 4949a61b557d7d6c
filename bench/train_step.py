"""Seconds per training step and peak RSS of the LoRA training loop (TrainLoraNode's).

Cases: SD1.5 UNets tiny (32 ch, 2 levels), small (320 ch, 2 levels: the issue-4 reference,
ComfyUI ~1.9 s/step at 256 px fp32 on this CPU) and full (SD1.5's 860M UNet, only with
--full: minutes per case on 2 cores), at 256 and 512 px, fp32 and bf16 compute, batch 1,
gradient checkpointing on (depth 1) and off; LoRA rank 8, AdamW, fp32 adapters, 77-token
captions. Random weights, built in memory. Each case runs in a fresh subprocess so its peak
RSS (VmHWM) is its own; the step time is the median of the timed steps after warm-up steps.

    python bench/train_step.py [--full] [--sizes tiny,small] [--px 256,512] [--steps 3]
                               [--threads N] [--profile small,256,fp32,on]

The machine is shared with teammates running tests: wall timings are noisy, compare within one
run; `cpu s/step` (process CPU time) is less sensitive to other load. Under load, --threads 1
is much faster than torch's default (OpenMP threads waiting on each other: 15x on the tiny
UNet with load ~10 on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from step_timer import StepTimer, hwm  # noqa: E402


def build(size: str):
    import torch

    from comfyless.models.checkpoint_writer import unet_config
    from comfyless.models.families import family
    from comfyless.models.patcher import ModelPatcher
    from comfyless.models.sampling import ModelSampling
    from comfyless.models.unet import UNetModel

    torch.manual_seed(0)
    unet = UNetModel(unet_config("sd15", size)).eval()
    sd15 = family("sd15")
    return ModelPatcher(unet, ModelSampling("eps"), sd15.latent_format, sd15.name)


def run_case(size: str, px: int, dtype: str, gc: str, steps: int, warmup: int,
             profile: bool = False, lora_dtype: str = "fp32", rank: int = 8) -> dict:
    import torch

    from comfyless.lora.training import TrainConfig, train_lora

    model = build(size)
    g = torch.Generator().manual_seed(0)
    lat = [{"samples": torch.randn(2, 4, px // 8, px // 8, generator=g)}]
    pos = [[[torch.randn(1, 77, model.config.context_dim, generator=g), {}] for _ in range(2)]]
    timer = StepTimer()
    cfg = TrainConfig(steps=warmup + steps, training_dtype=dtype, lora_dtype=lora_dtype,
                      rank=rank, gradient_checkpointing=gc == "on", learning_rate=1e-4)
    if profile:
        from torch.profiler import profile as prof

        with prof(record_shapes=False) as p:
            train_lora(model, lat, pos, cfg, progress=timer)
        print(p.key_averages().table(sort_by="self_cpu_time_total", row_limit=20))
    else:
        timer.restart()
        train_lora(model, lat, pos, cfg, progress=timer)
    wall, cpu = timer.medians(warmup)
    return {"size": size, "px": px, "dtype": dtype, "gc": gc, "lora_dtype": lora_dtype,
            "s_per_step": wall, "cpu_s_per_step": cpu, "peak_rss_gib": hwm() / 2**30}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="also the full-size SD1.5 UNet")
    ap.add_argument("--sizes", default="tiny,small")
    ap.add_argument("--px", default="256,512")
    ap.add_argument("--dtypes", default="fp32,bf16")
    ap.add_argument("--gc", default="off,on")
    ap.add_argument("--lora-dtype", default="fp32", choices=("fp32", "bf16"),
                    help="the adapters' dtype (issue 13's reference setting: bf16)")
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    ap.add_argument("--profile", help="size,px,dtype,gc: print a torch.profiler table")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.child or args.profile:
        size, px, dtype, gc = (args.child or args.profile).split(",")
        out = run_case(size, int(px), dtype, gc, args.steps, args.warmup, bool(args.profile),
                       args.lora_dtype, args.rank)
        print(json.dumps(out))
        return 0
    sizes = args.sizes.split(",") + (["full"] if args.full else [])
    print(f"{'unet':6} {'px':>4} {'dtype':5} {'ckpt':4} {'s/step':>8} {'cpu s/step':>10} "
          f"{'peak RSS GiB':>12}")
    for size in sizes:
        for px in map(int, args.px.split(",")):
            for dtype in args.dtypes.split(","):
                for gc in args.gc.split(","):
                    cmd = [sys.executable, __file__, "--child", f"{size},{px},{dtype},{gc}",
                           "--steps", str(args.steps), "--warmup", str(args.warmup),
                           "--threads", str(args.threads), "--lora-dtype", args.lora_dtype,
                           "--rank", str(args.rank)]
                    proc = subprocess.run(cmd, capture_output=True, text=True)
                    if proc.returncode != 0:
                        print(f"{size:6} {px:4} {dtype:5} {gc:4} failed: "
                              f"{proc.stderr.strip().splitlines()[-1:]}")
                        continue
                    r = json.loads(proc.stdout.strip().splitlines()[-1])
                    print(f"{size:6} {px:4} {dtype:5} {gc:4} {r['s_per_step']:8.3f} "
                          f"{r['cpu_s_per_step']:10.3f} {r['peak_rss_gib']:12.2f}", flush=True)
    if not args.full:
        print("(full-size SD1.5 skipped: pass --full; minutes per case on 2 cores)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
