"""Model loader nodes: CheckpointLoaderSimple, UNETLoader, VAELoader, CLIPLoader, DualCLIPLoader.

Schemas follow ComfyUI (workflow-formats.md §8 and ComfyUI's node definitions). File combos come
from the model folders (`choices_from`), so a missing file is a validation error. Loading code
lives in comfyless.models; it is imported inside `execute` to keep validation torch-free.
"""

from __future__ import annotations

from ..typesys.schema import Input, Node, NodeSchema, Output
from ..typesys.types import BOOLEAN, CLIP, COMBO, MODEL, VAE

# UNETLoader weight_dtype -> torch dtype name the weights are rounded through ("default": the
# device's dtype). fp8 weights are rounded to fp8 and then held in the compute dtype, so
# results match ComfyUI's fp8 storage (without its memory saving).
WEIGHT_DTYPES = {
    "default": None,
    "fp8_e4m3fn": "float8_e4m3fn",
    "fp8_e4m3fn_fast": "float8_e4m3fn",
    "fp8_e5m2": "float8_e5m2",
}
# ComfyUI's CLIPLoader / DualCLIPLoader `type` options; the ones we can load are marked in
# comfyless.models.clip (others fail at run time naming the input).
CLIP_TYPES = ("stable_diffusion", "stable_cascade", "sd3", "stable_audio", "mochi", "ltxv",
              "pixart", "cosmos", "lumina2", "wan", "hidream", "chroma", "ace", "omnigen2",
              "qwen_image", "hunyuan_image", "flux2", "ovis")
DUAL_CLIP_TYPES = ("sdxl", "sd3", "flux", "hunyuan_video", "hidream", "hunyuan_image",
                   "hunyuan_video_15", "kandinsky5", "kandinsky5_image", "ltxv", "newbie",
                   "ace")
CLIP_DEVICES = ("default", "cpu")


class CheckpointLoaderSimple(Node):
    """A single-file SD1.x / SD2.x / SDXL checkpoint as MODEL, CLIP and VAE."""

    schema = NodeSchema(
        "CheckpointLoaderSimple",
        display_name="Load Checkpoint",
        category="loaders",
        inputs=(Input("ckpt_name", COMBO, choices_from="checkpoints",
                      tooltip="The name of the checkpoint (model) to load."),),
        outputs=(Output("MODEL", MODEL), Output("CLIP", CLIP), Output("VAE", VAE)),
    )

    @staticmethod
    def execute(ctx, ckpt_name: str):
        from ..models.checkpoint import load_checkpoint

        path = ctx.find("checkpoints", ckpt_name, input_name="ckpt_name")
        # As in ComfyUI, a file without text-encoder or VAE weights gives None for that output
        # (a consumer then reports the missing input).
        model, clip, vae = load_checkpoint(path, device=ctx.device, node_id=ctx.node_id,
                                           input_name="ckpt_name")
        model.source["name"] = ckpt_name
        return (model, clip, vae)


class UNETLoader(Node):
    """A diffusion-model-only file (or the UNet of a full checkpoint) as MODEL."""

    schema = NodeSchema(
        "UNETLoader",
        display_name="Load Diffusion Model",
        category="advanced/loaders",
        inputs=(
            Input("unet_name", COMBO, choices_from="diffusion_models"),
            Input("weight_dtype", COMBO, choices=tuple(WEIGHT_DTYPES), default="default"),
        ),
        outputs=(Output("MODEL", MODEL),),
    )

    @staticmethod
    def execute(ctx, unet_name: str, weight_dtype: str = "default"):
        import torch

        from ..models.checkpoint import load_diffusion_model

        path = ctx.find("diffusion_models", unet_name, input_name="unet_name")
        model = load_diffusion_model(path, device=ctx.device, node_id=ctx.node_id,
                                     input_name="unet_name")
        storage = WEIGHT_DTYPES[weight_dtype]
        if storage is not None:
            _round_weights(model.diffusion_model, getattr(torch, storage))
        model.source["name"] = unet_name
        return (model,)


def _round_weights(module, storage_dtype) -> None:
    """Round every floating weight through `storage_dtype` (fp8), keeping the compute dtype."""
    import torch

    with torch.no_grad():
        for p in module.parameters():
            if p.ndim >= 2:  # ComfyUI keeps norms and biases in the compute dtype
                p.copy_(p.to(storage_dtype).to(p.dtype))


class VAELoader(Node):
    """A standalone VAE file (LDM or diffusers layout) as VAE."""

    schema = NodeSchema(
        "VAELoader",
        display_name="Load VAE",
        category="loaders",
        inputs=(Input("vae_name", COMBO, choices_from="vae"),),
        outputs=(Output("VAE", VAE),),
    )

    @staticmethod
    def execute(ctx, vae_name: str):
        from ..models import vae as vae_mod
        from ..models.checkpoint import VAE_PREFIX, default_vae_dtype
        from ..models.tensor_files import open_tensor_file
        from ..typesys.errors import ModelLoadError

        path = ctx.find("vae", vae_name, input_name="vae_name")
        with open_tensor_file(path, node_id=ctx.node_id, input_name="vae_name") as tensors:
            sd = {k[len(VAE_PREFIX):] if k.startswith(VAE_PREFIX) else k: tensors[k]
                  for k in tensors if not k.startswith(("model.", "cond_stage_model."))}
        try:
            vae = vae_mod.load_vae(sd, dtype=default_vae_dtype(ctx.device), device=ctx.device)
        except (KeyError, ValueError, RuntimeError) as exc:
            raise ModelLoadError(f"{vae_name}: not a supported VAE file: {exc}",
                                 node_id=ctx.node_id, input_name="vae_name") from exc
        return (vae,)


def _load_text_encoders(ctx, names: dict[str, str], clip_type: str, device: str):
    """Resolve text-encoder file inputs and load them through models/clip.py."""
    from ..models import clip as clip_mod
    from ..typesys.errors import ModelLoadError

    paths = [ctx.find("text_encoders", name, input_name=inp) for inp, name in names.items()]
    import inspect

    target = "cpu" if device == "cpu" else ctx.device
    load = clip_mod.load_clip_files
    kw = {"device": target} if "device" in inspect.signature(load).parameters else {}
    try:
        return load(paths, clip_type, **kw)
    except (KeyError, ValueError, RuntimeError) as exc:
        first = next(iter(names))
        raise ModelLoadError(f"cannot load {', '.join(names.values())} as {clip_type!r}: {exc}",
                             node_id=ctx.node_id, input_name=first) from exc


class CLIPLoader(Node):
    """One text-encoder file as CLIP (stable_diffusion: CLIP-L for SD1.x, ViT-H for SD2.x)."""

    schema = NodeSchema(
        "CLIPLoader",
        display_name="Load CLIP",
        category="advanced/loaders",
        inputs=(
            Input("clip_name", COMBO, choices_from="text_encoders"),
            Input("type", COMBO, choices=CLIP_TYPES, default="stable_diffusion"),
            Input("device", COMBO, choices=CLIP_DEVICES, default="default", optional=True),
        ),
        outputs=(Output("CLIP", CLIP),),
    )

    @staticmethod
    def execute(ctx, clip_name: str, type: str = "stable_diffusion", device: str = "default"):
        return (_load_text_encoders(ctx, {"clip_name": clip_name}, type, device),)


class DualCLIPLoader(Node):
    """Two text-encoder files as one CLIP (sdxl: CLIP-L + OpenCLIP bigG)."""

    schema = NodeSchema(
        "DualCLIPLoader",
        display_name="DualCLIPLoader",
        category="advanced/loaders",
        inputs=(
            Input("clip_name1", COMBO, choices_from="text_encoders"),
            Input("clip_name2", COMBO, choices_from="text_encoders"),
            Input("type", COMBO, choices=DUAL_CLIP_TYPES, default="sdxl"),
            Input("device", COMBO, choices=CLIP_DEVICES, default="default", optional=True),
        ),
        outputs=(Output("CLIP", CLIP),),
    )

    @staticmethod
    def execute(ctx, clip_name1: str, clip_name2: str, type: str = "sdxl",
                device: str = "default"):
        names = {"clip_name1": clip_name1, "clip_name2": clip_name2}
        return (_load_text_encoders(ctx, names, type, device),)


# ModelSamplingDiscrete `sampling` option -> ModelSampling prediction (None: not implemented).
SAMPLING_TYPES = {"eps": "eps", "v_prediction": "v", "lcm": None, "x0": "x0", "img_to_img": None}


class ModelSamplingDiscrete(Node):
    """Override a model's prediction type (e.g. an SD2 file misdetected) and zero-terminal-SNR."""

    schema = NodeSchema(
        "ModelSamplingDiscrete",
        category="advanced/model",
        inputs=(
            Input("model", MODEL),
            Input("sampling", COMBO, choices=tuple(SAMPLING_TYPES), default="eps"),
            Input("zsnr", BOOLEAN, default=False),
        ),
        outputs=(Output("MODEL", MODEL),),
    )

    @staticmethod
    def execute(ctx, model, sampling: str = "eps", zsnr: bool = False):
        from ..models.sampling import ModelSampling

        prediction = SAMPLING_TYPES[sampling]
        if prediction is None:
            supported = ", ".join(k for k, v in SAMPLING_TYPES.items() if v)
            raise ValueError(f"input 'sampling': {sampling!r} is not implemented; "
                             f"supported: {supported}")
        return (model.with_sampling(ModelSampling(prediction, zsnr=zsnr)),)


NODES = [CheckpointLoaderSimple, UNETLoader, VAELoader, CLIPLoader, DualCLIPLoader,
         ModelSamplingDiscrete]
