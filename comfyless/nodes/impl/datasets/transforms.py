"""Execute of the per-item image and text transforms (nodes/datasets/transforms.py)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .. import image_ops


def _per_sample(images, transform) -> Any:
    """Apply `transform([H, W, C]) -> [h, w, C]` to every sample of an IMAGE batch."""
    return torch.stack([transform(s) for s in image_ops.samples(images)])


def _resize_edge(images, edge: int, longer: bool):
    def one(s):
        h, w = s.shape[:2]
        scale = edge / (max(h, w) if longer else min(h, w))
        return image_ops.resize(s, max(1, int(w * scale)), max(1, int(h * scale)))

    return _per_sample(images, one)


def resize_images_by_shorter_edge(ctx, images, shorter_edge):
    return (_resize_edge(images, shorter_edge, longer=False),)


def resize_images_by_longer_edge(ctx, images, longer_edge):
    return (_resize_edge(images, longer_edge, longer=True),)


def center_crop_images(ctx, images, width, height):
    def one(s):
        h, w = s.shape[:2]
        cw, ch = min(width, w), min(height, h)
        return image_ops.crop(s, (w - cw) // 2, (h - ch) // 2, cw, ch)

    return (_per_sample(images, one),)


def random_crop_images(ctx, images, width, height, seed):
    """The RNG restarts from `seed` for every image, so equal-size images share offsets."""
    def one(s):
        h, w = s.shape[:2]
        cw, ch = min(width, w), min(height, h)
        rng = np.random.RandomState(seed % (2**32 - 1))
        left = int(rng.randint(0, w - cw + 1))
        top = int(rng.randint(0, h - ch + 1))
        return image_ops.crop(s, left, top, cw, ch)

    return (_per_sample(images, one),)


def normalize_images(ctx, images, mean, std):
    return ((images - mean) / std,)


def adjust_brightness(ctx, images, factor):
    return ((images * factor).clamp(0.0, 1.0),)


def adjust_contrast(ctx, images, factor):
    return (((images - 0.5) * factor + 0.5).clamp(0.0, 1.0),)


def text_to_lowercase(ctx, texts: str):
    return (str.lower(texts),)


def text_to_uppercase(ctx, texts: str):
    return (str.upper(texts),)


def truncate_text(ctx, texts: str, max_length):
    return (texts[:max_length],)


def add_text_prefix(ctx, texts: str, prefix):
    return (prefix + texts,)


def add_text_suffix(ctx, texts: str, suffix):
    return (texts + suffix,)


def replace_text(ctx, texts: str, find, replace):
    return (texts.replace(find, replace) if find else texts,)


def strip_whitespace(ctx, texts: str):
    return (str.strip(texts),)
