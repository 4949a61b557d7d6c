"""Execute of the nodes in nodes/model_merge.py: ModelMergeSimple, CheckpointSave, FreeU_V2.

Spec notes (ComfyUI's rules, in our words):
- ModelMergeSimple: model1's clone gets every diffusion-model weight of model2 as a patch
  with strength 1 - ratio while model1's own weight is scaled by ratio, so the result is
  ratio * W1 + (1 - ratio) * W2 (ratio 1 = model1, 0 = model2's weights), each side with its
  LoRAs already applied; a weight whose shapes differ is left as model1's (ComfyUI warns and
  skips it). Sampling, latent format and family stay model1's. Here the merge is computed
  once, in float32, into a copy of model1's network (memory: one more copy of the weights).
- CheckpointSave: one .safetensors with the diffusion model under the family's UNet prefix
  (`model.diffusion_model.`), the text encoders under their checkpoint prefixes (OpenCLIP
  layout where the prefix ends in `model.`, HF CLIP layout otherwise) and the VAE under
  `first_stage_model.`, LoRAs baked in. Name: `<prefix>_<counter:05>_.safetensors` in output/
  (prefix variables expanded, %width%/%height% as 0). Metadata: `modelspec.*` for SDXL
  (architecture stable-diffusion-xl-v1-base, sai_model_spec 1.0.0, implementation sgm,
  title "<name> <counter>") and SD3 (stable-diffusion-v3-medium); `modelspec.predict_key`
  "epsilon" or "v" (v adds an empty `v_pred` tensor, and zero-terminal SNR an empty `ztsnr`);
  `prompt` (JSON, "" without one) and each extra_pnginfo entry as JSON.
- FreeU_V2: at every output block, when the backbone h has 4 x model_channels channels
  (b1, s1) or 2 x (b2, s2): m = channel mean of h, min-max normalised per sample over its
  pixels; the first half of h's channels is multiplied by (b - 1) * m + 1; the skip is
  Fourier-filtered: its centred 2-D spectrum (float32) is multiplied by s inside the 2 x 2
  window [H//2 - 1, H//2 + 1) x [W//2 - 1, W//2 + 1) (the lowest frequencies), real part of
  the inverse, back in the skip's dtype. Other channel counts pass unchanged.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging

import torch
from torch import Tensor

from ...files import write_atomic
from ...typesys.schema import Result
from . import image_files

log = logging.getLogger("comfyless.nodes.model_merge")


def _fail(ctx, input_name: str, message: str):
    raise ValueError(f"node {ctx.node_id} ({ctx.class_type}) input '{input_name}': {message}")


def _model(ctx, value, input_name: str = "model"):
    if not (hasattr(value, "diffusion_model") and hasattr(value, "patched")):
        _fail(ctx, input_name, f"expected a MODEL, got {type(value).__name__}")
    return value


def _lora_list(patcher) -> list[tuple[dict[str, Tensor], float, bool]]:
    """The patcher's LoRAs, all merged into the weights (bypass ones too: baked for good)."""
    return [(sd, strength, False) for sd, strength in patcher.patches]


def _baked(module, loras, target: str):
    from ...lora.apply import loras_applied

    return loras_applied(module, loras, target=target)


# -- ModelMergeSimple -------------------------------------------------------------------------


def merged_network(model1, model2, ratio: float):
    """A copy of model1's network holding ratio * W1 + (1 - ratio) * W2 (module note)."""
    net = copy.deepcopy(model1.diffusion_model)
    net.__dict__.pop("_comfyless_active", None)
    if model2.diffusion_model is model1.diffusion_model:  # one network, other LoRAs: no nesting
        with torch.no_grad(), _baked(model2.diffusion_model, _lora_list(model2), "unet") as n2:
            weights2 = contextlib.nullcontext(
                {k: v.clone() for k, v in n2.state_dict().items()})
    else:
        weights2 = _state_of(_baked(model2.diffusion_model, _lora_list(model2), "unet"))
    merged = skipped = 0
    with torch.no_grad(), \
            _baked(model1.diffusion_model, _lora_list(model1), "unet") as net1, \
            weights2 as second:
        first = net1.state_dict()
        for name, target in net.state_dict().items():
            w2 = second.get(name)
            if not target.is_floating_point() or w2 is None:
                continue
            if w2.shape != target.shape:
                skipped += 1
                continue
            mix = first[name].float() * ratio + w2.to(target.device).float() * (1.0 - ratio)
            target.copy_(mix.to(target.dtype))
            merged += 1
    return net, merged, skipped


@contextlib.contextmanager
def _state_of(baked):
    """The state dict of the module a `_baked` context yields."""
    with baked as module:
        yield module.state_dict()


def model_merge_simple(ctx, model1, model2, ratio: float = 1.0):
    model1, model2 = _model(ctx, model1, "model1"), _model(ctx, model2, "model2")
    if ratio == 1.0:
        return (model1.clone(),)
    net, merged, skipped = merged_network(model1, model2, ratio)
    if merged == 0:
        _fail(ctx, "model2", f"no weight of this {model2.family} model matches the "
                             f"{model1.family} model1 (nothing to merge)")
    if skipped:
        log.warning("ModelMergeSimple: %d weight(s) of model2 have other shapes than model1's "
                    "and were not merged", skipped)
    out = model1.clone()
    out.diffusion_model, out.patches, out.bypass = net, [], []
    out.source = {**model1.source, "merged_with": model2.source.get("name"), "ratio": ratio}
    return (out,)


# -- CheckpointSave ---------------------------------------------------------------------------

def _text_encoder_keys(ctx, clip, record) -> dict[str, Tensor]:
    """The CLIP stack's weights under the checkpoint prefixes of `record` (its layout)."""
    from ...models.clip import hf_to_openclip

    weights = clip.stack.state_dict()
    out: dict[str, Tensor] = {}
    for spec in clip.specs:
        prefix = record.text_encoder_prefixes[spec.name]
        root = f"clip_{spec.name}.transformer."
        hf = {k[len(root):]: v for k, v in weights.items() if k.startswith(root)}
        layout = hf_to_openclip(hf) if prefix.endswith("model.") else hf
        out.update({prefix + k: v for k, v in layout.items()})
    return out


def _check_clip(ctx, clip, record) -> None:
    """Only CLIP stacks (SD1.x, SD2.x, SDXL) are written, each encoder where `record` puts it."""
    if not (hasattr(clip, "stack") and hasattr(clip, "specs")):
        _fail(ctx, "clip", f"saving a {type(clip).__name__} text encoder in a checkpoint is "
                           f"not supported (only the CLIP encoders of SD1.x, SD2.x and SDXL)")
    for spec in clip.specs:
        if spec.name not in record.text_encoder_prefixes:
            _fail(ctx, "clip", f"a {record.name} checkpoint has no place for text encoder "
                               f"{spec.name!r} (of a {clip.family} CLIP)")


def _metadata(ctx, model, name: str, counter: int) -> tuple[dict[str, str], dict[str, Tensor]]:
    """(safetensors metadata, extra marker tensors) as ComfyUI's save_checkpoint writes."""
    metadata: dict[str, str] = {}
    extra: dict[str, Tensor] = {}
    architecture = model.family_record.modelspec_architecture
    if architecture is not None:
        metadata.update({"modelspec.architecture": architecture,
                         "modelspec.sai_model_spec": "1.0.0",
                         "modelspec.implementation": "sgm",
                         "modelspec.title": f"{name} {counter}"})
    prediction = getattr(model.sampling, "prediction", None)
    if prediction == "eps":
        metadata["modelspec.predict_key"] = "epsilon"
    elif prediction == "v":
        metadata["modelspec.predict_key"] = "v"
        extra["v_pred"] = torch.tensor([])
        if getattr(model.sampling, "zsnr", False):
            extra["ztsnr"] = torch.tensor([])
    metadata["prompt"] = json.dumps(ctx.prompt) if ctx.prompt is not None else ""
    for key, value in (ctx.extra_pnginfo or {}).items():
        metadata[key] = json.dumps(value)
    return metadata, extra


def _for_file(sd: dict[str, Tensor]) -> dict[str, Tensor]:
    """CPU, contiguous, unshared copies (safetensors refuses views of one storage)."""
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in sd.items()}


def checkpoint_save(ctx, model, clip, vae, filename_prefix: str = "checkpoints/ComfyUI"):
    from safetensors.torch import save_file

    model = _model(ctx, model)
    # As ComfyUI: a missing CLIP or VAE (a loader gave None) is left out of the file.
    if vae is not None and (getattr(vae, "model", None) is None or not hasattr(vae, "decode")):
        _fail(ctx, "vae", f"expected a VAE, got {type(vae).__name__}")
    record = model.family_record
    if clip is not None:
        _check_clip(ctx, clip, record)
    prefix = image_files.expand_prefix(filename_prefix, 0, 0)
    path = ctx.save_path(prefix, ".safetensors", folder="output")
    name, counter = path.name.rsplit("_", 2)[0], int(path.name.rsplit("_", 2)[1])
    metadata, extra = _metadata(ctx, model, name, counter)
    clip_loras = [(sd, s, False) for sd, s, _ in clip.patches] if clip is not None else []
    with torch.no_grad(), \
            _baked(model.diffusion_model, _lora_list(model), "unet") as unet, \
            (_baked(clip.lora_module, clip_loras, "clip") if clip is not None
             else contextlib.nullcontext()):
        sd = _for_file({record.unet_prefix + k: v for k, v in unet.state_dict().items()})
        if clip is not None:  # copied while the LoRAs are merged in
            sd.update(_for_file(_text_encoder_keys(ctx, clip, record)))
    if vae is not None:
        sd.update(_for_file({record.vae_prefix + k: v for k, v in vae.model.state_dict().items()}))
    sd.update(extra)
    write_atomic(path, lambda tmp: save_file(sd, str(tmp), metadata=metadata))
    root = ctx.paths.folders("output")[0]
    log.info("CheckpointSave: wrote %s", path)
    return Result((), {"checkpoints": [image_files.ui_entry(path, root, "output")]})


# -- FreeU_V2 ---------------------------------------------------------------------------------


def fourier_filter(x: Tensor, threshold: int, scale: float) -> Tensor:
    """x [B, C, H, W] with its lowest 2*threshold x 2*threshold centred frequencies times
    `scale` (computed in float32; returned in x's dtype)."""
    spectrum = torch.fft.fftshift(torch.fft.fftn(x.float(), dim=(-2, -1)), dim=(-2, -1))
    h, w = x.shape[-2:]
    mask = torch.ones(x.shape, device=x.device)
    crow, ccol = h // 2, w // 2
    mask[..., crow - threshold:crow + threshold, ccol - threshold:ccol + threshold] = scale
    spectrum = torch.fft.ifftshift(spectrum * mask, dim=(-2, -1))
    return torch.fft.ifftn(spectrum, dim=(-2, -1)).real.to(x.dtype)


def freeu_v2_patch(model_channels: int, b1: float, b2: float, s1: float, s2: float):
    """The (h, skip) -> (h, skip) output-block patch of FreeU v2 (module note)."""
    factors = {model_channels * 4: (b1, s1), model_channels * 2: (b2, s2)}

    def patch(h: Tensor, skip: Tensor) -> tuple[Tensor, Tensor]:
        found = factors.get(int(h.shape[1]))
        if found is None:
            return h, skip
        backbone, skip_scale = found
        mean = h.mean(1, keepdim=True)
        flat = mean.flatten(1)
        low = flat.min(-1).values.view(-1, 1, 1, 1)
        high = flat.max(-1).values.view(-1, 1, 1, 1)
        mean = (mean - low) / (high - low)
        half = h.shape[1] // 2
        h = torch.cat([h[:, :half] * ((backbone - 1) * mean + 1), h[:, half:]], dim=1)
        return h, fourier_filter(skip, threshold=1, scale=skip_scale)

    return patch


def freeu_v2(ctx, model, b1: float = 1.3, b2: float = 1.4, s1: float = 0.9, s2: float = 0.2):
    model = _model(ctx, model)
    channels = getattr(getattr(model, "config", None), "model_channels", None)
    if not isinstance(channels, int) or not hasattr(model.diffusion_model, "output_blocks"):
        _fail(ctx, "model", f"FreeU patches a UNet's output blocks; this {model.family} "
                            f"model has none (expected SD1.x, SD2.x or SDXL)")
    return (model.with_output_block_patch(freeu_v2_patch(channels, b1, b2, s1, s2)),)

