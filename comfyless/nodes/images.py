"""Image nodes: LoadImage, SaveImage, PreviewImage (workflow-formats.md §8), SaveImageAdvanced,
ImageStitch and FluxKontextImageScale (ComfyUI's schemas)."""

from __future__ import annotations

from ..typesys.schema import Input, Node, NodeSchema, Output, implemented_by
from ..typesys.types import BOOLEAN, COMBO, IMAGE, INT, MASK, STRING


class LoadImage(Node):
    """An image from input/ as IMAGE (all frames of the first frame's size) and MASK = 1 - alpha."""

    schema = NodeSchema(
        "LoadImage",
        display_name="Load Image",
        category="image",
        inputs=(Input("image", COMBO, choices_from="input", image_upload=True),),
        outputs=(Output("IMAGE", IMAGE), Output("MASK", MASK)),
    )

    execute = implemented_by("comfyless.nodes.impl.images:load_image")


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

    execute = implemented_by("comfyless.nodes.impl.images:save_image")


class PreviewImage(Node):
    """Save each image into temp/ (ComfyUI_temp_xxxxx_<counter>_.png) for viewing."""

    schema = NodeSchema(
        "PreviewImage",
        display_name="Preview Image",
        category="image",
        inputs=(Input("images", IMAGE),),
        # ComfyUI's PreviewImage is a SaveImage: it passes its images on too (since 2026-06)
        outputs=(Output("images", IMAGE),),
        output_node=True,
    )

    execute = implemented_by("comfyless.nodes.impl.images:preview_image")


# SaveImageAdvanced's `format` (a ComfyUI DynamicCombo): per file format, the choices of the
# widgets that come with it. On the wire they are the inputs `format.bit_depth` and
# `format.input_color_space`; each format has both, so the UI's widgets_values always hold
# four values (prefix, format, bit depth, colour space). ComfyUI's later "avif" format (with
# crf and animation widgets) is not supported.
SAVE_FORMATS = {
    "png": {"format.bit_depth": ("8-bit", "16-bit"), "format.input_color_space": ("sRGB",)},
    "exr": {"format.bit_depth": ("32-bit float",),
            "format.input_color_space": ("sRGB", "HDR", "linear")},
}


def _all_choices(sub_input: str) -> tuple[str, ...]:
    """Every format's choices for one sub-input, in order, each once."""
    return tuple(dict.fromkeys(c for subs in SAVE_FORMATS.values() for c in subs[sub_input]))


class SaveImageAdvanced(Node):
    """Save each image as output/<prefix>_<counter:05>.png (8/16-bit) or .exr (32-bit float,
    scene-linear), with the workflow in the file's metadata."""

    schema = NodeSchema(
        "SaveImageAdvanced",
        display_name="Save Image (Advanced)",
        category="image",
        description="Saves the images in the output folder as PNG (8 or 16 bits per channel) "
                    "or OpenEXR (32-bit float; the input colour space is converted to linear).",
        inputs=(
            Input("images", IMAGE),
            Input("filename_prefix", STRING, default="ComfyUI", save_to="output",
                  tooltip="relative to output/; may hold %batch_num%, %year%, %width%, ..."),
            Input("format", COMBO, choices=tuple(SAVE_FORMATS), default="png"),
            Input("format.bit_depth", COMBO, choices=_all_choices("format.bit_depth"),
                  default="8-bit", display_name="bit_depth"),
            Input("format.input_color_space", COMBO,
                  choices=_all_choices("format.input_color_space"), default="sRGB",
                  display_name="input_color_space",
                  tooltip="exr: sRGB (inverse sRGB curve), HDR (HLG Rec.2020, inverse HLG "
                          "curve) or linear (written as is); png: sRGB only"),
        ),
        outputs=(Output("images", IMAGE),),
        output_node=True,
    )

    @staticmethod
    def check(**constants) -> dict[str, str]:
        """Each sub-input must be one of the chosen format's choices (the UI offers no other)."""
        subs = SAVE_FORMATS.get(constants.get("format"))
        if subs is None:
            return {}  # a link, or not a format at all (value_not_in_list reports that)
        return {name: f"{value!r} is not a {constants['format']} choice; expected one of "
                      f"{', '.join(allowed)}"
                for name, allowed in subs.items()
                if (value := constants.get(name)) is not None and value not in allowed}

    execute = implemented_by("comfyless.nodes.impl.images:save_image_advanced")


# Choices of ImageStitch; the colours themselves are in nodes/impl/images.py (SPACING_COLORS).
STITCH_DIRECTIONS = ("right", "down", "left", "up")
STITCH_COLORS = ("white", "black", "red", "green", "blue")


class ImageStitch(Node):
    """Put image2 beside image1 (right/down/left/up), optionally resized and with a gap."""

    schema = NodeSchema(
        "ImageStitch",
        display_name="Image Stitch",
        category="image/transform",
        description="Stitches image2 to image1 in the specified direction.\n"
                    "If image2 is not provided, returns image1 unchanged.\n"
                    "Optional spacing can be added between images.",
        inputs=(
            Input("image1", IMAGE),
            Input("direction", COMBO, choices=STITCH_DIRECTIONS, default="right"),
            Input("match_image_size", BOOLEAN, default=True),
            Input("spacing_width", INT, default=0, min=0, max=1024, step=2),
            Input("spacing_color", COMBO, choices=STITCH_COLORS, default="white"),
            Input("image2", IMAGE, optional=True),
        ),
        outputs=(Output("IMAGE", IMAGE),),
    )

    execute = implemented_by("comfyless.nodes.impl.images:image_stitch")


class FluxKontextImageScale(Node):
    """Centre-crop and resize to the Kontext size (of 17) whose aspect is closest."""

    schema = NodeSchema(
        "FluxKontextImageScale",
        category="advanced/conditioning/flux",
        description="This node resizes the image to one that is more optimal for flux kontext.",
        inputs=(Input("image", IMAGE),),
        outputs=(Output("IMAGE", IMAGE),),
    )

    execute = implemented_by("comfyless.nodes.impl.images:flux_kontext_image_scale")


NODES = [LoadImage, SaveImage, PreviewImage, SaveImageAdvanced, ImageStitch,
         FluxKontextImageScale]
