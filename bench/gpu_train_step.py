"""Seconds per LoRA training step and peak allocated GPU memory: SD1.5 at 512 px and SDXL at
1024 px (issue 13, "GPU"), beside the published references.

The checkpoints are written by `comfyless make-checkpoint --arch sd15|sdxl --size full` (fp16,
random weights, the real layouts) into a temporary base dir, then loaded with load_checkpoint
(UNet only) in --weights dtype (default bf16) on --device. Each case runs TrainLoraNode's loop
(comfyless.lora.training.train_lora): LoRA rank 16, AdamW, batch 1, one latent of px/8, a
77-token caption (SDXL: plus pooled output), training_dtype = lora_dtype = --dtype (default
bf16), gradient checkpointing off and on (depth 1, the node's default). Timing: a global
optimizer-step hook synchronizes the device after the last warm-up step and after the last
step (nothing else added to the loop); s/step = the time between / the timed steps. Peak
memory: torch.cuda.max_memory_allocated over the whole train_lora call (weights included; the
weights alone are printed too), after reset_peak_memory_stats.

    python bench/gpu_train_step.py                       # CUDA: full sd15 + sdxl, ~5 minutes
    python bench/gpu_train_step.py --device cpu --size tiny --px 64   # a smoke check, seconds

On the device machine (one H200): `run` with `python bench/gpu_train_step.py` after installing
the package; most of the time goes into writing the two full checkpoints (~2 and ~7 GB).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing

# Published LoRA r16, batch 1, bf16 figures on one H100 (issue 13): s/step without / with
# gradient checkpointing. An H200 has the H100's compute and more memory bandwidth.
REFERENCE = {"sd15": (512, 0.18, 0.31), "sdxl": (1024, 0.61, 1.08)}
CKPT_NAMES = {"sd15": "v1-5-pruned-emaonly.safetensors", "sdxl": "sd_xl_base_1.0.safetensors"}


def write_checkpoint(arch: str, size: str, base: Path) -> Path:
    """The make-checkpoint command's all-in-one file for `arch` (fp16 for full)."""
    cmd = [sys.executable, "-m", "comfyless", "make-checkpoint", "--arch", arch,
           "--size", size, "--base-dir", str(base)]
    subprocess.run(cmd, check=True, cwd=REPO, stdout=subprocess.DEVNULL)
    found = sorted((base / "models" / "checkpoints").glob("*.safetensors"))
    names = [p for p in found if p.name == CKPT_NAMES[arch]]
    if not names:
        raise SystemExit(f"make-checkpoint wrote {[p.name for p in found]}, expected "
                         f"{CKPT_NAMES[arch]}")
    return names[0]


class StepClock:
    """Times optimizer steps warmup+1 .. last with two device syncs (a global step hook)."""

    def __init__(self, device, warmup: int, total: int) -> None:
        self.device, self.warmup, self.total = device, warmup, total
        self.count, self.start, self.end = 0, None, None

    def sync(self) -> float:
        import torch

        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def __call__(self, optimizer, args, kwargs) -> None:
        self.count += 1
        if self.count == self.warmup:
            self.start = self.sync()
        elif self.count == self.total:
            self.end = self.sync()

    def seconds_per_step(self) -> float:
        return (self.end - self.start) / (self.total - self.warmup)


def batch(model, arch: str, px: int):
    """One random latent (latent-format space is scaled by the loop) and its caption entry."""
    import torch

    g = torch.Generator().manual_seed(0)
    lat = [{"samples": torch.randn(1, 4, px // 8, px // 8, generator=g)}]
    options = {}
    adm = model.config.adm_in_channels
    if arch == "sdxl" and adm is not None:
        options["pooled_output"] = torch.randn(1, adm - 6 * 256, generator=g)
    context = torch.randn(1, 77, model.config.context_dim, generator=g)
    return lat, [[[context, options]]]


def run_case(model, arch: str, px: int, gc: bool, args) -> dict:
    import torch
    from torch.optim.optimizer import register_optimizer_step_post_hook

    from comfyless.lora.training import TrainConfig, train_lora

    device = model.device
    lat, pos = batch(model, arch, px)
    total = args.warmup + args.steps
    cfg = TrainConfig(steps=total, rank=16, batch_size=1, training_dtype=args.dtype,
                      lora_dtype=args.dtype, gradient_checkpointing=gc, learning_rate=1e-4)
    clock = StepClock(device, args.warmup, total)
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    handle = register_optimizer_step_post_hook(clock)
    try:
        losses = train_lora(model, lat, pos, cfg).losses
    finally:
        handle.remove()
    peak = torch.cuda.max_memory_allocated(device) if cuda else None
    return {"s_step": clock.seconds_per_step(), "peak": peak, "last_loss": losses[-1]}


def bench_arch(arch: str, args, base: Path) -> None:
    import torch

    from comfyless.models.checkpoint import load_checkpoint

    px = args.px or REFERENCE[arch][0]
    t0 = time.perf_counter()
    path = write_checkpoint(arch, args.size, base)
    written = time.perf_counter() - t0
    device = torch.device(args.device)
    weights = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[args.weights]
    cuda = device.type == "cuda"
    before = torch.cuda.memory_allocated(device) if cuda else 0
    model, _, _ = load_checkpoint(path, device=device, dtype=weights, load_vae=False,
                                  load_clip=False)
    held = (torch.cuda.memory_allocated(device) - before) if cuda else 0
    print(f"\n{arch} {args.size} ({path.stat().st_size / 2**30:.2f} GiB file, written in "
          f"{written:.0f}s, loaded in {time.perf_counter() - t0 - written:.0f}s); UNet "
          f"{args.weights} weights {held / 2**30:.2f} GiB on {device}; {px} px, batch 1, "
          f"r16, {args.dtype}, {args.warmup} warm-up + {args.steps} timed steps")
    ref = REFERENCE[arch]
    for gc in (False, True):
        out = run_case(model, arch, px, gc, args)
        peak = "n/a (cpu)" if out["peak"] is None else f"{out['peak'] / 2**30:.2f} GiB"
        published = ref[2] if gc else ref[1]
        print(f"  gradient checkpointing {'on ' if gc else 'off'}: {out['s_step']:.3f} s/step "
              f"(published H100 {ref[0]} px: {published:.2f}), peak allocated {peak}, "
              f"last loss {out['last_loss']:.4f}")
    del model
    if cuda:
        torch.cuda.empty_cache()
    path.unlink()  # the disk holds one full file at a time


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--size", default="full", choices=("tiny", "small", "full"))
    ap.add_argument("--archs", default="sd15,sdxl")
    ap.add_argument("--px", type=int, default=None, help="default: 512 sd15, 1024 sdxl")
    ap.add_argument("--dtype", default="bf16", choices=("bf16", "fp32"),
                    help="training_dtype and lora_dtype")
    ap.add_argument("--weights", default=None, choices=("bf16", "fp16", "fp32"),
                    help="UNet weight dtype (default: --dtype)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=None, help="CPU threads (torch default)")
    args = ap.parse_args()
    args.weights = args.weights or args.dtype

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("no CUDA device; for a smoke check: --device cpu --size tiny --px 64 "
                         "--dtype fp32")
    if args.device.startswith("cuda"):
        print(f"{torch.cuda.get_device_name(args.device)}, torch {torch.__version__}")
    with tempfile.TemporaryDirectory(prefix="gpu_train_step_") as tmp:
        for arch in args.archs.split(","):
            bench_arch(arch, args, Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
