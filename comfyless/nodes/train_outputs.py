"""What a training run leaves behind: the LoRA file (SaveLoRA, legacy SaveLoRANode) and the
loss plot (LossGraphNode). Every file is new (counter naming) and written via temp + rename.
"""

from __future__ import annotations

from typing import Any

from ..typesys.schema import Input, Node, NodeSchema, Result
from ..typesys.types import INT, LORA_MODEL, LOSS_MAP, STRING

LORA_PREFIX = "loras/ComfyUI_trained_lora"


def _lora_tensors(lora: Any, input_name: str = "lora") -> dict[str, Any]:
    """A LORA_MODEL as a safetensors-ready dict: same keys and dtypes, contiguous CPU copies."""
    import torch

    if not isinstance(lora, dict):
        raise TypeError(f"input '{input_name}': expected a LORA_MODEL dict of tensors, "
                        f"got {type(lora).__name__}")
    if not lora:
        raise ValueError(f"input '{input_name}': the LoRA has no tensors; nothing to save")
    out = {}
    for key, value in lora.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise TypeError(f"input '{input_name}': entry {key!r} is {type(value).__name__}, "
                            "expected a tensor under a string key")
        # A copy: safetensors refuses tensors that share storage (views of one parameter).
        out[key] = value.detach().to("cpu").contiguous().clone()
    return out


def write_lora(ctx, lora: Any, prefix: str, steps: int | None):
    """Write `lora` to output/<prefix>[_<steps>_steps]_<counter:05>_.safetensors; its Path.

    The one writer of LoRA files: SaveLoRA, and TrainLoraNode's snapshots and interrupted
    runs, so names and metadata agree and `existing_lora` resumes from any of them.
    """
    from .. import __version__
    from ..files import write_atomic
    from ..lora.weights import metadata_of, save_safetensors_deterministic
    from .impl.image_files import expand_prefix

    tensors = _lora_tensors(lora)
    metadata = {str(k): str(v) for k, v in metadata_of(lora).items()}
    metadata["comfyless.version"] = __version__
    name = expand_prefix(prefix)
    if steps is not None:
        name = f"{name}_{int(steps)}_steps"
    path = ctx.save_path(name, ".safetensors", input_name="prefix")
    write_atomic(path, lambda tmp: save_safetensors_deterministic(tensors, tmp, metadata))
    return path


def save_lora(ctx, lora: Any, prefix: str, steps: int | None) -> Result:
    """SaveLoRA: write the file and report it in the UI payload."""
    from .impl.image_files import ui_entry

    path = write_lora(ctx, lora, prefix, steps)
    root = ctx.paths.folders("output")[0]
    return Result((), {"loras": [ui_entry(path, root, "output")]})


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

    @staticmethod
    def execute(ctx, lora, prefix: str = LORA_PREFIX, steps: int | None = None):
        return save_lora(ctx, lora, prefix, steps)


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

    @staticmethod
    def execute(ctx, lora, prefix: str = LORA_PREFIX, steps: int | None = None):
        return save_lora(ctx, lora, prefix, steps)


def _paired_paths(ctx, name: str):
    """`<name>_<n>_.png` and `<name>_<n>_.csv` with one counter that is free for both."""
    png, csv = ctx.save_path(name, ".png"), ctx.save_path(name, ".csv")
    later = max(png, csv, key=lambda p: p.name[: -len(p.suffix)])
    stem = later.name[: -len(later.suffix)]
    return png.with_name(stem + ".png"), csv.with_name(stem + ".csv")


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

    @staticmethod
    def execute(ctx, loss, filename_prefix: str = "loss_graph"):
        from ..files import write_atomic
        from .impl import image_files, loss_graph

        values = loss_graph.loss_values(loss)
        smoothed = loss_graph.smooth(values)
        image = loss_graph.render_loss_graph(values, smoothed)
        name = image_files.expand_prefix(filename_prefix, image.width, image.height)
        png, csv = _paired_paths(ctx, name)
        info = image_files.png_info(ctx.prompt, ctx.extra_pnginfo)
        image_files.save_png(png, image, info, compress_level=4)
        text = loss_graph.loss_csv(values, smoothed)
        write_atomic(csv, lambda tmp: tmp.write_text(text, encoding="utf-8"))
        root = ctx.paths.folders("output")[0]
        return Result((), {"images": [image_files.ui_entry(png, root, "output")]})


NODES = [SaveLoRA, SaveLoRANode, LossGraphNode]
