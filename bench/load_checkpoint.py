"""Load time and peak RSS of loading a full-size SD1.5 checkpoint (random weights).

Writes the file with `comfyless make-checkpoint --size full` into a temp dir (or uses --file),
then loads it in a fresh subprocess (so the peak RSS is the loader's alone) and prints:
file size, load time, peak RSS, RSS right after `import torch`, and peak / file size.
Target: peak RSS <= 1.3 x file size.

    python bench/load_checkpoint.py [--dtype fp16|fp32] [--file PATH] [--keep]
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

_CHILD = r"""
import json, sys, time
import torch

def hwm():  # peak resident set of this process since exec (ru_maxrss survives fork+exec)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024

base = hwm()
from comfyless.models.checkpoint import load_checkpoint
dtype = {"fp16": torch.float16, "fp32": torch.float32}[sys.argv[2]]
start = time.perf_counter()
model, clip, vae = load_checkpoint(sys.argv[1], dtype=dtype)
elapsed = time.perf_counter() - start
modules = [model.diffusion_model] + [m for part in (clip, vae) if part is not None
                                     for m in vars(part).values() if isinstance(m, torch.nn.Module)]
with torch.no_grad():  # touch every weight: lazily mapped pages count only once read
    total = sum(float(p.float().abs().sum()) for m in modules for p in m.parameters())
touched = time.perf_counter() - start
print(json.dumps({"load_s": elapsed, "touched_s": touched, "peak_rss": hwm(),
                  "torch_rss": base, "finite": total == total,
                  "clip": clip is not None, "vae": vae is not None}))
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", choices=("fp16", "fp32"), default="fp32",
                        help="dtype written to the file (loaded in the same dtype)")
    parser.add_argument("--file", type=Path, help="load this file instead of writing one")
    parser.add_argument("--keep", action="store_true", help="keep the written file")
    args = parser.parse_args(argv)
    repo = REPO
    with tempfile.TemporaryDirectory() as tmp:
        path = args.file
        if path is None:
            from comfyless.models.checkpoint_writer import write_checkpoint

            path = Path(tmp) / f"sd15_full_{args.dtype}.safetensors"
            start = time.perf_counter()
            write_checkpoint(path, "sd15", "full", seed=0, dtype=args.dtype)
            print(f"wrote {path} in {time.perf_counter() - start:.1f}s")
        size = path.stat().st_size
        out = subprocess.run([sys.executable, "-c", _CHILD, str(path), args.dtype], cwd=repo,
                             check=True, capture_output=True, text=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        peak, base = r["peak_rss"], r["torch_rss"]
        print(f"file {size / 2**30:.2f} GiB ({args.dtype}); load {r['load_s']:.2f}s "
              f"({r['touched_s']:.2f}s with every weight read once); "
              f"peak RSS {peak / 2**30:.2f} GiB (after import torch {base / 2**30:.2f} GiB); "
              f"peak/file {peak / size:.2f}; (peak - torch)/file {(peak - base) / size:.2f}; "
              f"clip={r['clip']} vae={r['vae']}")
        if args.keep and args.file is None:
            kept = repo / path.name
            path.replace(kept)
            print(f"kept {kept}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
