"""ControlNets for the LDM UNet (SD1.x, SD2.x, SDXL): the network, its file layouts, and the
CONTROL_NET payload that runs it during sampling.

The network (ComfyUI's cldm ControlNet) is a copy of the UNet's encoder (time/label embedding,
input blocks, middle block) plus
- `input_hint_block`: eight 3x3 convs with SiLU between them (strides 1,1,2,1,2,1,2,1), which
  turn the pixel-sized hint image into features at latent size, added to the output of the
  first input block;
- `zero_convs.N.0`: a 1x1 conv per input block; `middle_block_out.0`: a 1x1 conv after the
  middle block.
Its output is `{"middle": [m], "output": [o_0, ..., o_K]}` (o_N from input block N), which is
ComfyUI's control dict: the UNet adds `middle` to its middle block's output and o_N to the
skip connection from input block N (models/unet.py, `control=`).

File layouts (`load_controlnet_file`): the original/ComfyUI one (`input_blocks.*`,
`input_hint_block.*`, `zero_convs.*`, `middle_block_out.*`, optionally under
`control_model.`) and diffusers' ControlNetModel (`controlnet_cond_embedding.*`,
`down_blocks.*`, `controlnet_down_blocks.*`, `controlnet_mid_block.*`), renamed to the
original names. The config is read off the key shapes with the UNet's own detection.
ControlNet++ "union" files (SDXL; diffusers layout plus `task_embedding`,
`control_add_embedding.*`, `transformer_layes.*`, `spatial_ch_projs.*`) add ComfyUI's union
parts: the task chosen by SetUnionControlNetType offsets the time embedding and, through a small
transformer over the hint features' mean, the hint features (no task, "auto": plain hint).

Spec note (ComfyUI's rules, comfy/controlnet.py, checked against its source):
- hint: the IMAGE (B, H, W, C) as (B, C, H, W), centre-cropped to the latent's aspect and
  resized with "nearest-exact" to exactly (latent height x 8, latent width x 8); a batch-1
  hint serves every sample, a larger one is cut/tiled to the samples of one conditioning
  and repeated per conditioning batched together.
- the network sees the same input as the UNet: x / sqrt(sigma^2 + 1) at the UNet timestep,
  the entry's cross-attention context and (SDXL) its adm vector y.
- every residual is multiplied by the ControlNet's strength.
- active range: the ControlNet runs while sigma_end <= sigma <= sigma_start, with
  sigma_start/end = percent_to_sigma(start_percent/end_percent), judged on the first
  sample's sigma; outside it contributes nothing.
- chain (previous_controlnet): the previous one's residuals are computed first and added
  element-wise (lists of different length: the longer one's extra entries are kept).
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..lora.keys import _BASIC, _RESNET, _block_table
from ..typesys.errors import ModelLoadError
from .crop import centre_crop_to_aspect
from .families.sd.config import UNetConfig
from .families.sd.detect import detect_unet_config
from .patcher import match_batch
from .unet import TimestepEmbedSequential, UNetModel, timestep_embedding

log = logging.getLogger("comfyless.controlnet")

# input_hint_block: conv widths after each of the 7 inner convs (the 8th gives model_channels)
# and the convs with stride 2 (by position 0..7); ComfyUI's cldm fixes these.
HINT_WIDTHS = (16, 16, 32, 32, 96, 96, 256)
_HINT_STRIDE_2 = (2, 4, 6)
HINT_UPSCALE = "nearest-exact"
LATENT_SCALE = 8  # pixels per latent pixel (the hint is resized to latent size x 8)

ORIGINAL_TRIGGER = "zero_convs.0.0.weight"
CONTROL_MODEL_PREFIX = "control_model."
DIFFUSERS_TRIGGER = "controlnet_cond_embedding.conv_in.weight"
_UNION_KEYS = ("task_embedding", "control_add_embedding.", "transformer_layes.",
               "spatial_ch_projs.")


# ControlNet++ "union" parts (ComfyUI's cldm): a one-layer transformer over the hint's mean
# feature plus a task embedding, 8 heads; the task one-hot embedded as 256 sinusoid channels each
UNION_HEADS = 8
UNION_TASK_EMBED_DIM = 256


@dataclass
class ControlNetConfig:
    """A ControlNet's shape: the UNet encoder config plus the hint embedding's widths, and for
    a ControlNet++ union file the number of task types and the union transformer's width."""

    unet: UNetConfig
    hint_channels: int = 3
    hint_widths: tuple[int, ...] = HINT_WIDTHS
    union_types: int | None = None
    union_width: int = 320


class ControlNetModel(UNetModel):
    """ComfyUI's cldm ControlNet; parameter names match the original file keys.

    Built with the UNet's own block builders (input blocks, middle block); it has no output
    blocks. forward(x, hint, timesteps, context, y) -> {"middle": [...], "output": [...]}.
    """

    def __init__(self, config: ControlNetConfig) -> None:
        nn.Module.__init__(self)  # not UNetModel.__init__: no decoder half
        c = config.unet
        self.config = c
        self.control_config = config
        mc, ted = c.model_channels, c.time_embed_dim
        self.time_embed = nn.Sequential(nn.Linear(mc, ted), nn.SiLU(), nn.Linear(ted, ted))
        if c.adm_in_channels is not None:
            self.label_emb = nn.Sequential(nn.Sequential(
                nn.Linear(c.adm_in_channels, ted), nn.SiLU(), nn.Linear(ted, ted)))
        skip_chans = self._build_input_blocks(c)
        self.zero_convs = nn.ModuleList(_zero_conv(ch) for ch in skip_chans)
        self.input_hint_block = _hint_block(config.hint_channels, config.hint_widths, mc)
        self._build_middle_block(c)
        self.middle_block_out = _zero_conv(self._ch)
        self.union = config.union_types is not None
        if self.union:
            n, width = config.union_types, config.union_width
            self.task_embedding = nn.Parameter(torch.empty(n, width))
            self.transformer_layes = nn.Sequential(UnionTransformerBlock(width, UNION_HEADS))
            self.spatial_ch_projs = nn.Linear(width, width)
            self.control_add_embedding = ControlTypeEmbedding(n, ted)

    def forward(self, x: Tensor, hint: Tensor, timesteps: Tensor,  # type: ignore[override]
                context: Tensor, y: Tensor | None = None,
                control_type: tuple[int, ...] = ()) -> dict[str, list[Tensor]]:
        """Residuals for the UNet: one per input block ('output') and one 'middle'.
        `control_type`: the union task (SetUnionControlNetType); other ControlNets ignore it."""
        emb = self.time_embed(timestep_embedding(timesteps, self.config.model_channels).to(x.dtype))
        if self.union:
            self._check_tasks(control_type)
            emb = emb + self.control_add_embedding(control_type, emb.dtype, emb.device)
        guided_hint = self.input_hint_block(hint, emb, context)
        if self.union and control_type:
            guided_hint = self._union_hint(guided_hint, control_type[0])
        if self.config.adm_in_channels is not None:
            if y is None:
                raise ValueError("this ControlNet (SDXL-style) needs the adm vector y")
            emb = emb + self.label_emb(y.to(emb.dtype))
        h, outputs = x, []
        for block, zero_conv in zip(self.input_blocks, self.zero_convs, strict=True):
            h = block(h, emb, context)
            if guided_hint is not None:  # the hint joins after the first block only
                h, guided_hint = h + guided_hint, None
            outputs.append(zero_conv(h, emb, context))
        if self.middle_block is not None:
            h = self.middle_block(h, emb, context)
        return {"middle": [self.middle_block_out(h, emb, context)], "output": outputs}


    def _check_tasks(self, control_type: tuple[int, ...]) -> None:
        known = self.task_embedding.shape[0]
        bad = [t for t in control_type if not 0 <= t < known]
        if bad:
            raise ValueError(f"union ControlNet task {bad[0]} out of range: this file knows "
                             f"{known} task types (0..{known - 1})")

    def _union_hint(self, features: Tensor, task: int) -> Tensor:
        """ComfyUI's union merge for one task: the hint features' spatial mean plus the task
        embedding, through the union transformer, projected and added per channel."""
        token = features.mean(dim=(2, 3)) + self.task_embedding[task].to(features.dtype)
        mixed = self.transformer_layes(token.unsqueeze(1))  # (B, 1, width)
        return features + self.spatial_ch_projs(mixed[:, 0])[:, :, None, None]


class UnionTransformerBlock(nn.Module):
    """Pre-norm self-attention (fused in_proj, batch first) and a QuickGELU MLP, residual."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.attn = _FusedSelfAttention(width, heads)
        self.ln_1 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(OrderedDict([("c_fc", nn.Linear(width, width * 4)),
                                              ("gelu", _QuickGELU()),
                                              ("c_proj", nn.Linear(width * 4, width))]))
        self.ln_2 = nn.LayerNorm(width)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class _FusedSelfAttention(nn.Module):
    """q, k, v from one Linear (keys attn.in_proj / attn.out_proj)."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.in_proj = nn.Linear(width, width * 3)
        self.out_proj = nn.Linear(width, width)

    def forward(self, x: Tensor) -> Tensor:
        b, n, width = x.shape
        q, k, v = (t.reshape(b, n, self.heads, -1).transpose(1, 2)
                   for t in self.in_proj(x).split(width, dim=-1))
        out = F.scaled_dot_product_attention(q, k, v)
        return self.out_proj(out.transpose(1, 2).reshape(b, n, width))


class _QuickGELU(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x * torch.sigmoid(1.702 * x)


class ControlTypeEmbedding(nn.Module):
    """The union task as a time-embedding offset: a one-hot over the task types, each entry
    embedded sinusoidally (256 channels), concatenated, then Linear-SiLU-Linear."""

    def __init__(self, types: int, out_dim: int) -> None:
        super().__init__()
        self.types = types
        self.linear_1 = nn.Linear(UNION_TASK_EMBED_DIM * types, out_dim)
        self.linear_2 = nn.Linear(out_dim, out_dim)

    def forward(self, control_type: tuple[int, ...], dtype: torch.dtype,
                device: torch.device) -> Tensor:
        one_hot = torch.zeros(self.types, device=device)
        one_hot[list(control_type)] = 1.0
        emb = timestep_embedding(one_hot, UNION_TASK_EMBED_DIM).to(dtype).reshape(1, -1)
        return self.linear_2(F.silu(self.linear_1(emb)))


def _zero_conv(channels: int) -> TimestepEmbedSequential:
    return TimestepEmbedSequential(nn.Conv2d(channels, channels, 1))


def _hint_block(hint_channels: int, widths: tuple[int, ...], out_channels: int
                ) -> TimestepEmbedSequential:
    """Eight 3x3 convs (keys input_hint_block.0, .2, ..., .14) with SiLU between them."""
    layers: list[nn.Module] = []
    chans = (hint_channels, *widths, out_channels)
    for i in range(len(chans) - 1):
        if i:
            layers.append(nn.SiLU())
        stride = 2 if i in _HINT_STRIDE_2 else 1
        layers.append(nn.Conv2d(chans[i], chans[i + 1], 3, padding=1, stride=stride))
    return TimestepEmbedSequential(*layers)


# -- file layouts ----------------------------------------------------------------------------

def _res_per_level(keys: set[str]) -> list[int]:
    """diffusers: resnets per down block, from `down_blocks.X.resnets.I.` keys."""
    found: dict[int, int] = {}
    for k in keys:
        if m := re.match(r"down_blocks\.(\d+)\.resnets\.(\d+)\.", k):
            x, i = int(m.group(1)), int(m.group(2))
            found[x] = max(found.get(x, 0), i + 1)
    return [found.get(x, 0) for x in range(max(found, default=-1) + 1)]


def _diffusers_module_to_ldm(module: str, table: list[tuple[str, str, bool]],
                             basic: dict[str, str], hint_convs: int) -> str | None:
    """One diffusers module path -> the original (LDM/cldm) path; None if unknown."""
    if module in basic:
        return basic[module]
    if m := re.fullmatch(r"controlnet_down_blocks\.(\d+)", module):
        return f"zero_convs.{m.group(1)}.0"
    if module == "controlnet_mid_block":
        return "middle_block_out.0"
    if module == "controlnet_cond_embedding.conv_in":
        return "input_hint_block.0"
    if m := re.fullmatch(r"controlnet_cond_embedding\.blocks\.(\d+)", module):
        return f"input_hint_block.{2 * (int(m.group(1)) + 1)}"
    if module == "controlnet_cond_embedding.conv_out":
        return f"input_hint_block.{2 * (hint_convs + 1)}"
    resnet = {dif: ldm for ldm, dif in _RESNET.items()}
    for ldm, dif, is_resnet in table:
        if module == dif:
            return ldm
        if module.startswith(dif + "."):
            rest = module[len(dif) + 1:]
            if not is_resnet:
                return f"{ldm}.{rest}"
            return f"{ldm}.{resnet[rest]}" if rest in resnet else None
    return None


def diffusers_to_original(keys: set[str]) -> dict[str, str]:
    """diffusers ControlNetModel key -> original key, for every key that has one.

    The UNet-encoder part uses the UNet LoRA key map's LDM <-> diffusers table (lora/keys.py),
    so both stay one fact; the ControlNet parts are renamed as ComfyUI's loader does.
    """
    table = _block_table(_res_per_level(keys), set())
    basic = {dif: ldm for ldm, difs in _BASIC.items() for dif in difs}
    hint_convs = len({k.split(".")[2] for k in keys
                      if k.startswith("controlnet_cond_embedding.blocks.")})
    out = {}
    for key in keys:
        module, _, leaf = key.rpartition(".")
        new = _diffusers_module_to_ldm(module, table, basic, hint_convs)
        if new is not None:
            out[key] = f"{new}.{leaf}"
    return out


def original_state_dict(tensors: Mapping[str, Tensor], name: str,
                        where: dict[str, Any] | None = None) -> dict[str, Tensor]:
    """A ControlNet file's tensors under the original key names (prefix removed, diffusers
    renamed); a file of another kind is a ModelLoadError saying what was expected."""
    where = where or {}
    keys = set(tensors)
    if "lora_controlnet" in keys:
        raise ModelLoadError(f"{name}: a Control-LoRA file; Control-LoRAs are not supported "
                             "(expected a full ControlNet)", **where)
    if DIFFUSERS_TRIGGER in keys:
        renames = diffusers_to_original(keys)
        # ControlNet++ union parts keep their names (fused attention as a Linear)
        renames.update({k: _union_name(k) for k in keys if k.startswith(_UNION_KEYS)})
        left = sorted(keys - set(renames))
        if left:
            log.warning("%s: %d diffusers keys not used: %s", name, len(left), left[:10])
        return {new: tensors[old] for old, new in renames.items()}
    prefix = None
    if CONTROL_MODEL_PREFIX + ORIGINAL_TRIGGER in keys:
        prefix = CONTROL_MODEL_PREFIX
    elif ORIGINAL_TRIGGER in keys:
        prefix = ""
    if prefix is None:
        shown = ", ".join(sorted(keys)[:5]) or "no tensors"
        raise ModelLoadError(
            f"{name}: not an SD1.x/SD2.x/SDXL ControlNet: expected the keys "
            f"'{ORIGINAL_TRIGGER}' (optionally under '{CONTROL_MODEL_PREFIX}') or diffusers' "
            f"'{DIFFUSERS_TRIGGER}'; found {shown}{' ...' if len(keys) > 5 else ''} "
            "(T2I-adapters, Control-LoRAs and SD3/Flux ControlNets are not supported)", **where)
    return {_union_name(k[len(prefix):]): tensors[k] for k in keys if k.startswith(prefix)}


def _union_name(key: str) -> str:
    """ControlNet++ union keys keep their names, the fused attention as a Linear."""
    return key.replace(".attn.in_proj_", ".attn.in_proj.") if key.startswith(_UNION_KEYS) \
        else key


def detect_config(shapes: Mapping[str, tuple[int, ...]], name: str,
                  where: dict[str, Any] | None = None) -> ControlNetConfig:
    """The ControlNetConfig of original-named tensors, from their shapes."""
    where = where or {}
    shapes = {k: tuple(v) for k, v in shapes.items()}
    unet = detect_unet_config(shapes, prefix="")
    first_hint = shapes.get("input_hint_block.0.weight")
    if unet is None or first_hint is None or not unet.channel_mult:
        raise ModelLoadError(f"{name}: ControlNet keys incomplete: expected "
                             "'input_blocks.0.0.weight' and 'input_hint_block.0.weight'", **where)
    convs = [shapes[f"input_hint_block.{2 * i}.weight"] for i in range(len(HINT_WIDTHS) + 1)
             if f"input_hint_block.{2 * i}.weight" in shapes]
    if len(convs) != len(HINT_WIDTHS) + 1:
        raise ModelLoadError(f"{name}: the hint embedding has {len(convs)} convs, expected "
                             f"{len(HINT_WIDTHS) + 1} (input_hint_block.0 ... .14)", **where)
    widths = tuple(int(c[0]) for c in convs[:-1])  # the last one gives model_channels
    config = ControlNetConfig(unet, hint_channels=int(first_hint[1]), hint_widths=widths)
    task = shapes.get("task_embedding")
    if task is not None:
        config.union_types, config.union_width = int(task[0]), int(task[1])
        if config.union_width != unet.model_channels:
            raise ModelLoadError(f"{name}: union task_embedding width {task[1]} differs from "
                                 f"the hint features' {unet.model_channels}", **where)
    return config


def build_controlnet(sd: Mapping[str, Tensor], name: str, *, dtype: torch.dtype = torch.float32,
                     device: str | torch.device = "cpu",
                     where: dict[str, Any] | None = None) -> ControlNetModel:
    """The network for original-named tensors `sd`, weights assigned (cast to dtype/device)."""
    where = where or {}
    config = detect_config({k: tuple(v.shape) for k, v in sd.items()}, name, where)
    with torch.device("meta"):
        net = ControlNetModel(config)
    expected = net.state_dict()
    missing = sorted(set(expected) - set(sd))
    if missing:
        raise ModelLoadError(f"{name}: {len(missing)} ControlNet weights missing for the "
                             f"detected layout, e.g. {missing[:5]}", **where)
    wrong = [k for k, v in expected.items() if tuple(sd[k].shape) != tuple(v.shape)]
    if wrong:
        k = wrong[0]
        raise ModelLoadError(f"{name}: weight {k} has shape {tuple(sd[k].shape)}, the detected "
                             f"layout expects {tuple(expected[k].shape)}", **where)
    unused = sorted(set(sd) - set(expected))
    if unused:
        log.warning("%s: %d keys not used: %s", name, len(unused), unused[:10])
    weights = {k: sd[k].to(device=device, dtype=dtype if sd[k].is_floating_point() else None)
               for k in expected}
    net.load_state_dict(weights, assign=True)
    return net.eval().requires_grad_(False)


# -- the CONTROL_NET payload ------------------------------------------------------------------

def hint_for_latent(hint: Tensor, latent_h: int, latent_w: int) -> Tensor:
    """(B, C, H, W) hint -> (B, C, 8*latent_h, 8*latent_w): centre crop + nearest-exact."""
    height, width = latent_h * LATENT_SCALE, latent_w * LATENT_SCALE
    cropped = centre_crop_to_aspect(hint, width, height)
    return F.interpolate(cropped.float(), size=(height, width), mode=HINT_UPSCALE)


def broadcast_hint(hint: Tensor, batch: int, batched_number: int) -> Tensor:
    """ComfyUI's broadcast_image_to: batch 1 stays; else cut/tile to batch // batched_number
    samples, repeated once per conditioning batched together."""
    if hint.shape[0] == 1 or hint.shape[0] == batch:
        return hint
    per_cond = batch // batched_number
    hint = hint[:per_cond]
    if per_cond > hint.shape[0]:
        reps = [hint] * (per_cond // hint.shape[0]) + [hint[: per_cond % hint.shape[0]]]
        hint = torch.cat(reps)
    return hint if hint.shape[0] == batch else torch.cat([hint] * batched_number)


def merge_residuals(ours: dict[str, list], previous: dict[str, list] | None) -> dict[str, list]:
    """Element-wise sum of two control dicts; the longer list's extra entries are kept."""
    if previous is None:
        return ours
    out = {}
    for key in ("input", "middle", "output"):
        a, b = list(ours.get(key, [])), previous.get(key, [])
        for i, prev in enumerate(b):
            if i >= len(a):
                a.append(prev)
            elif prev is not None:
                a[i] = prev if a[i] is None else prev + a[i]
        out[key] = a
    return out


@dataclass(eq=False)
class ControlNet:
    """CONTROL_NET: a ControlNet network and, once applied to a conditioning, its hint image,
    strength, active range (start/end percent) and the ControlNet applied before it.

    `with_hint` gives the applied copy (ControlNetApply* nodes); `residuals` runs the chain
    for one sampler call. The resized hint is cached per latent size.
    """

    network: ControlNetModel
    name: str = ""
    hint: Tensor | None = None  # (B, C, H, W) float in [0, 1], pixels as given
    strength: float = 1.0
    percent_range: tuple[float, float] = (0.0, 1.0)
    previous: ControlNet | None = None
    # shuffle ControlNets: each residual replaced by its spatial mean (ComfyUI turns this on
    # for files named *_shuffle / *_shuffle_fp16)
    global_average_pooling: bool = False
    control_type: tuple[int, ...] = ()  # SetUnionControlNetType (used by union ControlNets)
    _hints: dict = field(default_factory=dict, init=False, repr=False)

    @property
    def config(self) -> UNetConfig:
        return self.network.config

    def with_hint(self, hint: Tensor, strength: float, percent_range: tuple[float, float],
                  previous: ControlNet | None) -> ControlNet:
        """A copy applied with this hint (B, C, H, W), strength, range and predecessor."""
        return dataclasses.replace(self, hint=hint, strength=float(strength),
                                   percent_range=(float(percent_range[0]),
                                                  float(percent_range[1])),
                                   previous=previous)

    def check_model(self, model: Any) -> str | None:
        """Why this ControlNet cannot steer `model` (a ModelPatcher; None: it can)."""
        unet = getattr(model, "diffusion_model", None)
        if not isinstance(unet, UNetModel):
            return (f"ControlNet {self.name!r} is an SD1.x/SD2.x/SDXL ControlNet; the model "
                    f"({getattr(model, 'family', '?')}) is not a UNet model")
        mine, theirs = self.config, unet.config
        if (mine.model_channels, mine.channel_mult, mine.num_res_blocks) != (
                theirs.model_channels, theirs.channel_mult, theirs.num_res_blocks):
            return (f"ControlNet {self.name!r} has model_channels={mine.model_channels}, "
                    f"channel_mult={mine.channel_mult}, num_res_blocks={mine.num_res_blocks}; "
                    f"the model ({model.family}) has {theirs.model_channels}, "
                    f"{theirs.channel_mult}, {theirs.num_res_blocks}: made for another model")
        if mine.context_dim != theirs.context_dim:
            return (f"ControlNet {self.name!r} expects text context width {mine.context_dim}, "
                    f"the model ({model.family}) uses {theirs.context_dim}: made for another "
                    "model")
        return None

    def _hint_at(self, x: Tensor, dtype: torch.dtype, batched_number: int) -> Tensor:
        size = (x.shape[-2], x.shape[-1], x.device, dtype)
        if size not in self._hints:
            self._hints.clear()
            self._hints[size] = hint_for_latent(self.hint, x.shape[-2], x.shape[-1]).to(
                x.device, dtype)
        return broadcast_hint(self._hints[size], x.shape[0], batched_number)

    def _active(self, sampling: Any, sigma: Tensor) -> bool:
        now = float(sigma.reshape(-1)[0])
        start, end = (sampling.percent_to_sigma(p) for p in self.percent_range)
        return not (now > start or now < end)

    def residuals(self, sampling: Any, x: Tensor, sigma: Tensor, context: Tensor,
                  y: Tensor | None = None, batched_number: int = 1) -> dict[str, list] | None:
        """This chain's control dict for UNet input x (latent-format space) at sigma, or None
        when no ControlNet of the chain is active at this sigma."""
        previous = None if self.previous is None else self.previous.residuals(
            sampling, x, sigma, context, y, batched_number)
        if self.hint is None:
            raise ValueError(f"ControlNet {self.name!r} has no hint image (apply it with a "
                             "ControlNetApply node)")
        if self.strength == 0.0 or not self._active(sampling, sigma):
            return previous
        net = self.network
        dtype = net.dtype
        sigma = torch.as_tensor(sigma, device=x.device, dtype=torch.float32)
        if sigma.ndim == 0:
            sigma = sigma.expand(x.shape[0])
        x_in = sampling.calculate_input(sigma, x).to(dtype)
        t = sampling.timestep(sigma).float()
        context = match_batch(context, x.shape[0]).to(x.device, dtype)
        if y is not None:
            y = match_batch(y, x.shape[0]).to(x.device, dtype)
        out = net(x_in, self._hint_at(x, dtype, batched_number), t, context, y,
                  control_type=self.control_type)
        scaled = {k: [self._pooled(r) * self.strength for r in v] for k, v in out.items()}
        return merge_residuals(scaled, previous)

    def _pooled(self, r: Tensor) -> Tensor:
        if not self.global_average_pooling:
            return r
        return r.mean(dim=(2, 3), keepdim=True).expand_as(r)


def load_controlnet_file(tensors: Mapping[str, Tensor], name: str, *,
                         dtype: torch.dtype = torch.float32,
                         device: str | torch.device = "cpu",
                         base_weights: Mapping[str, Tensor] | None = None,
                         where: dict[str, Any] | None = None) -> ControlNet:
    """A ControlNet file's tensors -> CONTROL_NET (not applied yet).

    base_weights (DiffControlNetLoader): the model's UNet weights; a "difference" file (keys
    under `control_model.` plus a `difference` marker) stores ControlNet minus UNet, and the
    UNet weight of the same name is added back, as ComfyUI does.
    """
    where = where or {}
    sd = original_state_dict(tensors, name, where)
    if "difference" in tensors:
        if base_weights is None:
            log.warning("%s: a diff ControlNet loaded without a model (use DiffControlNetLoader)"
                        "; it will very likely not work", name)
        else:
            sd = {k: v + base_weights[k].to(v) if k in base_weights else v
                  for k, v in sd.items()}
    return ControlNet(build_controlnet(sd, name, dtype=dtype, device=device, where=where),
                      name=name, global_average_pooling=_is_shuffle(name))


def _is_shuffle(name: str) -> bool:
    """ComfyUI's rule: a file whose name (extension removed) ends in _shuffle or
    _shuffle_fp16 is a shuffle ControlNet (global average pooling)."""
    stem = name.rsplit(".", 1)[0] if "." in name.rsplit("/", 1)[-1] else name
    return stem.endswith(("_shuffle", "_shuffle_fp16"))


def random_controlnet_state_dict(unet: UNetConfig, generator: torch.Generator, *,
                                 hint_channels: int = 3,
                                 prefix: str = "") -> dict[str, Tensor]:
    """Random ControlNet weights for a UNet of config `unet`, in the original key layout
    (under `prefix`, e.g. "control_model."): test files with the real key names."""
    from .random_weights import random_init

    with torch.device("meta"):
        net = ControlNetModel(ControlNetConfig(unet, hint_channels=hint_channels))
    shapes = {k: v.shape for k, v in net.state_dict().items()}
    return {prefix + k: v for k, v in random_init(shapes, generator).items()}
