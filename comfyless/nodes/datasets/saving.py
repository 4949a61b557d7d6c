"""Saving image lists (and captions) as PNG folders under output/ (code in
nodes/impl/datasets/saving.py)."""

from __future__ import annotations

from ...typesys.schema import Input, Node, NodeSchema, implemented_by
from ...typesys.types import COMBO, IMAGE, STRING

IMPL = "comfyless.nodes.impl.datasets.saving"

SAVE_MODES = ("overwrite", "increment")
RUN_FILE_TAIL = r"\d+\.png"  # after `<prefix>_<run>_`: one run is a numbered series of PNGs


def _save_folder_inputs() -> tuple[Input, ...]:
    return (
        Input("folder_name", STRING, default="dataset", save_to="output",
              tooltip="sub-folder of output/"),
        # relative to output/<folder_name>/; checked as under output/ (no '..', no absolute)
        Input("filename_prefix", STRING, default="image", save_to="output"),
        Input("mode", COMBO, default="overwrite", choices=SAVE_MODES,
              tooltip="overwrite: <prefix>_<index>.png; increment: a new run number each save"),
    )


class SaveImageDataSetToFolder(Node):
    """Save an image list as PNGs in output/<folder_name>/."""

    schema = NodeSchema(
        "SaveImageDataSetToFolder",
        display_name="Save Image (to Folder)",
        category="image",
        inputs=(Input("images", IMAGE), *_save_folder_inputs()),
        output_node=True,
        is_input_list=True,
        experimental=True,
        deprecated=True,
    )

    execute = implemented_by(f"{IMPL}:save_image_dataset")


class SaveImageTextDataSetToFolder(Node):
    """Save an image list as PNGs with `.txt` captions in output/<folder_name>/."""

    schema = NodeSchema(
        "SaveImageTextDataSetToFolder",
        display_name="Save Image-Text (to Folder)",
        category="image",
        inputs=(Input("images", IMAGE),
                Input("texts", STRING, optional=True, force_input=True),
                *_save_folder_inputs()),
        output_node=True,
        is_input_list=True,
        experimental=True,
    )

    execute = implemented_by(f"{IMPL}:save_image_text_dataset")


NODES = [SaveImageDataSetToFolder, SaveImageTextDataSetToFolder]
