"""Execute of the latent operation nodes (nodes/latent_ops.py).

Every node returns a new LATENT dict (a shallow copy of its input with new tensors); the dicts
and tensors it is given are never changed.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable

import safetensors.torch
import torch
import torch.nn.functional as F

from ...files import write_atomic
from ...models.crop import centre_crop_to_aspect
from ...models.residency import release_idle
from ...typesys.schema import Result
from . import image_files

# Old .latent files (without the version marker) hold latents scaled by SD1's factor.
SD1_SCALE_FACTOR = 0.18215
LATENT_KEY = "latent_tensor"
VERSION_MARKER = "latent_format_version_0"
MIN_UPSCALE_SIDE = 64  # LatentUpscale never goes below 64 pixels a side


# -- input checks ------------------------------------------------------------------------------


def _where(ctx, input_name: str) -> str:
    return f"node {ctx.node_id} ({ctx.class_type}) input '{input_name}'"


def _latent(ctx, value, input_name: str = "samples") -> torch.Tensor:
    """The 'samples' tensor of a LATENT input ([B, C, h, w] or [B, C, T, h, w])."""
    samples = value.get("samples") if isinstance(value, dict) else None
    if not isinstance(samples, torch.Tensor) or samples.ndim not in (4, 5):
        found = (f"shape {tuple(samples.shape)}" if isinstance(samples, torch.Tensor)
                 else type(value).__name__)
        raise ValueError(f"{_where(ctx, input_name)}: expected a LATENT dict with a 'samples' "
                         f"tensor [B, C, h, w] or [B, C, T, h, w], got {found}")
    return samples


def _require(ctx, value, input_name: str, expected: str):
    if value is None:
        raise ValueError(f"{_where(ctx, input_name)}: expected {expected}, got None")
    return value


def _choice(ctx, value, choices: tuple[str, ...], input_name: str) -> str:
    if value not in choices:
        raise ValueError(f"{_where(ctx, input_name)}: {value!r} is not one of "
                         f"{', '.join(choices)}")
    return value


# -- resizing (ComfyUI's common_upscale) -------------------------------------------------------


def _slerp_rows(a: torch.Tensor, b: torch.Tensor, ratio: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation of channel vectors a, b [N, C] at ratio [N, 1]; the length is
    interpolated linearly. Parallel vectors take a; opposite ones a linear mix."""
    norm_a, norm_b = a.norm(dim=-1, keepdim=True), b.norm(dim=-1, keepdim=True)
    unit_a = torch.where(norm_a == 0, torch.zeros_like(a), a / norm_a)
    unit_b = torch.where(norm_b == 0, torch.zeros_like(b), b / norm_b)
    dot = (unit_a * unit_b).sum(-1)
    omega = torch.acos(dot)
    sin_omega = torch.sin(omega)
    r = ratio.squeeze(1)
    mixed = ((torch.sin((1.0 - r) * omega) / sin_omega).unsqueeze(1) * unit_a
             + (torch.sin(r * omega) / sin_omega).unsqueeze(1) * unit_b)
    mixed = mixed * (norm_a * (1.0 - ratio) + norm_b * ratio)
    same = dot > 1 - 1e-5
    opposite = dot < 1e-5 - 1
    mixed[same] = a[same]
    mixed[opposite] = (a * (1.0 - ratio) + b * ratio)[opposite]
    return mixed


def _bilinear_sources(old: int, new: int, device) -> tuple[torch.Tensor, ...]:
    """For each new index: the two neighbouring old indices and the ratio between them, as
    bilinear (half-pixel centres) resizing would take them."""
    grid = torch.arange(old, dtype=torch.float32, device=device).reshape(1, 1, 1, -1)
    left = F.interpolate(grid, size=(1, new), mode="bilinear").reshape(-1)
    ratio = left - left.floor()
    right_grid = grid + 1
    right_grid[..., -1] -= 1  # the last index has no right neighbour
    right = F.interpolate(right_grid, size=(1, new), mode="bilinear").reshape(-1)
    return left.long(), right.long(), ratio


def _bislerp_last_dim(samples: torch.Tensor, new: int) -> torch.Tensor:
    n, c, h, w = samples.shape
    left, right, ratio = _bilinear_sources(w, new, samples.device)
    rows_a = samples[..., left].movedim(1, -1).reshape(-1, c)
    rows_b = samples[..., right].movedim(1, -1).reshape(-1, c)
    ratios = ratio.expand(n, h, new).reshape(-1, 1)
    return _slerp_rows(rows_a, rows_b, ratios).reshape(n, h, new, c).movedim(-1, 1)


def bislerp(samples: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Resize [N, C, h, w] by slerping channel vectors: along width, then along height."""
    dtype = samples.dtype
    out = _bislerp_last_dim(samples.float(), width)
    out = _bislerp_last_dim(out.transpose(-1, -2), height).transpose(-1, -2)
    return out.to(dtype)


def upscale(samples: torch.Tensor, width: int, height: int, method: str, crop: str
            ) -> torch.Tensor:
    """Resize the last two dims of [B, C, h, w] or [B, C, T, h, w] to height x width."""
    if crop == "center":
        samples = centre_crop_to_aspect(samples, width, height)
    lead = tuple(samples.shape[:-2])
    flat = samples.reshape(lead[0], -1, *samples.shape[-2:])  # time folded into channels
    if method == "bislerp":
        out = bislerp(flat, width, height)
    else:
        out = F.interpolate(flat, size=(height, width), mode=method)
    return out.reshape(*lead, height, width)


def latent_upscale(ctx, samples, upscale_method: str = "nearest-exact", width: int = 512,
                   height: int = 512, crop: str = "disabled"):
    from ..latent_ops import CROP_METHODS, UPSCALE_METHODS
    latent = _latent(ctx, samples)
    method = _choice(ctx, upscale_method, UPSCALE_METHODS, "upscale_method")
    crop = _choice(ctx, crop, CROP_METHODS, "crop")
    if width == 0 and height == 0:
        return (dict(samples),)
    h, w = latent.shape[-2:]
    if width == 0:
        height = max(MIN_UPSCALE_SIDE, height)
        width = max(MIN_UPSCALE_SIDE, round(w * height / h))
    elif height == 0:
        width = max(MIN_UPSCALE_SIDE, width)
        height = max(MIN_UPSCALE_SIDE, round(h * width / w))
    else:
        width, height = max(MIN_UPSCALE_SIDE, width), max(MIN_UPSCALE_SIDE, height)
    out = dict(samples)
    out["samples"] = upscale(latent, width // 8, height // 8, method, crop)
    return (out,)


def latent_upscale_by(ctx, samples, upscale_method: str = "nearest-exact", scale_by: float = 1.5):
    from ..latent_ops import UPSCALE_METHODS
    latent = _latent(ctx, samples)
    method = _choice(ctx, upscale_method, UPSCALE_METHODS, "upscale_method")
    if not scale_by > 0:
        raise ValueError(f"{_where(ctx, 'scale_by')}: expected a factor > 0, got {scale_by}")
    width = max(1, round(latent.shape[-1] * scale_by))
    height = max(1, round(latent.shape[-2] * scale_by))
    out = dict(samples)
    out["samples"] = upscale(latent, width, height, method, "disabled")
    return (out,)


# -- batches -----------------------------------------------------------------------------------


def _masks_per_sample(masks: torch.Tensor, batch: int) -> torch.Tensor:
    """A mask batch shorter than the latent batch is cycled to cover it."""
    if masks.shape[0] < batch:
        reps = math.ceil(batch / masks.shape[0])
        masks = masks.repeat((reps,) + (1,) * (masks.ndim - 1))[:batch]
    return masks


def latent_from_batch(ctx, samples, batch_index: int = 0, length: int = 1):
    latent = _latent(ctx, samples)
    start = min(latent.shape[0] - 1, batch_index)
    length = min(latent.shape[0] - start, length)
    out = dict(samples)
    out["samples"] = latent[start:start + length].clone()
    if "noise_mask" in samples:
        masks = samples["noise_mask"]
        if masks.shape[0] == 1:
            out["noise_mask"] = masks.clone()
        else:
            out["noise_mask"] = _masks_per_sample(masks, latent.shape[0])[
                start:start + length].clone()
    # batch_index tells the sampler which noise of the original batch each sample gets.
    if "batch_index" in samples:
        out["batch_index"] = list(samples["batch_index"][start:start + length])
    else:
        out["batch_index"] = list(range(start, start + length))
    return (out,)


def repeat_latent_batch(ctx, samples, amount: int = 1):
    latent = _latent(ctx, samples)
    if amount < 1:
        raise ValueError(f"{_where(ctx, 'amount')}: expected >= 1, got {amount}")
    out = dict(samples)
    out["samples"] = latent.repeat((amount,) + (1,) * (latent.ndim - 1))
    masks = samples.get("noise_mask")
    if masks is not None and masks.shape[0] > 1:
        masks = _masks_per_sample(masks, latent.shape[0])
        out["noise_mask"] = masks.repeat((amount,) + (1,) * (masks.ndim - 1))
    if "batch_index" in samples:
        indices = list(samples["batch_index"])
        offset = max(indices) - min(indices) + 1
        out["batch_index"] = indices + [i + k * offset for k in range(1, amount)
                                        for i in indices]
    return (out,)


# -- composite and mask ------------------------------------------------------------------------


def _feather_mask(pasted: torch.Tensor, x: int, y: int, feather: int,
                  to_h: int, to_w: int) -> torch.Tensor:
    """1 inside, ramping (t+1)/feather over `feather` rows/columns at each edge of the pasted
    block that lies inside the target (edges on the target's border stay hard)."""
    mask = torch.ones_like(pasted)
    h, w = pasted.shape[-2:]
    for t in range(feather):
        ramp = (t + 1) / feather
        if y != 0:
            mask[..., t, :] *= ramp
        if y + h < to_h:
            mask[..., h - 1 - t, :] *= ramp
        if x != 0:
            mask[..., :, t] *= ramp
        if x + w < to_w:
            mask[..., :, w - 1 - t] *= ramp
    return mask


def latent_composite(ctx, samples_to, samples_from, x: int = 0, y: int = 0, feather: int = 0):
    target = _latent(ctx, samples_to, "samples_to")
    source = _latent(ctx, samples_from, "samples_from")
    if source.shape[1:-2] != target.shape[1:-2] or source.shape[0] not in (1, target.shape[0]):
        raise ValueError(f"{_where(ctx, 'samples_from')}: shape {tuple(source.shape)} does not "
                         f"fit samples_to {tuple(target.shape)} (same channels and frames, and "
                         "the same batch size or 1)")
    x, y, feather = x // 8, y // 8, feather // 8
    to_h, to_w = target.shape[-2:]
    out_tensor = target.clone()
    pasted = source[..., :max(0, to_h - y), :max(0, to_w - x)]
    h, w = pasted.shape[-2:]
    if h and w:
        region = out_tensor[..., y:y + h, x:x + w]
        if feather == 0:
            region[...] = pasted
        else:
            mask = _feather_mask(pasted, x, y, feather, to_h, to_w)
            region[...] = pasted * mask + region * (1.0 - mask)
    out = dict(samples_to)
    out["samples"] = out_tensor
    return (out,)


def set_latent_noise_mask(ctx, samples, mask):
    _latent(ctx, samples)
    if not isinstance(mask, torch.Tensor) or mask.ndim not in (2, 3, 4):
        found = f"shape {tuple(mask.shape)}" if isinstance(mask, torch.Tensor) else repr(mask)
        raise ValueError(f"{_where(ctx, 'mask')}: expected a MASK [B, H, W], got {found}")
    out = dict(samples)
    out["noise_mask"] = mask.reshape(-1, 1, mask.shape[-2], mask.shape[-1])
    return (out,)


# -- tiled VAE ---------------------------------------------------------------------------------


def _tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Tile starts along one axis: every tile-overlap, the last moved back inside."""
    if size <= tile:
        return [0]
    return sorted({max(0, min(size - overlap, s))
                   for s in range(0, size - overlap, tile - overlap)})


def _edge_ramp(out: torch.Tensor, feather: int, dim: int) -> None:
    """Multiply the first and last `feather` slices along `dim` by (t+1)/feather (in place)."""
    if feather >= out.shape[dim]:
        return
    for t in range(feather):
        ramp = (t + 1) / feather
        out.narrow(dim, t, 1).mul_(ramp)
        out.narrow(dim, out.shape[dim] - 1 - t, 1).mul_(ramp)


def tiled_map(x: torch.Tensor, fn: Callable[[torch.Tensor], torch.Tensor], tile: tuple[int, int],
              overlap: int, scale: float) -> torch.Tensor:
    """fn over overlapping (h, w) tiles of one sample x [1, ..., h, w], whose outputs (scaled
    by `scale` in h and w) are blended with linear ramps over the overlap (ComfyUI's feather)."""
    h, w = x.shape[-2:]
    if h <= tile[0] and w <= tile[1]:
        return fn(x)
    out = weight = None
    for top, left in itertools.product(_tile_starts(h, tile[0], overlap),
                                       _tile_starts(w, tile[1], overlap)):
        part = fn(x[..., top:top + tile[0], left:left + tile[1]])
        if out is None:
            size = (round(h * scale), round(w * scale))
            out = part.new_zeros(*part.shape[:-2], *size)
            weight = torch.zeros_like(out)
        mask = torch.ones_like(part)
        feather = round(overlap * scale)
        _edge_ramp(mask, feather, -2)
        _edge_ramp(mask, feather, -1)
        o_top, o_left = round(top * scale), round(left * scale)
        ph, pw = part.shape[-2:]
        out[..., o_top:o_top + ph, o_left:o_left + pw] += part * mask
        weight[..., o_top:o_top + ph, o_left:o_left + pw] += mask
    return out / weight


def tiled_three_ways(x: torch.Tensor, fn, tile_h: int, tile_w: int, overlap: int,
                     scale: float) -> torch.Tensor:
    """The mean of three tilings (tall, wide, square tiles), as ComfyUI does: the seams of
    one tiling fall inside tiles of the others."""
    shapes = ((tile_h * 2, tile_w // 2), (tile_h // 2, tile_w * 2), (tile_h, tile_w))
    return sum(tiled_map(x, fn, shape, overlap, scale) for shape in shapes) / 3.0


def _effective_overlap(tile_size: int, overlap: int) -> int:
    """A tile must be at least 4 overlaps wide: a larger overlap is cut to tile_size // 4."""
    return tile_size // 4 if tile_size < overlap * 4 else overlap


def vae_decode_tiled(ctx, samples, vae, tile_size: int = 512, overlap: int = 64,
                     temporal_size: int = 64, temporal_overlap: int = 8):
    vae = _require(ctx, vae, "vae", "a VAE")
    release_idle(keep=(vae,))  # other encoders wait in their files while it runs
    latent = _latent(ctx, samples)
    ratio = vae.downscale_ratio
    overlap = _effective_overlap(tile_size, overlap)
    tile, lap = max(1, tile_size // ratio), overlap // ratio

    def decode(part: torch.Tensor) -> torch.Tensor:
        frames = vae.decode(part)  # [F, H, W, 3] in [0, 1]
        return frames.movedim(-1, 0).unsqueeze(0)  # [1, 3, F, H, W]

    try:
        images = [tiled_three_ways(sample, decode, tile, tile, lap, ratio)
                  for sample in latent.split(1)]
    except ValueError as exc:
        raise ValueError(f"{_where(ctx, 'samples')}: {exc}") from exc
    return (torch.cat([im[0].movedim(0, -1) for im in images]).clamp(0.0, 1.0),)


def vae_encode_tiled(ctx, pixels, vae, tile_size: int = 512, overlap: int = 64,
                     temporal_size: int = 64, temporal_overlap: int = 8):
    vae = _require(ctx, vae, "vae", "a VAE")
    release_idle(keep=(vae,))  # other encoders wait in their files while it runs
    if not isinstance(pixels, torch.Tensor) or pixels.ndim != 4 or pixels.shape[-1] < 3:
        found = tuple(pixels.shape) if isinstance(pixels, torch.Tensor) else type(pixels).__name__
        raise ValueError(f"{_where(ctx, 'pixels')}: expected an IMAGE [B, H, W, 3], got {found}")
    try:
        cropped = vae.crop(pixels)[..., :3]
    except ValueError as exc:
        raise ValueError(f"{_where(ctx, 'pixels')}: {exc}") from exc
    overlap = _effective_overlap(tile_size, overlap)
    ratio = vae.downscale_ratio

    def encode(part: torch.Tensor) -> torch.Tensor:  # part [1, 3, h, w] channels first
        return vae.encode(part.movedim(1, -1))

    latents = [tiled_three_ways(image.movedim(-1, 1), encode, tile_size, tile_size, overlap,
                                1.0 / ratio)
               for image in cropped.split(1)]
    return ({"samples": torch.cat(latents)},)


# -- files -------------------------------------------------------------------------------------


def _file_metadata(ctx) -> dict[str, str]:
    """The workflow as text metadata, as SaveLatent writes it (each value JSON-encoded)."""
    metadata = {"prompt": json.dumps(ctx.prompt) if ctx.prompt is not None else ""}
    for key, value in (ctx.extra_pnginfo or {}).items():
        metadata[key] = json.dumps(value)
    return metadata


def save_latent(ctx, samples, filename_prefix: str = "latents/ComfyUI"):
    latent = _latent(ctx, samples)
    tensors = {LATENT_KEY: latent.detach().cpu().contiguous(), VERSION_MARKER: torch.tensor([])}
    path = ctx.save_path(image_files.expand_prefix(filename_prefix), ".latent", folder="output")
    data = safetensors.torch.save(tensors, metadata=_file_metadata(ctx))
    write_atomic(path, lambda tmp: tmp.write_bytes(data))
    root = ctx.paths.folders("output")[0]
    return Result((), {"latents": [image_files.ui_entry(path, root, "output")]})


def load_latent(ctx, latent: str):
    path = ctx.find("input", latent, input_name="latent")
    try:
        tensors = safetensors.torch.load_file(str(path), device="cpu")
    except Exception as exc:  # not a safetensors file at all
        raise ValueError(f"{_where(ctx, 'latent')}: {latent!r} is not a .latent (safetensors) "
                         f"file: {exc}") from exc
    if LATENT_KEY not in tensors:
        raise ValueError(f"{_where(ctx, 'latent')}: {latent!r} has no {LATENT_KEY!r} tensor "
                         f"(found {sorted(tensors)})")
    # Files written before the version marker hold latents multiplied by SD1's scale factor.
    multiplier = 1.0 if VERSION_MARKER in tensors else 1.0 / SD1_SCALE_FACTOR
    return ({"samples": tensors[LATENT_KEY].float() * multiplier},)
