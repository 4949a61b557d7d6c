"""KSampler speed: seconds per step and UNet forwards per step for each implemented sampler,
on a random-weight SD1.5 checkpoint of the given size (tiny by default), plus the sampling
overhead outside the UNet (an analytic denoiser on the same latent).

Run: python bench/sampling.py [--size tiny|small|full] [--steps 10] [--res 512] [--batch 1]
     [--device cpu|cuda] [--samplers euler,dpmpp_2m,...]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from comfyless.models.checkpoint import load_checkpoint  # noqa: E402
from comfyless.models.checkpoint_writer import write_checkpoint  # noqa: E402
from comfyless.models.guidance import CFGDenoiser, ksample, prepare_noise  # noqa: E402
from comfyless.models.samplers import SAMPLERS  # noqa: E402
from comfyless.models.schedulers import calculate_sigmas  # noqa: E402


def _conds(model):
    dim = model.config.context_dim
    gen = torch.Generator().manual_seed(0)
    return ([[torch.randn(1, 77, dim, generator=gen), {}]],
            [[torch.randn(1, 77, dim, generator=gen), {}]])


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def bench_sampler(model, name: str, steps: int, latent, device: str) -> tuple[float, float]:
    """(seconds per step, UNet forwards per step) for one KSampler-equivalent run."""
    pos, neg = _conds(model)
    sigmas = calculate_sigmas(model.sampling, "karras", steps)
    forwards = [0]
    orig = CFGDenoiser._both

    def counting(self, x, sigma):
        forwards[0] += 1
        return orig(self, x, sigma)

    CFGDenoiser._both = counting
    try:
        _sync(device)
        start = time.perf_counter()
        ksample(model, latent, prepare_noise(latent, 0), sigmas=sigmas, sampler=SAMPLERS[name],
                cfg=7.0, positive=pos, negative=neg, seed=0)
        _sync(device)
    finally:
        CFGDenoiser._both = orig
    return (time.perf_counter() - start) / steps, forwards[0] / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", default="tiny", choices=("tiny", "small", "full"))
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--res", type=int, default=64, help="image side in pixels")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--samplers", default="euler,euler_ancestral,heun,dpm_2,lms,dpmpp_2m,"
                        "dpmpp_2m_sde,dpmpp_sde,uni_pc")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = write_checkpoint(Path(tmp) / "sd15.safetensors", "sd15", args.size, seed=0)
        model, _, _ = load_checkpoint(path, device=args.device, load_vae=False, load_clip=False)
    latent = torch.zeros(args.batch, 4, args.res // 8, args.res // 8)
    bench_sampler(model, "euler", 2, latent, args.device)  # warm-up
    print(f"sd15 {args.size}, {args.res}px x{args.batch}, {args.steps} karras steps, cfg 7, "
          f"{args.device}, {torch.get_num_threads()} threads")
    for name in args.samplers.split(","):
        per_step, fwd = bench_sampler(model, name, args.steps, latent, args.device)
        print(f"  {name:16s} {per_step * 1000:8.1f} ms/step  {fwd:.1f} UNet forwards/step")


if __name__ == "__main__":
    main()
