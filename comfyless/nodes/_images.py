"""Image helpers for the image, dataset and training-output nodes (PIL <-> IMAGE tensors).

Imported only inside `execute` (it imports torch and PIL at the top). IMAGE tensors are
`[B, H, W, 3]` float32 in [0, 1]; a single loaded file is `[1, H, W, 3]`.
"""

from __future__ import annotations

import json
import math
import random
import string
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont, ImageOps, ImageSequence, PngImagePlugin

from ..engine.context import RunContext, write_atomic

# What the dataset nodes list in a folder (train-nodes.md §8); LoadImage takes any file PIL reads.
DATASET_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp")

# -- reading ----------------------------------------------------------------------------------


def open_image(path: Path) -> Image.Image:
    """Open and fully decode `path`; an unreadable file is a ValueError naming it."""
    try:
        img = Image.open(path)
        img.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ValueError(f"cannot read image file {str(path)!r}: {exc}") from exc
    return img


def frame_to_array(frame: Image.Image) -> np.ndarray:
    """One PIL frame -> float32 [H, W, 3] in [0, 1], EXIF orientation applied.

    8-bit modes go through RGB; 16-bit greyscale (I;16*) is scaled by 1/65535 instead of being
    truncated to 8 bits; 32-bit "I"/"F" are scaled by 1/255 as ComfyUI does, then clipped.
    """
    frame = ImageOps.exif_transpose(frame)
    if frame.mode.startswith("I;16"):
        grey = np.asarray(frame).astype(np.float32) / np.float32(65535)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if frame.mode in ("I", "F"):
        grey = np.clip(np.asarray(frame).astype(np.float32) / np.float32(255), 0.0, 1.0)
        return np.repeat(grey[:, :, None], 3, axis=2)
    # uint8 first: np.asarray(img, dtype=float32) converts element by element (10x slower)
    return np.asarray(frame.convert("RGB")).astype(np.float32) / np.float32(255)


def alpha_of(frame: Image.Image) -> np.ndarray | None:
    """The alpha channel of a frame as float32 [H, W] in [0, 1] (EXIF-rotated), or None."""
    frame = ImageOps.exif_transpose(frame)
    if "A" in frame.getbands():
        return np.asarray(frame.getchannel("A")).astype(np.float32) / np.float32(255)
    if frame.mode == "P" and "transparency" in frame.info:
        alpha = frame.convert("RGBA").getchannel("A")
        return np.asarray(alpha).astype(np.float32) / np.float32(255)
    return None


def load_image(path: Path) -> torch.Tensor:
    """First frame of an image file as IMAGE `[1, H, W, 3]`."""
    img = open_image(path)
    return torch.from_numpy(frame_to_array(img)).unsqueeze(0)


def load_image_with_mask(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """LoadImage: every frame of the first frame's size, and MASK = 1 - alpha.

    Frames of another size are skipped (ComfyUI does the same); an image without alpha gets a
    zero 64x64 mask, as in ComfyUI, so graphs that ignore the mask stay cheap.
    """
    img = open_image(path)
    frames = [img] if img.format == "MPO" else ImageSequence.Iterator(img)
    images, masks, size, has_alpha = [], [], None, False
    for frame in frames:
        pixels = frame_to_array(frame)
        if size is None:
            size = pixels.shape[:2]
        elif pixels.shape[:2] != size:
            continue
        alpha = alpha_of(frame)
        has_alpha = has_alpha or alpha is not None
        images.append(torch.from_numpy(pixels))
        masks.append(None if alpha is None else torch.from_numpy(1.0 - alpha))
    if not has_alpha:
        return torch.stack(images), torch.zeros(len(images), 64, 64)
    filled = [m if m is not None else torch.zeros(size) for m in masks]
    return torch.stack(images), torch.stack(filled)


def list_images(folder: Path) -> list[Path]:
    """Image files directly in `folder` (no recursion), sorted by name; hidden files skipped
    (e.g. macOS `._name.png` resource forks, which are not images)."""
    return sorted(
        (p for p in folder.iterdir() if is_dataset_image(p) and p.is_file()),
        key=lambda p: p.name,
    )


def is_dataset_image(path: Path) -> bool:
    """A dataset image by name: a listed extension, not hidden."""
    return path.suffix.lower() in DATASET_EXTENSIONS and not path.name.startswith(".")


def read_caption(image_path: Path) -> str:
    """The `.txt` beside an image (stripped), or "" when there is none."""
    caption = image_path.with_suffix(".txt")
    if not caption.is_file():
        return ""
    try:
        return caption.read_text(encoding="utf-8-sig").strip()  # -sig: drop a BOM
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read caption file {str(caption)!r}: {exc}") from exc


def repeat_count(folder_name: str) -> int:
    """kohya's `<repeats>_<name>` folder convention: the repeat count, else 1."""
    head, sep, _rest = folder_name.partition("_")
    if sep and head.isdigit():
        return int(head)
    return 1


# -- PIL round trips --------------------------------------------------------------------------


def to_pil(image: torch.Tensor) -> Image.Image:
    """One IMAGE sample `[H, W, C]` (C = 1, 3 or 4) -> 8-bit PIL image (values truncated)."""
    array = np.clip(255.0 * image.detach().float().cpu().numpy(), 0, 255).astype(np.uint8)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    return Image.fromarray(array)


def resize(image: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """LANCZOS-resize one sample `[H, W, C]` in float (no 8-bit rounding), clipped to [0, 1]."""
    if image.shape[0] == height and image.shape[1] == width:
        return image
    channels = image.detach().float().cpu().numpy()
    planes = [
        np.asarray(Image.fromarray(channels[:, :, c], mode="F").resize(
            (width, height), Image.Resampling.LANCZOS))
        for c in range(channels.shape[2])
    ]
    return torch.from_numpy(np.clip(np.stack(planes, axis=2), 0.0, 1.0))


def crop(image: torch.Tensor, left: int, top: int, width: int, height: int) -> torch.Tensor:
    """A `[height, width]` window of one sample; parts outside the image are black."""
    out = image.new_zeros(height, width, image.shape[2])
    src = image[max(top, 0):top + height, max(left, 0):left + width]
    out[max(-top, 0):max(-top, 0) + src.shape[0], max(-left, 0):max(-left, 0) + src.shape[1]] = src
    return out


def pad_to(image: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Fit one sample inside `width x height` keeping its aspect, centred on black."""
    h, w = image.shape[:2]
    scale = min(width / w, height / h)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    fitted = resize(image, new_w, new_h)
    return crop(fitted, -((width - new_w) // 2), -((height - new_h) // 2), width, height)


def fit(image: torch.Tensor, width: int, height: int, method: str) -> torch.Tensor:
    """Legacy dataset resize_method: Stretch, Crop (top-left window), Pad (letterbox)."""
    if method == "Stretch":
        return resize(image, width, height)
    if method == "Crop":
        return crop(image, 0, 0, width, height)
    if method == "Pad":
        return pad_to(image, width, height)
    raise ValueError(f"unknown resize_method {method!r}")


def samples(images: torch.Tensor) -> list[torch.Tensor]:
    """The `[H, W, C]` samples of an IMAGE batch (a 3-D tensor is one sample)."""
    if images.ndim == 3:
        return [images]
    if images.ndim != 4:
        raise ValueError(f"expected an IMAGE tensor [B, H, W, C], got shape {tuple(images.shape)}")
    return list(images)


# -- saving ------------------------------------------------------------------------------------

_DATE_FIELDS = {"%year%": "%Y", "%month%": "%m", "%day%": "%d", "%hour%": "%H",
                "%minute%": "%M", "%second%": "%S"}


def expand_prefix(prefix: str, width: int | None = None, height: int | None = None) -> str:
    """ComfyUI's prefix variables: %year% %month% %day% %hour% %minute% %second% and size."""
    now = time.localtime()
    for token, fmt in _DATE_FIELDS.items():
        prefix = prefix.replace(token, time.strftime(fmt, now))
    if width is not None:
        prefix = prefix.replace("%width%", str(width))
    if height is not None:
        prefix = prefix.replace("%height%", str(height))
    return prefix


def png_info(prompt: dict | None, extra_pnginfo: dict | None) -> PngImagePlugin.PngInfo:
    """`prompt` (API JSON) and one text chunk per extra_pnginfo key (normally `workflow`)."""
    info = PngImagePlugin.PngInfo()
    if prompt is not None:
        info.add_text("prompt", json.dumps(prompt))
    for key, value in (extra_pnginfo or {}).items():
        info.add_text(key, json.dumps(value))
    return info


def save_png(path: Path, image: Image.Image, info: PngImagePlugin.PngInfo | None,
             compress_level: int) -> Path:
    """Write a PNG through a temp file + rename (never half-written, never overwriting)."""
    return write_atomic(path, lambda tmp: image.save(
        tmp, format="PNG", pnginfo=info, compress_level=compress_level))


def ui_entry(path: Path, root: Path, kind: str) -> dict[str, str]:
    """The UI dict entry for a saved file: filename, subfolder relative to root, type."""
    sub = path.parent.relative_to(root).as_posix()
    return {"filename": path.name, "subfolder": "" if sub == "." else sub, "type": kind}


def save_images(ctx: RunContext, images: torch.Tensor, prefix: str, *, folder: str,
                compress_level: int, metadata: bool = True) -> list[dict[str, str]]:
    """Save every sample as `<prefix>_<counter:05>_.png` in `folder`; UI entries back."""
    root = ctx.paths.folders(folder)[0]
    kind = "output" if folder == "output" else "temp"
    info = png_info(ctx.prompt, ctx.extra_pnginfo) if metadata else None
    entries = []
    for index, sample in enumerate(samples(images)):
        name = expand_prefix(prefix, sample.shape[1], sample.shape[0])
        name = name.replace("%batch_num%", str(index))
        path = ctx.save_path(name, ".png", folder=folder)
        save_png(path, to_pil(sample), info, compress_level)
        entries.append(ui_entry(path, root, kind))
    return entries


def temp_prefix() -> str:
    """PreviewImage's `ComfyUI_temp_<5 random lowercase letters>` prefix."""
    letters = random.SystemRandom().choices(string.ascii_lowercase, k=5)
    return "ComfyUI_temp_" + "".join(letters)


# -- loss graph --------------------------------------------------------------------------------


def smooth(values: Sequence[float]) -> list[float]:
    """Bias-corrected exponential moving average (as TensorBoard's smoothing).

    The window scales with the run (about a tenth of it), so 10 and 10 000 values both get a
    readable trend; non-finite values are skipped (the previous average is carried).
    """
    window = max(1, len(values) // 10)
    beta = 1.0 - 2.0 / (window + 1)
    out, avg, weight = [], 0.0, 0.0
    for v in values:
        if math.isfinite(v):
            avg = beta * avg + (1.0 - beta) * v
            weight = beta * weight + (1.0 - beta)
        out.append(avg / weight if weight > 0 else float("nan"))
    return out


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _ticks(lo: float, hi: float, count: int = 6) -> list[float]:
    """Round tick values (1, 2 or 5 x 10^k apart) covering [lo, hi], about `count` of them."""
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(lo / step - 1e-9)
    return [k * step for k in range(first, math.floor(hi / step + 1e-9) + 1)]


def _fmt(value: float) -> str:
    if value == 0 or 1e-3 <= abs(value) < 1e5:
        return f"{value:.4f}".rstrip("0").rstrip(".") if abs(value) < 10 else f"{value:.2f}"
    return f"{value:.3g}"


class _Plot:
    """Maps (step, loss) onto pixels of the plot area; the y range is padded if flat."""

    def __init__(self, box: tuple[int, int, int, int], steps: int, lo: float, hi: float):
        if hi - lo < 1e-12 * max(1.0, abs(hi)):
            pad = abs(hi) * 0.1 or 1.0  # a constant curve sits mid-plot
            lo, hi = lo - pad, hi + pad
        else:
            margin = (hi - lo) * 0.05  # keep the extremes off the axes
            lo, hi = lo - margin, hi + margin
        self.box, self.steps, self.lo, self.hi = box, steps, lo, hi

    def x(self, step: float) -> float:
        left, _, right, _ = self.box
        return left + (right - left) * ((step - 1) / (self.steps - 1) if self.steps > 1 else 0.5)

    def y(self, value: float) -> float:
        _, top, _, bottom = self.box
        return bottom - (bottom - top) * (value - self.lo) / (self.hi - self.lo)


def _draw_series(draw: ImageDraw.ImageDraw, plot: _Plot, values: Sequence[float],
                 colour: tuple[int, int, int], width: int) -> None:
    """A polyline through the finite points (gaps at NaN); a single point is a dot."""
    run: list[tuple[float, float]] = []
    for i, v in enumerate([*values, float("nan")]):
        if math.isfinite(v):
            run.append((plot.x(i + 1), plot.y(v)))
            continue
        if len(run) == 1:
            (px, py), r = run[0], width + 2
            draw.ellipse((px - r, py - r, px + r, py + r), fill=colour)
        elif run:
            draw.line(run, fill=colour, width=width, joint="curve")
        run = []


def render_loss_graph(values: Sequence[float], smoothed: Sequence[float],
                      title: str = "Training loss") -> Image.Image:
    """A white 960x540 chart: axes with step and loss ticks, raw curve, smoothed curve, legend."""
    width, height = 960, 540
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    font, small = _font(16), _font(13)
    box = (110, 50, width - 30, height - 70)
    left, top, right, bottom = box
    finite = [v for v in values if math.isfinite(v)]
    draw.text((left, 15), title, fill="black", font=font)
    draw.text(((left + right) // 2 - 20, height - 30), "step", fill="black", font=font)
    draw.text((10, (top + bottom) // 2 - 8), "loss", fill="black", font=font)
    if not finite:
        draw.rectangle(box, outline="black", width=2)
        draw.text((left + 20, top + 20), "no loss values", fill="black", font=font)
        return img
    lo, hi = min(finite), max(finite)
    plot = _Plot(box, len(values), lo, hi)
    for tick in _ticks(plot.lo, plot.hi):
        y = plot.y(tick)
        draw.line((left, y, right, y), fill=(225, 225, 225), width=1)
        draw.text((left - 8, y), _fmt(tick), fill="black", font=small, anchor="rm")
    step_ticks = sorted({1, len(values)} | {round(s) for s in _ticks(1, len(values))
                                              if s >= 1 and s == round(s)})
    if len(step_ticks) > 2 and step_ticks[1] - 1 < len(values) / 20:
        step_ticks.pop(1)  # a round tick right next to step 1 would overlap its label
    if len(step_ticks) > 2 and len(values) - step_ticks[-2] < len(values) / 20:
        step_ticks.pop(-2)
    for step in step_ticks:
        x = plot.x(step)
        draw.line((x, bottom, x, bottom + 5), fill="black", width=1)
        draw.text((x, bottom + 8), str(step), fill="black", font=small, anchor="mt")
    draw.line((left, top, left, bottom), fill="black", width=2)
    draw.line((left, bottom, right, bottom), fill="black", width=2)
    _draw_series(draw, plot, values, (150, 190, 235), 1)
    _draw_series(draw, plot, smoothed, (200, 40, 40), 2)
    for value, label in ((lo, "min"), (hi, "max")):
        step = values.index(value) + 1
        px, py = plot.x(step), plot.y(value)
        draw.ellipse((px - 4, py - 4, px + 4, py + 4), outline=(30, 30, 30), width=2)
        flip = px > right - 120  # near the right edge: label on the left of the point
        anchor = ("r" if flip else "l") + ("t" if label == "min" else "b")
        draw.text((px - 6 if flip else px + 6, py + (4 if label == "min" else -4)),
                  f"{label} {_fmt(value)}", fill=(30, 30, 30), font=small, anchor=anchor)
    legend = (f"loss (min {_fmt(lo)} at step {values.index(lo) + 1}, "
              f"max {_fmt(hi)} at step {values.index(hi) + 1})")
    draw.line((right - 430, 22, right - 410, 22), fill=(150, 190, 235), width=3)
    draw.text((right - 404, 14), legend, fill="black", font=small)
    draw.line((right - 430, 38, right - 410, 38), fill=(200, 40, 40), width=3)
    draw.text((right - 404, 30), "smoothed (moving average)", fill="black", font=small)
    return img


def loss_csv(values: Sequence[float], smoothed: Sequence[float]) -> str:
    """`step,loss,smoothed` lines, steps from 1, full float precision."""
    lines = ["step,loss,smoothed"]
    lines += [f"{i + 1},{v!r},{s!r}" for i, (v, s) in enumerate(zip(values, smoothed, strict=True))]
    return "\n".join(lines) + "\n"


def loss_values(loss: Any) -> list[float]:
    """The float list of a LOSS_MAP (`{"loss": [...]}`); a bare list is accepted too."""
    values = loss.get("loss") if isinstance(loss, dict) else loss
    if not isinstance(values, (list, tuple)):
        raise TypeError(f"expected a LOSS_MAP {{'loss': [float, ...]}}, got {type(loss).__name__}")
    return [float(v) for v in values]
