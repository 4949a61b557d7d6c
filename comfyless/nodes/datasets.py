"""Dataset nodes, both eras (train-nodes.md §8, §9): folders of images and captions in,
lists of IMAGE / STRING / LATENT / CONDITIONING out.

Fixed against ComfyUI (the interface is the same): files are taken in sorted name order (not
`os.listdir` order), EXIF orientation is applied, 16-bit greyscale keeps its range, an
unreadable image or an empty folder is an error naming it, and legacy captions give exactly
one conditioning entry per image.

List semantics (execution-semantics.md §3.2): `Output(is_list=True)` outputs emit lists;
`is_input_list` nodes get every input as a list; the other image/text nodes here run once per
list item.
"""

from __future__ import annotations

from typing import Any

from ..typesys.schema import Input, Node, NodeSchema, Output
from ..typesys.types import CLIP, COMBO, CONDITIONING, FLOAT, IMAGE, INT, LATENT, STRING, VAE

SEED_MAX = 2**64 - 1
RESIZE_METHODS = ("None", "Stretch", "Crop", "Pad")


def _with_signature(execute, inputs: tuple[Input, ...]):
    """Give a generic `execute(ctx, **kw)` the signature of its inputs (for introspection)."""
    import inspect

    params = [inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    params += [inspect.Parameter(i.name, inspect.Parameter.KEYWORD_ONLY) for i in inputs]
    execute.__signature__ = inspect.Signature(params)
    return staticmethod(execute)


def _folder_input(tooltip: str = "a sub-folder of input/") -> Input:
    return Input("folder", COMBO, choices_from="input", choices_dirs_only=True, tooltip=tooltip)


def _seed_input() -> Input:
    return Input("seed", INT, default=0, min=0, max=SEED_MAX, control_after_generate=True)


def _resolve_folder(ctx, folder: str, input_name: str = "folder"):
    """The chosen input sub-folder as a Path (must exist, stay inside input/, be a folder)."""
    path = ctx.find("input", folder, input_name=input_name)
    if not path.is_dir():
        raise ValueError(f"input '{input_name}': {folder!r} is a file, expected a folder")
    return path


def _image_files(ctx, folder: str) -> list:
    """Image files directly in the folder, sorted; an empty folder is an error naming it."""
    from . import _images

    path = _resolve_folder(ctx, folder)
    files = _images.list_images(path)
    if not files:
        raise ValueError(f"input 'folder': no images ({', '.join(_images.DATASET_EXTENSIONS)}) "
                         f"in {str(path)!r}")
    return files


def _image_text_files(ctx, folder: str) -> list:
    """Top-level images, and the images of each sub-folder (kohya `<n>_name` -> n times).

    Entries are visited in sorted name order; a repeat folder contributes its whole sorted
    list n times (a, b, a, b), so a shuffle later sees every repeat.
    """
    from . import _images

    path = _resolve_folder(ctx, folder)
    files = []
    for entry in sorted(path.iterdir(), key=lambda p: p.name):
        if entry.is_dir():
            files += _images.list_images(entry) * _images.repeat_count(entry.name)
        elif _images.is_dataset_image(entry):
            files.append(entry)
    if not files:
        raise ValueError(f"input 'folder': no images ({', '.join(_images.DATASET_EXTENSIONS)}) "
                         f"in {str(path)!r} or its repeat sub-folders")
    return files


def _load_all(ctx, files: list) -> list:
    """Each file as IMAGE [1, H, W, 3]; a repeated file is read once and its tensor shared
    (kohya repeats), so MakeTrainingDataset can encode it once too."""
    from . import _images

    loaded: dict = {}
    images = []
    for i, file in enumerate(files):
        if file not in loaded:
            loaded[file] = _images.load_image(file)
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
        inputs=(_folder_input(),),
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
        inputs=(_folder_input(),),
        outputs=(Output("images", IMAGE, is_list=True), Output("texts", STRING, is_list=True)),
        experimental=True,
    )

    @staticmethod
    def execute(ctx, folder: str):
        from . import _images

        files = _image_text_files(ctx, folder)
        return _load_all(ctx, files), [_images.read_caption(f) for f in files]


# -- current era: per-image transforms (run once per list item) ------------------------------


def _per_sample(images, transform) -> Any:
    """Apply `transform([H, W, C]) -> [h, w, C]` to every sample of an IMAGE batch."""
    import torch

    from . import _images

    return torch.stack([transform(s) for s in _images.samples(images)])


def _image_node(class_type: str, display: str, category: str, params: tuple[Input, ...],
                transform, *, deprecated: bool = False) -> type[Node]:
    """A per-item image node: `images` plus `params` in, transformed `images` out."""

    class ImageNode(Node):
        schema = NodeSchema(
            class_type,
            display_name=display,
            category=category,
            inputs=(Input("images", IMAGE), *params),
            outputs=(Output("images", IMAGE),),
            experimental=True,
            deprecated=deprecated,
        )

        def execute(ctx, images, **kw):
            return (transform(images, **kw),)

        execute = _with_signature(execute, schema.inputs)

    ImageNode.__name__ = ImageNode.__qualname__ = class_type
    ImageNode.__doc__ = display
    return ImageNode


def _resize_edge(images, edge: int, longer: bool):
    from . import _images

    def one(s):
        h, w = s.shape[:2]
        scale = edge / (max(h, w) if longer else min(h, w))
        return _images.resize(s, max(1, int(w * scale)), max(1, int(h * scale)))

    return _per_sample(images, one)


def _center_crop(images, width: int, height: int):
    from . import _images

    def one(s):
        h, w = s.shape[:2]
        cw, ch = min(width, w), min(height, h)
        return _images.crop(s, (w - cw) // 2, (h - ch) // 2, cw, ch)

    return _per_sample(images, one)


def _random_crop(images, width: int, height: int, seed: int):
    """The RNG restarts from `seed` for every image, so equal-size images share offsets."""
    import numpy as np

    from . import _images

    def one(s):
        h, w = s.shape[:2]
        cw, ch = min(width, w), min(height, h)
        rng = np.random.RandomState(seed % (2**32 - 1))
        left = int(rng.randint(0, w - cw + 1))
        top = int(rng.randint(0, h - ch + 1))
        return _images.crop(s, left, top, cw, ch)

    return _per_sample(images, one)


def _size(name: str, default: int) -> Input:
    return Input(name, INT, default=default, min=1, max=8192)


ResizeImagesByShorterEdge = _image_node(
    "ResizeImagesByShorterEdge", "Resize Images by Shorter Edge", "image/transform",
    (_size("shorter_edge", 512),),
    lambda images, shorter_edge: _resize_edge(images, shorter_edge, longer=False),
    deprecated=True,
)
ResizeImagesByLongerEdge = _image_node(
    "ResizeImagesByLongerEdge", "Resize Images by Longer Edge", "image/transform",
    (_size("longer_edge", 1024),),
    lambda images, longer_edge: _resize_edge(images, longer_edge, longer=True),
    deprecated=True,
)
CenterCropImages = _image_node(
    "CenterCropImages", "Crop Image (Center)", "image/transform",
    (_size("width", 512), _size("height", 512)), _center_crop,
)
RandomCropImages = _image_node(
    "RandomCropImages", "Crop Image (Random)", "image/transform",
    (_size("width", 512), _size("height", 512), _seed_input()), _random_crop,
)
NormalizeImages = _image_node(
    "NormalizeImages", "Normalize Image Colors", "image/color",
    (Input("mean", FLOAT, default=0.5, min=0.0, max=1.0, step=0.01),
     Input("std", FLOAT, default=0.5, min=0.001, max=1.0, step=0.01)),
    lambda images, mean, std: (images - mean) / std,
)
AdjustBrightness = _image_node(
    "AdjustBrightness", "Adjust Brightness", "image/adjustments",
    (Input("factor", FLOAT, default=1.0, min=0.0, max=2.0, step=0.01),),
    lambda images, factor: (images * factor).clamp(0.0, 1.0),
)
AdjustContrast = _image_node(
    "AdjustContrast", "Adjust Contrast", "image/adjustments",
    (Input("factor", FLOAT, default=1.0, min=0.0, max=2.0, step=0.01),),
    lambda images, factor: ((images - 0.5) * factor + 0.5).clamp(0.0, 1.0),
)


# -- current era: text transforms (run once per list item) -----------------------------------


def _text_node(class_type: str, display: str, params: tuple[Input, ...], transform,
               *, deprecated: bool = True) -> type[Node]:
    """A per-item text node: `texts` plus `params` in, transformed `texts` out."""

    class TextNode(Node):
        schema = NodeSchema(
            class_type,
            display_name=display,
            category="text",
            inputs=(Input("texts", STRING, force_input=True), *params),
            outputs=(Output("texts", STRING),),
            experimental=True,
            deprecated=deprecated,
        )

        def execute(ctx, texts: str, **kw):
            return (transform(texts, **kw),)

        execute = _with_signature(execute, schema.inputs)

    TextNode.__name__ = TextNode.__qualname__ = class_type
    TextNode.__doc__ = display
    return TextNode


TextToLowercase = _text_node("TextToLowercase", "Text to Lowercase", (), str.lower)
TextToUppercase = _text_node("TextToUppercase", "Text to Uppercase", (), str.upper)
TruncateText = _text_node(
    "TruncateText", "Truncate Text",
    (Input("max_length", INT, default=77, min=1, max=10000),),
    lambda texts, max_length: texts[:max_length], deprecated=False,
)
AddTextPrefix = _text_node(
    "AddTextPrefix", "Add Text Prefix", (Input("prefix", STRING, default=""),),
    lambda texts, prefix: prefix + texts,
)
AddTextSuffix = _text_node(
    "AddTextSuffix", "Add Text Suffix", (Input("suffix", STRING, default=""),),
    lambda texts, suffix: texts + suffix,
)
ReplaceText = _text_node(
    "ReplaceText", "Replace Text",
    (Input("find", STRING, default=""), Input("replace", STRING, default="")),
    lambda texts, find, replace: texts.replace(find, replace) if find else texts,
)
StripWhitespace = _text_node("StripWhitespace", "Strip Whitespace", (), str.strip)


# -- current era: whole-list nodes ------------------------------------------------------------


def _first(values: list, name: str) -> Any:
    """The single value of a widget/socket input of an input-list node."""
    if not values:
        raise ValueError(f"input '{name}': no value")
    return values[0]


def _permutation(seed: int, n: int) -> list[int]:
    import numpy as np

    return [int(i) for i in np.random.RandomState(seed % (2**32 - 1)).permutation(n)]


class ShuffleDataset(Node):
    """The image list in a seeded random order."""

    schema = NodeSchema(
        "ShuffleDataset",
        display_name="Shuffle Images List",
        category="image/batch",
        inputs=(Input("images", IMAGE), _seed_input()),
        outputs=(Output("images", IMAGE, is_list=True),),
        is_input_list=True,
        experimental=True,
    )

    @staticmethod
    def execute(ctx, images: list, seed: list):
        order = _permutation(_first(seed, "seed"), len(images))
        return ([images[i] for i in order],)


class ShuffleImageTextDataset(Node):
    """Images and texts shuffled with one seeded permutation (pairs stay together)."""

    schema = NodeSchema(
        "ShuffleImageTextDataset",
        display_name="Shuffle Pairs of Image-Text",
        category="image/batch",
        inputs=(Input("images", IMAGE), Input("texts", STRING, force_input=True), _seed_input()),
        outputs=(Output("images", IMAGE, is_list=True), Output("texts", STRING, is_list=True)),
        is_input_list=True,
        experimental=True,
    )

    @staticmethod
    def execute(ctx, images: list, texts: list, seed: list):
        if len(images) != len(texts):
            raise ValueError(f"inputs 'images' and 'texts': {len(images)} images but "
                             f"{len(texts)} texts; they must pair one to one")
        order = _permutation(_first(seed, "seed"), len(images))
        return [images[i] for i in order], [texts[i] for i in order]


def _average_hash(sample) -> int:
    """64-bit average hash of one sample: 8x8 greyscale, bit = pixel above the mean."""
    import numpy as np
    from PIL import Image

    from . import _images

    small = _images.to_pil(sample).convert("L").resize((8, 8), Image.Resampling.LANCZOS)
    pixels = np.asarray(small, dtype=np.float32).ravel()
    return sum(1 << i for i, bit in enumerate(pixels > pixels.mean()) if bit)


class ImageDeduplication(Node):
    """Drop images whose 8x8 average hash is at least `similarity_threshold` alike a kept one."""

    schema = NodeSchema(
        "ImageDeduplication",
        display_name="Deduplicate Images",
        category="image/batch",
        inputs=(Input("images", IMAGE),
                Input("similarity_threshold", FLOAT, default=0.95, min=0.0, max=1.0, step=0.01)),
        outputs=(Output("images", IMAGE, is_list=True),),
        is_input_list=True,
        experimental=True,
    )

    @staticmethod
    def execute(ctx, images: list, similarity_threshold: list):
        from . import _images

        threshold = _first(similarity_threshold, "similarity_threshold")
        kept, hashes = [], []
        for batch in images:
            for sample in _images.samples(batch):
                h = _average_hash(sample)
                if all(1 - bin(h ^ k).count("1") / 64 < threshold for k in hashes):
                    kept.append(sample.unsqueeze(0))
                    hashes.append(h)
        return (kept,)


class ImageGrid(Node):
    """Every image resized into a cell of a grid on black, `columns` cells wide."""

    schema = NodeSchema(
        "ImageGrid",
        display_name="Make Image Grid",
        category="image/batch",
        inputs=(
            Input("images", IMAGE),
            Input("columns", INT, default=4, min=1, max=20),
            Input("cell_width", INT, default=256, min=32, max=2048),
            Input("cell_height", INT, default=256, min=32, max=2048),
            Input("padding", INT, default=4, min=0, max=50),
        ),
        outputs=(Output("image", IMAGE),),
        is_input_list=True,
        experimental=True,
    )

    @staticmethod
    def execute(ctx, images: list, columns: list, cell_width: list, cell_height: list,
                padding: list):
        import torch

        from . import _images

        cols, cw, ch, pad = (_first(v, n) for v, n in (
            (columns, "columns"), (cell_width, "cell_width"), (cell_height, "cell_height"),
            (padding, "padding")))
        cells = [s for batch in images for s in _images.samples(batch)]
        if not cells:
            raise ValueError("input 'images': no images to put in a grid")
        rows = -(-len(cells) // cols)
        grid = torch.zeros(rows * ch + (rows - 1) * pad, cols * cw + (cols - 1) * pad, 3)
        for i, cell in enumerate(cells):
            top, left = (i // cols) * (ch + pad), (i % cols) * (cw + pad)
            grid[top:top + ch, left:left + cw] = _images.resize(cell[..., :3], cw, ch)
        return (grid.unsqueeze(0),)


def _merge_node(class_type: str, display: str, io) -> type[Node]:
    """A pass-through list node (the executor already concatenated the inputs' lists)."""
    name = "images" if io is IMAGE else "texts"

    class Merge(Node):
        schema = NodeSchema(
            class_type, display_name=display, category="image/batch" if io is IMAGE else "text",
            inputs=(Input(name, io, force_input=io is STRING),),
            outputs=(Output(name, io, is_list=True),),
            is_input_list=True, experimental=True, deprecated=True,
        )

        def execute(ctx, **kw):
            return (list(kw[name]),)

        execute = _with_signature(execute, schema.inputs)

    Merge.__name__ = Merge.__qualname__ = class_type
    Merge.__doc__ = display
    return Merge


MergeImageLists = _merge_node("MergeImageLists", "Merge Image Lists", IMAGE)
MergeTextLists = _merge_node("MergeTextLists", "Merge Text Lists", STRING)


SAVE_MODES = ("overwrite", "increment")


def _save_dataset_images(ctx, images: list, texts: list | None, folder_name: str, prefix: str,
                         mode: str) -> dict:
    """PNGs (and .txt captions) into output/<folder_name>/; UI entries of the images."""
    import re

    from ..engine.context import write_atomic
    from ..engine.paths import check_relative_name, ensure_inside
    from . import _images

    for value, name in ((folder_name, "folder_name"), (prefix, "filename_prefix")):
        check_relative_name(value, node_id=ctx.node_id, input_name=name)
    root = ctx.paths.folders("output")[0]
    folder = root / folder_name
    folder.mkdir(parents=True, exist_ok=True)
    ensure_inside(folder, root, node_id=ctx.node_id, input_name="folder_name")
    pixels = [s for batch in images for s in _images.samples(batch)]
    if texts is not None and len(texts) != len(pixels):
        raise ValueError(f"inputs 'images' and 'texts': {len(pixels)} images but {len(texts)} "
                         "texts; they must pair one to one")
    stem = prefix
    if mode == "increment":  # a new run number: `<prefix>_<run:05>_<index:05>.png`
        pattern = re.compile(re.escape(prefix) + r"_(\d+)_\d+\.png$")
        used = [int(m.group(1)) for p in folder.iterdir() if (m := pattern.match(p.name))]
        stem = f"{prefix}_{max(used, default=0) + 1:05d}"
    entries = []
    for i, sample in enumerate(pixels):
        path = folder / f"{stem}_{i:05d}.png"
        _images.save_png(path, _images.to_pil(sample), None, compress_level=4)
        entries.append(_images.ui_entry(path, root, "output"))
        if texts is not None:
            text = str(texts[i])
            write_atomic(path.with_suffix(".txt"),
                         lambda tmp, t=text: tmp.write_text(t, encoding="utf-8"))
    return {"images": entries}


def _save_folder_inputs() -> tuple[Input, ...]:
    return (
        Input("folder_name", STRING, default="dataset", tooltip="sub-folder of output/"),
        Input("filename_prefix", STRING, default="image"),
        Input("mode", COMBO, default="overwrite", choices=SAVE_MODES,
              tooltip="overwrite: <prefix>_<index>.png; increment: a new run number each save"),
    )


class SaveImageDataSetToFolder(Node):
    """Save an image list as PNGs in output/<folder_name>/."""

    schema = NodeSchema(
        "SaveImageDataSetToFolder",
        display_name="Save Image (to Folder)",
        category="image",
        inputs=(Input("images", IMAGE), *_save_folder_inputs()),
        output_node=True,
        is_input_list=True,
        experimental=True,
        deprecated=True,
    )

    @staticmethod
    def execute(ctx, images: list, folder_name: list, filename_prefix: list, mode: list):
        from ..typesys.schema import Result

        ui = _save_dataset_images(ctx, images, None, _first(folder_name, "folder_name"),
                                  _first(filename_prefix, "filename_prefix"), _first(mode, "mode"))
        return Result((), ui)


class SaveImageTextDataSetToFolder(Node):
    """Save an image list as PNGs with `.txt` captions in output/<folder_name>/."""

    schema = NodeSchema(
        "SaveImageTextDataSetToFolder",
        display_name="Save Image-Text (to Folder)",
        category="image",
        inputs=(Input("images", IMAGE),
                Input("texts", STRING, optional=True, force_input=True),
                *_save_folder_inputs()),
        output_node=True,
        is_input_list=True,
        experimental=True,
    )

    @staticmethod
    def execute(ctx, images: list, texts: list | None = None, *, folder_name: list,
                filename_prefix: list, mode: list):
        from ..typesys.schema import Result

        ui = _save_dataset_images(ctx, images, texts, _first(folder_name, "folder_name"),
                                  _first(filename_prefix, "filename_prefix"), _first(mode, "mode"))
        return Result((), ui)


# -- current era: training data ---------------------------------------------------------------


def encode_texts(ctx, clip, texts: list[str]) -> list[list]:
    """One CONDITIONING per text (`[[cond, {"pooled_output": pooled}]]`); repeats encoded once."""
    done: dict[str, list] = {}
    out = []
    for i, text in enumerate(texts):
        if text not in done:
            tokens = clip.tokenize(text)
            cond, pooled = clip.encode_from_tokens(tokens, return_pooled=True)
            done[text] = [[cond, {"pooled_output": pooled}]]
        out.append(done[text])
        ctx.progress(i + 1, len(texts), stage="text")
    return out


def _pair_texts(texts: list | None, count: int) -> list[str]:
    """Missing/empty -> "" for all; one text -> repeated; otherwise exactly one per image."""
    texts = [t for t in (texts or []) if t is not None]
    if not texts:
        return [""] * count
    if len(texts) == 1:
        return texts * count
    if len(texts) != count:
        raise ValueError(f"inputs 'images' and 'texts': {count} images but {len(texts)} "
                         "texts; give one text per image, or a single text for all")
    return [str(t) for t in texts]


class MakeTrainingDataset(Node):
    """VAE-encode every image and CLIP-encode its caption: parallel LATENT / CONDITIONING lists."""

    schema = NodeSchema(
        "MakeTrainingDataset",
        display_name="Make Training Dataset",
        category="model/training",
        inputs=(
            Input("images", IMAGE, tooltip="one sample per list item (batches are split)"),
            Input("vae", VAE),
            Input("clip", CLIP),
            Input("texts", STRING, optional=True, force_input=True,
                  tooltip="one caption per image, or one for all"),
        ),
        outputs=(Output("latents", LATENT, is_list=True),
                 Output("conditioning", CONDITIONING, is_list=True)),
        is_input_list=True,
        experimental=True,
    )

    @staticmethod
    def execute(ctx, images: list, vae: list, clip: list, texts: list | None = None):
        import torch

        from . import _images

        # (id of the list item, sample index): a repeated image (same tensor) is encoded once
        pixels = [((id(batch), k), s.unsqueeze(0)) for batch in images
                  for k, s in enumerate(_images.samples(batch))]
        if not pixels:
            raise ValueError("input 'images': the image list is empty")
        captions = _pair_texts(texts, len(pixels))
        encoder = _first(vae, "vae")
        encoded: dict = {}
        latents = []
        with torch.no_grad():
            for i, (key, p) in enumerate(pixels):
                if key not in encoded:
                    encoded[key] = _encode_image(encoder, p[..., :3])
                latents.append({"samples": encoded[key]})
                ctx.progress(i + 1, len(pixels), stage="vae")
            conditioning = encode_texts(ctx, _first(clip, "clip"), captions)
        return latents, conditioning


def _encode_image(vae, pixels):
    """vae.encode -> raw latent tensor (a LATENT dict is unwrapped)."""
    out = vae.encode(pixels)
    return out["samples"] if isinstance(out, dict) else out


class ResolutionBucket(Node):
    """Group samples by latent size: one batched LATENT and CONDITIONING list per size."""

    schema = NodeSchema(
        "ResolutionBucket",
        display_name="Resolution Bucket",
        category="model/training",
        inputs=(Input("latents", LATENT), Input("conditioning", CONDITIONING)),
        outputs=(Output("latents", LATENT, is_list=True),
                 Output("conditioning", CONDITIONING, is_list=True)),
        is_input_list=True,
        experimental=True,
    )

    @staticmethod
    def execute(ctx, latents: list, conditioning: list):
        import torch

        if len(latents) != len(conditioning):
            raise ValueError(f"inputs 'latents' and 'conditioning': {len(latents)} latents but "
                             f"{len(conditioning)} conditionings; they must pair one to one")
        buckets: dict[tuple[int, int], tuple[list, list]] = {}  # insertion = first-seen order
        for i, (latent, cond) in enumerate(zip(latents, conditioning, strict=True)):
            samples = latent["samples"]
            for k in range(samples.shape[0]):
                entry = _cond_for_sample(cond, k, samples.shape[0], i)
                bucket = buckets.setdefault(tuple(samples.shape[-2:]), ([], []))
                bucket[0].append(samples[k])
                bucket[1].append(entry)
        return ([{"samples": torch.stack(s)} for s, _ in buckets.values()],
                [c for _, c in buckets.values()])


def _cond_for_sample(cond: list, k: int, batch: int, index: int):
    """Entry k of a CONDITIONING list (a single entry serves the whole latent batch)."""
    if len(cond) == batch:
        return cond[k]
    if len(cond) == 1:
        return cond[0]
    raise ValueError(f"input 'conditioning': item {index} has {len(cond)} entries for a latent "
                     f"batch of {batch}; expected {batch} or 1")


def _dataset_folder(ctx, folder_name: str):
    """A sub-folder of datasets/ (never the root itself, never outside it)."""
    from ..engine.paths import check_relative_name, ensure_inside

    where = {"node_id": ctx.node_id, "input_name": "folder_name"}
    check_relative_name(folder_name, **where)
    root = ctx.paths.folders("datasets")[0]
    folder = root / folder_name
    if folder.resolve() == root.resolve():
        raise ValueError("input 'folder_name': give a sub-folder of datasets/, not the root")
    root.mkdir(parents=True, exist_ok=True)
    if folder.exists():
        ensure_inside(folder, root, **where)
    return folder


class SaveTrainingDataset(Node):
    """Save LATENT / CONDITIONING lists to datasets/<folder_name>/ as safetensors shards."""

    schema = NodeSchema(
        "SaveTrainingDataset",
        display_name="Save Training Dataset",
        category="model/training",
        inputs=(
            Input("latents", LATENT),
            Input("conditioning", CONDITIONING),
            Input("folder_name", STRING, default="training_dataset",
                  tooltip="sub-folder of datasets/"),
            Input("shard_size", INT, default=1000, min=1, max=100000),
        ),
        output_node=True,
        is_input_list=True,
        experimental=True,
    )

    @staticmethod
    def execute(ctx, latents: list, conditioning: list, folder_name: list, shard_size: list):
        from . import _dataset_files

        if len(latents) != len(conditioning):
            raise ValueError(f"inputs 'latents' and 'conditioning': {len(latents)} latents but "
                             f"{len(conditioning)} conditionings; they must pair one to one")
        folder = _dataset_folder(ctx, _first(folder_name, "folder_name"))
        _dataset_files.save_dataset(folder, latents, conditioning, _first(shard_size,
                                                                          "shard_size"))
        return ()


class LoadTrainingDataset(Node):
    """Load a dataset saved by SaveTrainingDataset (or ComfyUI's .pkl shards, weights only)."""

    schema = NodeSchema(
        "LoadTrainingDataset",
        display_name="Load Training Dataset",
        category="model/training",
        inputs=(Input("folder_name", COMBO, choices_from="datasets", choices_dirs_only=True),),
        outputs=(Output("latents", LATENT, is_list=True),
                 Output("conditioning", CONDITIONING, is_list=True)),
        experimental=True,
    )

    @staticmethod
    def execute(ctx, folder_name: str):
        from . import _dataset_files

        folder = ctx.find("datasets", folder_name, input_name="folder_name")
        if not folder.is_dir():
            raise ValueError(f"input 'folder_name': {folder_name!r} is not a folder")
        return _dataset_files.load_dataset(folder)


# -- legacy (V1) nodes --------------------------------------------------------------------------


def _legacy_batch(images: list, names: list[str], method: str, width: int = -1,
                  height: int = -1):
    """Stack into one IMAGE batch at a common size (the first image's, unless given)."""
    import torch

    from . import _images

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
            sample = _images.fit(sample, w, h, method)
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
        method = _first(resize_method or ["None"], "resize_method")
        return (_legacy_batch(_load_all(ctx, paths), list(images), method),)


class LoadImageSetFromFolderNode(Node):
    """Legacy: every image of an input sub-folder as one IMAGE batch."""

    schema = NodeSchema(
        "LoadImageSetFromFolderNode",
        display_name="Load Image Dataset from Folder",
        category="loaders",
        inputs=(_folder_input("the folder to load images from"), _resize_method_input()),
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
            _folder_input("the folder to load images from"),
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

        from . import _images

        files = _image_text_files(ctx, folder)
        width, height = _legacy_size(width, "width"), _legacy_size(height, "height")
        names = [f.relative_to(_resolve_folder(ctx, folder)).as_posix() for f in files]
        batch = _legacy_batch(_load_all(ctx, files), names, resize_method, width, height)
        with torch.no_grad():
            conds = encode_texts(ctx, clip, [_images.read_caption(f) for f in files])
        return batch, [entry for cond in conds for entry in cond]


NODES = [
    LoadImageDataSetFromFolder, LoadImageTextDataSetFromFolder, SaveImageDataSetToFolder,
    SaveImageTextDataSetToFolder,
    ResizeImagesByShorterEdge, ResizeImagesByLongerEdge, CenterCropImages, RandomCropImages,
    NormalizeImages, AdjustBrightness, AdjustContrast, ShuffleDataset, ShuffleImageTextDataset,
    TextToLowercase, TextToUppercase, TruncateText, AddTextPrefix, AddTextSuffix, ReplaceText,
    StripWhitespace, ImageDeduplication, ImageGrid, MergeImageLists, MergeTextLists,
    MakeTrainingDataset, ResolutionBucket, SaveTrainingDataset, LoadTrainingDataset,
    LoadImageSetNode, LoadImageSetFromFolderNode, LoadImageTextSetFromFolderNode,
]
