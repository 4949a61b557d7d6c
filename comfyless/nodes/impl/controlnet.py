"""Execute of the ControlNet nodes (nodes/controlnet.py); the network and its run are in
comfyless.models.controlnet.

Inputs are never mutated: new entry lists and option dicts; a ControlNet is copied before it
is given a hint (the cache may hand the same CONTROL_NET to other nodes).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from ...models.checkpoint import default_dtype
from ...models.controlnet import ControlNet, load_controlnet_file
from ...models.tensor_files import open_tensor_file
from ...typesys.errors import InvalidValue
from ..controlnet import UNION_CONTROLNET_TYPES
from .conditioning_ops import _conditioning


def _load(ctx, control_net_name: str, base_weights=None) -> ControlNet:
    path = ctx.find("controlnet", control_net_name, input_name="control_net_name")
    where = {"node_id": ctx.node_id, "input_name": "control_net_name"}
    with open_tensor_file(path, **where) as tensors:
        return load_controlnet_file(tensors, control_net_name, dtype=default_dtype(ctx.device),
                                    device=ctx.device, base_weights=base_weights, where=where)


def controlnet_loader(ctx, control_net_name: str):
    return (_load(ctx, control_net_name),)


def diff_controlnet_loader(ctx, model, control_net_name: str):
    unet = getattr(model, "diffusion_model", None)
    if unet is None:
        raise InvalidValue(f"model: expected a MODEL, got {type(model).__name__}",
                           node_id=ctx.node_id, input_name="model")
    return (_load(ctx, control_net_name, base_weights=unet.state_dict()),)


def _control_net(ctx, value: Any) -> ControlNet:
    if not isinstance(value, ControlNet):
        raise InvalidValue(f"control_net: expected a CONTROL_NET (from ControlNetLoader), got "
                           f"{type(value).__name__}", node_id=ctx.node_id,
                           input_name="control_net")
    return value


def _hint(ctx, image: Any, control_net: ControlNet) -> torch.Tensor:
    """IMAGE (B, H, W, C) -> the hint (B, C, H, W), checked against the ControlNet's input."""
    expected = control_net.network.control_config.hint_channels
    if not (isinstance(image, torch.Tensor) and image.ndim == 4 and image.shape[0] > 0
            and image.shape[1] > 0 and image.shape[2] > 0):
        shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise InvalidValue(f"image: expected an IMAGE tensor (batch, height, width, channels), "
                           f"got {shape}", node_id=ctx.node_id, input_name="image")
    if image.shape[-1] != expected:
        raise InvalidValue(f"image: has {image.shape[-1]} channels, ControlNet "
                           f"{control_net.name!r} expects a {expected}-channel hint image",
                           node_id=ctx.node_id, input_name="image")
    return image.movedim(-1, 1)


def controlnet_apply(ctx, conditioning, control_net, image, strength: float):
    """ComfyUI's old node: a fresh applied copy per entry, chained to the entry's ControlNet,
    whole schedule, also applied to the negative pass (control_apply_to_uncond)."""
    conditioning = _conditioning(ctx, conditioning, "conditioning")
    control_net = _control_net(ctx, control_net)
    hint = _hint(ctx, image, control_net)
    if strength == 0:
        return (conditioning,)
    out = []
    for cond, options in conditioning:
        applied = control_net.with_hint(hint, strength, (0.0, 1.0), options.get("control"))
        out.append([cond, {**options, "control": applied, "control_apply_to_uncond": True}])
    return (out,)


def controlnet_apply_advanced(ctx, positive, negative, control_net, image, strength: float,
                              start_percent: float, end_percent: float, vae=None):
    """Both lists get the ControlNet; entries that carried the same previous ControlNet share
    one applied copy (as ComfyUI: so positive and negative can still run as one batch). `vae`
    is only for latent-space ControlNets; SD ControlNets take pixels and ignore it."""
    positive = _conditioning(ctx, positive, "positive")
    negative = _conditioning(ctx, negative, "negative")
    control_net = _control_net(ctx, control_net)
    hint = _hint(ctx, image, control_net)
    if strength == 0:
        return (positive, negative)
    applied: dict[int, tuple[Any, ControlNet]] = {}  # id(previous) -> (previous, copy)
    out = []
    for conditioning in (positive, negative):
        entries = []
        for cond, options in conditioning:
            previous = options.get("control")
            if id(previous) not in applied:
                copy = control_net.with_hint(hint, strength, (start_percent, end_percent),
                                             previous)
                applied[id(previous)] = (previous, copy)
            entries.append([cond, {**options, "control": applied[id(previous)][1],
                                   "control_apply_to_uncond": False}])
        out.append(entries)
    return (out[0], out[1])


def set_union_controlnet_type(ctx, control_net, type: str):  # noqa: A002 (ComfyUI's name)
    control_net = _control_net(ctx, control_net)
    index = UNION_CONTROLNET_TYPES.get(type, -1)
    return (dataclasses.replace(control_net, control_type=(index,) if index >= 0 else ()),)
