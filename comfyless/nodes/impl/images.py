"""Execute of the image nodes (nodes/images.py): LoadImage, SaveImage, PreviewImage."""

from __future__ import annotations

from ...typesys.schema import Result
from . import image_files


def load_image(ctx, image: str):
    path = ctx.find("input", image, input_name="image")
    if not path.is_file():
        raise ValueError(f"input 'image': {image!r} is a folder, expected an image file")
    return image_files.load_image_with_mask(path)


def save_image(ctx, images, filename_prefix: str = "ComfyUI"):
    saved = image_files.save_images(ctx, images, filename_prefix, folder="output",
                                    compress_level=4)
    return Result((images,), {"images": saved})


def preview_image(ctx, images):
    saved = image_files.save_images(ctx, images, image_files.temp_prefix(), folder="temp",
                                    compress_level=1)
    return Result((), {"images": saved})
