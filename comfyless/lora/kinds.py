"""Adapter math over plain tensors: LoRA, LoHa, LoKr, OFT and the diff/set patch kinds.

One layer of pure functions shared by the trainer (adapters.py: weight functions and bypass
hooks) and the file loader (formats.py/apply.py: merging patches into weights), so a trained
adapter and the same adapter read back from its file compute exactly the same weight.

A patch for one weight is `Patch(kind, tensors, alpha)` where `tensors` maps the file suffix
(`lora_up.weight`, `hada_w1_a`, `lokr_w1`, `oft_blocks`, `diff`, ...) to its tensor. Merge math
follows lora-format.md §5 (computed in float32, cast back to the weight's dtype); bypass math
follows §6.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# Suffix dialects for the two LoRA factors, first match wins (lora-format.md §4.3).
# (up, down, mid); "x_lora.up.weight" is glued to the prefix without a dot (old diffusers).
LORA_DIALECTS: tuple[tuple[str, str, str | None], ...] = (
    ("lora_up.weight", "lora_down.weight", "lora_mid.weight"),
    ("_lora.up.weight", "_lora.down.weight", None),
    ("lora_B.weight", "lora_A.weight", None),
    ("lora.up.weight", "lora.down.weight", None),
    ("lora_B", "lora_A", None),
    ("lora_linear_layer.up.weight", "lora_linear_layer.down.weight", None),
    ("lora_B.default.weight", "lora_A.default.weight", None),
)
LOHA_KEYS = ("hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b", "hada_t1", "hada_t2")
LOKR_KEYS = ("lokr_w1", "lokr_w2", "lokr_w1_a", "lokr_w1_b", "lokr_w2_a", "lokr_w2_b", "lokr_t2")
OFT_KEYS = ("oft_blocks", "rescale")
# Keys that only modify how a patch applies (read together with the adapter).
EXTRA_KEYS = ("alpha", "dora_scale")
# Non-adapter patch kinds, each one file suffix (w_norm/b_norm are diffs under another name).
DIFF_KEYS = ("diff", "diff_b", "w_norm", "b_norm", "set_weight")


@dataclass
class Patch:
    """One patch for one weight tensor (or a slice of it, `offset=(dim, start, length)`)."""

    kind: str  # "lora" | "loha" | "lokr" | "oft" | "diff" | "set"
    tensors: dict[str, Tensor]
    alpha: float | None = None
    dora_scale: Tensor | None = None
    offset: tuple[int, int, int] | None = None
    source_keys: tuple[str, ...] = field(default=(), compare=False)

    @property
    def is_adapter(self) -> bool:
        """Adapters can run as bypass hooks; diff/set always patch the weight."""
        return self.kind in ("lora", "loha", "lokr", "oft")


def factorization(dim: int, factor: int = -1) -> tuple[int, int]:
    """Split `dim` into (small, large) factors as LyCORIS/ComfyUI do (lora-format.md §2.1)."""
    if factor > 0 and dim % factor == 0 and dim >= factor * factor:
        return tuple(sorted((factor, dim // factor)))  # type: ignore[return-value]
    if factor < 0:
        factor = dim
    m, n = 1, dim
    while m < n:
        nxt = m + 1
        while dim % nxt:
            nxt += 1
        if nxt > factor:
            break
        m, n = nxt, dim // nxt
    return (min(m, n), max(m, n))


# -- deltas (float32) ---------------------------------------------------------------------


def _f32(t: Tensor) -> Tensor:
    return t.to(torch.float32)


def _tucker(core: Tensor, wa: Tensor, wb: Tensor) -> Tensor:
    # core [i, j, kh, kw], wa [out, i], wb [j, in] -> [out, in, kh, kw]
    return torch.einsum("ijkl,jr,ip->prkl", _f32(core), _f32(wb), _f32(wa))


def lora_delta(t: dict[str, Tensor], shape: torch.Size) -> Tensor:
    """up @ down (with an optional LoCon Tucker mid) reshaped to the weight shape."""
    up, down = _f32(t["up"]), _f32(t["down"])
    mid = t.get("mid")
    if mid is not None:
        # down' [r, in, kh, kw] = sum_b mid[r, b, kh, kw] * down[b, in]
        down = torch.einsum("abhw,bi->aihw", _f32(mid), down.flatten(1))
    return (up.flatten(1) @ down.flatten(1)).reshape(shape)


def loha_delta(t: dict[str, Tensor], shape: torch.Size) -> Tensor:
    """Hadamard product of two low-rank products (optionally Tucker-decomposed)."""
    if "hada_t1" in t:
        w1 = _tucker(t["hada_t1"], t["hada_w1_a"], t["hada_w1_b"])
        w2 = _tucker(t["hada_t2"], t["hada_w2_a"], t["hada_w2_b"])
        return (w1 * w2).reshape(shape)
    w1 = _f32(t["hada_w1_a"]) @ _f32(t["hada_w1_b"]).flatten(1)
    w2 = _f32(t["hada_w2_a"]) @ _f32(t["hada_w2_b"]).flatten(1)
    return (w1 * w2).reshape(shape)


def _lokr_factors(t: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
    w1 = t.get("lokr_w1")
    if w1 is None:
        w1 = _f32(t["lokr_w1_a"]) @ _f32(t["lokr_w1_b"])
    w2 = t.get("lokr_w2")
    if w2 is None:
        if "lokr_t2" in t:
            w2 = _tucker(t["lokr_t2"], t["lokr_w2_a"], t["lokr_w2_b"])
        else:
            w2 = _f32(t["lokr_w2_a"]) @ _f32(t["lokr_w2_b"])
    return _f32(w1), _f32(w2)


def lokr_delta(t: dict[str, Tensor], shape: torch.Size) -> Tensor:
    """kron(w1, w2) reshaped to the weight shape.

    A 2-D kron of w1 [out_l, in_m] and w2.flatten(1) [out_k, in_n*k] orders its columns as
    (in_m, in_n, k), exactly the flattening of an [out, in, kh, kw] conv weight, so conv and
    linear layers share one path.
    """
    w1, w2 = _lokr_factors(t)
    return torch.kron(w1.flatten(1), w2.flatten(1)).reshape(shape)


def oft_rotation(blocks: Tensor, alpha: float | None) -> Tensor:
    """Cayley transform of the skew part of each block, norm-clipped to alpha: [k, b, b]."""
    b = _f32(blocks)
    q = b - b.transpose(1, 2)
    if alpha:
        # q * alpha / ||q||_F when ||q||_F > alpha; the inner where keeps rsqrt away from 0 so
        # the gradient stays finite at q = 0 (fresh adapters start there)
        sq = (q * q).sum()
        clip = sq > alpha * alpha
        q = q * torch.where(clip, alpha * torch.rsqrt(torch.where(clip, sq, 1.0)), 1.0)
    eye = torch.eye(q.shape[-1], dtype=q.dtype, device=q.device).expand_as(q)
    # (I + Q)(I - Q)^-1, written as a solve: X (I - Q) = (I + Q)  <=>  (I - Q)^T X^T = (I + Q)^T
    return torch.linalg.solve((eye - q).transpose(1, 2), (eye + q).transpose(1, 2)).transpose(1, 2)


def oft_apply(rot: Tensor, weight: Tensor, strength: float = 1.0) -> Tensor:
    """W_k += s^2 (R_k - I)^T W_k per output block (at s = 1: W_k' = R_k^T W_k)."""
    nblocks, size = rot.shape[0], rot.shape[1]
    w = _f32(weight).reshape(nblocks, size, -1)  # [k, b, in*kh*kw]: blocks along the output dim
    eye = torch.eye(size, dtype=rot.dtype, device=rot.device)
    upd = torch.einsum("knm,kni->kmi", rot - eye, w)
    return (w + (strength * strength) * upd).reshape(weight.shape)


# -- scale --------------------------------------------------------------------------------


def scale_of(p: Patch) -> float:
    """alpha / rank where the kind uses it (lora-format.md §3); 1.0 otherwise."""
    if p.alpha is None:
        return 1.0
    t = p.tensors
    if p.kind == "lora":
        return p.alpha / t["down"].shape[0]
    if p.kind == "loha":
        return p.alpha / t["hada_w1_b"].shape[0]
    if p.kind == "lokr":
        if "lokr_w1" not in t:
            return p.alpha / t["lokr_w1_b"].shape[0]
        if "lokr_w2" not in t:
            return p.alpha / t["lokr_w2_b"].shape[0]
    return 1.0


_DELTAS: dict[str, Callable[[dict[str, Tensor], torch.Size], Tensor]] = {
    "lora": lora_delta,
    "loha": loha_delta,
    "lokr": lokr_delta,
}


def patch_delta(p: Patch, weight: Tensor) -> Tensor:
    """The additive float32 update of an additive adapter at strength 1 (scale included)."""
    return _DELTAS[p.kind](p.tensors, weight.shape) * scale_of(p)


def _dora(p: Patch, weight: Tensor, calc: Tensor) -> Tensor:
    """Weight-decomposed LoRA: rescale each output row or input column of W + delta."""
    scale = _f32(p.dora_scale)
    w = _f32(weight)
    if scale.shape[0] == w.shape[0]:
        norm = w.reshape(w.shape[0], -1).norm(dim=1).reshape(-1, *[1] * (w.dim() - 1))
    else:
        cols = calc.transpose(0, 1).reshape(calc.shape[1], -1).norm(dim=1)
        norm = cols.reshape(calc.shape[1], *[1] * (w.dim() - 1)).transpose(0, 1)
    return calc * (scale.reshape(norm.shape) / (norm + torch.finfo(weight.dtype).eps))


def merged_weight(p: Patch, weight: Tensor, strength: float) -> Tensor:
    """The weight with patch `p` applied at `strength` (float32 math, weight's dtype out)."""
    w = _f32(weight)
    if p.kind == "diff":
        out = w + strength * _f32(p.tensors["diff"]).reshape(w.shape)
    elif p.kind == "set":
        out = _f32(p.tensors["set_weight"]).reshape(w.shape).clone()
    elif p.kind == "oft":
        out = oft_apply(oft_rotation(p.tensors["oft_blocks"], p.alpha), w, strength)
    elif p.dora_scale is not None:
        calc = _dora(p, weight, w + patch_delta(p, weight))
        out = calc if strength == 1.0 else w + strength * (calc - w)
    else:
        out = w + strength * patch_delta(p, weight)
    return out.to(weight.dtype)


# -- bypass (forward hooks) ---------------------------------------------------------------

_CONVS: dict[type, Callable[..., Tensor]] = {
    nn.Conv1d: F.conv1d,
    nn.Conv2d: F.conv2d,
    nn.Conv3d: F.conv3d,
}


def _conv_fn(layer: nn.Module) -> Callable[..., Tensor] | None:
    # isinstance, not type(): parametrized layers are dynamic subclasses
    return next((fn for cls, fn in _CONVS.items() if isinstance(layer, cls)), None)


def layer_op(layer: nn.Module, x: Tensor, weight: Tensor) -> Tensor:
    """The layer's own operation with another weight and no bias."""
    if isinstance(layer, nn.Linear):
        return F.linear(x, weight)
    fn = _conv_fn(layer)
    if fn is None:
        kind = type(layer).__name__
        raise TypeError(f"bypass adapters support Linear and Conv layers, not {kind}")
    return fn(x, weight, None, layer.stride, layer.padding, layer.dilation, layer.groups)


def _plain_conv(layer: nn.Module, x: Tensor, weight: Tensor) -> bool:
    """A conv the input-side forms can split: batched input, no groups, zero padding."""
    return (_conv_fn(layer) is not None and layer.groups == 1 and x.dim() == weight.dim()
            and getattr(layer, "padding_mode", "zeros") == "zeros")


def _low_rank_out(layer: nn.Module, x: Tensor, up: Tensor, down: Tensor, weight: Tensor) -> Tensor:
    """(up @ down) applied to x without forming it: down [R, in*k] runs as the layer's own op
    (conv: same kernel/stride/padding), up [out, R] as a linear / 1x1 conv over the R channels."""
    up, down = up.to(x.dtype), down.to(x.dtype)
    if isinstance(layer, nn.Linear):
        return F.linear(F.linear(x, down.flatten(1)), up.flatten(1))
    h = layer_op(layer, x, down.reshape(down.shape[0], *weight.shape[1:]))
    return _conv_fn(layer)(h, up.reshape(up.shape[0], -1, *[1] * (weight.dim() - 2)))


def _loha_factors(t: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
    """(w1a@w1b) * (w2a@w2b) = up2 @ down2 with rank r1*r2: up2[o,(p,q)] = w1a[o,p] w2a[o,q],
    down2[(p,q),i] = w1b[p,i] w2b[q,i]."""
    w1a, w2a = t["hada_w1_a"], t["hada_w2_a"]
    w1b, w2b = t["hada_w1_b"].flatten(1), t["hada_w2_b"].flatten(1)
    up = (w1a[:, :, None] * w2a[:, None, :]).flatten(1)
    down = (w1b[:, None, :] * w2b[None, :, :]).flatten(0, 1)
    return up, down


def _loha_factored_pays(t: dict[str, Tensor], weight: Tensor) -> bool:
    # the r1*r2 factors beat a full delta (and its full-size gradient) when they are smaller
    rank = t["hada_w1_a"].shape[1] * t["hada_w2_a"].shape[1]
    out, fan_in = weight.shape[0], weight[0].numel()
    return "hada_t1" not in t and rank * (out + fan_in) < out * fan_in


def _lokr_out(p: Patch, layer: nn.Module, x: Tensor, weight: Tensor) -> Tensor | None:
    """kron(w1, w2) applied to x as w1 mixing input groups, w2 the layer op within a group
    (ΔW[(l,k),(m,n)] = w1[l,m] w2[k,n]); None when the factors do not split the layer."""
    w1, w2 = _lokr_factors(p.tensors)
    if w1.dim() > 2 and any(s != 1 for s in w1.shape[2:]):
        return None
    w1 = w1.flatten(1).to(x.dtype)
    (out_l, in_m), out_k = w1.shape, w2.shape[0]
    in_n = weight.shape[1] // in_m
    if out_l * out_k != weight.shape[0] or in_m * in_n != weight.shape[1]:
        return None
    w2 = w2.to(x.dtype).reshape(out_k, in_n, *weight.shape[2:])
    if isinstance(layer, nn.Linear):
        h = F.linear(x.unflatten(-1, (in_m, in_n)), w2)  # [..., m, k]
        return torch.einsum("...mk,lm->...lk", h, w1).flatten(-2) * scale_of(p)
    batch, spatial = x.shape[0], x.shape[2:]
    grouped = x.reshape(batch * in_m, in_n, *spatial)
    h = layer_op(layer, grouped, w2)
    h = h.reshape(batch, in_m, out_k, *h.shape[2:])
    return torch.einsum("bmk...,lm->blk...", h, w1).flatten(1, 2) * scale_of(p)


def _input_side_out(p: Patch, layer: nn.Module, x: Tensor, weight: Tensor) -> Tensor | None:
    """The adapter's output path computed from x with no weight-sized tensor, or None."""
    if p.dora_scale is not None or not (isinstance(layer, nn.Linear)
                                        or _plain_conv(layer, x, weight)):
        return None
    t = p.tensors
    if p.kind == "lora" and "mid" not in t:
        return _low_rank_out(layer, x, t["up"], t["down"], weight) * scale_of(p)
    if p.kind == "loha" and _loha_factored_pays(t, weight):
        return _low_rank_out(layer, x, *_loha_factors(t), weight) * scale_of(p)
    if p.kind == "lokr":
        return _lokr_out(p, layer, x, weight)
    return None


def bypass_delta_out(p: Patch, layer: nn.Module, x: Tensor, weight: Tensor) -> Tensor:
    """h(x): the adapter's additive output path (strength 1).

    From the input where the kind allows it (LoRA down/up, LoHa as a rank r1*r2 product, LoKr
    as a grouped Kronecker application): no delta the size of the weight is formed, so neither
    is its gradient. Otherwise (DoRA, LoCon mid, LoHa when its product factors are bigger than
    the weight, grouped convs) the layer op runs with the delta itself.
    """
    out = _input_side_out(p, layer, x, weight)
    if out is not None:
        return out
    if p.dora_scale is None and p.kind in _DELTAS:
        delta = patch_delta(p, weight)
    else:
        delta = merged_weight(p, weight.float(), 1.0) - weight.float()
    return layer_op(layer, x, delta.to(x.dtype))


def oft_rotate_output(
    p: Patch, y: Tensor, bias: Tensor | None, channel_dim: int, strength: float = 1.0
) -> Tensor:
    """g(y): rotate the bias-free part of the output channels blockwise, as `oft_apply` does."""
    rot = oft_rotation(p.tensors["oft_blocks"], p.alpha)
    eye = torch.eye(rot.shape[-1], dtype=rot.dtype, device=rot.device)
    rot = (eye + (strength * strength) * (rot - eye)).to(y.dtype)
    if bias is not None:
        shape = [1] * y.dim()
        shape[channel_dim] = -1
        y = y - bias.to(y.dtype).reshape(shape)
    moved = y.movedim(channel_dim, -1)
    k, b = rot.shape[0], rot.shape[1]
    out = torch.einsum("...kn,knm->...km", moved.reshape(*moved.shape[:-1], k, b), rot)
    out = out.reshape(moved.shape).movedim(-1, channel_dim)
    if bias is not None:
        out = out + bias.to(y.dtype).reshape(shape)
    return out
