"""Execute of the dataset savers (nodes/datasets/saving.py): image lists (and captions) as PNG
folders under output/."""

from __future__ import annotations

from ....files import next_counter, write_atomic
from ....typesys.schema import Result
from ...datasets.common import single_value
from ...datasets.saving import RUN_FILE_TAIL
from .. import image_files, image_ops


def _save_dataset_images(ctx, images: list, texts: list | None, folder_name: str, prefix: str,
                         mode: str) -> dict:
    """PNGs (and .txt captions) into output/<folder_name>/; UI entries of the images."""
    folder = ctx.output_dir(folder_name, input_name="folder_name")
    root = ctx.paths.folders("output")[0]
    # relative to output/<folder_name>/ and kept inside it (write_atomic makes sub-folders)
    ctx.output_dir(prefix, within=folder, input_name="filename_prefix", create=False)
    pixels = [s for batch in images for s in image_ops.samples(batch)]
    if texts is not None and len(texts) != len(pixels):
        raise ValueError(f"inputs 'images' and 'texts': {len(pixels)} images but {len(texts)} "
                         "texts; they must pair one to one")
    stem = prefix
    if mode == "increment":  # a new run number: `<prefix>_<run:05>_<index:05>.png`
        stem = f"{prefix}_{next_counter(folder, prefix, RUN_FILE_TAIL):05d}"
    entries = []
    for i, sample in enumerate(pixels):
        path = folder / f"{stem}_{i:05d}.png"
        image_files.save_png(path, image_ops.to_pil(sample), None, compress_level=4)
        entries.append(image_files.ui_entry(path, root, "output"))
        if texts is not None:
            text = str(texts[i])
            write_atomic(path.with_suffix(".txt"),
                         lambda tmp, t=text: tmp.write_text(t, encoding="utf-8"))
    return {"images": entries}


def save_image_dataset(ctx, images: list, folder_name: list, filename_prefix: list,
                       mode: list) -> Result:
    """SaveImageDataSetToFolder."""
    ui = _save_dataset_images(
        ctx, images, None, single_value(folder_name, "folder_name"),
        single_value(filename_prefix, "filename_prefix"), single_value(mode, "mode"))
    return Result((), ui)


def save_image_text_dataset(ctx, images: list, texts: list | None = None, *, folder_name: list,
                            filename_prefix: list, mode: list) -> Result:
    """SaveImageTextDataSetToFolder."""
    ui = _save_dataset_images(
        ctx, images, texts, single_value(folder_name, "folder_name"),
        single_value(filename_prefix, "filename_prefix"), single_value(mode, "mode"))
    return Result((), ui)
