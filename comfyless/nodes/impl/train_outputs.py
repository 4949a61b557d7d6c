"""Execute of the training-output nodes (nodes/train_outputs.py): SaveLoRA, SaveLoRANode,
LossGraphNode; and `write_lora`, the one writer of LoRA files (TrainLoraNode uses it too)."""

from __future__ import annotations

from typing import Any

import torch

from ... import __version__
from ...files import write_atomic
from ...lora.weights import metadata_of, save_safetensors_deterministic
from ...typesys.schema import Result
from ..train_outputs import LORA_PREFIX
from . import image_files, loss_graph


def _lora_tensors(lora: Any, input_name: str = "lora") -> dict[str, Any]:
    """A LORA_MODEL as a safetensors-ready dict: same keys and dtypes, contiguous CPU copies."""
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
    tensors = _lora_tensors(lora)
    metadata = {str(k): str(v) for k, v in metadata_of(lora).items()}
    metadata["comfyless.version"] = __version__
    name = image_files.expand_prefix(prefix)
    if steps is not None:
        name = f"{name}_{int(steps)}_steps"
    path = ctx.save_path(name, ".safetensors", input_name="prefix")
    write_atomic(path, lambda tmp: save_safetensors_deterministic(tensors, tmp, metadata))
    return path


def save_lora(ctx, lora, prefix: str = LORA_PREFIX, steps: int | None = None) -> Result:
    """SaveLoRA (and legacy SaveLoRANode): write the file and report it in the UI payload."""
    path = write_lora(ctx, lora, prefix, steps)
    root = ctx.paths.folders("output")[0]
    return Result((), {"loras": [image_files.ui_entry(path, root, "output")]})


def _paired_paths(ctx, name: str):
    """`<name>_<n>_.png` and `<name>_<n>_.csv` with one counter that is free for both."""
    png, csv = ctx.save_path(name, ".png"), ctx.save_path(name, ".csv")
    later = max(png, csv, key=lambda p: p.name[: -len(p.suffix)])
    stem = later.name[: -len(later.suffix)]
    return png.with_name(stem + ".png"), csv.with_name(stem + ".csv")


def loss_graph_node(ctx, loss, filename_prefix: str = "loss_graph") -> Result:
    """LossGraphNode: the PNG plot and the values as a CSV with the same counter."""
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
