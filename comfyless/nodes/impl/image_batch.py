"""Execute of the nodes in nodes/image_batch.py.

Spec notes (ComfyUI's rules, in our words):
- BatchImagesNode: the widest channel count wins; a narrower image gets ONE more channel of
  1.0 appended (3 -> 4: an opaque alpha). Every image whose [H, W, C] differs from the first
  one's is resized to the first one's size with common_upscale "bilinear" + "center" crop.
  The batches are then concatenated in input order (image0, image1, ...).
- ResizeImageMaskNode: an IMAGE is [B, H, W, C], a MASK [B, H, W] (4 dims = image). Sizes:
  "scale by multiplier" round(side * m); "scale dimensions" as ImageScale (0 keeps the aspect
  from the other side, both 0 = unchanged, crop as chosen); "scale width"/"scale height" the
  same with the other side 0 and no crop; "scale longer/shorter dimension" sets that side and
  rounds the other by the aspect (square: both); "scale total pixels" scale =
  sqrt(int(mp * 1024^2) / (w * h)), sides rounded; "match size" the reference's [H, W] with
  the chosen crop; "scale to multiple" (multiple > 1): target = sides floored to the multiple
  (unchanged if a target side is 0 or both already fit); scale to cover the target (the side
  with the larger factor hits its target exactly, the other is ceil(side * factor), at least
  its target), then cut the centre target window ((scaled - target) // 2 from the top/left).
  Only "scale dimensions" and "match size" crop before resizing; the rest use no crop.
- ImageScaleToMaxDimension: the longer side becomes largest_size, the other round(side *
  largest / longer); a square image becomes largest x largest; no crop.
- LoadImageMask: the file's first frame, EXIF-rotated; anything not RGBA is converted to RGBA
  (32-bit "I" images scaled by 1/255 first, so an image without alpha has alpha 1 -> mask 0);
  the channel / 255, and for "alpha" 1 - that (alpha 1 = opaque = not masked). [1, H, W].
- ComfyNumberConvert: booleans 1/0; INT -> float(v), v; FLOAT -> v, int(v) (toward zero);
  STRING stripped: empty is an error, else float(text) (non-finite refused) and int(text)
  when it is an integer literal (exact, any size), else int(float value).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image, ImageOps

from ..image_batch import BATCH_PREFIX
from .image_edit import common_upscale, side_from_aspect, upscale_images
from .image_files import open_image
from .image_ops import describe


def _fail(ctx, input_name: str, message: str):
    raise ValueError(f"node {ctx.node_id} ({ctx.class_type}) input '{input_name}': {message}")


# -- BatchImagesNode --------------------------------------------------------------------------


def batch_images(images: list[torch.Tensor]) -> torch.Tensor:
    """ComfyUI's batch_images on IMAGE tensors (see the module note)."""
    widest = max(image.shape[-1] for image in images)
    images = [_pad_alpha(image) if image.shape[-1] < widest else image for image in images]
    first = images[0].shape
    resized = [image if image.shape[1:] == first[1:] else
               upscale_images(image, first[2], first[1], "bilinear", "center")
               for image in images]
    return torch.cat(resized, dim=0)


def _pad_alpha(image: torch.Tensor) -> torch.Tensor:
    """One more channel of 1.0 at the end of an IMAGE (one, however many it lacks: ComfyUI)."""
    return torch.nn.functional.pad(image, (0, 1), mode="constant", value=1.0)


def batch_images_node(ctx, **images):
    connected = sorted(((int(name[len(BATCH_PREFIX):]), name, image)
                        for name, image in images.items()
                        if name.startswith(BATCH_PREFIX) and image is not None))
    for _, name, image in connected:
        if not isinstance(image, torch.Tensor) or image.ndim != 4:
            _fail(ctx, name, f"expected an IMAGE [B, H, W, C], got {describe(image)}")
    if not connected:
        _fail(ctx, f"{BATCH_PREFIX}0", "expected at least one connected image")
    return (batch_images([image for _, _, image in connected]),)


# -- ResizeImageMaskNode ----------------------------------------------------------------------


def _resize(t: torch.Tensor, width: int, height: int, method: str, crop: str = "disabled"
            ) -> torch.Tensor:
    """common_upscale on an IMAGE [B, H, W, C] or a MASK [B, H, W]."""
    if t.ndim == 4:
        return upscale_images(t, width, height, method, crop)
    return common_upscale(t.unsqueeze(1), width, height, method, crop).squeeze(1)


def _longer(h: int, w: int, size: int) -> tuple[int, int]:
    """(width, height) with the longer side `size` (square: both)."""
    if h > w:
        return round(w / h * size), size
    if w > h:
        return size, round(h / w * size)
    return size, size


def _shorter(h: int, w: int, size: int) -> tuple[int, int]:
    """(width, height) with the shorter side `size` (square: both)."""
    if h < w:
        return round(w / h * size), size
    if w < h:
        return size, round(h / w * size)
    return size, size


def scale_to_multiple(t: torch.Tensor, multiple: int, method: str) -> torch.Tensor:
    """Cover the sides floored to `multiple`, then cut the centre window (module note)."""
    if multiple <= 1:
        return t
    h, w = t.shape[1], t.shape[2]
    target_w, target_h = w // multiple * multiple, h // multiple * multiple
    if target_w == 0 or target_h == 0 or (target_w == w and target_h == h):
        return t
    factor_w, factor_h = target_w / w, target_h / h
    if factor_w >= factor_h:
        scaled_w, scaled_h = target_w, max(target_h, math.ceil(h * factor_w))
    else:
        scaled_w, scaled_h = max(target_w, math.ceil(w * factor_h)), target_h
    scaled = _resize(t, scaled_w, scaled_h, method)
    x0, y0 = (scaled_w - target_w) // 2, (scaled_h - target_h) // 2
    return scaled[:, y0:y0 + target_h, x0:x0 + target_w]


def _image_or_mask(ctx, value, input_name: str) -> torch.Tensor:
    if not isinstance(value, torch.Tensor) or value.ndim not in (2, 3, 4):
        _fail(ctx, input_name, f"expected an IMAGE [B, H, W, C] or a MASK [B, H, W], got "
                               f"{describe(value)}")
    return value.unsqueeze(0) if value.ndim == 2 else value


def _positive(ctx, width: int, height: int, input_name: str) -> None:
    if width < 1 or height < 1:
        _fail(ctx, input_name, f"gives a {width} x {height} result; expected sides of at "
                               f"least 1")


def _target_size(ctx, t: torch.Tensor, resize_type: str, sub: dict) -> tuple[int, int, str]:
    """(width, height, crop) for every option but "scale to multiple"."""
    h, w = t.shape[1], t.shape[2]
    if resize_type == "scale by multiplier":
        return round(w * sub["multiplier"]), round(h * sub["multiplier"]), "disabled"
    if resize_type in ("scale dimensions", "scale width", "scale height"):
        width = sub["width"] if resize_type != "scale height" else 0
        height = sub["height"] if resize_type != "scale width" else 0
        crop = sub["crop"] if resize_type == "scale dimensions" else "disabled"
        if width == 0 and height == 0:
            return w, h, "unchanged"
        return (*side_from_aspect(h, w, width, height), crop)
    if resize_type == "scale longer dimension":
        return (*_longer(h, w, sub["longer_size"]), "disabled")
    if resize_type == "scale shorter dimension":
        return (*_shorter(h, w, sub["shorter_size"]), "disabled")
    if resize_type == "scale total pixels":
        scale = math.sqrt(int(sub["megapixels"] * 1024 * 1024) / (w * h))
        return round(w * scale), round(h * scale), "disabled"
    if resize_type == "match size":
        match = sub["match"]
        if match is None:
            _fail(ctx, "resize_type.match", "expected an IMAGE or MASK to match, got nothing")
        match = _image_or_mask(ctx, match, "resize_type.match")
        return match.shape[2], match.shape[1], sub["crop"]
    _fail(ctx, "resize_type", f"unknown option {resize_type!r}")
    raise AssertionError  # unreachable: _fail raised


_SUB_DEFAULTS = {"width": 512, "height": 512, "crop": "center", "multiplier": 1.0,
                 "longer_size": 512, "shorter_size": 512, "megapixels": 1.0, "match": None,
                 "multiple": 8}


def resize_image_mask(ctx, input, resize_type: str = "scale dimensions",
                      scale_method: str = "area", **sub_inputs):
    t = _image_or_mask(ctx, input, "input")
    sub = dict(_SUB_DEFAULTS)
    sub.update({k.removeprefix("resize_type."): v for k, v in sub_inputs.items()
                if v is not None})
    if resize_type == "scale to multiple":
        return (scale_to_multiple(t, sub["multiple"], scale_method),)
    width, height, crop = _target_size(ctx, t, resize_type, sub)
    if crop == "unchanged":
        return (t,)
    _positive(ctx, width, height, "resize_type")
    return (_resize(t, width, height, scale_method, crop),)


# -- ImageScaleToMaxDimension -----------------------------------------------------------------


def image_scale_to_max_dimension(ctx, image, upscale_method: str, largest_size: int = 512):
    if not isinstance(image, torch.Tensor) or image.ndim != 4:
        _fail(ctx, "image", f"expected an IMAGE [B, H, W, C], got {describe(image)}")
    width, height = _longer(image.shape[1], image.shape[2], largest_size)
    _positive(ctx, width, height, "largest_size")
    return (_resize(image, width, height, upscale_method),)


# -- LoadImageMask ----------------------------------------------------------------------------


def mask_from_file(path, channel: str) -> torch.Tensor:
    """One channel of the image file as MASK [1, H, W] (module note)."""
    img = ImageOps.exif_transpose(open_image(path))
    if img.getbands() != ("R", "G", "B", "A"):
        if img.mode == "I":
            img = img.point(lambda v: v * (1 / 255))
        img = img.convert("RGBA")
    band = channel[0].upper()
    mask = np.asarray(img.getchannel(band)).astype(np.float32) / np.float32(255)
    if band == "A":
        mask = 1.0 - mask
    return torch.from_numpy(mask).unsqueeze(0)


def load_image_mask(ctx, image: str, channel: str = "alpha"):
    path = ctx.find("input", image, input_name="image")
    if not path.is_file():
        _fail(ctx, "image", f"{image!r} is a folder, expected an image file")
    try:
        return (mask_from_file(path, channel),)
    except (ValueError, Image.DecompressionBombError) as exc:
        _fail(ctx, "image", str(exc))


# -- ComfyNumberConvert -----------------------------------------------------------------------


def number_convert(ctx, value):
    if isinstance(value, bool):
        return (1.0 if value else 0.0, int(value))
    if isinstance(value, int):
        return (float(value), value)
    if isinstance(value, float):
        if not math.isfinite(value):
            _fail(ctx, "value", f"cannot convert the non-finite value {value} to a number")
        return (value, int(value))
    if isinstance(value, str):
        text = value.strip()
        if not text:
            _fail(ctx, "value", "cannot convert an empty string to a number")
        try:
            as_float = float(text)
        except ValueError:
            _fail(ctx, "value", f"cannot convert the string {value!r} to a number")
        if not math.isfinite(as_float):
            _fail(ctx, "value", f"cannot convert the non-finite value {as_float} to a number")
        try:
            as_int = int(text)
        except ValueError:
            as_int = int(as_float)
        return (as_float, as_int)
    _fail(ctx, "value", f"expected an INT, FLOAT, STRING or BOOLEAN, got {type(value).__name__}")
