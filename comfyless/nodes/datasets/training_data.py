"""Training data: images + captions encoded to LATENT / CONDITIONING lists, bucketed by
size, saved to and loaded from datasets/ as safetensors shards."""

from __future__ import annotations

from ...typesys.schema import Input, Node, NodeSchema, Output
from ...typesys.types import CLIP, COMBO, CONDITIONING, IMAGE, INT, LATENT, STRING, VAE
from .common import single_value


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

        from ..impl import image_ops

        # (id of the list item, sample index): a repeated image (same tensor) is encoded once
        pixels = [((id(batch), k), s.unsqueeze(0)) for batch in images
                  for k, s in enumerate(image_ops.samples(batch))]
        if not pixels:
            raise ValueError("input 'images': the image list is empty")
        captions = _pair_texts(texts, len(pixels))
        encoder = single_value(vae, "vae")
        encoded: dict = {}
        latents = []
        with torch.no_grad():
            for i, (key, p) in enumerate(pixels):
                if key not in encoded:
                    encoded[key] = _encode_image(encoder, p[..., :3])
                latents.append({"samples": encoded[key]})
                ctx.progress(i + 1, len(pixels), stage="vae")
            conditioning = encode_texts(ctx, single_value(clip, "clip"), captions)
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
    """A sub-folder of datasets/ (never the root itself, never outside it); not created yet."""
    folder = ctx.output_dir(folder_name, folder="datasets", create=False)
    if folder.resolve() == ctx.paths.folders("datasets")[0].resolve():
        raise ValueError("input 'folder_name': give a sub-folder of datasets/, not the root")
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
            Input("folder_name", STRING, default="training_dataset", save_to="datasets",
                  tooltip="sub-folder of datasets/"),
            Input("shard_size", INT, default=1000, min=1, max=100000),
        ),
        output_node=True,
        is_input_list=True,
        experimental=True,
    )

    @staticmethod
    def execute(ctx, latents: list, conditioning: list, folder_name: list, shard_size: list):
        from ..impl import dataset_files

        if len(latents) != len(conditioning):
            raise ValueError(f"inputs 'latents' and 'conditioning': {len(latents)} latents but "
                             f"{len(conditioning)} conditionings; they must pair one to one")
        folder = _dataset_folder(ctx, single_value(folder_name, "folder_name"))
        dataset_files.save_dataset(folder, latents, conditioning,
                                   single_value(shard_size, "shard_size"))
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
        from ..impl import dataset_files

        folder = ctx.find("datasets", folder_name, input_name="folder_name")
        if not folder.is_dir():
            raise ValueError(f"input 'folder_name': {folder_name!r} is not a folder")
        return dataset_files.load_dataset(folder)


NODES = [MakeTrainingDataset, ResolutionBucket, SaveTrainingDataset, LoadTrainingDataset]
