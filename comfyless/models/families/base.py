"""The family record: everything one model family (variant) declares, in one place.

Torch-free by construction: torch-using parts (network builder, conditioning extras, test
checkpoint writer) are named as "module:attribute" references and imported on first use
(`resolve`), so the registry can be imported by torch-free code (node schemas, validation).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

Shapes = Mapping[str, Sequence[int]]
# (shapes, prefix) -> network config or None when the trigger keys are absent
ConfigDetector = Callable[[Shapes, str], Any]
# (config, shapes, prefix, read) -> (prediction "eps" | "v", zsnr)
PredictionRule = Callable[[Any, Shapes, str, Callable[[str], Any] | None], tuple[str, bool]]


class DetectionError(ValueError):
    """The keys do not look like any supported layout; the message says what was found."""


@dataclass(frozen=True)
class EncoderSpec:
    """How ComfyUI runs one text encoder of a family (layer choice, padding, pooled output)."""

    name: str  # "l" | "h" | "g"
    pad_token: int
    layer_idx: int | None  # None: last layer's output after the final LayerNorm
    norm_hidden: bool  # apply the final LayerNorm to an intermediate layer's output
    act: str


def prediction_const(config: Any, shapes: Shapes, prefix: str,
                     read: Callable[[str], Any] | None) -> tuple[str, bool]:
    """Flow models (FLUX.1, SD3): always CONST (x_t = σ·noise + (1 − σ)·x0, the network
    predicts the velocity)."""
    return "const", False


def resolve(ref: str) -> Any:
    """The object a "package.module:attribute" reference names (imported on first use)."""
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


@dataclass(frozen=True)
class Family:
    """One model family as the loader, sampler, text encoders and LoRA code see it.

    Detection: `detect_config(shapes, prefix)` gives the network config when the family's
    trigger keys are there (several variants may share one detector); `matches(config)` picks
    this variant; `prediction(config, shapes, prefix, read)` the parameterisation.
    """

    name: str  # the variant: "sd15"
    folder: str  # the family folder under models/families: "sd"
    description: str
    # -- detection ---------------------------------------------------------------------------
    trigger_key: str  # shown in "unrecognised layout" errors
    detect_config: ConfigDetector
    matches: Callable[[Any], bool]
    prediction: PredictionRule
    describe_config: Callable[[Any], str]
    # -- network, latent space, sampling ------------------------------------------------------
    network: str  # "module:callable" building the network from the detected config
    latent_format: Any  # models.latent_formats.LatentFormat
    sampling: str  # "module:callable(prediction, zsnr=)" -> the ModelSampling object
    default_prediction: str  # "eps" | "v" (what a fresh checkpoint of this variant uses)
    default_size: tuple[int, int]  # (width, height) in pixels
    # -- checkpoint layout --------------------------------------------------------------------
    unet_prefix: str
    vae_prefix: str
    text_prefixes: tuple[str, ...]  # any key under these means "the file has text encoders"
    # -- text encoders ------------------------------------------------------------------------
    text_encoders: tuple[EncoderSpec, ...]
    text_encoder_prefixes: Mapping[str, str]  # encoder name -> checkpoint prefix
    text_encoder_fallbacks: Mapping[str, str] = field(default_factory=dict)  # other layouts
    clip_type: str | None = None  # CLIPLoader / DualCLIPLoader `type` that loads this set
    # {encoder name: HF-layout state dict} from standalone files, or None if not this family's
    assign_text_encoders: Callable[[list[Mapping[str, Any]]], dict[str, Any] | None] | None = None
    extra_conds: str | None = None  # "module:fn(model, cond_dict, width, height)" -> kwargs
    # "module:fn(model, cond_dict, noise_shape, latent_image, denoise_mask)" -> the concat
    # latents (c_concat) an inpaint / InstructPix2Pix network takes beside x, or None
    concat_cond: str | None = None
    # -- LoRA key maps (lora/keys.py) ------------------------------------------------------------
    lora_unet_key_map: Callable[..., dict] | None = None
    lora_clip_key_map: Callable[..., dict] | None = None
    # -- random-weight checkpoints (tests, benchmarks, make-checkpoint) -----------------------
    random_checkpoint: str | None = None  # "module:fn(name, size, seed, prediction)" -> sd
    test_unet_config: str | None = None  # "module:fn(name, size, context_dim, adm)"
    # "module:fn(name, size, seed, prediction)" -> {folder kind: {file name: state dict}}: the
    # separate files (diffusion model, text encoders, VAE) a user of the family has; None: one
    # all-in-one checkpoint from `random_checkpoint`
    random_files: str | None = None
    aliases: tuple[str, ...] = ()
    # CheckpointSave's `modelspec.architecture` metadata (ComfyUI writes it for SDXL and SD3
    # only; None: no modelspec block)
    modelspec_architecture: str | None = None

    def build_network(self, config: Any) -> Any:
        """The (torch) network for a detected config."""
        return resolve(self.network)(config)

    def make_sampling(self, prediction: str | None = None, zsnr: bool = False) -> Any:
        """The model-sampling object (default: this variant's prediction type)."""
        return resolve(self.sampling)(prediction or self.default_prediction, zsnr=zsnr)

    def conditioning_extras(self, model: Any, cond_dict: Mapping[str, Any], width: int,
                            height: int) -> dict[str, Any]:
        """The extra network inputs (keyword arguments: SDXL's adm vector `y`) for one
        conditioning; {} if the family has none."""
        if self.extra_conds is None:
            return {}
        return resolve(self.extra_conds)(model, cond_dict, width, height)

    def concat_latents(self, model: Any, cond_dict: Mapping[str, Any], noise_shape: Any,
                       latent_image: Any, denoise_mask: Any) -> Any:
        """The concat latents (`c_concat`) an inpaint / InstructPix2Pix network takes beside x;
        None if the family's networks take none."""
        if self.concat_cond is None:
            return None
        return resolve(self.concat_cond)(model, cond_dict, noise_shape, latent_image,
                                         denoise_mask)
