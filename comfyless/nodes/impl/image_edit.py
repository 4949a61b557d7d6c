"""Execute of the nodes in nodes/image_edit.py.

Resizing follows ComfyUI's common_upscale: "center" crop first takes round(margin / 2) from
each side to reach the target aspect; "lanczos" goes through 8-bit PIL (values rounded down
to 1/255 steps, as ComfyUI); the other modes are torch's interpolate with its defaults
(align_corners off, no antialias).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ...models.crop import centre_crop_to_aspect
from ..image_edit import MASK_CHANNELS
from .image_ops import describe

# -- input checks -----------------------------------------------------------------------------


def _fail(ctx, input_name: str, message: str):
    raise ValueError(f"node {ctx.node_id} ({ctx.class_type}) input '{input_name}': {message}")


def _image(ctx, value, input_name: str = "image") -> torch.Tensor:
    if not isinstance(value, torch.Tensor) or value.ndim != 4:
        _fail(ctx, input_name, f"expected an IMAGE [B, H, W, C], got {describe(value)}")
    return value


def _mask(ctx, value, input_name: str = "mask") -> torch.Tensor:
    """A MASK as [B, H, W] (a [H, W] mask is one of a batch)."""
    if not isinstance(value, torch.Tensor) or value.ndim not in (2, 3):
        _fail(ctx, input_name, f"expected a MASK [B, H, W] or [H, W], got {describe(value)}")
    return value.reshape(-1, value.shape[-2], value.shape[-1])


# -- common_upscale ---------------------------------------------------------------------------


def _lanczos(samples: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """[B, C, H, W] through 8-bit PIL LANCZOS, as ComfyUI (so the result is in 1/255 steps)."""
    out = []
    for sample in samples:
        pixels = np.clip(255.0 * sample.movedim(0, -1).float().cpu().numpy(), 0, 255)
        pixels = pixels.astype(np.uint8)
        picture = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
        resized = np.asarray(picture.resize((width, height), Image.Resampling.LANCZOS))
        resized = resized.astype(np.float32) / 255.0
        out.append(torch.from_numpy(resized.reshape(height, width, -1)).movedim(-1, 0))
    return torch.stack(out).to(samples.device, samples.dtype)


def common_upscale(samples: torch.Tensor, width: int, height: int, method: str, crop: str
                   ) -> torch.Tensor:
    """ComfyUI's common_upscale on [B, C, H, W]."""
    if crop == "center":
        samples = centre_crop_to_aspect(samples, width, height)
    if method == "lanczos":
        return _lanczos(samples, width, height)
    return F.interpolate(samples, size=(height, width), mode=method)


def upscale_images(images: torch.Tensor, width: int, height: int, method: str,
                   crop: str = "disabled") -> torch.Tensor:
    """common_upscale on an IMAGE [B, H, W, C]."""
    return common_upscale(images.movedim(-1, 1), width, height, method, crop).movedim(1, -1)


# -- scaling ----------------------------------------------------------------------------------


def side_from_aspect(h: int, w: int, width: int, height: int) -> tuple[int, int]:
    """ImageScale's rule: a 0 side follows the aspect (at least 1)."""
    if width == 0:
        width = max(1, round(w * height / h))
    elif height == 0:
        height = max(1, round(h * width / w))
    return width, height


def image_scale(ctx, image, upscale_method: str, width: int, height: int, crop: str):
    image = _image(ctx, image)
    if width == 0 and height == 0:
        return (image,)
    width, height = side_from_aspect(*image.shape[1:3], width, height)
    return (upscale_images(image, width, height, upscale_method, crop),)


def image_scale_by(ctx, image, upscale_method: str, scale_by: float):
    image = _image(ctx, image)
    width, height = round(image.shape[2] * scale_by), round(image.shape[1] * scale_by)
    return (upscale_images(image, width, height, upscale_method),)


def scaled_size(width: int, height: int, total: float, multiple: int = 1) -> tuple[int, int]:
    """(width, height) of about `total` pixels with the aspect kept, each a multiple of
    `multiple`."""
    scale = math.sqrt(total / (width * height))
    return round(width * scale / multiple) * multiple, round(height * scale / multiple) * multiple


def total_pixels_size(width: int, height: int, megapixels: float, steps: int) -> tuple[int, int]:
    """(width, height) of about megapixels * 1024^2 pixels, each a multiple of steps."""
    return scaled_size(width, height, megapixels * 1024 * 1024, steps)


def image_scale_to_total_pixels(ctx, image, upscale_method: str, megapixels: float,
                                resolution_steps: int = 1):
    image = _image(ctx, image)
    width, height = total_pixels_size(image.shape[2], image.shape[1], megapixels,
                                      resolution_steps)
    if width < 1 or height < 1:
        _fail(ctx, "resolution_steps", f"{resolution_steps} rounds a side to 0 at "
                                       f"{megapixels} megapixels; expected a smaller step")
    return (upscale_images(image, width, height, upscale_method),)


# -- simple pixel operations ------------------------------------------------------------------


def image_invert(ctx, image):
    return (1.0 - _image(ctx, image),)


def image_crop(ctx, image, width: int, height: int, x: int, y: int):
    image = _image(ctx, image)
    x, y = min(x, image.shape[2] - 1), min(y, image.shape[1] - 1)  # at least one pixel
    return (image[:, y:y + height, x:x + width, :],)


# -- batches ----------------------------------------------------------------------------------


def _with_alpha(images: torch.Tensor, channels: int) -> torch.Tensor:
    """Give images up to `channels` channels, the extra ones opaque (1)."""
    extra = channels - images.shape[-1]
    if extra <= 0:
        return images
    return torch.cat([images, images.new_ones(*images.shape[:-1], extra)], dim=-1)


def image_batch(ctx, image1, image2):
    image1, image2 = _image(ctx, image1, "image1"), _image(ctx, image2, "image2")
    channels = max(image1.shape[-1], image2.shape[-1])
    image1, image2 = _with_alpha(image1, channels), _with_alpha(image2, channels)
    if image1.shape[1:3] != image2.shape[1:3]:
        image2 = upscale_images(image2, image1.shape[2], image1.shape[1], "bilinear", "center")
    return (torch.cat((image1, image2.to(image1)), dim=0),)


def repeat_image_batch(ctx, image, amount: int):
    return (_image(ctx, image).repeat(amount, 1, 1, 1),)


def image_from_batch(ctx, image, batch_index: int, length: int):
    image = _image(ctx, image)
    if batch_index < 0:  # newer ComfyUI: counted from the end
        batch_index += image.shape[0]
    start = max(0, min(image.shape[0] - 1, batch_index))
    length = min(image.shape[0] - start, length)
    return (image[start:start + length].clone(),)


# -- outpaint padding -------------------------------------------------------------------------


def outpaint_feather(height: int, width: int, left: int, top: int, right: int, bottom: int,
                     feathering: int) -> torch.Tensor:
    """The mask over the original image: ((f - d) / f)^2 within f pixels of a padded side
    (d = distance to that side, the row/column index), else 0. No feathering when f is 0 or
    2f does not fit inside the image (ComfyUI's rule)."""
    if not (0 < feathering and feathering * 2 < height and feathering * 2 < width):
        return torch.zeros(height, width)
    rows = torch.arange(height, dtype=torch.float32)[:, None]
    cols = torch.arange(width, dtype=torch.float32)[None, :]
    far_h, far_w = torch.full_like(rows, height), torch.full_like(cols, width)
    distance = torch.minimum(
        torch.minimum(rows if top else far_h, (height - rows) if bottom else far_h),
        torch.minimum(cols if left else far_w, (width - cols) if right else far_w))
    ramp = ((feathering - distance) / feathering).clamp(min=0.0)
    return ramp * ramp


def image_pad_for_outpaint(ctx, image, left: int, top: int, right: int, bottom: int,
                           feathering: int):
    image = _image(ctx, image)
    batch, height, width, channels = image.shape
    out = torch.full((batch, height + top + bottom, width + left + right, channels), 0.5,
                     dtype=torch.float32)
    out[:, top:top + height, left:left + width] = image
    mask = torch.ones(height + top + bottom, width + left + right)
    mask[top:top + height, left:left + width] = outpaint_feather(
        height, width, left, top, right, bottom, feathering)
    return out, mask


# -- blending ---------------------------------------------------------------------------------


def _soft_light_g(x: torch.Tensor) -> torch.Tensor:
    return torch.where(x <= 0.25, ((16 * x - 12) * x + 4) * x, torch.sqrt(x))


BLENDS = {
    "normal": lambda a, b: b,
    "multiply": lambda a, b: a * b,
    "screen": lambda a, b: 1 - (1 - a) * (1 - b),
    "overlay": lambda a, b: torch.where(a <= 0.5, 2 * a * b, 1 - 2 * (1 - a) * (1 - b)),
    "soft_light": lambda a, b: torch.where(b <= 0.5, a - (1 - 2 * b) * a * (1 - a),
                                           a + (2 * b - 1) * (_soft_light_g(a) - a)),
    "difference": lambda a, b: a - b,  # signed, then clamped (ComfyUI's rule)
}


def image_blend(ctx, image1, image2, blend_factor: float, blend_mode: str):
    image1, image2 = _image(ctx, image1, "image1"), _image(ctx, image2, "image2")
    if blend_mode not in BLENDS:
        _fail(ctx, "blend_mode", f"{blend_mode!r}; expected one of {', '.join(BLENDS)}")
    image2 = image2.to(image1)
    if image1.shape != image2.shape:
        image2 = upscale_images(image2, image1.shape[2], image1.shape[1], "bicubic", "center")
    if image1.shape != image2.shape:
        _fail(ctx, "image2", f"batch/channels {tuple(image2.shape)} do not match image1's "
                             f"{tuple(image1.shape)}")
    blended = BLENDS[blend_mode](image1, image2)
    return (torch.clamp(image1 * (1 - blend_factor) + blended * blend_factor, 0, 1),)


# -- masks ------------------------------------------------------------------------------------


def image_to_mask(ctx, image, channel: str):
    image = _image(ctx, image)
    index = MASK_CHANNELS.index(channel)
    if index >= image.shape[-1]:
        _fail(ctx, "channel", f"{channel!r} but the image has {image.shape[-1]} channels")
    return (image[..., index],)


def mask_to_image(ctx, mask):
    mask = _mask(ctx, mask)
    return (mask[..., None].expand(-1, -1, -1, 3),)


def solid_mask(ctx, value: float, width: int, height: int):
    return (torch.full((1, height, width), value, dtype=torch.float32),)


def invert_mask(ctx, mask):
    return (1.0 - _mask(ctx, mask),)


def _grey_step(masks: torch.Tensor, tapered: bool, grow: bool) -> torch.Tensor:
    """One grey dilation (max) or erosion (min) over the 3x3 cross (tapered) or square, edges
    replicated (scipy's default 'reflect' mode gives the same for a 3x3 footprint)."""
    padded = F.pad(masks[:, None], (1, 1, 1, 1), mode="replicate")[:, 0]
    h, w = masks.shape[-2:]
    offsets = [(dy, dx) for dy in range(3) for dx in range(3)
               if not (tapered and dy != 1 and dx != 1)]
    shifted = torch.stack([padded[:, dy:dy + h, dx:dx + w] for dy, dx in offsets])
    return shifted.amax(0) if grow else shifted.amin(0)


def grow_mask(ctx, mask, expand: int, tapered_corners: bool = True):
    out = _mask(ctx, mask).float()
    for _ in range(abs(expand)):
        out = _grey_step(out, tapered_corners, grow=expand > 0)
    return (out,)


def join_image_with_alpha(ctx, image, alpha):
    image, alpha = _image(ctx, image), _mask(ctx, alpha, "alpha")
    count = min(image.shape[0], alpha.shape[0])
    alpha = alpha.to(image)
    if alpha.shape[-2:] != image.shape[1:3]:
        alpha = F.interpolate(alpha[:, None], size=image.shape[1:3], mode="bilinear")[:, 0]
    rgb = image[:count, ..., :3]
    return (torch.cat([rgb, (1.0 - alpha[:count])[..., None]], dim=-1),)


# -- Canny ------------------------------------------------------------------------------------
# ComfyUI's Canny calls kornia.filters.canny (5x5 Gaussian, sigma 1) and returns its edge map
# as RGB. This is that algorithm, written for torch alone, following kornia 0.9's rules:
# grey = 0.299 R + 0.587 G + 0.114 B; blur with reflected borders; unnormalised 3x3 Sobel with
# replicated borders; magnitude sqrt(gx^2 + gy^2 + 1e-6); non-maximum suppression along the
# gradient rounded to 45 degrees (ties kept only against the right / lower neighbour's side,
# zero gradient never kept); weak > low, strong > high (strict); hysteresis over 8 neighbours
# until nothing changes. Older kornia releases break ties differently.

_GREY = (0.299, 0.587, 0.114)
# Neighbour (dy, dx) for each gradient direction k * 45 degrees, k = 0..7 (y pointing down).
_DIRECTIONS = ((0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1), (-1, 0), (-1, 1))
_EPS = 1e-6


def _grey(rgb: torch.Tensor) -> torch.Tensor:
    """[B, 3, H, W] -> [B, 1, H, W]; weights as float32 and the same order of operations as
    kornia, so that ties in the suppression step fall the same way."""
    weights = torch.tensor(_GREY, dtype=rgb.dtype)
    red, green, blue = rgb.unbind(1)
    grey = torch.addcmul(torch.addcmul(red * weights[0], green, weights[1]), blue, weights[2])
    return grey[:, None]


def _gaussian_blur(grey: torch.Tensor, size: int = 5, sigma: float = 1.0) -> torch.Tensor:
    """Separable Gaussian blur of [B, 1, H, W], borders reflected."""
    x = torch.arange(size, dtype=grey.dtype) - size // 2
    taps = torch.exp(-x * x / (2 * sigma * sigma))
    taps = taps / taps.sum()
    padded = F.pad(grey, (size // 2,) * 4, mode="reflect")
    across = F.conv2d(padded, taps.reshape(1, 1, 1, size))
    return F.conv2d(across, taps.reshape(1, 1, size, 1))


def _sobel(grey: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Unnormalised Sobel (gx, gy) of [B, 1, H, W], borders replicated."""
    gx_kernel = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]],
                             dtype=grey.dtype)
    kernels = torch.stack([gx_kernel, gx_kernel.T])[:, None]
    gradients = F.conv2d(F.pad(grey, (1, 1, 1, 1), mode="replicate"), kernels)
    return gradients[:, :1], gradients[:, 1:]


def _thin(gx: torch.Tensor, gy: torch.Tensor) -> torch.Tensor:
    """The gradient magnitude where it is a maximum along the gradient direction, else 0."""
    height, width = gx.shape[-2:]
    padded = torch.sqrt(F.pad(gx, (1, 1, 1, 1)) ** 2 + F.pad(gy, (1, 1, 1, 1)) ** 2 + _EPS)
    magnitude = padded[..., 1:1 + height, 1:1 + width]
    neighbours = torch.stack([padded[..., 1 + dy:1 + dy + height, 1 + dx:1 + dx + width]
                              for dy, dx in _DIRECTIONS])
    octant = torch.nan_to_num(torch.atan2(gy, gx) * (4 / math.pi)).round().long()
    keep = magnitude > math.sqrt(_EPS)  # zero gradient: never an edge
    for direction in (octant % 8, (octant + 4) % 8):
        neighbour = neighbours.gather(0, direction[None])[0]
        tie_ok = (direction == 0) | (direction == 2)  # the right / lower neighbour
        keep &= (magnitude > neighbour) | (tie_ok & (magnitude == neighbour))
    return magnitude * keep


def _hysteresis(magnitude: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """1 where strong, or weak and joined to a strong pixel through weak ones (8-connected)."""
    strong = magnitude > high
    weak = (magnitude > low) & ~strong
    while True:
        grown = strong | (weak & (F.max_pool2d(strong.float(), 3, 1, 1) > 0))
        if torch.equal(grown, strong):
            return strong.to(magnitude.dtype)
        strong = grown


def canny_edges(images: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """Edge map [B, H, W] (0 or 1) of an IMAGE [B, H, W, C] with C = 1 or 3."""
    grey = images.float().movedim(-1, 1)
    if grey.shape[1] == 3:
        grey = _grey(grey)
    # A standard layout before the convolutions: a [B, 1, H, W] view with channels-last strides
    # (from movedim) makes torch pick another convolution kernel, whose last-bit differences
    # flip ties in the suppression.
    grey = grey.clone(memory_format=torch.contiguous_format)
    gx, gy = _sobel(_gaussian_blur(grey))
    return _hysteresis(_thin(gx, gy), low, high)[:, 0]


def canny(ctx, image, low_threshold: float, high_threshold: float):
    image = _image(ctx, image)
    if image.shape[-1] not in (1, 3):
        _fail(ctx, "image", f"{image.shape[-1]} channels; expected 1 or 3 (RGB)")
    if low_threshold > high_threshold:
        _fail(ctx, "low_threshold", f"{low_threshold} is above high_threshold "
                                    f"{high_threshold}; expected low <= high")
    edges = canny_edges(image, low_threshold, high_threshold)
    return (edges[..., None].expand(-1, -1, -1, 3).to(image.dtype),)
