"""Loading image sets and image-text sets from input/ folders, both eras (train-nodes.md §8, §9).

Fixed against ComfyUI (the interface is the same): files are taken in sorted name order (not
`os.listdir` order), EXIF orientation is applied, 16-bit greyscale keeps its range, an
unreadable image or an empty folder is an error naming it, and legacy captions give exactly
one conditioning entry per image.
"""

from __future__ import annotations

from ...typesys.schema import Input, Node, NodeSchema, Output, implemented_by
from ...typesys.types import CLIP, COMBO, CONDITIONING, IMAGE, INT, STRING
from .common import folder_input

RESIZE_METHODS = ("None", "Stretch", "Crop", "Pad")


# -- current era: folder loaders --------------------------------------------------------------


class LoadImageDataSetFromFolder(Node):
    """Every image directly in an input sub-folder, as a list of IMAGE [1, H, W, 3]."""

    schema = NodeSchema(
        "LoadImageDataSetFromFolder",
        display_name="Load Image (from Folder)",
        category="image",
        inputs=(folder_input(),),
        outputs=(Output("images", IMAGE, is_list=True),),
        experimental=True,
    )

    execute = implemented_by("comfyless.nodes.impl.datasets.folders:load_image_folder")


class LoadImageTextDataSetFromFolder(Node):
    """Images with their `.txt` captions; kohya `<n>_name` sub-folders repeat their images."""

    schema = NodeSchema(
        "LoadImageTextDataSetFromFolder",
        display_name="Load Image-Text (from Folder)",
        category="image",
        inputs=(folder_input(),),
        outputs=(Output("images", IMAGE, is_list=True), Output("texts", STRING, is_list=True)),
        experimental=True,
    )

    execute = implemented_by("comfyless.nodes.impl.datasets.folders:load_image_text_folder")


# -- legacy (V1) nodes --------------------------------------------------------------------------


def _resize_method_input() -> Input:
    return Input("resize_method", COMBO, default="None", choices=RESIZE_METHODS, optional=True)


class LoadImageSetNode(Node):
    """Legacy: chosen input images as one IMAGE batch (never registered by ComfyUI itself)."""

    schema = NodeSchema(
        "LoadImageSetNode",
        display_name="Load Image Dataset",
        category="loaders",
        inputs=(Input("images", COMBO, choices_from="input", image_upload=True),
                _resize_method_input()),
        outputs=(Output("IMAGE", IMAGE),),
        is_input_list=True,
        experimental=True,
    )

    execute = implemented_by("comfyless.nodes.impl.datasets.folders:load_image_set")


class LoadImageSetFromFolderNode(Node):
    """Legacy: every image of an input sub-folder as one IMAGE batch."""

    schema = NodeSchema(
        "LoadImageSetFromFolderNode",
        display_name="Load Image Dataset from Folder",
        category="loaders",
        inputs=(folder_input("the folder to load images from"), _resize_method_input()),
        outputs=(Output("IMAGE", IMAGE),),
        experimental=True,
    )

    execute = implemented_by("comfyless.nodes.impl.datasets.folders:load_image_set_from_folder")


class LoadImageTextSetFromFolderNode(Node):
    """Legacy: an input sub-folder's images (one batch) and their encoded captions."""

    schema = NodeSchema(
        "LoadImageTextSetFromFolderNode",
        display_name="Load Image and Text Dataset from Folder",
        category="loaders",
        inputs=(
            folder_input("the folder to load images from"),
            Input("clip", CLIP, tooltip="the CLIP model used to encode the captions"),
            _resize_method_input(),
            Input("width", INT, default=-1, min=-1, max=10000, step=1, optional=True,
                  tooltip="-1 keeps the first image's width"),
            Input("height", INT, default=-1, min=-1, max=10000, step=1, optional=True,
                  tooltip="-1 keeps the first image's height"),
        ),
        outputs=(Output("IMAGE", IMAGE), Output("CONDITIONING", CONDITIONING)),
        experimental=True,
    )

    execute = implemented_by("comfyless.nodes.impl.datasets.folders:load_image_text_set_from_dir")


NODES = [
    LoadImageDataSetFromFolder, LoadImageTextDataSetFromFolder,
    LoadImageSetNode, LoadImageSetFromFolderNode, LoadImageTextSetFromFolderNode,
]
