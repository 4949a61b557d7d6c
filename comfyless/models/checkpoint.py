"""Loading single-file checkpoints and diffusion-model files.

safetensors files are read tensor by tensor (tensor_files.py); the header alone gives the
key/shape map that detection needs. Modules are built on the meta device and the loaded tensors are
assigned (`load_state_dict(assign=True)`), so each weight exists once in memory. Files are
opened through tensor_files.py (pickles weights-only, DECISIONS.md).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..typesys.errors import ModelLoadError
from .detect import UNET_PREFIX, Detected, DetectionError, detect
from .patcher import ModelPatcher
from .residency import Reloadable
from .tensor_files import FLOAT8_DTYPES, TensorFile, error_where, open_tensor_file

# ComfyUI's default VAE prefix in all-in-one files (VAELoader strips it from VAE files too);
# a checkpoint's own VAE/text prefixes come from its family record.
VAE_PREFIX = "first_stage_model."


def default_dtype(device: str | torch.device) -> torch.dtype:
    """fp32 on the CPU; fp16 on a GPU (as ComfyUI runs SD UNets)."""
    return torch.float32 if torch.device(device).type == "cpu" else torch.float16


def default_vae_dtype(device: str | torch.device) -> torch.dtype:
    """fp32 on the CPU; bf16 on a GPU (the SDXL VAE overflows to NaN in fp16)."""
    return torch.float32 if torch.device(device).type == "cpu" else torch.bfloat16


def build_unet(detected: Detected, tensors: TensorFile, prefix: str, dtype: torch.dtype,
               device: str | torch.device, where: dict[str, Any], name: str) -> Any:
    """The family's network built on the meta device with the file's tensors assigned (no
    double copies).

    Optional network hooks: `file_view(tensors, prefix)` gives the file's tensors under the
    network's parameter names; a class attribute `keeps_fp8 = True` keeps float8 weights as
    stored (the network upcasts them per call; `compute_dtype` is set to `dtype`).
    """
    with torch.device("meta"):
        unet = detected.record.build_network(detected.config)
    file_view = getattr(unet, "file_view", None)
    if file_view is not None:  # the network reads its own file layouts (renames, fusions)
        tensors, prefix = file_view(tensors, prefix), ""
    expected = unet.state_dict()
    _check_keys(tensors, expected, detected, prefix, where, name)
    keep_fp8 = getattr(unet, "keeps_fp8", False)
    sd: dict[str, Tensor] = {}
    for key in expected:
        t = tensors[prefix + key]
        cast = t.is_floating_point() and not (keep_fp8 and t.dtype in FLOAT8_DTYPES)
        sd[key] = t.to(device=device, dtype=dtype if cast else t.dtype)
    unet.load_state_dict(sd, strict=True, assign=True)
    if keep_fp8:
        unet.compute_dtype = dtype  # fp8 weights are upcast to this per call
    unet.requires_grad_(False)  # base weights are frozen; adapters bring their own params
    return unet.eval()


def _check_keys(tensors: TensorFile, expected: dict[str, Tensor], detected: Detected,
                prefix: str, where: dict[str, Any], name: str) -> None:
    """Every key the detected UNet needs is in the file with its shape (else a clear error)."""
    missing = [k for k in expected if prefix + k not in tensors.shapes]
    wrong = [k for k, v in expected.items()
             if prefix + k in tensors.shapes and tuple(v.shape) != tensors.shapes[prefix + k]]
    if missing or wrong:
        raise ModelLoadError(
            f"{name}: looks like {detected.family} but {len(missing)} UNet key(s) are missing "
            f"(e.g. {missing[:3]}) and {len(wrong)} have unexpected shapes (e.g. {wrong[:3]})",
            **where)


class _LazySource(dict):
    """`source` dict whose "sha256" is computed on first access (hashing 2 GB takes seconds)."""

    def __getitem__(self, key: str) -> Any:
        if key == "sha256" and not dict.__contains__(self, key):
            dict.__setitem__(self, key, file_sha256(dict.__getitem__(self, "path")))
        return dict.__getitem__(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        return self[key] if key == "sha256" or key in self else default

    def __contains__(self, key: object) -> bool:
        return key == "sha256" or dict.__contains__(self, key)


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 8 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(8 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _detect(tensors: TensorFile, name: str, where: dict[str, Any],
            prefix: str | None = None) -> Detected:
    try:
        return detect(tensors.shapes, read=tensors.__getitem__, prefix=prefix)
    except DetectionError as exc:
        raise ModelLoadError(f"{name}: {exc}", **where) from exc


def _patcher(detected: Detected, unet: Any, path: Path,
             prediction: str | None) -> ModelPatcher:
    record = detected.record
    sampling = record.make_sampling(prediction or detected.prediction, zsnr=detected.zsnr)
    source = _LazySource(file=path.name, path=str(path))
    return ModelPatcher(unet, sampling, record.latent_format, record.name, source=source)


def load_checkpoint(path: str | os.PathLike, *, device: str | torch.device = "cpu",
                    dtype: torch.dtype | None = None, prediction: str | None = None,
                    load_vae: bool = True, load_clip: bool = True,
                    node_id: str | None = None, input_name: str | None = "ckpt_name",
                    ) -> tuple[ModelPatcher, Any, Any]:
    """(MODEL, CLIP | None, VAE | None) from a single-file checkpoint of a registered family.

    `dtype` (default: fp32 on the CPU; fp16 on a GPU, VAE bf16) applies to all three parts;
    `prediction` ("eps" | "v" | "x0") overrides the detected parameterisation.
    """
    path = Path(path)
    where = error_where(node_id, input_name)
    vae_dtype = dtype or default_vae_dtype(device)
    dtype = dtype or default_dtype(device)
    # scaled-fp8 weights come dequantised straight into the compute dtype (models/quant.py)
    with open_tensor_file(path, dequantize_dtype=dtype, **where) as tensors:
        detected = _detect(tensors, path.name, where)
        unet = build_unet(detected, tensors, detected.unet_prefix, dtype, device, where,
                          path.name)
        model = _patcher(detected, unet, path, prediction)
        clip = _load_clip(tensors, detected, device, dtype, path.name, where) \
            if load_clip else None
        vae = _load_vae(tensors, detected.record.vae_prefix, device, vae_dtype, path.name,
                        where) if load_vae else None

    def reread(part):  # the same part read again from the file (after a release)
        def load():
            with open_tensor_file(path, dequantize_dtype=dtype, **where) as again:
                return part(again)
        return load

    if clip is not None:
        clip.residency = Reloadable(clip.stack, reread(lambda t: _load_clip(
            t, detected, device, dtype, path.name, where).stack), f"the CLIP of {path.name}")
    if vae is not None:
        vae.residency = Reloadable(vae.model, reread(lambda t: _load_vae(
            t, detected.record.vae_prefix, device, vae_dtype, path.name, where).model),
            f"the VAE of {path.name}")
    return model, clip, vae


def load_diffusion_model(path: str | os.PathLike, *, device: str | torch.device = "cpu",
                         dtype: torch.dtype | None = None, prediction: str | None = None,
                         node_id: str | None = None, input_name: str | None = "unet_name",
                         ) -> ModelPatcher:
    """A diffusion-model-only file (prefix-free keys), or the UNet of a full checkpoint."""
    path = Path(path)
    where = error_where(node_id, input_name)
    dtype = dtype or default_dtype(device)
    with open_tensor_file(path, dequantize_dtype=dtype, **where) as tensors:
        has_prefix = any(k.startswith(UNET_PREFIX) for k in tensors.shapes)
        prefix = UNET_PREFIX if has_prefix else ""
        detected = _detect(tensors, path.name, where, prefix=prefix)
        unet = build_unet(detected, tensors, prefix, dtype, device, where, path.name)
    return _patcher(detected, unet, path, prediction)


def _sub_dict(tensors: TensorFile, prefixes: tuple[str, ...], strip: str | None = None
              ) -> dict[str, Tensor]:
    out = {}
    for k in tensors:
        if k.startswith(prefixes):
            out[k[len(strip):] if strip and k.startswith(strip) else k] = tensors[k]
    return out


def _load_vae(tensors: TensorFile, prefix: str, device, dtype: torch.dtype, name: str,
              where: dict[str, Any]) -> Any:
    """The checkpoint's VAE via models/vae.py; None if the file has no VAE keys. Its tensors
    are read one at a time as load_vae converts them (an fp16 VAE read whole before the
    fp32 copy was built held both: 167 + 334 MB for SD's)."""
    if not any(k.startswith(prefix) for k in tensors.shapes):
        return None
    from . import vae

    sd = tensors.under(prefix)
    try:
        return vae.load_vae(sd, dtype=dtype, device=device)
    except (KeyError, ValueError, RuntimeError) as exc:
        raise ModelLoadError(f"{name}: cannot load the VAE: {exc}", **where) from exc


def _load_clip(tensors: TensorFile, detected: Detected, device, dtype: torch.dtype, name: str,
               where: dict[str, Any]) -> Any:
    """The checkpoint's text encoder(s) via models/clip.py; None if the file has none."""
    prefixes = detected.record.text_prefixes
    if not prefixes or not any(k.startswith(prefixes) for k in tensors.shapes):
        return None
    from . import text_sets

    sd = _sub_dict(tensors, prefixes)
    try:
        return text_sets.load_checkpoint_text_encoders(sd, detected.family, dtype=dtype,
                                                       device=device)
    except (KeyError, ValueError, RuntimeError) as exc:
        raise ModelLoadError(f"{name}: cannot load the text encoder: {exc}", **where) from exc
