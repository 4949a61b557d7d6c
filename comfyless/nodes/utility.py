"""Utility nodes (ComfyUI's comfy_extras/nodes_string.py, nodes_images.py, nodes_preview_any.py,
nodes_math.py, the SaveText and ImageCompare nodes): strings, image size, text preview and
saving, a safe math expression.
"""

from __future__ import annotations

import string

from ..typesys.schema import Input, Node, NodeSchema, Output, implemented_by
from ..typesys.types import ANY, BOOLEAN, COMBO, FLOAT, IMAGE, INT, STRING, io_type, union

_IMPL = "comfyless.nodes.impl.utility"


class StringConcatenate(Node):
    """string_a + delimiter + string_b."""

    schema = NodeSchema(
        "StringConcatenate",
        display_name="Concatenate",
        category="utils/string",
        inputs=(
            Input("string_a", STRING, multiline=True),
            Input("string_b", STRING, multiline=True),
            Input("delimiter", STRING, default=""),
        ),
        outputs=(Output("STRING", STRING),),
    )
    execute = implemented_by(f"{_IMPL}:concatenate")


class StringReplace(Node):
    """Every occurrence of `find` in `string` replaced by `replace` (plain text, no regex)."""

    schema = NodeSchema(
        "StringReplace",
        display_name="Replace",
        category="utils/string",
        inputs=(
            Input("string", STRING, multiline=True),
            Input("find", STRING, multiline=True),
            Input("replace", STRING, multiline=True),
        ),
        outputs=(Output("STRING", STRING),),
    )
    execute = implemented_by(f"{_IMPL}:replace")


class GetImageSize(Node):
    """Width, height and batch size of an image batch."""

    schema = NodeSchema(
        "GetImageSize",
        display_name="Get Image Size",
        category="image",
        description="Returns the width, height, and batch size of the image.",
        inputs=(Input("image", IMAGE),),
        outputs=(Output("width", INT), Output("height", INT), Output("batch_size", INT)),
        # ComfyUI also declares hidden unique_id, only to show the size as progress text on
        # the node; nothing here uses it, and tests/engine keeps non-output nodes hidden-free.
    )
    execute = implemented_by(f"{_IMPL}:image_size")


class PreviewAny(Node):
    """Any value shown as text: in the UI result ("text") and as a STRING output."""

    schema = NodeSchema(
        "PreviewAny",
        display_name="Preview as Text",
        category="utilities",
        output_node=True,
        inputs=(Input("source", ANY),),
        outputs=(Output("STRING", STRING),),
    )
    execute = implemented_by(f"{_IMPL}:preview_any")


SAVE_TEXT_FORMATS = ("txt", "md", "json")


class SaveText(Node):
    """Write text to `output/<prefix>_<counter:05>.<format>` (never overwriting); passes it on."""

    schema = NodeSchema(
        "SaveText",
        display_name="Save Text",
        category="text",
        description="Save text content to a file in the output directory.",
        output_node=True,
        inputs=(
            Input("text", STRING, force_input=True),
            Input("filename_prefix", STRING, default="ComfyUI", save_to="output"),
            Input("format", COMBO, default="txt", choices=SAVE_TEXT_FORMATS),
        ),
        outputs=(Output("text", STRING),),
    )
    execute = implemented_by(f"{_IMPL}:save_text")


# ComfyUI's Autogrow group "values": sockets values.a ... values.z, each taking a number or
# a boolean; the expression names them by letter. Only the connected ones exist at run time.
MATH_VARIABLES = tuple(string.ascii_lowercase)
MATH_VALUE = union(FLOAT, INT, BOOLEAN)


class ComfyMathExpression(Node):
    """A math expression over the letters a..z (the connected `values.<letter>` inputs)."""

    schema = NodeSchema(
        "ComfyMathExpression",
        display_name="Math Expression",
        category="logic",
        description="Evaluates a math expression over the connected values a, b, c, ... "
                    "(and `values`, the list of them). Allowed: numbers, + - * / // % **, "
                    "parentheses and sum min max abs round pow sqrt ceil floor log log2 "
                    "log10 sin cos tan int float.",
        inputs=(
            Input("expression", STRING, default="a + b", multiline=True),
            *(Input(f"values.{letter}", MATH_VALUE, optional=True) for letter in MATH_VARIABLES),
        ),
        outputs=(Output("FLOAT", FLOAT), Output("INT", INT), Output("BOOL", BOOLEAN)),
    )
    execute = implemented_by(f"{_IMPL}:math_expression")


# The frontend's before/after slider widget; it holds no value the backend uses.
IMAGECOMPARE = io_type("IMAGECOMPARE", "frontend-only compare slider (no backend value)")


class ImageCompare(Node):
    """UI-only: previews image_a and image_b (temp files) for a compare slider."""

    schema = NodeSchema(
        "ImageCompare",
        display_name="Image Compare",
        category="image",
        description="Compares two images side by side with a slider.",
        experimental=True,
        output_node=True,
        inputs=(
            Input("image_a", IMAGE, optional=True),
            Input("image_b", IMAGE, optional=True),
            # Required in ComfyUI; optional here since it carries nothing (no link, no value).
            Input("compare_view", IMAGECOMPARE, optional=True),
        ),
        outputs=(),
    )
    execute = implemented_by(f"{_IMPL}:image_compare")


NODES = [StringConcatenate, StringReplace, GetImageSize, PreviewAny, SaveText,
         ComfyMathExpression, ImageCompare]
