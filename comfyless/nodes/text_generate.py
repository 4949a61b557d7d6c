"""Text generation with the LLM of a text encoder (ComfyUI's comfy_extras/nodes_textgen.py):
TextGenerate. The model side is comfyless/models/qwen_generate.py (Qwen3-4B and
Qwen2.5-VL-7B text encoders).

`sampling_mode` is a ComfyUI DynamicCombo: "on" brings six widgets (plus an optional
presence penalty), "off" (greedy) none. On the wire they are the inputs
`sampling_mode.temperature`, ...; the UI saves them right after `sampling_mode` in
widgets_values, and leaves them out when the mode is "off". Older versions of the node lacked
the later inputs (below); their shorter widgets_values load with the defaults.
"""

from __future__ import annotations

from ..typesys.schema import Input, Node, NodeSchema, Output, implemented_by
from ..typesys.types import AUDIO, BOOLEAN, CLIP, COMBO, FLOAT, IMAGE, INT, SEED_MAX, STRING

SAMPLING_MODES = ("on", "off")
MTP_CHOICES = ("auto", "off", "2", "3", "4", "5")

# The "on" option's widgets, in ComfyUI's order (all optional: absent when the mode is "off").
SAMPLING_INPUTS = (
    Input("sampling_mode.temperature", FLOAT, default=0.7, min=0.01, max=2.0, step=0.000001,
          optional=True, display_name="temperature"),
    Input("sampling_mode.top_k", INT, default=64, min=0, max=1000, optional=True,
          display_name="top_k"),
    Input("sampling_mode.top_p", FLOAT, default=0.95, min=0.0, max=1.0, step=0.01,
          optional=True, display_name="top_p"),
    Input("sampling_mode.min_p", FLOAT, default=0.05, min=0.0, max=1.0, step=0.01,
          optional=True, display_name="min_p"),
    Input("sampling_mode.repetition_penalty", FLOAT, default=1.05, min=0.0, max=5.0, step=0.01,
          optional=True, display_name="repetition_penalty"),
    Input("sampling_mode.seed", INT, default=0, min=0, max=SEED_MAX, optional=True,
          display_name="seed"),
    Input("sampling_mode.presence_penalty", FLOAT, default=0.0, min=0.0, max=5.0, step=0.01,
          optional=True, display_name="presence_penalty"),
)
_SAMPLING_NAMES = tuple(i.name for i in SAMPLING_INPUTS)

# Older saved layouts, by what they lack (widgets_values of 12, 11, 9 values with sampling on;
# 6, 5, 4, 3 with it off). ComfyUI added in turn: presence_penalty and thinking, then
# use_default_template (with video and audio), then mtp (and system_prompt, a socket).
_ON_LAYOUTS = (
    ("mtp",),
    ("mtp", "use_default_template"),
    ("mtp", "use_default_template", "thinking", "sampling_mode.presence_penalty"),
)
_OFF_LAYOUTS = (
    (),
    ("mtp",),
    ("mtp", "use_default_template"),
    ("mtp", "use_default_template", "thinking"),
)


class TextGenerate(Node):
    """Text written by the text encoder's language model from a prompt (and images)."""

    schema = NodeSchema(
        "TextGenerate",
        display_name="Generate Text",
        category="text",
        inputs=(
            Input("clip", CLIP),
            Input("prompt", STRING, default="", multiline=True),
            Input("image", IMAGE, optional=True),
            Input("video", IMAGE, optional=True,
                  tooltip="Video frames as image batch. Assumed to be 24 FPS; subsampled to "
                          "1 FPS internally."),
            Input("audio", AUDIO, optional=True),
            Input("max_length", INT, default=512, min=1, max=32768),
            Input("sampling_mode", COMBO, choices=SAMPLING_MODES, default="on",
                  display_name="Sampling Mode"),
            *SAMPLING_INPUTS,
            Input("thinking", BOOLEAN, default=False, optional=True,
                  tooltip="Operate in thinking mode if the model supports it."),
            Input("use_default_template", BOOLEAN, default=True, optional=True,
                  tooltip="Use the built in system prompt/template if the model has one."),
            Input("mtp", COMBO, choices=MTP_CHOICES, default="auto", optional=True,
                  tooltip="Speculative decoding with the checkpoint's multi-token-prediction "
                          "head. No effect without MTP weights."),
            Input("system_prompt", STRING, force_input=True, optional=True,
                  tooltip="Replaces the system prompt in the model's chat template. Ignored "
                          "when the default template is not used."),
        ),
        outputs=(Output("generated_text", STRING), Output("thinking", STRING)),
        older_widget_layouts=_ON_LAYOUTS + tuple(_SAMPLING_NAMES + lacks
                                                 for lacks in _OFF_LAYOUTS),
    )

    execute = implemented_by("comfyless.nodes.impl.text_generate:text_generate")


NODES = [TextGenerate]
