"""AutoencoderKL (the SD1/SD2/SDXL, Flux and SD3 VAEs) in the LDM key layout, config from shapes.

Layout (model-detection.md §5.2), keys without `first_stage_model.` / `vae.`:
  encoder.conv_in -> encoder.down.{i}.block.{j} (+ .downsample.conv except the last level)
  -> encoder.mid.{block_1, attn_1, block_2} -> encoder.norm_out -> encoder.conv_out (2*z ch)
  -> quant_conv (1x1); post_quant_conv (1x1) -> decoder.conv_in -> decoder.mid
  -> decoder.up.{i}.block.{0..n} (+ .upsample.conv except level 0; run from the last level down)
  -> decoder.norm_out -> decoder.conv_out (3 ch).
Diffusers-format files (`decoder.up_blocks.0.resnets.0.norm1.weight`) are renamed first.
The Flux (`ae.safetensors`) and SD3 VAEs have the same layout with z_channels 16 (encoder.conv_out
32 channels) and no quant_conv / post_quant_conv (model-families.md §5).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import wan_vae
from .tensor_files import TensorFile

VAE_PREFIX = "first_stage_model."
# Where all-in-one checkpoints keep the VAE: SD1/SD2/SDXL/SD3 `first_stage_model.`, Flux (and
# Z-Image, Qwen-Image) `vae.` (model-families.md §0.1). A standalone file has no prefix.
VAE_PREFIXES = (VAE_PREFIX, "vae.")
# Batches are run in chunks of about this many pixels (4 images of 1024x1024): activations of
# the full-size VAE at 1 Mpx take ~3 GB in fp32, so memory stays bounded for any batch size.
MAX_PIXELS_PER_PASS = 4 * 1024 * 1024
# On a CPU a bigger pass buys no speed (8 images of 256 px: 23.8 s of CPU one at a time, 24.0 s
# together) but costs memory (activations: 148 vs 1047 MiB), so passes are one 256 px image.
CPU_PIXELS_PER_PASS = 256 * 256


@dataclass(frozen=True)
class VAEConfig:
    """Shape parameters of an AutoencoderKL (SD: ch 128, ch_mult (1,2,4,4), 2 res blocks)."""

    ch: int = 128
    ch_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_res_blocks: int = 2
    z_channels: int = 4
    in_channels: int = 3
    out_ch: int = 3
    double_z: bool = True  # the encoder emits mean and log-variance
    use_quant_conv: bool = True  # Flux/SD3 VAEs have none


SIZES = {
    # 4 levels keep the 8x factor (3 downsamplings); GroupNorm(32) needs multiples of 32.
    "tiny": VAEConfig(ch=32, ch_mult=(1, 1, 1, 1), num_res_blocks=1),
    "small": VAEConfig(ch=64, ch_mult=(1, 1, 2, 2), num_res_blocks=1),
    "full": VAEConfig(),
}

# What differs between the KL VAEs of the families (model-families.md §5): latent channels and
# the 1x1 quant convs. The key names and the rest of the shape are the same. "kl4": SD1/SD2/SDXL;
# "kl16": Flux's `ae.safetensors` and the SD3 VAE. Each family's writer picks one (and the prefix
# its files carry: SD and SD3 `first_stage_model.`, Flux standalone none, all-in-one `vae.`).
KINDS = {
    "kl4": {"z_channels": 4, "use_quant_conv": True},
    "kl16": {"z_channels": 16, "use_quant_conv": False},
}


def vae_config(size: str, kind: str = "kl4") -> VAEConfig:
    """The VAEConfig of a test size ("tiny", "small", "full") and kind ("kl4", "kl16")."""
    if size not in SIZES:
        raise ValueError(f"VAE size {size!r}: expected one of {sorted(SIZES)}")
    if kind not in KINDS:
        raise ValueError(f"VAE kind {kind!r}: expected one of {sorted(KINDS)}")
    return replace(SIZES[size], **KINDS[kind])


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(32, channels, eps=1e-6, affine=True)


class ResnetBlock(nn.Module):
    """GroupNorm-SiLU-conv twice, with a 1x1 `nin_shortcut` when the width changes."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.norm1 = _norm(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.norm2 = _norm(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.nin_shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return (x if self.nin_shortcut is None else self.nin_shortcut(x)) + h


class AttnBlock(nn.Module):
    """Single-head self-attention over all pixels; q/k/v/proj_out are 1x1 convs."""

    def __init__(self, c: int):
        super().__init__()
        self.norm = _norm(c)
        self.q, self.k, self.v, self.proj_out = (nn.Conv2d(c, c, 1) for _ in range(4))

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        y = self.norm(x)
        # (B, 1, H*W, C): one head, a sequence axis of pixels
        q, k, v = (m(y).reshape(b, 1, c, h * w).transpose(2, 3) for m in (self.q, self.k, self.v))
        out = F.scaled_dot_product_attention(q, k, v)
        return x + self.proj_out(out.transpose(2, 3).reshape(b, c, h, w))


class Downsample(nn.Module):
    """Stride-2 3x3 conv after padding right/bottom by one (LDM's asymmetric padding)."""

    def __init__(self, c: int):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Upsample(nn.Module):
    """Nearest 2x then a 3x3 conv."""

    def __init__(self, c: int):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


def _mid(c: int) -> nn.Module:
    mid = nn.Module()
    mid.block_1, mid.attn_1, mid.block_2 = ResnetBlock(c, c), AttnBlock(c), ResnetBlock(c, c)
    return mid


def _run_mid(mid: nn.Module, h: Tensor) -> Tensor:
    return mid.block_2(mid.attn_1(mid.block_1(h)))


class Encoder(nn.Module):
    """Pixels [-1, 1] -> 2*z_channels moments at 1/2^(levels-1) resolution."""

    def __init__(self, cfg: VAEConfig):
        super().__init__()
        chans = [cfg.ch * m for m in cfg.ch_mult]
        self.conv_in = nn.Conv2d(cfg.in_channels, cfg.ch, 3, padding=1)
        self.down = nn.ModuleList()
        cin = cfg.ch
        for i, cout in enumerate(chans):
            level = nn.Module()
            level.block = nn.ModuleList()
            for _ in range(cfg.num_res_blocks):
                level.block.append(ResnetBlock(cin, cout))
                cin = cout
            if i != len(chans) - 1:
                level.downsample = Downsample(cout)
            self.down.append(level)
        self.mid = _mid(cin)
        self.norm_out = _norm(cin)
        self.conv_out = nn.Conv2d(cin, 2 * cfg.z_channels if cfg.double_z else cfg.z_channels,
                                  3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv_in(x)
        for level in self.down:
            for block in level.block:
                h = block(h)
            if hasattr(level, "downsample"):
                h = level.downsample(h)
        h = _run_mid(self.mid, h)
        return self.conv_out(F.silu(self.norm_out(h)))


class Decoder(nn.Module):
    """z_channels latent -> pixels (unclamped, roughly [-1, 1])."""

    def __init__(self, cfg: VAEConfig):
        super().__init__()
        chans = [cfg.ch * m for m in cfg.ch_mult]
        cin = chans[-1]
        self.conv_in = nn.Conv2d(cfg.z_channels, cin, 3, padding=1)
        self.mid = _mid(cin)
        levels: list[nn.Module] = []
        for i in reversed(range(len(chans))):
            level = nn.Module()
            level.block = nn.ModuleList()
            for _ in range(cfg.num_res_blocks + 1):
                level.block.append(ResnetBlock(cin, chans[i]))
                cin = chans[i]
            if i != 0:
                level.upsample = Upsample(cin)
            levels.insert(0, level)  # stored by level index: up.0 is the full-resolution level
        self.up = nn.ModuleList(levels)
        self.norm_out = _norm(cin)
        self.conv_out = nn.Conv2d(cin, cfg.out_ch, 3, padding=1)

    def forward(self, z: Tensor) -> Tensor:
        h = _run_mid(self.mid, self.conv_in(z))
        for level in reversed(self.up):
            for block in level.block:
                h = block(h)
            if hasattr(level, "upsample"):
                h = level.upsample(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class AutoencoderKL(nn.Module):
    """Encoder + decoder with the 1x1 quant convs; parameter names = LDM keys."""

    temporal_ratio = 1  # images only: a video latent's frames are decoded one by one

    def __init__(self, cfg: VAEConfig):
        super().__init__()
        self.config = cfg
        self.downscale_ratio = 2 ** (len(cfg.ch_mult) - 1)
        self.latent_channels = cfg.z_channels
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)
        if cfg.use_quant_conv:
            self.quant_conv = nn.Conv2d(2 * cfg.z_channels, 2 * cfg.z_channels, 1)
            self.post_quant_conv = nn.Conv2d(cfg.z_channels, cfg.z_channels, 1)

    def moments(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(mean, logvar) of the posterior for pixels in [-1, 1], NCHW."""
        h = self.encoder(x)
        if self.config.use_quant_conv:
            h = self.quant_conv(h)
        mean, logvar = h.chunk(2, dim=1)
        return mean, logvar.clamp(-30.0, 20.0)

    def decode(self, z: Tensor) -> Tensor:
        """Latent [B, z, h, w] -> pixels [B, 3, H, W], roughly in [-1, 1]."""
        if self.config.use_quant_conv:
            z = self.post_quant_conv(z)
        return self.decoder(z)


class VAE:
    """The VAE payload: IMAGE [B,H,W,3] in [0,1] <-> raw latent [B,z,H/8,W/8] (no scale factor).

    z is 4 (SD) or 16 (Flux, SD3, Qwen-Image); the family's latent format is applied by the
    sampler, not here. `model` is an AutoencoderKL or a `wan_vae.WanVAENetwork` (Qwen-Image):
    both have `moments`, `decode`, `downscale_ratio`, `latent_channels`, `temporal_ratio`.
    """

    def __init__(self, model: AutoencoderKL | wan_vae.WanVAENetwork, dtype: torch.dtype,
                 device: torch.device):
        self._model = model
        self.residency = None  # a residency.Reloadable when the loader can read it again
        self.dtype = dtype
        self.device = device
        self.downscale_ratio = model.downscale_ratio
        self.latent_channels = model.latent_channels

    @property
    def model(self) -> AutoencoderKL | wan_vae.WanVAENetwork:
        """The network, read back from its file first if it was released while idle."""
        if self.residency is not None:
            self.residency.ensure()
        return self._model

    def crop(self, pixels: Tensor) -> Tensor:
        """Centre-crop H and W down to multiples of the downscale ratio (as ComfyUI does)."""
        r = self.downscale_ratio
        h, w = pixels.shape[1] // r * r, pixels.shape[2] // r * r
        if h == 0 or w == 0:
            raise ValueError(f"image {pixels.shape[2]}x{pixels.shape[1]} is smaller than "
                             f"{r}x{r} pixels")
        top, left = (pixels.shape[1] - h) // 2, (pixels.shape[2] - w) // 2
        return pixels[:, top:top + h, left:left + w, :]

    @torch.no_grad()
    def encode(self, pixels: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Posterior mean (or, with a generator, a seeded sample) of cropped pixels."""
        mean, logvar = self.encode_moments(pixels)
        if generator is None:
            return mean
        noise = torch.randn(mean.shape, generator=generator, dtype=torch.float32,
                            device=generator.device).to(mean.device)
        return mean + torch.exp(0.5 * logvar) * noise

    @torch.no_grad()
    def encode_moments(self, pixels: Tensor) -> tuple[Tensor, Tensor]:
        """(mean, logvar) float32 on the CPU-side device of the input."""
        if pixels.ndim != 4 or pixels.shape[-1] < 3:
            raise ValueError(f"expected an IMAGE [B, H, W, 3], got shape {tuple(pixels.shape)}")
        x = self.crop(pixels)[..., :3].movedim(-1, 1)
        means, logvars = [], []
        for chunk in x.split(self._chunk(x.shape[2] * x.shape[3])):
            mean, logvar = self.model.moments(chunk.to(self.device, self.dtype) * 2.0 - 1.0)
            means.append(mean.float().to(pixels.device))
            logvars.append(logvar.float().to(pixels.device))
        return torch.cat(means), torch.cat(logvars)

    def _chunk(self, pixels_per_image: int) -> int:
        """Images per forward pass: about MAX_PIXELS_PER_PASS pixels (CPU_PIXELS_PER_PASS on a
        CPU), at least one image."""
        limit = CPU_PIXELS_PER_PASS if self.device.type == "cpu" else MAX_PIXELS_PER_PASS
        return max(1, limit // pixels_per_image)

    @torch.no_grad()
    def decode(self, samples: Tensor) -> Tensor:
        """Raw latent [B, C, h, w] -> IMAGE [B, 8h, 8w, 3] float32 in [0, 1]; the frames of a
        video latent [B, C, T, h, w] become the batch."""
        if samples.ndim not in (4, 5):
            raise ValueError(f"expected a latent [B, {self.latent_channels}, h, w], got shape "
                             f"{tuple(samples.shape)}")
        if samples.shape[1] != self.latent_channels:  # checked before any weight is touched
            raise ValueError(
                f"the latent has {samples.shape[1]} channels but this VAE decodes "
                f"{self.latent_channels}-channel latents (shape {tuple(samples.shape)}); a "
                "4-channel latent is SD1/SD2/SDXL, a 16-channel one Flux/SD3: use the VAE of the "
                "model that made it")
        if samples.ndim == 5:
            if self.model.temporal_ratio > 1 and samples.shape[2] > 1:
                return self._decode_clips(samples)
            samples = samples.movedim(2, 1).flatten(0, 1)
        r = self.downscale_ratio
        out = []
        for chunk in samples.split(self._chunk(samples.shape[2] * samples.shape[3] * r * r)):
            x = self.model.decode(chunk.to(self.device, self.dtype)).float()
            out.append(_to_image(x).to(samples.device))
        return torch.cat(out)

    def _decode_clips(self, samples: Tensor) -> Tensor:
        """Latent frames of a network that compresses time (Wan: T -> 1 + 4(T-1) frames) are
        decoded together, one clip per pass."""
        out = []
        for clip in samples.split(1):
            frames = self.model.decode(clip.to(self.device, self.dtype)).float()[0]
            out.append(_to_image(frames.movedim(1, 0)).to(samples.device))
        return torch.cat(out)


def _to_image(x: Tensor) -> Tensor:
    """Network output [N, 3, H, W] in ~[-1, 1] -> IMAGE [N, H, W, 3] in [0, 1]."""
    return ((x + 1.0) / 2.0).clamp(0.0, 1.0).movedim(1, -1)


# --- config inference ----------------------------------------------------------------------

def _count(keys, pattern: str) -> int:
    rx = re.compile(pattern)
    found = {int(m.group(1)) for k in keys if (m := rx.match(k))}
    n = 0
    while n in found:
        n += 1
    return n


def infer_config(sd: Mapping[str, Tensor]) -> VAEConfig:
    """VAEConfig from LDM key names and shapes (no config file)."""
    if "decoder.conv_in.weight" not in sd or "encoder.conv_in.weight" not in sd:
        raise KeyError("not an AutoencoderKL: 'encoder.conv_in.weight'/'decoder.conv_in.weight' "
                       "missing")
    ch = sd["encoder.conv_in.weight"].shape[0]
    levels = _count(sd, r"encoder\.down\.(\d+)\.")
    if levels == 0:
        raise KeyError("not an AutoencoderKL: no 'encoder.down.N' blocks")
    mult = tuple(sd[f"encoder.down.{i}.block.0.conv1.weight"].shape[0] // ch
                 for i in range(levels))
    z = sd["decoder.conv_in.weight"].shape[1]
    return VAEConfig(
        ch=ch, ch_mult=mult, num_res_blocks=_count(sd, r"encoder\.down\.0\.block\.(\d+)\."),
        z_channels=z, in_channels=sd["encoder.conv_in.weight"].shape[1],
        out_ch=sd["decoder.conv_out.weight"].shape[0],
        double_z=sd["encoder.conv_out.weight"].shape[0] == 2 * z,
        use_quant_conv="quant_conv.weight" in sd)


# --- diffusers -> LDM names ----------------------------------------------------------------

_DIFFUSERS_RESNET = {"conv_shortcut": "nin_shortcut"}
_DIFFUSERS_ATTN = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v",
                   "to_out.0": "proj_out", "query": "q", "key": "k", "value": "v",
                   "proj_attn": "proj_out"}


def _diffusers_name(key: str, up_levels: int) -> str:
    key = re.sub(r"^(encoder|decoder)\.conv_norm_out\.", r"\1.norm_out.", key)
    m = re.match(r"^encoder\.down_blocks\.(\d+)\.(resnets|downsamplers)\.(\d+)\.(.*)$", key)
    if m:
        i, kind, j, rest = m.groups()
        if kind == "downsamplers":
            return f"encoder.down.{i}.downsample.{rest}"
        name, _, leaf = rest.rpartition(".")
        return f"encoder.down.{i}.block.{j}.{_DIFFUSERS_RESNET.get(name, name)}.{leaf}"
    m = re.match(r"^decoder\.up_blocks\.(\d+)\.(resnets|upsamplers)\.(\d+)\.(.*)$", key)
    if m:
        i, kind, j, rest = m.groups()
        level = up_levels - 1 - int(i)  # diffusers runs up_blocks low-res first
        if kind == "upsamplers":
            return f"decoder.up.{level}.upsample.{rest}"
        name, _, leaf = rest.rpartition(".")
        return f"decoder.up.{level}.block.{j}.{_DIFFUSERS_RESNET.get(name, name)}.{leaf}"
    m = re.match(r"^(encoder|decoder)\.mid_block\.(resnets|attentions)\.(\d+)\.(.*)$", key)
    if m:
        part, kind, j, rest = m.groups()
        name, _, leaf = rest.rpartition(".")
        if kind == "resnets":
            return f"{part}.mid.block_{int(j) + 1}.{_DIFFUSERS_RESNET.get(name, name)}.{leaf}"
        return f"{part}.mid.attn_1.{_DIFFUSERS_ATTN.get(name, name)}.{leaf}"
    return key


def convert_diffusers(sd: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Diffusers AutoencoderKL names -> LDM names; attention Linear weights become 1x1 convs."""
    up_levels = _count(sd, r"decoder\.up_blocks\.(\d+)\.")
    out = {}
    for key, t in sd.items():
        new = _diffusers_name(key, up_levels)
        if ".mid.attn_1." in new and new.endswith(".weight") and t.ndim == 2:
            t = t.reshape(*t.shape, 1, 1)
        out[new] = t
    return out


def _strip_prefix(sd: Mapping[str, Tensor]) -> Mapping[str, Tensor]:
    """The VAE's keys of an all-in-one checkpoint (prefix removed), or `sd` as it is (not
    copied: a file's tensors stay read on access)."""
    for prefix in VAE_PREFIXES:
        # the prefix holding a decoder: `vae.` alone could be some other network's name
        if prefix + "decoder.conv_in.weight" in sd:
            return _under(sd, prefix)
    if any(k.startswith(VAE_PREFIX) for k in sd):  # a broken SD VAE: name its missing keys
        return _under(sd, VAE_PREFIX)
    return sd


def _under(sd: Mapping[str, Tensor], prefix: str) -> Mapping[str, Tensor]:
    if isinstance(sd, TensorFile):
        return sd.under(prefix)
    return {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}


def _safe_dtype(dtype: torch.dtype, device: torch.device) -> torch.dtype:
    """fp16 -> bf16 (or fp32): SD/SDXL VAE activations overflow fp16 (ComfyUI avoids it too)."""
    if dtype != torch.float16:
        return dtype
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def load_vae(state_dict: Mapping[str, Tensor], dtype: torch.dtype = torch.float32,
             device: str | torch.device = "cpu") -> VAE:
    """A VAE from LDM keys (bare, or under `first_stage_model.` / `vae.`) or diffusers keys;
    a Wan 2.1 / Qwen-Image VAE (either naming) gets a `wan_vae.WanVAENetwork`."""
    device = torch.device(device)
    dtype = _safe_dtype(dtype, device)
    if wan_vae.is_wan_vae(state_dict):  # Qwen-Image's causal 3-D VAE (model-families.md §4.3)
        return VAE(wan_vae.load_wan_vae_network(state_dict, dtype, device), dtype, device)
    sd = _strip_prefix(state_dict)
    if "decoder.up_blocks.0.resnets.0.norm1.weight" in sd:
        sd = convert_diffusers(sd)
    cfg = infer_config(sd)
    with torch.device("meta"):
        model = AutoencoderKL(cfg)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(sd))
    if missing:
        raise KeyError(f"VAE weights missing {len(missing)} keys, e.g. {missing[:3]}")
    shapes = getattr(sd, "shapes", None) or {k: tuple(t.shape) for k, t in sd.items()}
    for k, ref in expected.items():
        if tuple(shapes[k]) != tuple(ref.shape):
            raise ValueError(f"VAE key {k!r}: shape {tuple(shapes[k])}, expected "
                             f"{tuple(ref.shape)}")
    # assign=True keeps the read tensors themselves when dtype/device already match
    model.load_state_dict({k: sd[k].to(device=device, dtype=dtype) for k in expected},
                          assign=True)
    model.eval().requires_grad_(False)
    return VAE(model, dtype, device)


# --- random weights for tests --------------------------------------------------------------

def random_weights(shapes: Mapping[str, torch.Size], generator: torch.Generator
                   ) -> dict[str, Tensor]:
    """Weights that keep activations O(1): fan-in scaled convs, norms near 1, small biases."""
    sd = {}
    for k, shape in shapes.items():
        if len(shape) >= 2:
            fan_in = math.prod(shape[1:])
            t = torch.randn(shape, generator=generator) / math.sqrt(fan_in)
        elif k.endswith(".weight"):  # norm scales
            t = 1.0 + 0.1 * torch.randn(shape, generator=generator)
        else:
            t = 0.02 * torch.randn(shape, generator=generator)
        sd[k] = t
    return sd


def vae_state_dict(size: str, generator: torch.Generator, kind: str = "kl4",
                   prefix: str = VAE_PREFIX) -> dict[str, Tensor]:
    """Random float32 VAE weights in the real key layout of `kind` ("kl4", "kl16") under
    `prefix` (`first_stage_model.` in SD/SD3 checkpoints; "" for Flux's `ae.safetensors`,
    "vae." in Flux all-in-one files)."""
    cfg = vae_config(size, kind)
    with torch.device("meta"):
        model = AutoencoderKL(cfg)
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    return {prefix + k: v for k, v in random_weights(shapes, generator).items()}
