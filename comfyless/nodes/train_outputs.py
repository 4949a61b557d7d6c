"""What a training run leaves behind: the LoRA file (SaveLoRA, legacy SaveLoRANode) and the
loss plot (LossGraphNode). Every file is new (counter naming) and written via temp + rename.
The code, and `write_lora` (the one LoRA-file writer), is in nodes/impl/train_outputs.py.
"""

from __future__ import annotations

from ..typesys.schema import Input, Node, NodeSchema, implemented_by
from ..typesys.types import INT, LORA_MODEL, LOSS_MAP, STRING

LORA_PREFIX = "loras/ComfyUI_trained_lora"


class SaveLoRA(Node):
    """Save a LORA_MODEL to output/<prefix>_<steps>_steps_<counter:05>_.safetensors."""

    schema = NodeSchema(
        "SaveLoRA",
        display_name="Save LoRA Weights",
        category="model/merging",
        inputs=(
            Input("lora", LORA_MODEL, tooltip="the LoRA weights to save"),
            Input("prefix", STRING, default=LORA_PREFIX, save_to="output",
                  tooltip="file name prefix, relative to output/"),
            Input("steps", INT, optional=True, tooltip="training steps, used in the file name"),
        ),
        output_node=True,
        experimental=True,
    )

    execute = implemented_by("comfyless.nodes.impl.train_outputs:save_lora")


class SaveLoRANode(Node):
    """Legacy (V1) id of SaveLoRA: `steps` is a socket only."""

    schema = NodeSchema(
        "SaveLoRANode",
        display_name="Save LoRA Weights",
        category="loaders",
        inputs=(
            Input("lora", LORA_MODEL),
            Input("prefix", STRING, default=LORA_PREFIX, save_to="output"),
            Input("steps", INT, optional=True, force_input=True),
        ),
        output_node=True,
        experimental=True,
    )

    execute = implemented_by("comfyless.nodes.impl.train_outputs:save_lora")


class LossGraphNode(Node):
    """Plot a LOSS_MAP: output/<prefix>_<counter:05>_.png plus the values as a .csv beside it."""

    schema = NodeSchema(
        "LossGraphNode",
        display_name="Plot Loss Graph",
        category="model/training",
        inputs=(
            Input("loss", LOSS_MAP),
            Input("filename_prefix", STRING, default="loss_graph", save_to="output"),
        ),
        output_node=True,
        experimental=True,
    )

    execute = implemented_by("comfyless.nodes.impl.train_outputs:loss_graph_node")


NODES = [SaveLoRA, SaveLoRANode, LossGraphNode]
