"""Full-size FLUX.1 dev transformer load time + peak RSS: `bench/dit_load.py --family flux`.

    python bench/flux_load.py [dit_load.py options]
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dit_load import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main(["--family", "flux", *sys.argv[1:]]))
