"""Execute of the image nodes (nodes/images.py): LoadImage, SaveImage, PreviewImage,
SaveImageAdvanced, ImageStitch, FluxKontextImageScale."""

from __future__ import annotations

import numpy as np
import torch

from ...files import write_atomic
from ...models.crop import centre_crop_to_aspect
from ...typesys.schema import Result
from ..images import SAVE_FORMATS
from . import image_files, image_formats, image_ops


def load_image(ctx, image: str):
    path = ctx.find("input", image, input_name="image")
    if not path.is_file():
        raise ValueError(f"input 'image': {image!r} is a folder, expected an image file")
    return image_files.load_image_with_mask(path)


def save_image(ctx, images, filename_prefix: str = "ComfyUI"):
    saved = image_files.save_images(ctx, images, filename_prefix, folder="output",
                                    compress_level=4)
    return Result((images,), {"images": saved})


def preview_image(ctx, images):
    saved = image_files.save_images(ctx, images, image_files.temp_prefix(), folder="temp",
                                    compress_level=1)
    return Result((images,), {"images": saved})


# -- SaveImageAdvanced -------------------------------------------------------------------------

# PNG bit depth -> (full scale, sample type); values are scaled, clipped and truncated.
PNG_DEPTHS = {"8-bit": (255.0, np.uint8), "16-bit": (65535.0, np.uint16)}
# EXR input colour space -> (curve to scene-linear or None, primaries written to the header).
EXR_SPACES = {
    "sRGB": (image_formats.srgb_to_linear, image_formats.REC709_CHROMATICITIES),
    "HDR": (image_formats.hlg_to_linear, image_formats.REC2020_CHROMATICITIES),
    "linear": (None, image_formats.REC709_CHROMATICITIES),
}


def _check_format(file_format: str, bit_depth: str, color_space: str) -> None:
    """Refuse a sub-input the chosen format does not offer (linked values skip validation)."""
    subs = SAVE_FORMATS.get(file_format)
    if subs is None:
        raise ValueError(f"input 'format': {file_format!r} is not one of "
                         f"{', '.join(SAVE_FORMATS)}")
    for name, value in (("format.bit_depth", bit_depth),
                        ("format.input_color_space", color_space)):
        if value not in subs[name]:
            raise ValueError(f"input '{name}': {value!r} is not a {file_format} choice; "
                             f"expected one of {', '.join(subs[name])}")


def _png_file(pixels: np.ndarray, bit_depth: str, texts: dict[str, str]) -> bytes:
    scale, sample_type = PNG_DEPTHS[bit_depth]
    quantised = np.clip(pixels * np.float32(scale), 0, scale).astype(np.int32)
    return image_formats.encode_png(quantised.astype(sample_type), texts)


def _exr_file(pixels: np.ndarray, color_space: str, texts: dict[str, str]) -> bytes:
    curve, primaries = EXR_SPACES[color_space]
    if curve is not None:  # colour channels only: alpha is already linear
        colour = slice(0, 3) if pixels.shape[2] == 4 else slice(None)
        pixels = pixels.copy()
        pixels[:, :, colour] = curve(pixels[:, :, colour])
    attributes = [image_formats.exr_string(k, v) for k, v in texts.items()]
    attributes.append(image_formats.exr_chromaticities(primaries))
    return image_formats.encode_exr(pixels, attributes)


def save_image_advanced(ctx, images, filename_prefix: str = "ComfyUI", format: str = "png",
                        **format_inputs):
    """Each sample to output/<prefix>_<counter:05>.<format>; images passed on, UI entries."""
    bit_depth = format_inputs.get("format.bit_depth", "8-bit")
    color_space = format_inputs.get("format.input_color_space", "sRGB")
    _check_format(format, bit_depth, color_space)
    texts = image_formats.json_texts(ctx.prompt, ctx.extra_pnginfo)
    root = ctx.paths.folders("output")[0]
    entries = []
    for index, sample in enumerate(image_ops.samples(images)):
        pixels = sample.detach().float().cpu().numpy()
        if format == "png":
            data = _png_file(pixels, bit_depth, texts)
        else:
            data = _exr_file(pixels, color_space, texts)
        name = image_files.expand_prefix(filename_prefix, pixels.shape[1], pixels.shape[0])
        path = ctx.save_path(name.replace("%batch_num%", str(index)), f".{format}", gap="")
        write_atomic(path, lambda tmp, data=data: tmp.write_bytes(data))
        entries.append(image_files.ui_entry(path, root, "output"))
    return Result((images,), {"images": entries})


# -- FluxKontextImageScale --------------------------------------------------------------------

# FLUX.1 Kontext's preferred (width, height) sizes, portrait to landscape (ComfyUI's
# PREFERED_KONTEXT_RESOLUTIONS, model-families.md §1.3).
KONTEXT_SIZES = (
    (672, 1568), (688, 1504), (720, 1456), (752, 1392), (800, 1328), (832, 1248), (880, 1184),
    (944, 1104), (1024, 1024), (1104, 944), (1184, 880), (1248, 832), (1328, 800), (1392, 752),
    (1456, 720), (1504, 688), (1568, 672),
)


def kontext_size(width: int, height: int) -> tuple[int, int]:
    """The Kontext size whose aspect is closest to width/height (ties: the narrower one)."""
    aspect = width / height
    _, w, h = min((abs(aspect - w / h), w, h) for w, h in KONTEXT_SIZES)
    return w, h


def _resize_batch(images: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """LANCZOS-resize every sample of `[B, H, W, C]` to width x height."""
    if images.shape[1:3] == (height, width):
        return images
    resized = [image_ops.resize(s, width, height) for s in images]
    return torch.stack(resized).to(device=images.device, dtype=images.dtype)


def _image_batch(ctx, image, input_name: str) -> torch.Tensor:
    if not isinstance(image, torch.Tensor) or image.ndim != 4:
        raise ValueError(f"node {ctx.node_id} ({ctx.class_type}) input '{input_name}': expected "
                         f"an IMAGE [B, H, W, C], got {image_ops.describe(image)}")
    return image


def flux_kontext_image_scale(ctx, image):
    image = _image_batch(ctx, image, "image")
    width, height = kontext_size(image.shape[2], image.shape[1])
    return (_resize_batch(centre_crop_to_aspect(image, width, height, dims=(1, 2)), width, height),)


# -- ImageStitch ------------------------------------------------------------------------------

# Gap colours; a grey level fills every colour channel. When sizes are not matched, the padding
# uses the grey level too, but black for the pure colours (as ComfyUI does).
SPACING_COLORS = {
    "white": 1.0,
    "black": 0.0,
    "red": (1.0, 0.0, 0.0),
    "green": (0.0, 1.0, 0.0),
    "blue": (0.0, 0.0, 1.0),
}


def _same_batch(image1: torch.Tensor, image2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Lengthen the shorter batch by repeating its last image."""
    n = max(image1.shape[0], image2.shape[0])

    def lengthen(images: torch.Tensor) -> torch.Tensor:
        extra = n - images.shape[0]
        return images if extra == 0 else torch.cat([images, images[-1:].repeat(extra, 1, 1, 1)])

    return lengthen(image1), lengthen(image2)


def _match_size(image1: torch.Tensor, image2: torch.Tensor, horizontal: bool) -> torch.Tensor:
    """image2 resized, keeping its aspect, to image1's height (side by side) or width."""
    h1, w1 = image1.shape[1:3]
    h2, w2 = image2.shape[1:3]
    aspect = w2 / h2
    if horizontal:
        width, height = int(h1 * aspect), h1  # int(): truncated, as ComfyUI
    else:
        width, height = w1, int(w1 / aspect)
    return _resize_batch(image2, width, height).to(image1.device)


def _pad_centred(images: torch.Tensor, size: int, dim: int, value: float) -> torch.Tensor:
    """Pad `images` along dim 1 (height) or 2 (width) to `size`, the odd pixel after."""
    missing = size - images.shape[dim]
    if missing <= 0:
        return images
    before, after = missing // 2, missing - missing // 2
    pads = (0, 0, before, after) if dim == 2 else (0, 0, 0, 0, before, after)
    return torch.nn.functional.pad(images, pads, mode="constant", value=value)


def _pad_across(image1: torch.Tensor, image2: torch.Tensor, horizontal: bool, value: float
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad the smaller image across the stitch direction so both have the same extent."""
    dim = 1 if horizontal else 2  # side by side: heights must agree; stacked: widths
    size = max(image1.shape[dim], image2.shape[dim])
    return _pad_centred(image1, size, dim, value), _pad_centred(image2, size, dim, value)


def _same_channels(image1: torch.Tensor, image2: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Give the image with fewer channels extra channels of ones (an opaque alpha)."""
    c = max(image1.shape[-1], image2.shape[-1])

    def widen(images: torch.Tensor) -> torch.Tensor:
        extra = c - images.shape[-1]
        if extra == 0:
            return images
        return torch.cat([images, images.new_ones(*images.shape[:-1], extra)], dim=-1)

    return widen(image1), widen(image2)


def _spacing(image1: torch.Tensor, image2: torch.Tensor, width: int, horizontal: bool,
             color: float | tuple[float, ...]) -> torch.Tensor:
    """The gap strip: `width` pixels across, the images' full extent along the seam."""
    batch, channels = image1.shape[0], image1.shape[-1]
    if horizontal:
        shape = (batch, max(image1.shape[1], image2.shape[1]), width, channels)
    else:
        shape = (batch, width, max(image1.shape[2], image2.shape[2]), channels)
    gap = image1.new_zeros(shape)
    rgb = color if isinstance(color, tuple) else (color,) * 3
    for c, value in enumerate(rgb[:channels]):
        gap[..., c] = value
    if channels == 4:
        gap[..., 3] = 1.0  # an opaque gap
    return gap


def image_stitch(ctx, image1, direction: str = "right", match_image_size: bool = True,
                 spacing_width: int = 0, spacing_color: str = "white", image2=None):
    image1 = _image_batch(ctx, image1, "image1")
    if image2 is None:
        return (image1,)
    image2 = _image_batch(ctx, image2, "image2").to(image1.device)
    image1, image2 = _same_batch(image1, image2)
    horizontal = direction in ("left", "right")
    color = SPACING_COLORS[spacing_color]
    if match_image_size:
        image2 = _match_size(image1, image2, horizontal)
    else:
        image1, image2 = _pad_across(image1, image2, horizontal,
                                     color if isinstance(color, float) else 0.0)
    image1, image2 = _same_channels(image1, image2)
    parts = [image2, image1] if direction in ("left", "up") else [image1, image2]
    if spacing_width > 0:
        even = spacing_width + spacing_width % 2  # an odd width is rounded up
        parts.insert(1, _spacing(image1, image2, even, horizontal, color))
    return (torch.cat(parts, dim=2 if horizontal else 1),)
