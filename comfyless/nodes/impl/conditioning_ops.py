"""Execute of the conditioning / sigma operation nodes (nodes/conditioning_ops.py).

Inputs are never mutated: new entry lists, new option dicts, new tensors (the cache may hand
the same CONDITIONING or SIGMAS to other nodes).
"""

from __future__ import annotations

import re
from typing import Any

import torch

from ...typesys.errors import InvalidValue
from .conditioning import conditioning_set_values


def _conditioning(ctx, value: Any, input_name: str) -> list:
    """Check a CONDITIONING input: a non-empty list of [Tensor(B, T, D), dict] entries."""
    ok = isinstance(value, list) and value and all(
        isinstance(e, list | tuple) and len(e) == 2 and isinstance(e[0], torch.Tensor)
        and e[0].ndim == 3 and isinstance(e[1], dict) for e in value)
    if not ok:
        raise InvalidValue(f"{input_name}: expected CONDITIONING (a non-empty list of "
                           f"[Tensor(batch, tokens, features), options] entries), got "
                           f"{_describe(value)}", node_id=ctx.node_id, input_name=input_name)
    return value


def _describe(value: Any) -> str:
    if isinstance(value, list):
        return f"a list of {len(value)} item(s)" if value else "an empty list"
    return type(value).__name__


def _first_context(ctx, conditioning_from: list, to: list, input_name: str, *,
                   broadcast_batch: bool) -> torch.Tensor:
    """ComfyUI uses only the first `conditioning_from` entry; its features must match `to`'s
    and so must its batch (a blend also broadcasts a batch of 1)."""
    context = conditioning_from[0][0]
    for k, (cond, _) in enumerate(to):
        batches = {cond.shape[0], context.shape[0]}
        batch_ok = len(batches) == 1 or (broadcast_batch and 1 in batches)
        if cond.shape[2] != context.shape[2] or not batch_ok:
            raise InvalidValue(
                f"{input_name}: context of shape {tuple(context.shape)} does not fit "
                f"conditioning_to entry {k} of shape {tuple(cond.shape)} (batch and feature "
                "size must match: both must come from the same text encoder)",
                node_id=ctx.node_id, input_name=input_name)
    return context


def conditioning_combine(ctx, conditioning_1, conditioning_2):
    a = _conditioning(ctx, conditioning_1, "conditioning_1")
    b = _conditioning(ctx, conditioning_2, "conditioning_2")
    return ([[cond, dict(options)] for cond, options in (*a, *b)],)


def conditioning_concat(ctx, conditioning_to, conditioning_from):
    to = _conditioning(ctx, conditioning_to, "conditioning_to")
    source = _conditioning(ctx, conditioning_from, "conditioning_from")
    context = _first_context(ctx, source, to, "conditioning_from", broadcast_batch=False)
    return ([[torch.cat((cond, context.to(cond)), dim=1), dict(options)]
             for cond, options in to],)


def _fit_tokens(context: torch.Tensor, tokens: int, like: torch.Tensor) -> torch.Tensor:
    """`context` cut or zero-padded to `tokens` tokens (ComfyUI's ConditioningAverage rule)."""
    context = context[:, :tokens].to(like)
    missing = tokens - context.shape[1]
    if missing > 0:
        pad = context.new_zeros(context.shape[0], missing, context.shape[2])
        context = torch.cat((context, pad), dim=1)
    return context


def conditioning_average(ctx, conditioning_to, conditioning_from,
                         conditioning_to_strength: float = 1.0):
    to = _conditioning(ctx, conditioning_to, "conditioning_to")
    source = _conditioning(ctx, conditioning_from, "conditioning_from")
    context_from = _first_context(ctx, source, to, "conditioning_from",
                                  broadcast_batch=True)
    pooled_from = source[0][1].get("pooled_output")
    w = float(conditioning_to_strength)
    out = []
    for cond, options in to:
        blended = cond * w + _fit_tokens(context_from, cond.shape[1], cond) * (1.0 - w)
        options = dict(options)
        pooled_to = options.get("pooled_output", pooled_from)
        # both pooled: blended like the contexts; only the source has one: it is taken as is
        if pooled_from is not None and pooled_to is not None:
            options["pooled_output"] = pooled_to * w + pooled_from.to(pooled_to) * (1.0 - w)
        elif pooled_from is not None:
            options["pooled_output"] = pooled_from
        out.append([blended, options])
    return (out,)


def conditioning_set_timestep_range(ctx, conditioning, start: float = 0.0, end: float = 1.0):
    conditioning = _conditioning(ctx, conditioning, "conditioning")
    return (conditioning_set_values(conditioning, {"start_percent": start, "end_percent": end}),)


def conditioning_set_area(ctx, conditioning, width: int, height: int, x: int, y: int,
                          strength: float = 1.0):
    conditioning = _conditioning(ctx, conditioning, "conditioning")
    # ComfyUI's layout: (height, width, y, x) in latent units (pixels // 8)
    area = (height // 8, width // 8, y // 8, x // 8)
    values = {"area": area, "strength": strength, "set_area_to_bounds": False}
    return (conditioning_set_values(conditioning, values),)


def conditioning_set_area_percentage(ctx, conditioning, width: float, height: float, x: float,
                                     y: float, strength: float = 1.0):
    conditioning = _conditioning(ctx, conditioning, "conditioning")
    area = ("percentage", height, width, y, x)
    values = {"area": area, "strength": strength, "set_area_to_bounds": False}
    return (conditioning_set_values(conditioning, values),)


def conditioning_set_mask(ctx, conditioning, mask, strength: float = 1.0,
                          set_cond_area: str = "default"):
    conditioning = _conditioning(ctx, conditioning, "conditioning")
    if not isinstance(mask, torch.Tensor) or mask.ndim not in (2, 3):
        found = tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise InvalidValue(f"mask: expected a MASK tensor (batch, height, width) or (height, "
                           f"width), got {found}", node_id=ctx.node_id, input_name="mask")
    if mask.ndim == 2:
        mask = mask.unsqueeze(0)
    values = {"mask": mask, "set_area_to_bounds": set_cond_area != "default",
              "mask_strength": strength}
    return (conditioning_set_values(conditioning, values),)


def set_first_sigma(ctx, sigmas, sigma: float = 136.0):
    if not isinstance(sigmas, torch.Tensor) or sigmas.ndim != 1 or sigmas.numel() == 0:
        found = tuple(sigmas.shape) if isinstance(sigmas, torch.Tensor) else type(sigmas).__name__
        raise InvalidValue(f"sigmas: expected a non-empty 1-D schedule of noise levels, got "
                           f"{found}", node_id=ctx.node_id, input_name="sigmas")
    sigmas = sigmas.clone()
    sigmas[0] = sigma
    return (sigmas,)


# ComfyUI's number grammar for ManualSigmas: optional sign, digits, dots, then digits. No
# exponents ("1e-3" reads as 1 and -3), as in ComfyUI; a token such as "1..5" is an error.
_NUMBER = re.compile(r"[-+]?\d*\.*\d+")


def manual_sigmas(ctx, sigmas: str = "1, 0.5"):
    values = []
    for token in _NUMBER.findall(sigmas):
        try:
            values.append(float(token))
        except ValueError:
            raise InvalidValue(f"sigmas: {token!r} is not a number (expected numbers separated "
                               "by commas or spaces, e.g. '14.6, 7.0, 0')", node_id=ctx.node_id,
                               input_name="sigmas") from None
    return (torch.tensor(values, dtype=torch.float32),)
