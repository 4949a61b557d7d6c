"""Whole-list nodes: shuffle, deduplicate, grid, merge.

`is_input_list` nodes get every input as a list (execution-semantics.md §3.2).
"""

from __future__ import annotations

from ...typesys.schema import Input, Node, NodeSchema, Output
from ...typesys.types import FLOAT, IMAGE, INT, STRING
from .common import seed_input, single_value, with_signature


def _permutation(seed: int, n: int) -> list[int]:
    import numpy as np

    return [int(i) for i in np.random.RandomState(seed % (2**32 - 1)).permutation(n)]


class ShuffleDataset(Node):
    """The image list in a seeded random order."""

    schema = NodeSchema(
        "ShuffleDataset",
        display_name="Shuffle Images List",
        category="image/batch",
        inputs=(Input("images", IMAGE), seed_input()),
        outputs=(Output("images", IMAGE, is_list=True),),
        is_input_list=True,
        experimental=True,
    )

    @staticmethod
    def execute(ctx, images: list, seed: list):
        order = _permutation(single_value(seed, "seed"), len(images))
        return ([images[i] for i in order],)


class ShuffleImageTextDataset(Node):
    """Images and texts shuffled with one seeded permutation (pairs stay together)."""

    schema = NodeSchema(
        "ShuffleImageTextDataset",
        display_name="Shuffle Pairs of Image-Text",
        category="image/batch",
        inputs=(Input("images", IMAGE), Input("texts", STRING, force_input=True), seed_input()),
        outputs=(Output("images", IMAGE, is_list=True), Output("texts", STRING, is_list=True)),
        is_input_list=True,
        experimental=True,
    )

    @staticmethod
    def execute(ctx, images: list, texts: list, seed: list):
        if len(images) != len(texts):
            raise ValueError(f"inputs 'images' and 'texts': {len(images)} images but "
                             f"{len(texts)} texts; they must pair one to one")
        order = _permutation(single_value(seed, "seed"), len(images))
        return [images[i] for i in order], [texts[i] for i in order]


def _average_hash(sample) -> int:
    """64-bit average hash of one sample: 8x8 greyscale, bit = pixel above the mean."""
    import numpy as np
    from PIL import Image

    from ..impl import image_ops

    small = image_ops.to_pil(sample).convert("L").resize((8, 8), Image.Resampling.LANCZOS)
    pixels = np.asarray(small, dtype=np.float32).ravel()
    return sum(1 << i for i, bit in enumerate(pixels > pixels.mean()) if bit)


class ImageDeduplication(Node):
    """Drop images whose 8x8 average hash is at least `similarity_threshold` alike a kept one."""

    schema = NodeSchema(
        "ImageDeduplication",
        display_name="Deduplicate Images",
        category="image/batch",
        inputs=(Input("images", IMAGE),
                Input("similarity_threshold", FLOAT, default=0.95, min=0.0, max=1.0, step=0.01)),
        outputs=(Output("images", IMAGE, is_list=True),),
        is_input_list=True,
        experimental=True,
    )

    @staticmethod
    def execute(ctx, images: list, similarity_threshold: list):
        from ..impl import image_ops

        threshold = single_value(similarity_threshold, "similarity_threshold")
        kept, hashes = [], []
        for batch in images:
            for sample in image_ops.samples(batch):
                h = _average_hash(sample)
                if all(1 - bin(h ^ k).count("1") / 64 < threshold for k in hashes):
                    kept.append(sample.unsqueeze(0))
                    hashes.append(h)
        return (kept,)


class ImageGrid(Node):
    """Every image resized into a cell of a grid on black, `columns` cells wide."""

    schema = NodeSchema(
        "ImageGrid",
        display_name="Make Image Grid",
        category="image/batch",
        inputs=(
            Input("images", IMAGE),
            Input("columns", INT, default=4, min=1, max=20),
            Input("cell_width", INT, default=256, min=32, max=2048),
            Input("cell_height", INT, default=256, min=32, max=2048),
            Input("padding", INT, default=4, min=0, max=50),
        ),
        outputs=(Output("image", IMAGE),),
        is_input_list=True,
        experimental=True,
    )

    @staticmethod
    def execute(ctx, images: list, columns: list, cell_width: list, cell_height: list,
                padding: list):
        import torch

        from ..impl import image_ops

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


def _merge_node(class_type: str, display: str, io) -> type[Node]:
    """A pass-through list node (the executor already concatenated the inputs' lists)."""
    name = "images" if io is IMAGE else "texts"

    class Merge(Node):
        schema = NodeSchema(
            class_type, display_name=display, category="image/batch" if io is IMAGE else "text",
            inputs=(Input(name, io, force_input=io is STRING),),
            outputs=(Output(name, io, is_list=True),),
            is_input_list=True, experimental=True, deprecated=True,
        )

        def execute(ctx, **kw):
            return (list(kw[name]),)

        execute = with_signature(execute, schema.inputs)

    Merge.__name__ = Merge.__qualname__ = class_type
    Merge.__doc__ = display
    return Merge


MergeImageLists = _merge_node("MergeImageLists", "Merge Image Lists", IMAGE)
MergeTextLists = _merge_node("MergeTextLists", "Merge Text Lists", STRING)


NODES = [
    ShuffleDataset, ShuffleImageTextDataset, ImageDeduplication, ImageGrid, MergeImageLists,
    MergeTextLists,
]
