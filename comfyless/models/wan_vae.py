"""The Wan-2.1 causal 3-D VAE (Qwen-Image's VAE, `qwen_image_vae.safetensors`), ComfyUI/Wan names.

Spec: model-families.md §4.3. Layout, keys without `vae.` (C = base dim, 96 in the real file):
  encoder.conv1 -> encoder.downsamples.{0..10} (residual blocks and Resample layers)
  -> encoder.middle.{0: residual, 1: attention, 2: residual} -> encoder.head.{0: norm, 2: conv}
  (2*z channels) -> conv1 (1x1x1, mean | logvar); conv2 (1x1x1) -> decoder.conv1
  -> decoder.middle -> decoder.upsamples.{0..14} -> decoder.head.{0: norm, 2: conv} (3 channels).
Every conv over time is causal: a frame sees itself and earlier frames only (two zero frames in
front), so an image is a one-frame video and only the last temporal tap of each 3x3x3 kernel
meets data. The network runs the whole clip at once; the reference implementations feed it in
time chunks with cached frames, which gives the same numbers (tests check it on videos).
Diffusers files (`AutoencoderKLQwenImage`, Wan 2.1 `AutoencoderKLWan`) are renamed first.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# Where all-in-one files keep this VAE (Qwen-Image: `vae.`); standalone files have no prefix.
WAN_VAE_PREFIXES = ("", "vae.", "first_stage_model.")
# Marker keys after the prefix (model-families.md §4.3 detection).
WAN21_KEY = "decoder.middle.0.residual.0.gamma"
WAN21_DIFFUSERS_KEY = "decoder.mid_block.resnets.0.norm1.gamma"
WAN22_KEYS = ("decoder.upsamples.0.upsamples.0.residual.2.weight",  # ComfyUI/Wan names
              "decoder.up_blocks.0.upsampler.resample.1.weight")  # diffusers names


@dataclass(frozen=True)
class WanVAEConfig:
    """Shape parameters; defaults are Qwen-Image's / Wan 2.1's VAE."""

    dim: int = 96
    z_dim: int = 16
    dim_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_res_blocks: int = 2
    # per downsampling level of the encoder (the decoder uses it reversed): the first level
    # halves space only, the next two also halve time
    temporal_downsample: tuple[bool, ...] = (False, True, True)
    image_channels: int = 3


SIZES = {
    "tiny": WanVAEConfig(dim=16),
    "small": WanVAEConfig(dim=32),
    "full": WanVAEConfig(),
}


def wan_vae_config(size: str) -> WanVAEConfig:
    """The WanVAEConfig of a test size ("tiny", "small", "full")."""
    if size not in SIZES:
        raise ValueError(f"Wan VAE size {size!r}: expected one of {sorted(SIZES)}")
    return SIZES[size]


# --- layers ---------------------------------------------------------------------------------

class CausalConv3d(nn.Conv3d):
    """Conv3d padded in time with 2*p_t zero frames in front only (none behind), in space
    symmetrically by (p_h, p_w)."""

    def __init__(self, cin: int, cout: int, kernel: int | tuple[int, int, int],
                 stride: int | tuple[int, int, int] = 1,
                 padding: int | tuple[int, int, int] = 0):
        super().__init__(cin, cout, kernel, stride=stride, padding=0)
        pt, ph, pw = (padding,) * 3 if isinstance(padding, int) else padding
        self.front_frames = 2 * pt
        self.space_padding = (ph, pw)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[2] == 1 and self.front_frames == self.kernel_size[0] - 1 \
                and self.stride[0] == 1:
            # one frame: the other taps would only meet the zero frames, so a 2-D conv with the
            # last tap is the same sum at a third of the work
            y = F.conv2d(x[:, :, 0], self.weight[:, :, -1], self.bias, self.stride[1:],
                         self.space_padding)
            return y.unsqueeze(2)
        ph, pw = self.space_padding
        x = F.pad(x, (pw, pw, ph, ph, self.front_frames, 0))
        return F.conv3d(x, self.weight, self.bias, self.stride)


class RMS_norm(nn.Module):  # noqa: N801 - the class name of the Wan/ComfyUI code, kept for grep
    """x / ||x|| over channels, times sqrt(C) and a per-channel `gamma` (no bias)."""

    def __init__(self, dim: int, images: bool = True):
        super().__init__()
        # [C,1,1] for 4-D (per-frame) input, [C,1,1,1] for 5-D: the file stores these shapes
        self.gamma = nn.Parameter(torch.ones(dim, 1, 1) if images else torch.ones(dim, 1, 1, 1))
        self.scale = dim ** 0.5

    def forward(self, x: Tensor) -> Tensor:
        # normalise in fp32 for half dtypes: the sum of squares of 384 channels overflows fp16
        n = F.normalize(x.float(), dim=1).to(x.dtype) if x.element_size() < 4 \
            else F.normalize(x, dim=1)
        return n * self.scale * self.gamma.to(x.dtype)


class ResidualBlock(nn.Module):
    """norm-SiLU-conv, norm-SiLU-(dropout)-conv, plus a 1x1x1 `shortcut` when the width
    changes; indices 0, 2, 3, 6 of `residual` hold the weights."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.residual = nn.Sequential(
            RMS_norm(cin, images=False), nn.SiLU(), CausalConv3d(cin, cout, 3, padding=1),
            RMS_norm(cout, images=False), nn.SiLU(), nn.Dropout(0.0),
            CausalConv3d(cout, cout, 3, padding=1))
        self.shortcut = CausalConv3d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.residual(x) + self.shortcut(x)


def _per_frame(fn, x: Tensor) -> Tensor:
    """Apply a 2-D module to every frame of [B, C, T, H, W]."""
    b, t = x.shape[0], x.shape[2]
    y = fn(x.movedim(2, 1).flatten(0, 1))  # (B*T, C, H, W)
    return y.unflatten(0, (b, t)).movedim(1, 2)


class AttentionBlock(nn.Module):
    """Single-head self-attention over the pixels of each frame (1x1 `to_qkv`, `proj`)."""

    def __init__(self, dim: int):
        super().__init__()
        self.norm = RMS_norm(dim)
        self.to_qkv = nn.Conv2d(dim, dim * 3, 1)
        self.proj = nn.Conv2d(dim, dim, 1)

    def _attend(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        qkv = self.to_qkv(self.norm(x)).reshape(n, 1, 3 * c, h * w).transpose(2, 3)
        q, k, v = qkv.chunk(3, dim=-1)  # each (N, 1, H*W, C): one head, pixels as the sequence
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(2, 3).reshape(n, c, h, w))

    def forward(self, x: Tensor) -> Tensor:
        return x + _per_frame(self._attend, x)


class Resample(nn.Module):
    """Space x2 or /2 per frame (`resample.1` is the 2-D conv); the 3-D modes also change the
    frame count with `time_conv`, leaving the first frame as it is (the causal rule: frame 0
    has no past to share)."""

    def __init__(self, dim: int, mode: str):
        super().__init__()
        self.mode = mode
        if mode.startswith("up"):
            # up: half the channels leave (the next residual block starts at dim // 2)
            self.resample = nn.Sequential(nn.Upsample(scale_factor=(2.0, 2.0),
                                                      mode="nearest-exact"),
                                          nn.Conv2d(dim, dim // 2, 3, padding=1))
        else:  # down: asymmetric right/bottom zero pad, then a stride-2 conv
            self.resample = nn.Sequential(nn.ZeroPad2d((0, 1, 0, 1)),
                                          nn.Conv2d(dim, dim, 3, stride=(2, 2)))
        if mode == "upsample3d":  # each frame after the first becomes two (2*dim channels)
            self.time_conv = CausalConv3d(dim, dim * 2, (3, 1, 1), padding=(1, 0, 0))
        elif mode == "downsample3d":  # stride 2 over the frames, no padding
            self.time_conv = CausalConv3d(dim, dim, (3, 1, 1), stride=(2, 1, 1))

    def _double_frames(self, x: Tensor) -> Tensor:
        """[B,C,T,H,W] -> [B,C,1+2(T-1),H,W]: frames 1.. go through the causal time_conv,
        whose channel halves are the two new frames (in that order)."""
        b, c, t, h, w = x.shape
        later = self.time_conv(x[:, :, 1:]).reshape(b, 2, c, t - 1, h, w)
        later = later.permute(0, 2, 3, 1, 4, 5).reshape(b, c, 2 * (t - 1), h, w)
        return torch.cat([x[:, :, :1], later], dim=2)

    def forward(self, x: Tensor) -> Tensor:
        if self.mode == "upsample3d" and x.shape[2] > 1:
            x = self._double_frames(x)
        x = _per_frame(self.resample, x)
        if self.mode == "downsample3d" and x.shape[2] > 1:
            # windows (0,1,2), (2,3,4), ... over all frames; frame 0 also stays by itself
            x = torch.cat([x[:, :, :1], self.time_conv(x)], dim=2)
        return x


def _middle(dim: int) -> nn.Sequential:
    return nn.Sequential(ResidualBlock(dim, dim), AttentionBlock(dim), ResidualBlock(dim, dim))


def _head(dim: int, cout: int) -> nn.Sequential:
    return nn.Sequential(RMS_norm(dim, images=False), nn.SiLU(),
                         CausalConv3d(dim, cout, 3, padding=1))


class Encoder3d(nn.Module):
    """Pixels [-1, 1] [B, 3, T, H, W] -> 2*z moments [B, 2z, 1+(T-1)/4, H/8, W/8]."""

    def __init__(self, cfg: WanVAEConfig):
        super().__init__()
        dims = [cfg.dim * m for m in (1, *cfg.dim_mult)]
        self.conv1 = CausalConv3d(cfg.image_channels, dims[0], 3, padding=1)
        layers: list[nn.Module] = []
        last = len(cfg.dim_mult) - 1
        for i, (cin, cout) in enumerate(pairwise(dims)):
            for _ in range(cfg.num_res_blocks):
                layers.append(ResidualBlock(cin, cout))
                cin = cout
            if i != last:
                mode = "downsample3d" if cfg.temporal_downsample[i] else "downsample2d"
                layers.append(Resample(cout, mode))
        self.downsamples = nn.Sequential(*layers)
        self.middle = _middle(dims[-1])
        self.head = _head(dims[-1], 2 * cfg.z_dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.middle(self.downsamples(self.conv1(x))))


class Decoder3d(nn.Module):
    """z latent [B, z, T, h, w] -> pixels [B, 3, 1+4(T-1), 8h, 8w] (unclamped, ~[-1, 1])."""

    def __init__(self, cfg: WanVAEConfig):
        super().__init__()
        mult = cfg.dim_mult
        dims = [cfg.dim * m for m in (mult[-1], *reversed(mult))]
        temporal_upsample = tuple(reversed(cfg.temporal_downsample))
        self.conv1 = CausalConv3d(cfg.z_dim, dims[0], 3, padding=1)
        self.middle = _middle(dims[0])
        layers: list[nn.Module] = []
        last = len(mult) - 1
        for i, (cin, cout) in enumerate(pairwise(dims)):
            if i > 0:
                cin //= 2  # the Resample before this level gave half its width
            for _ in range(cfg.num_res_blocks + 1):
                layers.append(ResidualBlock(cin, cout))
                cin = cout
            if i != last:
                mode = "upsample3d" if temporal_upsample[i] else "upsample2d"
                layers.append(Resample(cout, mode))
        self.upsamples = nn.Sequential(*layers)
        self.head = _head(dims[-1], cfg.image_channels)

    def forward(self, z: Tensor) -> Tensor:
        return self.head(self.upsamples(self.middle(self.conv1(z))))


class WanVAENetwork(nn.Module):
    """Encoder + decoder + the 1x1x1 `conv1` (moments) / `conv2` (latent); ComfyUI's names.

    Images are [B, C, H, W] (a one-frame clip, returned 4-D too); clips [B, C, T, H, W].
    The `models.vae.VAE` payload drives it like an AutoencoderKL (`moments`, `decode`,
    `downscale_ratio`, `latent_channels`, `temporal_ratio`).
    """

    def __init__(self, cfg: WanVAEConfig):
        super().__init__()
        self.config = cfg
        self.downscale_ratio = 2 ** (len(cfg.dim_mult) - 1)
        # two time-halving levels: 1 + 4k frames <-> 1 + k latent frames
        self.temporal_ratio = 2 ** sum(cfg.temporal_downsample)
        self.latent_channels = cfg.z_dim
        self.encoder = Encoder3d(cfg)
        self.conv1 = CausalConv3d(2 * cfg.z_dim, 2 * cfg.z_dim, 1)
        self.conv2 = CausalConv3d(cfg.z_dim, cfg.z_dim, 1)
        self.decoder = Decoder3d(cfg)

    def moments(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(mean, logvar) of the posterior for pixels in [-1, 1]; a clip is cut to 1 + 4k frames
        first (trailing frames dropped, as the reference encoders do)."""
        if x.ndim == 4:
            mean, logvar = self.moments(x.unsqueeze(2))
            return mean.squeeze(2), logvar.squeeze(2)
        _check_ndim(x, 5, "pixels [B, C, H, W] or [B, C, T, H, W]")
        frames = 1 + (x.shape[2] - 1) // self.temporal_ratio * self.temporal_ratio
        mean, logvar = self.conv1(self.encoder(x[:, :, :frames])).chunk(2, dim=1)
        return mean, logvar.clamp(-30.0, 20.0)

    def decode(self, z: Tensor) -> Tensor:
        """Latent [B, z, h, w] -> pixels [B, 3, 8h, 8w]; [B, z, T, h, w] -> [B, 3, 1+4(T-1), ...]
        (roughly [-1, 1], unclamped)."""
        if z.ndim == 4:
            return self.decode(z.unsqueeze(2)).squeeze(2)
        _check_ndim(z, 5, "latent [B, z, h, w] or [B, z, T, h, w]")
        return self.decoder(self.conv2(z))


def _check_ndim(x: Tensor, ndim: int, expected: str) -> None:
    if x.ndim != ndim:
        raise ValueError(f"expected {expected}, got shape {tuple(x.shape)}")


# --- file layouts -----------------------------------------------------------------------------

def wan_vae_prefix(keys) -> str | None:
    """The prefix under which `keys` hold a Wan VAE (2.1 or 2.2, either naming), else None."""
    keys = set(keys)
    for prefix in WAN_VAE_PREFIXES:
        if any(prefix + k in keys for k in (WAN21_KEY, WAN21_DIFFUSERS_KEY, *WAN22_KEYS)):
            return prefix
    return None


def is_wan_vae(keys) -> bool:
    """Whether `keys` (a state dict or its keys) hold a Wan VAE (bare, `vae.` or
    `first_stage_model.`); Wan 2.2 files count too, so that loading names them."""
    return wan_vae_prefix(keys) is not None


_RESNET_NAMES = {"norm1": "residual.0", "conv1": "residual.2", "norm2": "residual.3",
                 "conv2": "residual.6", "conv_shortcut": "shortcut"}
_TOP_NAMES = {"quant_conv": "conv1", "post_quant_conv": "conv2"}
_END_NAMES = {"conv_in": "conv1", "norm_out": "head.0", "conv_out": "head.2"}


def _resnet_rest(rest: str) -> str:
    name, _, leaf = rest.partition(".")
    return f"{_RESNET_NAMES.get(name, name)}.{leaf}"


def _up_block_starts(keys) -> dict[int, tuple[int, int]]:
    """diffusers up block i -> (first ComfyUI `upsamples` index, its resnet count)."""
    rx = re.compile(r"^decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.")
    resnets: dict[int, int] = {}
    for k in keys:
        if m := rx.match(k):
            i, j = int(m.group(1)), int(m.group(2))
            resnets[i] = max(resnets.get(i, 0), j + 1)
    starts, at = {}, 0
    for i in sorted(resnets):
        starts[i] = (at, resnets[i])
        has_upsampler = any(k.startswith(f"decoder.up_blocks.{i}.upsamplers.0.") for k in keys)
        at += resnets[i] + int(has_upsampler)
    return starts


def _diffusers_name(key: str, up_starts: Mapping[int, tuple[int, int]]) -> str:
    top, _, rest = key.partition(".")
    if top in _TOP_NAMES:
        return f"{_TOP_NAMES[top]}.{rest}"
    part, (block, _, rest) = top, rest.partition(".")
    if block in _END_NAMES:
        return f"{part}.{_END_NAMES[block]}.{rest}"
    if m := re.match(r"^down_blocks\.(\d+)\.(.*)$", f"{block}.{rest}"):
        return f"{part}.downsamples.{m.group(1)}.{_resnet_rest(m.group(2))}"
    if m := re.match(r"^mid_block\.(resnets|attentions)\.(\d+)\.(.*)$", f"{block}.{rest}"):
        kind, j, inner = m.group(1), int(m.group(2)), m.group(3)
        if kind == "resnets":  # middle = resnet, attention, resnet
            return f"{part}.middle.{2 * j}.{_resnet_rest(inner)}"
        return f"{part}.middle.{2 * j + 1}.{inner}"
    if m := re.match(r"^up_blocks\.(\d+)\.(resnets|upsamplers)\.(\d+)\.(.*)$", f"{block}.{rest}"):
        start, count = up_starts[int(m.group(1))]
        if m.group(2) == "resnets":
            return f"{part}.upsamples.{start + int(m.group(3))}.{_resnet_rest(m.group(4))}"
        return f"{part}.upsamples.{start + count}.{m.group(4)}"
    return key


def convert_diffusers(sd: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """diffusers `AutoencoderKLQwenImage` / Wan 2.1 `AutoencoderKLWan` names -> ComfyUI names
    (same tensors; model-families.md §4.3 table)."""
    up_starts = _up_block_starts(sd)
    return {_diffusers_name(k, up_starts): v for k, v in sd.items()}


# --- config inference ---------------------------------------------------------------------------

def _layer_kind(sd: Mapping[str, Tensor], prefix: str) -> str | None:
    if prefix + "residual.0.gamma" in sd:
        return "residual"
    if prefix + "resample.1.weight" in sd:
        return "resample3d" if prefix + "time_conv.weight" in sd else "resample2d"
    if prefix + "to_qkv.weight" in sd:
        return "attention"
    return None


def _encoder_levels(sd: Mapping[str, Tensor]) -> tuple[list[list[int]], list[bool]]:
    """Output widths of the residual blocks per encoder level, and whether each downsampling
    also halves time."""
    levels: list[list[int]] = [[]]
    temporal: list[bool] = []
    i = 0
    while (kind := _layer_kind(sd, f"encoder.downsamples.{i}.")) is not None:
        if kind == "attention":
            raise ValueError(f"attention block at 'encoder.downsamples.{i}': only the middle "
                             "blocks of the Wan 2.1 VAE have attention")
        if kind == "residual":
            levels[-1].append(sd[f"encoder.downsamples.{i}.residual.2.weight"].shape[0])
        else:
            temporal.append(kind == "resample3d")
            levels.append([])
        i += 1
    return levels, temporal


def infer_config(sd: Mapping[str, Tensor]) -> WanVAEConfig:
    """WanVAEConfig from ComfyUI-named keys and their shapes (no config file)."""
    for key in ("decoder.head.0.gamma", "encoder.conv1.weight", "conv2.weight"):
        if key not in sd:
            raise KeyError(f"not a Wan 2.1 VAE: {key!r} missing")
    dim = sd["decoder.head.0.gamma"].shape[0]
    levels, temporal = _encoder_levels(sd)
    blocks = {len(level) for level in levels}
    if len(blocks) != 1 or 0 in blocks:
        raise ValueError("Wan VAE encoder levels have residual block counts "
                         f"{[len(lv) for lv in levels]}: expected the same non-zero count in each")
    return WanVAEConfig(
        dim=dim, z_dim=sd["conv2.weight"].shape[0],
        dim_mult=tuple(level[0] // dim for level in levels), num_res_blocks=blocks.pop(),
        temporal_downsample=tuple(temporal), image_channels=sd["encoder.conv1.weight"].shape[1])


# --- loading ----------------------------------------------------------------------------------

def wan_vae_weights(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The Wan 2.1 VAE's tensors under ComfyUI names (prefix removed, diffusers renamed);
    Wan 2.2 files are refused by name."""
    prefix = wan_vae_prefix(state_dict) or ""
    sd = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
    found = [k for k in WAN22_KEYS if k in sd]
    if found:
        raise ValueError(f"this is a Wan 2.2 VAE ({prefix + found[0]!r} present; 48 latent "
                         "channels), which comfyless does not support; the Wan 2.1 / Qwen-Image "
                         "VAE (16 channels) is")
    if WAN21_DIFFUSERS_KEY in sd:
        sd = convert_diffusers(sd)
    return sd


def _checked(sd: Mapping[str, Tensor], expected: Mapping[str, Tensor]) -> None:
    missing = sorted(set(expected) - set(sd))
    if missing:
        raise KeyError(f"Wan VAE weights missing {len(missing)} keys, e.g. {missing[:3]}")
    for k, ref in expected.items():
        if sd[k].shape != ref.shape:
            raise ValueError(f"Wan VAE key {k!r}: shape {tuple(sd[k].shape)}, expected "
                             f"{tuple(ref.shape)}")


def load_wan_vae_network(state_dict: Mapping[str, Tensor], dtype: torch.dtype = torch.float32,
                         device: str | torch.device = "cpu") -> WanVAENetwork:
    """The network, weights assigned, from ComfyUI/Wan or diffusers keys, bare or under `vae.`
    (all-in-one files); `models.vae.load_vae` wraps it in the VAE payload."""
    device = torch.device(device)
    sd = wan_vae_weights(state_dict)
    cfg = infer_config(sd)
    with torch.device("meta"):
        model = WanVAENetwork(cfg)
    expected = model.state_dict()
    _checked(sd, expected)
    # assign=True keeps the read tensors themselves when dtype/device already match
    model.load_state_dict({k: sd[k].to(device=device, dtype=dtype) for k in expected},
                          assign=True)
    return model.eval().requires_grad_(False)


# --- random weights for tests -------------------------------------------------------------------

def wan_vae_state_dict(size: str, generator: torch.Generator, prefix: str = ""
                       ) -> dict[str, Tensor]:
    """Random float32 Wan 2.1 VAE weights in the real key layout under `prefix` ("" as in
    `qwen_image_vae.safetensors`, "vae." in all-in-one files): norms near 1, fan-in scaled convs."""
    with torch.device("meta"):
        model = WanVAENetwork(wan_vae_config(size))
    return {prefix + k: _random_tensor(k, v.shape, generator)
            for k, v in model.state_dict().items()}


def _random_tensor(key: str, shape: torch.Size, generator: torch.Generator) -> Tensor:
    """Activations stay O(1): norm gains near 1 (`gamma` is [C,1,1(,1)], not a conv), conv
    weights scaled by 1/sqrt(fan-in), small biases."""
    if key.endswith(".gamma"):
        return 1.0 + 0.1 * torch.randn(shape, generator=generator)
    if len(shape) >= 2:
        return torch.randn(shape, generator=generator) / math.sqrt(math.prod(shape[1:]))
    return 0.02 * torch.randn(shape, generator=generator)
