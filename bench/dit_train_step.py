"""Seconds per LoRA training step and peak RSS of a DiT transformer (TrainLoraNode's loop).

--family flux | zimage | qwen-image (bench/dit_families.py). The transformer is written once
with the family's writer (random weights, the family's file layout; size "small" by default:
FLUX.1 dev hidden 512, 4 heads x 128, 2 double + 4 single blocks; Z-Image dim 768, 6 heads x
128, 4 layers + 2 + 2 refiners; Qwen-Image hidden 512, 4 heads x 128, 4 blocks; text widths
are the real ones) and each case loads it in a fresh subprocess with load_diffusion_model
(default dtype: fp32 on the CPU, as UNETLoader), then runs comfyless.lora.training.train_lora:
LoRA rank 16, AdamW, batch 1, one 16-channel latent of px/8 x px/8 and a --tokens context
(default: the family's realistic caption length: Flux 256, T5's min_length; Z-Image 48;
Qwen-Image 40), plus CLIP-L pooled + guidance 3.5 for Flux. Sampling (timesteps, targets) is
the family record's. training_dtype = lora_dtype = the case's dtype (bf16: autocast over the
fp32 weights, as train_lora does). Gradient checkpointing on and off; on uses checkpoint_depth
--depth (default 1, as the node: the whole network is one checkpoint, so it saves little
memory; 2 checkpoints each block). The step time is the median of the timed steps after the
warm-up steps; peak RSS is the child's VmHWM. Training computes every adapter from the layer
input in either bypass_mode (no merged weight is formed); --bypass sets the node's bypass_mode.

    python bench/dit_train_step.py [--family flux] [--size small] [--px 512,256]
                                   [--dtypes fp32,bf16] [--gc off,on] [--steps 3] [--warmup 1]
                                   [--rank 16] [--depth 1] [--bypass] [--threads N]
                                   [--tokens N] [--config hidden,heads,double,single]

--config (Flux only) builds another shape (e.g. 3072,24,1,1: full-width blocks, 2 of them)
instead of a writer size. Threads: comfyless.threads policy (--threads N, else
COMFYLESS_THREADS, else 1). bf16 speed depends on the CPU: where it has AVX512-BF16 (this
2-core EPYC does: see /proc/cpuinfo) oneDNN runs bf16 matmuls natively, ~3x the fp32 rate; on a
plain AVX2 CPU they are emulated and much slower than fp32. The machine is shared: compare
within one run; `cpu s/step` (process CPU time) is less sensitive to other load. Default run:
~2-3 minutes here per family.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing
sys.path.insert(0, str(REPO / "bench"))

from dit_families import DiTBench, bench_for  # noqa: E402
from step_timer import StepTimer, hwm  # noqa: E402


def write_model(path: Path, bench: DiTBench, size: str, config: str | None) -> tuple[str, int]:
    """Write the transformer file (fp32); returns (its config in words, parameter count)."""
    import torch

    if config is None:
        writer = bench.writer()
        writer.write_diffusion_model(path, bench.family, size, seed=0, dtype=torch.float32)
        cfg = writer.network_config(bench.family, size)
    else:
        cfg = write_flux_config(path, config)
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        params = sum(int(torch.Size(f.get_slice(k).get_shape()).numel()) for k in f.keys())
    return bench.describe(cfg), params


def write_flux_config(path: Path, config: str):
    """A FLUX.1 dev transformer of "hidden,heads,double,single" in the BFL layout (fp32)."""
    import torch

    from comfyless.models.checkpoint_writer import random_init, write_streamed
    from comfyless.models.families.flux import names
    from comfyless.models.families.flux.config import FluxConfig, axes_for_head_dim
    from comfyless.models.families.flux.network import FluxNetwork

    hidden, heads, depth, single = (int(v) for v in config.split(","))
    cfg = FluxConfig(hidden_size=hidden, num_heads=heads, depth=depth,
                     depth_single_blocks=single, context_in_dim=4096, vec_in_dim=768,
                     guidance_embed=True, axes_dim=axes_for_head_dim(hidden // heads))
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in FluxNetwork(cfg).state_dict().items()}

    def file_key(key: str) -> str:  # the BFL spelling of the RMSNorm scales
        if key.endswith(names.NORM_WEIGHT):
            return key[: -len(names.NORM_WEIGHT)] + names.BFL_NORM_SCALE
        return key

    gen = torch.Generator().manual_seed(0)
    write_streamed(path, {file_key(k): tuple(v) for k, v in shapes.items()},
                   ((file_key(k), random_init({k: v}, gen)[k]) for k, v in shapes.items()),
                   torch.float32)
    return cfg


def run_case(path: str, bench: DiTBench, px: int, dtype: str, gc: str, args) -> dict:
    """One configuration (in the child process): load, train warmup + steps, time them."""
    import torch

    from comfyless.lora.training import TrainConfig, train_lora
    from comfyless.models.checkpoint import load_diffusion_model

    start = time.perf_counter()
    model = load_diffusion_model(path)
    load_s = time.perf_counter() - start
    cfg_net = model.diffusion_model.config
    g = torch.Generator().manual_seed(0)
    lat = [{"samples": torch.randn(1, 16, px // 8, px // 8, generator=g)}]
    context = torch.randn(1, args.tokens, bench.context_width(cfg_net), generator=g)
    pos = [[[context, bench.cond_extras(cfg_net, g)]]]
    timer = StepTimer()
    cfg = TrainConfig(steps=args.warmup + args.steps, batch_size=1, rank=args.rank,
                      training_dtype=dtype, lora_dtype=dtype,
                      gradient_checkpointing=gc == "on", checkpoint_depth=args.depth,
                      bypass_mode=args.bypass, learning_rate=1e-4)
    timer.restart()
    result = train_lora(model, lat, pos, cfg, progress=timer)
    wall, cpu = timer.medians(args.warmup)
    return {"px": px, "dtype": dtype, "gc": gc, "load_s": load_s,
            "s_per_step": wall, "cpu_s_per_step": cpu, "first_s": timer.wall[0],
            "loss": result.losses[-1],
            "threads": torch.get_num_threads(), "peak_rss_gib": hwm() / 2**30}


def child_command(path: Path, px: int, dtype: str, gc: str, args) -> list[str]:
    """This script re-run for one case, with the options that shape a case."""
    cmd = [sys.executable, __file__, "--child", f"{path},{px},{dtype},{gc}",
           "--family", args.family, "--steps", str(args.steps), "--warmup", str(args.warmup),
           "--rank", str(args.rank), "--tokens", str(args.tokens), "--depth", str(args.depth)]
    if args.bypass:
        cmd.append("--bypass")
    if args.threads:
        cmd += ["--threads", args.threads]
    return cmd


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--family", default="flux", help="flux | zimage | qwen-image")
    ap.add_argument("--size", default="small", choices=("tiny", "small"))
    ap.add_argument("--config", help="Flux only: hidden,heads,double,single instead of --size")
    ap.add_argument("--px", default="512,256")
    ap.add_argument("--dtypes", default="fp32,bf16")
    ap.add_argument("--gc", default="off,on")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--depth", type=int, default=1, help="checkpoint_depth when ckpt is on")
    ap.add_argument("--bypass", action="store_true", help="bypass_mode (adapters as hooks)")
    ap.add_argument("--tokens", type=int, help="context length (default: the family's)")
    ap.add_argument("--threads", help="torch threads (N or auto); default: comfyless policy")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    bench = bench_for(args.family)
    args.family = bench.family
    if args.tokens is None:
        args.tokens = bench.tokens
    if args.config and bench.family != "flux":
        ap.error(f"--config builds FLUX.1 shapes only; use --size for {bench.label}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    bench = bench_for(args.family)
    from comfyless import threads

    policy = threads.configure(args.threads)  # before torch is imported (OpenMP wait policy)
    if args.child:
        path, px, dtype, gc = args.child.split(",")
        print(json.dumps(run_case(path, bench, int(px), dtype, gc, args)))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "transformer.safetensors"
        start = time.perf_counter()
        described, params = write_model(path, bench, args.size, args.config)
        what = f"config {args.config}" if args.config else f"size {args.size}"
        print(f"{bench.label} {what}: {described}; {params / 1e6:.1f} M params, file "
              f"{path.stat().st_size / 2**20:.0f} MiB fp32 (written in "
              f"{time.perf_counter() - start:.1f}s); rank {args.rank}, batch 1, {args.tokens} "
              f"{bench.text_encoder} tokens; checkpoint_depth {args.depth}; "
              f"bypass_mode {'on' if args.bypass else 'off'}; "
              f"{threads.describe(policy)}")
        print(f"{'px':>4} {'latent':>7} {'dtype':5} {'ckpt':4} {'s/step':>8} {'cpu s/step':>10} "
              f"{'1st step':>8} {'load s':>6} {'peak RSS GiB':>12}")
        for px in map(int, args.px.split(",")):
            for dtype in args.dtypes.split(","):
                for gc in args.gc.split(","):
                    proc = subprocess.run(child_command(path, px, dtype, gc, args),
                                          capture_output=True, text=True)
                    lat = f"{px // 8}x{px // 8}"
                    if proc.returncode != 0:
                        print(f"{px:4} {lat:>7} {dtype:5} {gc:4} failed: "
                              f"{proc.stderr.strip().splitlines()[-1:]}")
                        continue
                    r = json.loads(proc.stdout.strip().splitlines()[-1])
                    print(f"{px:4} {lat:>7} {dtype:5} {gc:4} {r['s_per_step']:8.3f} "
                          f"{r['cpu_s_per_step']:10.3f} {r['first_s']:8.3f} {r['load_s']:6.2f} "
                          f"{r['peak_rss_gib']:12.2f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
