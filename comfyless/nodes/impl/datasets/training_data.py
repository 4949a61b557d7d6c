"""Execute of the training-data nodes (nodes/datasets/training_data.py): encode, bucket,
save and load datasets/ shards."""

from __future__ import annotations

import torch

from ....models.residency import release_idle
from ...datasets.common import single_value
from .. import dataset_files, image_ops


def encode_texts(ctx, clip, texts: list[str]) -> list[list]:
    """One CONDITIONING per text (`[[cond, {"pooled_output": pooled}]]`); repeats encoded once."""
    release_idle(keep=(clip,))  # other encoders wait in their files while it runs
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


def make_training_dataset(ctx, images: list, vae: list, clip: list, texts: list | None = None):
    # (id of the list item, sample index): a repeated image (same tensor) is encoded once
    pixels = [((id(batch), k), s.unsqueeze(0)) for batch in images
              for k, s in enumerate(image_ops.samples(batch))]
    if not pixels:
        raise ValueError("input 'images': the image list is empty")
    captions = _pair_texts(texts, len(pixels))
    encoder = single_value(vae, "vae")
    release_idle(keep=(encoder,))  # the text encoder waits in its file while the VAE runs
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


def resolution_bucket(ctx, latents: list, conditioning: list):
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


def save_training_dataset(ctx, latents: list, conditioning: list, folder_name: list,
                          shard_size: list):
    if len(latents) != len(conditioning):
        raise ValueError(f"inputs 'latents' and 'conditioning': {len(latents)} latents but "
                         f"{len(conditioning)} conditionings; they must pair one to one")
    folder = _dataset_folder(ctx, single_value(folder_name, "folder_name"))
    dataset_files.save_dataset(folder, latents, conditioning,
                               single_value(shard_size, "shard_size"))
    return ()


def load_training_dataset(ctx, folder_name: str):
    folder = ctx.find("datasets", folder_name, input_name="folder_name")
    if not folder.is_dir():
        raise ValueError(f"input 'folder_name': {folder_name!r} is not a folder")
    return dataset_files.load_dataset(folder)
