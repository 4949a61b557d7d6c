"""Random-weight FLUX.1 transformers in the BFL file layout (prefix-free keys, RMSNorm scales
stored as `..._norm.scale`), for tests, benchmarks and make-checkpoint.

Sizes: "tiny" (hidden 64, 2 heads x 32, 2 double + 2 single blocks), "small" (hidden 512,
4 heads x 128, 2 + 4 blocks), "full" (the real 11.9 B-parameter shapes: build it on the meta
device, `diffusion_model_shapes`, or write it tensor by tensor, `write_diffusion_model`; it
is never held in memory). context_in_dim / vec_in_dim default to the real T5-XXL / CLIP-L
widths so tests can match tiny text encoders.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import torch
from torch import Tensor

from ...checkpoint_writer import streamed_random, write_streamed
from . import names
from .config import FluxConfig, axes_for_head_dim
from .network import FluxNetwork

NAMES = ("flux", "flux-schnell")
SIZES = ("tiny", "small", "full")
_LAYOUTS = {  # (hidden, heads, double blocks, single blocks)
    "tiny": (64, 2, 2, 2),
    "small": (512, 4, 2, 4),
    "full": (3072, 24, 19, 38),
}


def network_config(name: str, size: str, context_in_dim: int = 4096,
                   vec_in_dim: int = 768) -> FluxConfig:
    """The FluxConfig written for (name, size); dev has the guidance embedding."""
    if name not in NAMES or size not in SIZES:
        raise ValueError(f"name must be one of {NAMES} and size one of {SIZES}, "
                         f"got {name!r}, {size!r}")
    hidden, heads, depth, single = _LAYOUTS[size]
    return FluxConfig(hidden_size=hidden, num_heads=heads, depth=depth,
                      depth_single_blocks=single, context_in_dim=context_in_dim,
                      vec_in_dim=vec_in_dim, guidance_embed=name == "flux",
                      axes_dim=axes_for_head_dim(hidden // heads))


def diffusion_model_shapes(name: str, size: str, context_in_dim: int = 4096,
                           vec_in_dim: int = 768) -> dict[str, torch.Size]:
    """{parameter name (ComfyUI `_norm.weight` spelling): shape}, built on the meta device."""
    with torch.device("meta"):
        net = FluxNetwork(network_config(name, size, context_in_dim, vec_in_dim))
    return {k: v.shape for k, v in net.state_dict().items()}


def _file_key(key: str) -> str:
    """The BFL file spelling of a parameter name (`_norm.weight` -> `_norm.scale`)."""
    if key.endswith(names.NORM_WEIGHT):
        return key[: -len(names.NORM_WEIGHT)] + names.BFL_NORM_SCALE
    return key


def _random_tensors(name: str, size: str, seed: int, context_in_dim: int, vec_in_dim: int
                    ) -> Iterator[tuple[str, Tensor]]:
    """(file key, float32 tensor) one at a time, in a fixed order from one generator."""
    shapes = diffusion_model_shapes(name, size, context_in_dim, vec_in_dim)
    return ((_file_key(key), t) for key, t in streamed_random(shapes, seed))


def diffusion_model_state_dict(name: str, size: str, seed: int = 0, context_in_dim: int = 4096,
                               vec_in_dim: int = 768) -> dict[str, Tensor]:
    """Random float32 weights under the BFL file keys (prefix-free, `_norm.scale`).

    "full" is refused here (48 GB of float32): use `write_diffusion_model` or the shapes."""
    if size == "full":
        raise ValueError("the full FLUX.1 transformer (11.9 B parameters) is never built in "
                         "memory: use write_diffusion_model(...) or diffusion_model_shapes(...)")
    return dict(_random_tensors(name, size, seed, context_in_dim, vec_in_dim))


def write_diffusion_model(path: str | Path, name: str = "flux", size: str = "tiny",
                          seed: int = 0, *, dtype: torch.dtype = torch.bfloat16,
                          context_in_dim: int = 4096, vec_in_dim: int = 768) -> Path:
    """Write a random transformer file tensor by tensor (same numbers as
    `diffusion_model_state_dict`), so "full" never needs the model in memory."""
    shapes = {_file_key(k): tuple(v) for k, v in
              diffusion_model_shapes(name, size, context_in_dim, vec_in_dim).items()}
    meta = {"comfyless.random_checkpoint": f"{name}/{size}/seed={seed}"}
    return write_streamed(path, shapes, _random_tensors(name, size, seed, context_in_dim,
                                                        vec_in_dim), dtype, meta)


# --- whole files (make-checkpoint, tests) -----------------------------------------------------
UNET_PREFIX = "model.diffusion_model."
# (diffusion model, all-in-one checkpoint) as users have them (the published workflows' names);
# Comfy-Org's all-in-one files hold the transformer in fp8 (e4m3fn), as this writer does.
FILE_NAMES = {"flux": ("flux1-dev.safetensors", "flux1-dev-fp8.safetensors"),
              "flux-schnell": ("flux1-schnell.safetensors", "flux1-schnell-fp8.safetensors")}
VAE_NAME = "ae.safetensors"
_T5_SHARED = "text_encoders.t5xxl.transformer.shared.weight"
_CLIP_L_NORM = "text_encoders.clip_l.transformer.text_model.final_layer_norm.weight"


def _variant(arch: str) -> str:
    from .. import family

    return family(arch).name


def _text_widths(text: dict[str, Tensor]) -> tuple[int, int]:
    """(T5 width -> txt_in, CLIP-L width -> vector_in) of the encoders written beside the net."""
    return text[_T5_SHARED].shape[1], text[_CLIP_L_NORM].shape[0]


def _text_and_vae(size: str, gen: torch.Generator) -> tuple[dict, dict, dict]:
    from ... import text_sets, vae

    if size == "full":
        raise ValueError("a full-size FLUX.1 all-in-one checkpoint is not written in memory: "
                         "use --base-dir (diffusion model and T5 are streamed to disk)")
    files = text_sets.text_encoder_files("flux", "tiny", gen)
    text = {text_sets.CHECKPOINT_PREFIXES[kind] + k: v
            for kind, file in text_sets.STANDALONE_NAMES.items() if file in files
            for k, v in files[file].items()}
    return files, text, vae.vae_state_dict("tiny", gen, kind="kl16", prefix="")


def checkpoint_state_dict(arch: str, size: str = "tiny", seed: int = 0,
                          prediction: str | None = None) -> dict[str, Tensor]:
    """An all-in-one FLUX.1 checkpoint: fp8 transformer, CLIP-L + T5 (tiny), 16-ch VAE."""
    _, text, ae = _text_and_vae(size, torch.Generator().manual_seed(seed))
    net = diffusion_model_state_dict(_variant(arch), size, seed, *_text_widths(text))
    sd = {**text, **{"vae." + k: v for k, v in ae.items()}}
    sd.update({UNET_PREFIX + k: v.to(torch.float8_e4m3fn) if v.ndim >= 2 else v
               for k, v in net.items()})
    return sd


def model_files(arch: str, size: str, seed: int, prediction: str | None) -> dict[str, dict]:
    """diffusion_models/flux1-dev.safetensors, text_encoders/clip_l + t5xxl_fp16,
    vae/ae.safetensors and checkpoints/flux1-dev-fp8.safetensors (schnell likewise). "full":
    the real shapes, the transformer and T5 streamed to disk, no all-in-one file."""
    name = _variant(arch)
    unet_name, checkpoint_name = FILE_NAMES[name]
    if size == "full":
        from ... import text_sets, vae

        def write_net(path: Path, dtype: torch.dtype) -> None:
            write_diffusion_model(path, name, "full", seed, dtype=dtype)

        ae = vae.vae_state_dict("full", torch.Generator().manual_seed(seed), kind="kl16",
                                prefix="")
        return {"diffusion_models": {unet_name: write_net},
                "text_encoders": text_sets.full_text_encoder_files("flux", seed),
                "vae": {VAE_NAME: ae}}
    files, text, ae = _text_and_vae(size, torch.Generator().manual_seed(seed))
    net = diffusion_model_state_dict(name, size, seed, *_text_widths(text))
    return {"diffusion_models": {unet_name: net},
            "checkpoints": {checkpoint_name: checkpoint_state_dict(arch, size, seed)},
            "text_encoders": files, "vae": {VAE_NAME: ae}}
