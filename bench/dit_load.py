"""Load time and peak RSS of a full-size DiT transformer file (FLUX.1 dev, Z-Image, Qwen-Image).

--family flux | zimage | qwen-image (bench/dit_families.py; full sizes 11.9 / 6.15 / 20.4 B
parameters, bf16 files 23.8 / 12.3 / 40.9 GB). The file: --file PATH if given; else
DIR/models/diffusion_models/<the release's file name> (DIR: --base-dir, default a temp dir) if
it exists; else it is written here, the transformer only, tensor by tensor with the family's
writer.write_diffusion_model (random weights, the family's file layout; for Flux the same
transformer `comfyless make-checkpoint --arch flux --size full` writes, without the text
encoders and VAE). --file-dtype fp8 writes float8_e4m3fn weights (1-d tensors too: the networks
keep fp8 weights as stored and upcast per call).

A fresh subprocess loads it with load_diffusion_model(path, dtype=torch.bfloat16) (meta-device
build, memory-mapped safetensors, tensors assigned; fp32 would double the size) and reports:
load time, peak RSS (VmHWM) after the load, after reading every weight once (mapped pages count
in RSS only once read) and after one forward (--forward-px, 0 to skip; 1 step, batch 1, a
--tokens context, bf16 compute), and anonymous (non file-backed) RSS, which shows whether
weights were copied out of the mapping (file-backed pages are page cache: the kernel can drop
them under memory pressure, so the peak stays below RAM even for a file larger than RAM).
Target: peak RSS <= 1.3 x file size. A file written here is deleted at the end unless --keep.
Time here (2 cores), Flux: writing bf16 ~2.5 min, fp8 ~2 min; load + read + 128 px forward
~1 min; scale by the parameter count for the others.

    python bench/dit_load.py [--family flux] [--file-dtype bf16|fp8]
                             [--base-dir DIR | --file PATH] [--forward-px 128] [--tokens 16]
                             [--threads N] [--keep]
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

FILE_DTYPES = {"bf16": "bfloat16", "fp8": "float8_e4m3fn"}

_CHILD = r"""
import json, sys, time
sys.path.insert(0, "bench")  # cwd: the repository
from comfyless import threads
threads.configure(sys.argv[4] if sys.argv[4] != "-" else None)
import torch
from dit_families import bench_for
bench = bench_for(sys.argv[5])

def status():  # VmHWM: peak resident set since exec; RssAnon: resident memory not in a file
    out = {}
    for line in open("/proc/self/status"):
        key = line.split(":")[0]
        if key in ("VmHWM", "VmRSS", "RssAnon", "RssFile"):
            out[key] = int(line.split()[1]) * 1024
    return out

r = {"torch": status()}
from comfyless.models.checkpoint import load_diffusion_model
start = time.perf_counter()
model = load_diffusion_model(sys.argv[1], dtype=torch.bfloat16)
r["load_s"] = time.perf_counter() - start
r["loaded"] = status()
net = model.diffusion_model
r["weight_dtypes"] = sorted({str(p.dtype) for p in net.parameters()})
start = time.perf_counter()
with torch.no_grad():  # read every weight once (float32 sums of 16M-element chunks)
    total = sum(float(c.float().sum()) for p in net.parameters()
                for c in p.detach().reshape(-1).split(1 << 24))
r["read_s"] = time.perf_counter() - start
r["finite"] = total == total
r["read"] = status()
px, tokens = int(sys.argv[2]), int(sys.argv[3])
if px:
    cfg = net.config
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 16, px // 8, px // 8, generator=g)
    context = torch.randn(1, tokens, bench.context_width(cfg), generator=g)
    extra = model.extra_conds(bench.cond_extras(cfg, g), px, px)
    start = time.perf_counter()
    with torch.inference_mode():
        out = model.apply_model(x, torch.tensor([0.5]), context, **extra)
    r["forward_s"] = time.perf_counter() - start
    r["forward_finite"] = bool(torch.isfinite(out).all())
    r["forward"] = status()
print(json.dumps(r))
"""


def write_transformer(path: Path, bench: DiTBench, file_dtype: str) -> float:
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    bench.writer().write_diffusion_model(path, bench.family, "full", seed=0,
                                         dtype=getattr(torch, FILE_DTYPES[file_dtype]))
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--family", default="flux", help="flux | zimage | qwen-image")
    ap.add_argument("--file", type=Path, help="load this file (never written or deleted here)")
    ap.add_argument("--base-dir", type=Path, help="make-checkpoint's --base-dir layout")
    ap.add_argument("--file-dtype", choices=sorted(FILE_DTYPES), default="bf16",
                    help="dtype of a file written here")
    ap.add_argument("--forward-px", type=int, default=128,
                    help="one forward at this size; 0: none")
    ap.add_argument("--tokens", type=int, default=16, help="context tokens of the forward")
    ap.add_argument("--threads", help="torch threads in the child (N or auto); default: policy")
    ap.add_argument("--keep", action="store_true", help="keep a file written here")
    args = ap.parse_args(argv)
    bench = bench_for(args.family)
    with tempfile.TemporaryDirectory() as tmp:
        path = args.file
        written = False
        if path is None:
            base = args.base_dir or Path(tmp)
            name = bench.file_name if args.file_dtype == "bf16" else bench.fp8_file_name
            path = base / "models" / "diffusion_models" / name
            if not path.exists():
                seconds = write_transformer(path, bench, args.file_dtype)
                written = True
                print(f"wrote {path} (transformer only, writer.write_diffusion_model, "
                      f"{args.file_dtype}) in {seconds:.0f}s")
        size = path.stat().st_size
        cmd = [sys.executable, "-c", _CHILD, str(path), str(args.forward_px), str(args.tokens),
               args.threads or "-", bench.family]
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
        try:
            if proc.returncode != 0:
                print(f"load failed (rc {proc.returncode}): {proc.stderr.strip()[-2000:]}")
                return 1
            report(json.loads(proc.stdout.strip().splitlines()[-1]), path, size, bench, args)
        finally:
            if written and not args.keep:
                path.unlink()
                print(f"deleted {path}")
    return 0


def report(r: dict, path: Path, size: int, bench: DiTBench, args: argparse.Namespace) -> None:
    gib = 2**30
    base = r["torch"]["VmHWM"]
    print(f"{bench.label} file {path.name}: {size / gib:.2f} GiB, "
          f"weights {', '.join(r['weight_dtypes'])}; RSS after import torch {base / gib:.2f} GiB")
    print(f"{'stage':18} {'seconds':>8} {'peak RSS GiB':>12} {'anon GiB':>8} {'file-backed':>11} "
          f"{'peak/file':>9} {'(peak-torch)/file':>17}")
    stages = [("load", r["load_s"], r["loaded"]), ("read every weight", r["read_s"], r["read"])]
    if "forward" in r:
        stages.append((f"forward {args.forward_px}px", r["forward_s"], r["forward"]))
    for name, seconds, st in stages:
        print(f"{name:18} {seconds:8.2f} {st['VmHWM'] / gib:12.2f} {st['RssAnon'] / gib:8.2f} "
              f"{st['RssFile'] / gib:11.2f} {st['VmHWM'] / size:9.2f} "
              f"{(st['VmHWM'] - base) / size:17.2f}")
    if "forward" in r:
        print(f"forward: 1 step, batch 1, {args.forward_px}x{args.forward_px} px "
              f"({(args.forward_px // 16) ** 2} image + {args.tokens} {bench.text_encoder} "
              f"tokens), bf16 compute; finite={r['forward_finite']}")


if __name__ == "__main__":
    sys.exit(main())
