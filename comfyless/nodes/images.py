"""Image nodes: LoadImage, SaveImage, PreviewImage (workflow-formats.md §8)."""

from __future__ import annotations

from ..typesys.schema import Input, Node, NodeSchema, Output, Result
from ..typesys.types import COMBO, IMAGE, MASK, STRING


class LoadImage(Node):
    """An image from input/ as IMAGE (all frames of the first frame's size) and MASK = 1 - alpha."""

    schema = NodeSchema(
        "LoadImage",
        display_name="Load Image",
        category="image",
        inputs=(Input("image", COMBO, choices_from="input", image_upload=True),),
        outputs=(Output("IMAGE", IMAGE), Output("MASK", MASK)),
    )

    @staticmethod
    def execute(ctx, image: str):
        from .impl import image_files

        path = ctx.find("input", image, input_name="image")
        if not path.is_file():
            raise ValueError(f"input 'image': {image!r} is a folder, expected an image file")
        return image_files.load_image_with_mask(path)


class SaveImage(Node):
    """Save each image as output/<prefix>_<counter:05>_.png with the workflow in PNG chunks."""

    schema = NodeSchema(
        "SaveImage",
        display_name="Save Image",
        category="image",
        inputs=(
            Input("images", IMAGE),
            Input("filename_prefix", STRING, default="ComfyUI", save_to="output",
                  tooltip="relative to output/; may hold %batch_num%, %year%, %width%, ..."),
        ),
        # Since 2026-06 SaveImage also passes its images on.
        outputs=(Output("images", IMAGE),),
        output_node=True,
    )

    @staticmethod
    def execute(ctx, images, filename_prefix: str = "ComfyUI"):
        from .impl import image_files

        saved = image_files.save_images(ctx, images, filename_prefix, folder="output",
                                        compress_level=4)
        return Result((images,), {"images": saved})


class PreviewImage(Node):
    """Save each image into temp/ (ComfyUI_temp_xxxxx_<counter>_.png) for viewing."""

    schema = NodeSchema(
        "PreviewImage",
        display_name="Preview Image",
        category="image",
        inputs=(Input("images", IMAGE),),
        outputs=(),
        output_node=True,
    )

    @staticmethod
    def execute(ctx, images):
        from .impl import image_files

        saved = image_files.save_images(ctx, images, image_files.temp_prefix(), folder="temp",
                                        compress_level=1)
        return Result((), {"images": saved})


NODES = [LoadImage, SaveImage, PreviewImage]
