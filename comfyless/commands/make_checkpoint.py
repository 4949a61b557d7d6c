"""`comfyless make-checkpoint`: write random-weight model files in the real key layouts
(models/checkpoint_writer), either one all-in-one checkpoint (OUT) or every file a ComfyUI user
of the family has, into a base dir's model folders (--base-dir)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def _parser(archs: tuple[str, ...], sizes: tuple[str, ...], dtypes: tuple[str, ...]
            ) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="comfyless make-checkpoint",
        description="Write random-weight model files in the original single-file key layouts: "
                    "one checkpoint to OUT, or with --base-dir every file a user of the family "
                    "has (checkpoint and/or diffusion model, text encoders, VAE) into its "
                    "model folders.",
    )
    parser.add_argument("--arch", choices=archs, default="sd15")
    parser.add_argument("--size", choices=sizes, default="tiny")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dtype", choices=dtypes, default=None,
                        help="fp16 for --size full, fp32 otherwise")
    parser.add_argument("--prediction", choices=("eps", "v"), default=None,
                        help="sd2 defaults to v (as SD2.1-768), others to eps")
    parser.add_argument("--base-dir", type=Path, default=None,
                        help="write into BASE_DIR/models/<kind>/ instead of OUT")
    parser.add_argument("--json", action="store_true",
                        help="print {kind: [file names]} as JSON (with --base-dir)")
    parser.add_argument("out", type=Path, nargs="?", help="the checkpoint file to write")
    return parser


def cli_main(argv: list[str] | None = None) -> int:
    """`comfyless make-checkpoint --arch A --size S [--seed N] (OUT | --base-dir D [--json])`."""
    from ..models.checkpoint_writer import ARCHS, DTYPES, SIZES, write_checkpoint

    parser = _parser(ARCHS, SIZES, tuple(DTYPES))
    args = parser.parse_args(argv)
    if (args.out is None) == (args.base_dir is None):
        parser.error("give either OUT or --base-dir (not both)")
    if args.json and args.base_dir is None:
        parser.error("--json needs --base-dir")
    start = time.perf_counter()
    if args.base_dir is not None:
        return _write_base_dir(args, start)
    path = write_checkpoint(args.out, args.arch, args.size, args.seed,
                            dtype=args.dtype, prediction=args.prediction)
    size_mb = path.stat().st_size / 2**20
    print(f"wrote {path} ({args.arch}/{args.size}, {size_mb:.1f} MiB) "
          f"in {time.perf_counter() - start:.1f}s")
    return 0


def _write_base_dir(args: argparse.Namespace, start: float) -> int:
    from ..engine.paths import BasePaths
    from ..models.checkpoint_writer import write_model_files

    paths = BasePaths.resolve(args.base_dir)
    written = write_model_files(lambda kind: paths.folders(kind)[0], args.arch, args.size,
                                args.seed, dtype=args.dtype, prediction=args.prediction)
    if args.json:
        print(json.dumps({kind: written.get(kind, []) for kind in
                          ("checkpoints", "diffusion_models", "text_encoders", "vae")}))
        return 0
    for kind, names in written.items():
        for name in names:
            print(f"wrote {paths.folders(kind)[0] / name}")
    print(f"({args.arch}/{args.size}) in {time.perf_counter() - start:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(cli_main())
