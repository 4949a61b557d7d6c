"""Loading image sets and image-text sets from input/ folders, both eras (train-nodes.md §8, §9).

Fixed against ComfyUI (the interface is the same): files are taken in sorted name order (not
`os.listdir` order), EXIF orientation is applied, 16-bit greyscale keeps its range, an
unreadable image or an empty folder is an error naming it, and legacy captions give exactly
one conditioning entry per image.
"""

from __future__ import annotations

from ...typesys.schema import Input, Node, NodeSchema, Output
from ...typesys.types import CLIP, COMBO, CONDITIONING, IMAGE, INT, STRING
from .common import folder_input, single_value
from .training_data import encode_texts

RESIZE_METHODS = ("None", "Stretch", "Crop", "Pad")


def _resolve_folder(ctx, folder: str, input_name: str = "folder"):
    """The chosen input sub-folder as a Path (must exist, stay inside input/, be a folder)."""
    path = ctx.find("input", folder, input_name=input_name)
    if not path.is_dir():
        raise ValueError(f"input '{input_name}': {folder!r} is a file, expected a folder")
    return path


def _image_files(ctx, folder: str) -> list:
    """Image files directly in the folder, sorted; an empty folder is an error naming it."""
    from ..impl import image_files

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
    from ..impl import image_files

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
    from ..impl import image_files

    loaded: dict = {}
    images = []
    for i, file in enumerate(files):
        if file not in loaded:
            loaded[file] = image_files.load_image(file)
        images.append(loaded[file])
        ctx.progress(i + 1, len(files))
    return images


# -- current era: folder loaders --------------------------------------------------------------


class LoadImageDataSetFromFolder(Node):
    """Every image directly in an input sub-folder, as a list of IMAGE [1, H, W, 3]."""

    schema = NodeSchema(
        "LoadImageDataSetFromFolder",
        display_name="Load Image (from Folder)",
        category="image",
        inputs=(folder_input(),),
        outputs=(Output("images", IMAGE, is_list=True),),
        experimental=True,
    )

    @staticmethod
    def execute(ctx, folder: str):
        return (_load_all(ctx, _image_files(ctx, folder)),)


class LoadImageTextDataSetFromFolder(Node):
    """Images with their `.txt` captions; kohya `<n>_name` sub-folders repeat their images."""

    schema = NodeSchema(
        "LoadImageTextDataSetFromFolder",
        display_name="Load Image-Text (from Folder)",
        category="image",
        inputs=(folder_input(),),
        outputs=(Output("images", IMAGE, is_list=True), Output("texts", STRING, is_list=True)),
        experimental=True,
    )

    @staticmethod
    def execute(ctx, folder: str):
        from ..impl import image_files

        files = _image_text_files(ctx, folder)
        return _load_all(ctx, files), [image_files.read_caption(f) for f in files]


# -- legacy (V1) nodes --------------------------------------------------------------------------


def _legacy_batch(images: list, names: list[str], method: str, width: int = -1,
                  height: int = -1):
    """Stack into one IMAGE batch at a common size (the first image's, unless given)."""
    import torch

    from ..impl import image_ops

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


def _resize_method_input() -> Input:
    return Input("resize_method", COMBO, default="None", choices=RESIZE_METHODS, optional=True)


class LoadImageSetNode(Node):
    """Legacy: chosen input images as one IMAGE batch (never registered by ComfyUI itself)."""

    schema = NodeSchema(
        "LoadImageSetNode",
        display_name="Load Image Dataset",
        category="loaders",
        inputs=(Input("images", COMBO, choices_from="input", image_upload=True),
                _resize_method_input()),
        outputs=(Output("IMAGE", IMAGE),),
        is_input_list=True,
        experimental=True,
    )

    @staticmethod
    def execute(ctx, images: list, resize_method: list | None = None):
        if not images:
            raise ValueError("input 'images': no image files chosen")
        paths = [ctx.find("input", name, input_name="images") for name in images]
        method = single_value(resize_method or ["None"], "resize_method")
        return (_legacy_batch(_load_all(ctx, paths), list(images), method),)


class LoadImageSetFromFolderNode(Node):
    """Legacy: every image of an input sub-folder as one IMAGE batch."""

    schema = NodeSchema(
        "LoadImageSetFromFolderNode",
        display_name="Load Image Dataset from Folder",
        category="loaders",
        inputs=(folder_input("the folder to load images from"), _resize_method_input()),
        outputs=(Output("IMAGE", IMAGE),),
        experimental=True,
    )

    @staticmethod
    def execute(ctx, folder: str, resize_method: str = "None"):
        files = _image_files(ctx, folder)
        return (_legacy_batch(_load_all(ctx, files), [f.name for f in files], resize_method),)


def _legacy_size(value: int, name: str) -> int:
    if value != -1 and value < 1:
        raise ValueError(f"input '{name}': {value} is not a size; use -1 to keep the size")
    return value


class LoadImageTextSetFromFolderNode(Node):
    """Legacy: an input sub-folder's images (one batch) and their encoded captions."""

    schema = NodeSchema(
        "LoadImageTextSetFromFolderNode",
        display_name="Load Image and Text Dataset from Folder",
        category="loaders",
        inputs=(
            folder_input("the folder to load images from"),
            Input("clip", CLIP, tooltip="the CLIP model used to encode the captions"),
            _resize_method_input(),
            Input("width", INT, default=-1, min=-1, max=10000, step=1, optional=True,
                  tooltip="-1 keeps the first image's width"),
            Input("height", INT, default=-1, min=-1, max=10000, step=1, optional=True,
                  tooltip="-1 keeps the first image's height"),
        ),
        outputs=(Output("IMAGE", IMAGE), Output("CONDITIONING", CONDITIONING)),
        experimental=True,
    )

    @staticmethod
    def execute(ctx, folder: str, clip, resize_method: str = "None", width: int = -1,
                height: int = -1):
        import torch

        from ..impl import image_files

        files = _image_text_files(ctx, folder)
        width, height = _legacy_size(width, "width"), _legacy_size(height, "height")
        names = [f.relative_to(_resolve_folder(ctx, folder)).as_posix() for f in files]
        batch = _legacy_batch(_load_all(ctx, files), names, resize_method, width, height)
        with torch.no_grad():
            conds = encode_texts(ctx, clip, [image_files.read_caption(f) for f in files])
        return batch, [entry for cond in conds for entry in cond]


NODES = [
    LoadImageDataSetFromFolder, LoadImageTextDataSetFromFolder,
    LoadImageSetNode, LoadImageSetFromFolderNode, LoadImageTextSetFromFolderNode,
]
