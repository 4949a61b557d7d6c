"""Execute of the Qwen-Image edit nodes (nodes/qwen_edit.py).

Spec note (ComfyUI comfy_extras/nodes_qwen.py, restated):
* Scaling to a pixel total T: s = sqrt(T / (w·h)); the image is resized with "area"
  interpolation (ComfyUI's common_upscale, no crop). Sides round(w·s) × round(h·s), except
  the Plus node's VAE copy: round(w·s / 8)·8 × round(h·s / 8)·8. Only the first 3 channels are
  used. The vision tower then resizes its copy once more to multiples of 28
  (models/qwen_vision.py), and only the first image of a batch is seen by it; the VAE encodes
  the whole batch.
* TextEncodeQwenImageEdit: T = 1024² for both the vision copy and the VAE copy (one image,
  the VAE crops to its own multiple). Prompt template: Qwen-Image's image template (vision
  tokens before the prompt), the plain one without an image.
* TextEncodeQwenImageEditPlus: per image slot given (1…3, numbered by slot): vision copy at
  T = 384², VAE copy at T = 1024²; the prompt is prefixed with "Picture N: <|vision_start|>
  <|image_pad|><|vision_end|>" per image, and always uses the edit template (system text only,
  no vision tokens of its own), images or not.
* With a VAE the latents are appended to every entry's `reference_latents`, in slot order.
"""

from __future__ import annotations

import torch

from ...models.residency import release_idle
from .conditioning import _require_clip, conditioning_from_tokens, conditioning_set_values
from .image_edit import scaled_size, upscale_images

EDIT_PIXELS = 1024 * 1024
PLUS_VISION_PIXELS = 384 * 384


def _where(ctx, input_name: str) -> str:
    return f"node {ctx.node_id} ({ctx.class_type}) input '{input_name}'"


def _image(ctx, value, input_name: str) -> torch.Tensor:
    if not isinstance(value, torch.Tensor) or value.ndim != 4 or value.shape[-1] < 3:
        got = (f"shape {tuple(value.shape)}" if isinstance(value, torch.Tensor)
               else type(value).__name__)
        raise ValueError(f"{_where(ctx, input_name)}: expected an IMAGE [B, H, W, 3], got {got}")
    if min(value.shape[1:3]) < 1:
        raise ValueError(f"{_where(ctx, input_name)}: the image is empty "
                         f"({value.shape[2]} × {value.shape[1]})")
    return value


def _require_vision(ctx, clip) -> None:
    """Images need the Qwen2.5-VL encoder with its vision tower: a clear error otherwise."""
    require = getattr(clip, "require_vision", None)
    if require is None:
        raise ValueError(f"{_where(ctx, 'clip')}: images need the Qwen2.5-VL-7B text encoder "
                         "(CLIPLoader type 'qwen_image'); got a "
                         f"{getattr(clip, 'family', type(clip).__name__)} CLIP")
    try:
        require()
    except ValueError as exc:
        raise ValueError(f"{_where(ctx, 'clip')}: {exc}") from exc


def _require_vae(ctx, vae) -> None:
    from ...models.vae import VAE

    if vae is not None and not isinstance(vae, VAE):
        raise ValueError(f"{_where(ctx, 'vae')}: expected a VAE, got {type(vae).__name__}")


def _scaled(image: torch.Tensor, total: int, multiple: int = 1) -> torch.Tensor:
    width, height = scaled_size(image.shape[2], image.shape[1], total, multiple)
    return upscale_images(image, width, height, "area")[..., :3]


def _encode_latent(ctx, vae, pixels: torch.Tensor, input_name: str) -> torch.Tensor:
    try:
        return vae.encode(pixels)
    except ValueError as exc:
        raise ValueError(f"{_where(ctx, input_name)}: {exc}") from exc


def _with_references(conditioning: list, latents: list) -> tuple[list]:
    if latents:
        conditioning = conditioning_set_values(conditioning, {"reference_latents": latents},
                                               append=True)
    return (conditioning,)


def text_encode_qwen_image_edit(ctx, clip, prompt: str, vae=None, image=None):
    clip = _require_clip(ctx, clip)
    _require_vae(ctx, vae)
    release_idle(keep=(clip, vae))  # other idle encoders wait in their files
    if image is None:
        return (conditioning_from_tokens(clip, clip.tokenize(prompt)),)
    image = _image(ctx, image, "image")
    _require_vision(ctx, clip)
    scaled = _scaled(image, EDIT_PIXELS)
    latents = [] if vae is None else [_encode_latent(ctx, vae, scaled, "image")]
    tokens = clip.tokenize(prompt, images=[scaled])
    return _with_references(conditioning_from_tokens(clip, tokens), latents)


def text_encode_qwen_image_edit_plus(ctx, clip, prompt: str, vae=None, image1=None,
                                     image2=None, image3=None):
    from ...models.qwen_text import EDIT_TEMPLATE, VISION_TOKENS

    clip = _require_clip(ctx, clip)
    _require_vae(ctx, vae)
    release_idle(keep=(clip, vae))  # other idle encoders wait in their files
    slots = [(f"image{i}", value) for i, value in enumerate((image1, image2, image3), start=1)
             if value is not None]
    images = {name: _image(ctx, value, name) for name, value in slots}
    if not images:
        if getattr(clip, "require_vision", None) is None:  # another encoder: plain prompt
            return (conditioning_from_tokens(clip, clip.tokenize(prompt)),)
        return (conditioning_from_tokens(clip, clip.tokenize(prompt,
                                                             llama_template=EDIT_TEMPLATE)),)
    _require_vision(ctx, clip)
    seen, latents, prefix = [], [], ""
    for name, image in images.items():
        seen.append(_scaled(image, PLUS_VISION_PIXELS))
        if vae is not None:
            latents.append(_encode_latent(ctx, vae, _scaled(image, EDIT_PIXELS, 8), name))
        prefix += f"Picture {name[-1]}: {VISION_TOKENS}"
    tokens = clip.tokenize(prefix + prompt, images=seen, llama_template=EDIT_TEMPLATE)
    return _with_references(conditioning_from_tokens(clip, tokens), latents)
