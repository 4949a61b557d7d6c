"""Image files for the image, dataset and training-output nodes: reading images and captions
from folders, saving PNGs (prefix variables, metadata, UI entries).

IMAGE tensors are `[B, H, W, 3]` float32 in [0, 1]; a single loaded file is `[1, H, W, 3]`.
"""

from __future__ import annotations

import json
import random
import string
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, ImageSequence, PngImagePlugin

from ...files import write_atomic
from .image_ops import samples, to_pil

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


def save_images(ctx, images: torch.Tensor, prefix: str, *, folder: str,
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
