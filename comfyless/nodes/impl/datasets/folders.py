"""Execute of the folder loaders, both eras (nodes/datasets/folders.py)."""

from __future__ import annotations

import torch

from ...datasets.common import single_value
from .. import image_files, image_ops
from .training_data import encode_texts


def _resolve_folder(ctx, folder: str, input_name: str = "folder"):
    """The chosen input sub-folder as a Path (must exist, stay inside input/, be a folder)."""
    path = ctx.find("input", folder, input_name=input_name)
    if not path.is_dir():
        raise ValueError(f"input '{input_name}': {folder!r} is a file, expected a folder")
    return path


def _image_files(ctx, folder: str) -> list:
    """Image files directly in the folder, sorted; an empty folder is an error naming it."""
    path = _resolve_folder(ctx, folder)
    files = image_files.list_images(path)
    if not files:
        raise ValueError(f"input 'folder': no images ({', '.join(image_files.DATASET_EXTENSIONS)}) "
                         f"in {str(path)!r}")
    return files


def _image_text_files(ctx, folder: str) -> list:
    """Top-level images, and the images of each sub-folder (kohya `<n>_name` -> n times).

    Entries are visited in sorted name order; a repeat folder contributes its whole sorted
    list n times (a, b, a, b), so a shuffle later sees every repeat.
    """
    path = _resolve_folder(ctx, folder)
    files = []
    for entry in sorted(path.iterdir(), key=lambda p: p.name):
        if entry.is_dir():
            files += image_files.list_images(entry) * image_files.repeat_count(entry.name)
        elif image_files.is_dataset_image(entry):
            files.append(entry)
    if not files:
        raise ValueError(f"input 'folder': no images ({', '.join(image_files.DATASET_EXTENSIONS)}) "
                         f"in {str(path)!r} or its repeat sub-folders")
    return files


def _load_all(ctx, files: list) -> list:
    """Each file as IMAGE [1, H, W, 3]; a repeated file is read once and its tensor shared
    (kohya repeats), so MakeTrainingDataset can encode it once too."""
    loaded: dict = {}
    images = []
    for i, file in enumerate(files):
        if file not in loaded:
            loaded[file] = image_files.load_image(file)
        images.append(loaded[file])
        ctx.progress(i + 1, len(files))
    return images


def load_image_folder(ctx, folder: str):
    return (_load_all(ctx, _image_files(ctx, folder)),)


def load_image_text_folder(ctx, folder: str):
    files = _image_text_files(ctx, folder)
    return _load_all(ctx, files), [image_files.read_caption(f) for f in files]


def _legacy_batch(images: list, names: list[str], method: str, width: int = -1,
                  height: int = -1):
    """Stack into one IMAGE batch at a common size (the first image's, unless given)."""
    first = images[0][0]
    w = width if width != -1 else first.shape[1]
    h = height if height != -1 else first.shape[0]
    out = []
    for image, name in zip(images, names, strict=True):
        sample = image[0]
        if sample.shape[:2] != (h, w):
            if method == "None":
                raise ValueError(
                    f"input 'resize_method': image {name!r} is {sample.shape[1]}x"
                    f"{sample.shape[0]}, expected {w}x{h}; choose Stretch, Crop or Pad")
            sample = image_ops.fit(sample, w, h, method)
        out.append(sample)
    return torch.stack(out)


def load_image_set(ctx, images: list, resize_method: list | None = None):
    if not images:
        raise ValueError("input 'images': no image files chosen")
    paths = [ctx.find("input", name, input_name="images") for name in images]
    method = single_value(resize_method or ["None"], "resize_method")
    return (_legacy_batch(_load_all(ctx, paths), list(images), method),)


def load_image_set_from_folder(ctx, folder: str, resize_method: str = "None"):
    files = _image_files(ctx, folder)
    return (_legacy_batch(_load_all(ctx, files), [f.name for f in files], resize_method),)


def _legacy_size(value: int, name: str) -> int:
    if value != -1 and value < 1:
        raise ValueError(f"input '{name}': {value} is not a size; use -1 to keep the size")
    return value


def load_image_text_set_from_dir(ctx, folder: str, clip, resize_method: str = "None",
                                 width: int = -1, height: int = -1):
    files = _image_text_files(ctx, folder)
    width, height = _legacy_size(width, "width"), _legacy_size(height, "height")
    names = [f.relative_to(_resolve_folder(ctx, folder)).as_posix() for f in files]
    batch = _legacy_batch(_load_all(ctx, files), names, resize_method, width, height)
    with torch.no_grad():
        conds = encode_texts(ctx, clip, [image_files.read_caption(f) for f in files])
    return batch, [entry for cond in conds for entry in cond]
