"""Whole-list nodes: shuffle, deduplicate, grid, merge.

`is_input_list` nodes get every input as a list (execution-semantics.md §3.2).
"""

from __future__ import annotations

from ...typesys.schema import Input, Node, NodeSchema, Output, implemented_by
from ...typesys.types import FLOAT, IMAGE, INT, STRING
from .common import seed_input


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

    execute = implemented_by("comfyless.nodes.impl.datasets.lists:shuffle_dataset")


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

    execute = implemented_by("comfyless.nodes.impl.datasets.lists:shuffle_image_text_dataset")


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

    execute = implemented_by("comfyless.nodes.impl.datasets.lists:image_deduplication")


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

    execute = implemented_by("comfyless.nodes.impl.datasets.lists:image_grid")


def _merge_node(class_type: str, display: str, io) -> type[Node]:
    """A pass-through list node (the executor already concatenated the inputs' lists)."""
    name = "images" if io is IMAGE else "texts"
    function = "merge_image_lists" if io is IMAGE else "merge_text_lists"

    class Merge(Node):
        schema = NodeSchema(
            class_type, display_name=display, category="image/batch" if io is IMAGE else "text",
            inputs=(Input(name, io, force_input=io is STRING),),
            outputs=(Output(name, io, is_list=True),),
            is_input_list=True, experimental=True, deprecated=True,
        )

        execute = implemented_by("comfyless.nodes.impl.datasets.lists:" + function)

    Merge.__name__ = Merge.__qualname__ = class_type
    Merge.__doc__ = display
    return Merge


MergeImageLists = _merge_node("MergeImageLists", "Merge Image Lists", IMAGE)
MergeTextLists = _merge_node("MergeTextLists", "Merge Text Lists", STRING)


NODES = [
    ShuffleDataset, ShuffleImageTextDataset, ImageDeduplication, ImageGrid, MergeImageLists,
    MergeTextLists,
]
