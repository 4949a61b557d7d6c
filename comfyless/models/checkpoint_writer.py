"""Random-weight checkpoints in the original single-file key layout, for tests and benchmarks.

`write_checkpoint(path, arch, size, seed)` writes the checkpoint a family's record describes
(its `random_checkpoint` writer, e.g. models/families/sd/writer.py) in the real key layout.
"full" has the real shapes; "small" and "tiny" keep every key name but reduce widths and depth.
Weights are drawn so activations stay O(1): matrices ~ N(0, 1/fan_in), norm scales ~ 1, biases
small (`random_init`).
The command line is `comfyless make-checkpoint` (comfyless/commands/make_checkpoint.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from .families import FAMILIES, family, resolve
from .random_weights import (  # noqa: F401  (re-exported: the family writers use them)
    StreamedFile,
    random_init,
    streamed_random,
    write_streamed,
)
from .tensor_files import FLOAT8_DTYPES
from .unet import UNetConfig

# names and aliases (make-checkpoint --arch sd35 writes an SD3.5 Large layout)
ARCHS = tuple(n for f in FAMILIES if f.random_checkpoint for n in (f.name, *f.aliases))
SIZES = ("tiny", "small", "full")
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def unet_config(arch: str, size: str, context_dim: int | None = None,
                adm_in_channels: int | None = None) -> UNetConfig:
    """The network config written for (arch, size); context/adm default to the real widths."""
    return resolve(family(arch).test_unet_config)(arch, size, context_dim, adm_in_channels)


def checkpoint_state_dict(arch: str, size: str = "tiny", seed: int = 0,
                          prediction: str | None = None) -> dict[str, Tensor]:
    """The full random checkpoint dict (UNet + VAE + text encoders), float32."""
    if arch not in ARCHS or size not in SIZES:
        raise ValueError(f"arch must be one of {ARCHS} and size one of {SIZES}")
    return resolve(family(arch).random_checkpoint)(arch, size, seed, prediction)  # alias kept


def _to_dtype(sd: dict[str, Tensor], target: torch.dtype) -> dict[str, Tensor]:
    """Floating tensors in `target`, except those already stored as fp8 (fp8 files keep them)."""
    return {k: (v.to(target) if v.is_floating_point() and v.dtype not in FLOAT8_DTYPES else v
                ).contiguous() for k, v in sd.items()}


def _save(path: Path, sd: dict[str, Tensor], meta: dict[str, str]) -> Path:
    from safetensors.torch import save_file

    from ..files import write_atomic

    write_atomic(path, lambda tmp: save_file(sd, str(tmp), metadata=meta))
    return path


def write_checkpoint(path: str | Path, arch: str = "sd15", size: str = "tiny", seed: int = 0,
                     *, dtype: str | None = None, prediction: str | None = None) -> Path:
    """Write a random-weight checkpoint; dtype defaults to fp16 for "full", fp32 otherwise."""
    target = DTYPES[dtype or ("fp16" if size == "full" else "fp32")]
    sd = _to_dtype(checkpoint_state_dict(arch, size, seed, prediction), target)
    meta = {"comfyless.random_checkpoint": f"{arch}/{size}/seed={seed}"}
    return _save(Path(path), sd, meta)


def model_files(arch: str, size: str = "tiny", seed: int = 0, prediction: str | None = None
                ) -> dict[str, dict[str, dict[str, Tensor]]]:
    """{model folder kind: {file name: state dict | StreamedFile}}: every file a ComfyUI user
    of `arch` has
    (an all-in-one checkpoint and/or diffusion model, text encoders and VAE), float32, with
    the names the published workflows expect (the family record's `random_files`)."""
    return resolve(family(arch).random_files)(arch, size, seed, prediction)  # alias kept


def write_model_files(folders: Callable[[str], Path], arch: str, size: str = "tiny",
                      seed: int = 0, *, dtype: str | None = None,
                      prediction: str | None = None) -> dict[str, list[str]]:
    """Write `model_files(...)` into `folders(kind)` (e.g. <base>/models/<kind>), each file
    atomically; returns {kind: [file names]} (names relative to their folder)."""
    target = DTYPES[dtype or ("fp16" if size == "full" else "fp32")]
    written: dict[str, list[str]] = {}
    for kind, files in model_files(arch, size, seed, prediction).items():
        folder = folders(kind)
        folder.mkdir(parents=True, exist_ok=True)
        for name, sd in files.items():
            meta = {"comfyless.random_checkpoint": f"{arch}/{size}/seed={seed}/{kind}/{name}"}
            if callable(sd):  # StreamedFile: bigger than memory
                sd(folder / name, target)
            else:
                _save(folder / name, _to_dtype(sd, target), meta)
            written.setdefault(kind, []).append(name)
    return written


# --- the separate files of a DiT family (diffusion model + text encoders + VAE) --------------
@dataclass(frozen=True)
class DiTFiles:
    """Where a DiT family's random files go and how they are drawn (make-checkpoint, tests):
    `shapes(size, text_width)` gives the prefix-free network shapes, `text_width(files)` reads
    the context width off the tiny text-encoder files, `vae(size, generator)` the bare VAE."""

    unet_name: str  # diffusion_models/<unet_name>
    text_type: str  # the text_sets CLIP type of the family's encoders
    vae_name: str  # vae/<vae_name>
    shapes: Callable[[str, int], dict[str, tuple[int, ...]]]
    text_width: Callable[[dict[str, dict[str, Tensor]]], int]
    vae: Callable[[str, torch.Generator], dict[str, Tensor]]
    vae_prefix: str = "vae."  # inside the all-in-one checkpoint
    unet_fp8: bool = False  # the file stores its >= 2-D weights as float8_e4m3fn


def _tiny_text(layout: DiTFiles, size: str, seed: int) -> dict[str, dict[str, Tensor]]:
    from . import text_sets

    if size == "full":
        raise ValueError("a full-size all-in-one DiT checkpoint is not written in memory: "
                         "use --base-dir (the diffusion model and text encoders are streamed)")
    return text_sets.text_encoder_files(layout.text_type, "tiny",
                                        torch.Generator().manual_seed(seed))


def _unet(layout: DiTFiles, size: str, seed: int, width: int) -> dict[str, Tensor]:
    sd = dict(streamed_random(layout.shapes(size, width), seed))
    if layout.unet_fp8:
        sd = {k: v.to(torch.float8_e4m3fn) if v.ndim >= 2 else v for k, v in sd.items()}
    return sd


def dit_checkpoint(layout: DiTFiles, size: str, seed: int) -> dict[str, Tensor]:
    """An all-in-one checkpoint: `model.diffusion_model.` + `text_encoders.…` + the VAE."""
    from . import text_sets

    files = _tiny_text(layout, size, seed)  # the same draws as the standalone files
    text = text_sets.checkpoint_text_state_dict(layout.text_type, "tiny",
                                                torch.Generator().manual_seed(seed))
    vae = layout.vae("tiny", torch.Generator().manual_seed(seed + 1))
    unet = _unet(layout, size, seed, layout.text_width(files))
    return {**text, **{layout.vae_prefix + k: v for k, v in vae.items()},
            **{"model.diffusion_model." + k: v for k, v in unet.items()}}


def dit_model_files(layout: DiTFiles, size: str, seed: int) -> dict[str, dict]:
    """diffusion_models/, text_encoders/ and vae/ files; "full" has the real shapes, with the
    diffusion model and the text encoders streamed to disk."""
    from . import text_sets

    vae = {layout.vae_name: layout.vae(size, torch.Generator().manual_seed(seed + 1))}
    if size == "full":
        shapes = layout.shapes("full", 0)

        def write_unet(path: Path, dtype: torch.dtype) -> None:
            write_streamed(path, shapes, streamed_random(shapes, seed), dtype)

        return {"diffusion_models": {layout.unet_name: write_unet},
                "text_encoders": text_sets.full_text_encoder_files(layout.text_type, seed),
                "vae": vae}
    files = _tiny_text(layout, size, seed)
    return {"diffusion_models": {layout.unet_name: _unet(layout, size, seed,
                                                         layout.text_width(files))},
            "text_encoders": files, "vae": vae}
