"""`comfyless make-checkpoint`: write a random-weight SD checkpoint (models/checkpoint_writer)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def cli_main(argv: list[str] | None = None) -> int:
    """`comfyless make-checkpoint --arch A --size S [--seed N] OUT.safetensors`."""
    from ..models.checkpoint_writer import ARCHS, DTYPES, SIZES, write_checkpoint

    parser = argparse.ArgumentParser(
        prog="comfyless make-checkpoint",
        description="Write a random-weight SD checkpoint in the original single-file layout.",
    )
    parser.add_argument("--arch", choices=ARCHS, default="sd15")
    parser.add_argument("--size", choices=SIZES, default="tiny")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dtype", choices=tuple(DTYPES), default=None,
                        help="fp16 for --size full, fp32 otherwise")
    parser.add_argument("--prediction", choices=("eps", "v"), default=None,
                        help="sd2 defaults to v (as SD2.1-768), others to eps")
    parser.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    path = write_checkpoint(args.out, args.arch, args.size, args.seed,
                            dtype=args.dtype, prediction=args.prediction)
    size_mb = path.stat().st_size / 2**20
    print(f"wrote {path} ({args.arch}/{args.size}, {size_mb:.1f} MiB) "
          f"in {time.perf_counter() - start:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(cli_main())
