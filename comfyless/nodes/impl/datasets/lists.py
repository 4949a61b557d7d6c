"""Execute of the whole-list dataset nodes (nodes/datasets/lists.py)."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from ...datasets.common import single_value
from .. import image_ops


def _permutation(seed: int, n: int) -> list[int]:
    return [int(i) for i in np.random.RandomState(seed % (2**32 - 1)).permutation(n)]


def shuffle_dataset(ctx, images: list, seed: list):
    order = _permutation(single_value(seed, "seed"), len(images))
    return ([images[i] for i in order],)


def shuffle_image_text_dataset(ctx, images: list, texts: list, seed: list):
    if len(images) != len(texts):
        raise ValueError(f"inputs 'images' and 'texts': {len(images)} images but "
                         f"{len(texts)} texts; they must pair one to one")
    order = _permutation(single_value(seed, "seed"), len(images))
    return [images[i] for i in order], [texts[i] for i in order]


def _average_hash(sample) -> int:
    """64-bit average hash of one sample: 8x8 greyscale, bit = pixel above the mean."""
    small = image_ops.to_pil(sample).convert("L").resize((8, 8), Image.Resampling.LANCZOS)
    pixels = np.asarray(small, dtype=np.float32).ravel()
    return sum(1 << i for i, bit in enumerate(pixels > pixels.mean()) if bit)


def image_deduplication(ctx, images: list, similarity_threshold: list):
    threshold = single_value(similarity_threshold, "similarity_threshold")
    kept, hashes = [], []
    for batch in images:
        for sample in image_ops.samples(batch):
            h = _average_hash(sample)
            if all(1 - bin(h ^ k).count("1") / 64 < threshold for k in hashes):
                kept.append(sample.unsqueeze(0))
                hashes.append(h)
    return (kept,)


def image_grid(ctx, images: list, columns: list, cell_width: list, cell_height: list,
               padding: list):
    cols, cw, ch, pad = (single_value(v, n) for v, n in (
        (columns, "columns"), (cell_width, "cell_width"), (cell_height, "cell_height"),
        (padding, "padding")))
    cells = [s for batch in images for s in image_ops.samples(batch)]
    if not cells:
        raise ValueError("input 'images': no images to put in a grid")
    rows = -(-len(cells) // cols)
    grid = torch.zeros(rows * ch + (rows - 1) * pad, cols * cw + (cols - 1) * pad, 3)
    for i, cell in enumerate(cells):
        top, left = (i // cols) * (ch + pad), (i % cols) * (cw + pad)
        grid[top:top + ch, left:left + cw] = image_ops.resize(cell[..., :3], cw, ch)
    return (grid.unsqueeze(0),)


def merge_image_lists(ctx, images):
    # a pass-through: the executor already concatenated the inputs' lists
    return (list(images),)


def merge_text_lists(ctx, texts):
    return (list(texts),)
