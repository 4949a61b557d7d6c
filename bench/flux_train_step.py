"""FLUX.1 LoRA training s/step + peak RSS: `bench/dit_train_step.py --family flux` (same options).

    python bench/flux_train_step.py [dit_train_step.py options]
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dit_train_step import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main(["--family", "flux", *sys.argv[1:]]))
