"""ComfyUI's scaled-fp8 files (and per-tensor fp8 "mixed precision" layers) through the normal
loaders: a Flux diffusion model, an SD3.5 all-in-one checkpoint (MMDiT + T5 scaled), and a Flux
CLIP-L + T5 text-encoder pair. Files are written here in the real key layout: each Linear weight
w stored as q = (w / s) in float8_e4m3fn with s = max|w| / 448 under `<layer>.scale_weight`,
a `scaled_fp8` marker under the model's prefix. Loaded outputs must equal those of the plain
model built from the dequantised weights q·s (float tolerance) and stay near the fp32 original.
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from comfyless.models.checkpoint import load_checkpoint, load_diffusion_model
from comfyless.models.checkpoint_writer import checkpoint_state_dict
from comfyless.models.families import detect_family
from comfyless.models.families.flux import writer as flux_writer
from comfyless.models.quant import dequantized_state_dict
from comfyless.models.text_sets import load_text_encoder_files, text_encoder_files
from comfyless.typesys.errors import ModelLoadError
from tests.floats import assert_close_scaled

FP8 = torch.float8_e4m3fn
FP8_MAX = 448.0  # torch.finfo(float8_e4m3fn).max
EXACT = dict(rtol=1e-5, atol_rel=1e-5)  # same weights, another load path
FP8_REL_ERROR = 0.15  # fp8 keeps 3 mantissa bits: a few % per weight, summed over layers
UNET = "model.diffusion_model."
T5 = "text_encoders.t5xxl.transformer."
CONTEXT, POOLED = 32, 24  # tiny Flux text widths
# 2-D `.weight` tensors that are embedding tables, not Linear layers (stored plain by ComfyUI)
_EMBEDDINGS = ("shared", "embed_tokens", "relative_attention_bias", "token_embedding",
               "position_embedding")


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    yield


def _is_linear_weight(key: str, t: torch.Tensor) -> bool:
    module = key.rsplit(".", 1)[0]
    return t.ndim == 2 and key.endswith(".weight") and not module.endswith(_EMBEDDINGS)


def scale_fp8(sd: dict[str, torch.Tensor], prefix: str, marker: bool = True
              ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(scaled-fp8 file tensors, the same model with the dequantised weights q·s in float32)
    for the Linear weights under `prefix`; scales alternate between shapes [] and [1], every
    third layer also has a `scale_input` of 1 (as in ComfyUI's files)."""
    scaled, plain = dict(sd), dict(sd)
    linear = [k for k, t in sd.items() if k.startswith(prefix) and _is_linear_weight(k, t)]
    for n, key in enumerate(linear):
        w = sd[key].float()
        s = w.abs().max() / FP8_MAX
        q = (w / s).to(FP8)
        layer = key[: -len(".weight")]
        scaled[key] = q
        scaled[f"{layer}.scale_weight"] = s.reshape(() if n % 2 else (1,))
        if n % 3 == 0:
            scaled[f"{layer}.scale_input"] = torch.ones(())
        plain[key] = q.float() * s
    if marker:
        scaled[f"{prefix}scaled_fp8"] = torch.empty(0, dtype=FP8)
    return scaled, plain


def assert_near_fp32(actual: torch.Tensor, fp32: torch.Tensor) -> None:
    """Within fp8 rounding of the fp32 model: a relative L2 error (one element may be off)."""
    err = float(torch.linalg.vector_norm(actual - fp32) / torch.linalg.vector_norm(fp32))
    print(f"relative L2 error against fp32: {err:.4f}")
    assert err < FP8_REL_ERROR, err


def _save(sd: dict[str, torch.Tensor], path, metadata: dict[str, str] | None = None):
    save_file({k: v.contiguous() for k, v in sd.items()}, str(path), metadata=metadata)
    return path


def _flux_file() -> dict[str, torch.Tensor]:
    return flux_writer.diffusion_model_state_dict("flux", "tiny", 0, CONTEXT, POOLED)


def _flux_inputs(seed: int = 1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return dict(x=torch.randn(2, 16, 8, 10, generator=g), timesteps=torch.tensor([0.3, 0.8]),
                context=torch.randn(2, 5, CONTEXT, generator=g),
                y=torch.randn(2, POOLED, generator=g), guidance=torch.tensor([3.5, 2.0]))


def _run(model, inputs):
    with torch.no_grad():
        return model.diffusion_model(**inputs)


# -- Flux diffusion model (UNETLoader) ---------------------------------------------------------

@pytest.mark.parametrize("prefix", ["", UNET])
def test_flux_scaled_diffusion_model_loads_dequantised(prefix, tmp_path):
    original = {prefix + k: v for k, v in _flux_file().items()}
    scaled, plain = scale_fp8(original, prefix)
    assert sum(k.endswith(".scale_weight") for k in scaled) > 20
    model = load_diffusion_model(_save(scaled, tmp_path / "flux1-krea-dev_fp8_scaled.safetensors"))
    reference = load_diffusion_model(_save(plain, tmp_path / "dequantised.safetensors"))
    fp32 = load_diffusion_model(_save(original, tmp_path / "flux1-dev.safetensors"))
    assert model.family == "flux" and model.config == fp32.config
    net = model.diffusion_model
    assert net.img_in.weight.dtype == torch.float32  # dequantised into the compute dtype
    assert not any(n.endswith(("scale_weight", "scale_input", "scaled_fp8"))
                   for n in net.state_dict())
    inputs = _flux_inputs()
    ours = _run(model, inputs)
    assert_close_scaled(ours, _run(reference, inputs), **EXACT)
    assert_near_fp32(ours, _run(fp32, inputs))


def test_detection_ignores_the_scale_keys():
    original = _flux_file()
    scaled, _ = scale_fp8({UNET + k: v for k, v in original.items()}, UNET)
    shapes = {k: tuple(v.shape) for k, v in scaled.items()}
    plain = {UNET + k: tuple(v.shape) for k, v in original.items()}
    assert detect_family(shapes).config == detect_family(plain).config
    sd3 = checkpoint_state_dict("sd35")
    scaled, _ = scale_fp8(sd3, UNET)
    assert detect_family({k: tuple(v.shape) for k, v in scaled.items()}).config == \
        detect_family({k: tuple(v.shape) for k, v in sd3.items()}).config


# -- SD3.5 all-in-one checkpoint (CheckpointLoaderSimple) ----------------------------------------

def test_sd35_scaled_checkpoint_loads_mmdit_and_t5_dequantised(tmp_path):
    original = checkpoint_state_dict("sd35")
    scaled, plain = scale_fp8(original, UNET)
    scaled, plain_t5 = scale_fp8(scaled, T5)  # sd3.5_large_fp8_scaled: T5 scaled, CLIPs fp16
    plain.update({k: v for k, v in plain_t5.items() if k.startswith(T5)})
    assert "text_encoders.t5xxl.transformer.scaled_fp8" in scaled
    loaded = {name: load_checkpoint(_save(sd, tmp_path / f"{name}.safetensors"))
              for name, sd in (("scaled", scaled), ("plain", plain), ("fp32", original))}
    (model, clip, vae), (ref_model, ref_clip, _), (fp32_model, fp32_clip, _) = (
        loaded["scaled"], loaded["plain"], loaded["fp32"])
    assert model.family == fp32_model.family and vae is not None
    cond, pooled = clip.encode("a red fox in the snow")
    ref_cond, ref_pooled = ref_clip.encode("a red fox in the snow")
    fp32_cond, fp32_pooled = fp32_clip.encode("a red fox in the snow")
    assert_close_scaled(cond, ref_cond, **EXACT)
    assert_close_scaled(pooled, ref_pooled, **EXACT)  # CLIP-L/G were not scaled
    assert_near_fp32(cond, fp32_cond)
    g = torch.Generator().manual_seed(4)
    x = torch.randn(1, 16, 12, 10, generator=g)
    extra = model.extra_conds({"pooled_output": ref_pooled}, 80, 96)
    with torch.no_grad():
        outs = [m.apply_model(x, torch.tensor([0.7]), ref_cond, **extra)
                for m in (model, ref_model, fp32_model)]
    assert_close_scaled(outs[0], outs[1], **EXACT)
    assert_near_fp32(outs[0], outs[2])


# -- Flux text encoders (DualCLIPLoader) ------------------------------------------------------

def test_flux_scaled_t5_and_clip_l_files_encode_as_dequantised(tmp_path):
    files = text_encoder_files("flux", "tiny", torch.Generator().manual_seed(0))
    t5_scaled, t5_plain = scale_fp8(files["t5xxl_fp16.safetensors"], "")  # bare `scaled_fp8`
    l_scaled, l_plain = scale_fp8(files["clip_l.safetensors"], "")
    paths = {name: _save(sd, tmp_path / name) for name, sd in (
        ("t5xxl_fp8_e4m3fn_scaled.safetensors", t5_scaled), ("clip_l_scaled.safetensors", l_scaled),
        ("t5_plain.safetensors", t5_plain), ("clip_l_plain.safetensors", l_plain),
        ("t5xxl_fp16.safetensors", files["t5xxl_fp16.safetensors"]),
        ("clip_l.safetensors", files["clip_l.safetensors"]))}
    sets = [load_text_encoder_files([paths[a], paths[b]], "flux") for a, b in (
        ("t5xxl_fp8_e4m3fn_scaled.safetensors", "clip_l_scaled.safetensors"),
        ("t5_plain.safetensors", "clip_l_plain.safetensors"),
        ("t5xxl_fp16.safetensors", "clip_l.safetensors"))]
    (cond, pooled), (ref_cond, ref_pooled), (fp32_cond, fp32_pooled) = (
        s.encode("a red fox in the snow") for s in sets)
    assert_close_scaled(cond, ref_cond, **EXACT)
    assert_close_scaled(pooled, ref_pooled, **EXACT)
    assert_near_fp32(cond, fp32_cond)
    assert_near_fp32(pooled, fp32_pooled)


def test_a_state_dict_with_scales_is_dequantised_too():
    t5 = text_encoder_files("flux", "tiny", torch.Generator().manual_seed(0))[
        "t5xxl_fp16.safetensors"]
    scaled, plain = scale_fp8(t5, "")
    out = dequantized_state_dict(scaled)
    assert set(out) == set(plain)
    for k, v in plain.items():
        assert_close_scaled(out[k], v, **EXACT)


# -- the newer per-tensor fp8 "mixed precision" layers ------------------------------------------

def _comfy_quant(fmt: str) -> torch.Tensor:
    return torch.tensor(list(json.dumps({"format": fmt}).encode()), dtype=torch.uint8)


def test_comfy_quant_fp8_layers_load_dequantised(tmp_path):
    scaled, plain = scale_fp8(_flux_file(), "", marker=False)
    mixed = {}
    for k, v in scaled.items():  # ComfyUI's convert_old_quants renaming
        if k.endswith(".scale_weight"):
            layer = k[: -len(".scale_weight")]
            mixed[f"{layer}.weight_scale"] = v
            mixed[f"{layer}.comfy_quant"] = _comfy_quant("float8_e4m3fn")
        elif k.endswith(".scale_input"):
            mixed[k.replace(".scale_input", ".input_scale")] = v
        else:
            mixed[k] = v
    model = load_diffusion_model(_save(mixed, tmp_path / "flux_mixed.safetensors"))
    reference = load_diffusion_model(_save(plain, tmp_path / "plain.safetensors"))
    inputs = _flux_inputs()
    assert_close_scaled(_run(model, inputs), _run(reference, inputs), **EXACT)


# -- errors name the key ------------------------------------------------------------------------

def _broken(sd: dict[str, torch.Tensor], key: str, value: torch.Tensor):
    return {**sd, key: value}


@pytest.mark.parametrize("key, value, match", [
    ("double_blocks.0.img_attn.qkv.scale_weight", torch.ones(2),
     r"'double_blocks\.0\.img_attn\.qkv\.scale_weight' has shape \[2\].*one number"),
    ("no_such_layer.scale_weight", torch.ones(()), r"'no_such_layer\.weight' that is not in"),
    ("img_in.comfy_quant", _comfy_quant("nvfp4"), r"layer 'img_in' is quantised as 'nvfp4'"),
    ("img_in.weight_scale_2", torch.ones(()), r"layer 'img_in' is quantised as 'nvfp4'"),
])
def test_malformed_or_unsupported_scales_are_named(key, value, match, tmp_path):
    scaled, _ = scale_fp8(_flux_file(), "")
    path = _save(_broken(scaled, key, value), tmp_path / "broken_fp8_scaled.safetensors")
    with pytest.raises(ModelLoadError, match=match) as info:
        load_diffusion_model(path, node_id="3")
    assert "broken_fp8_scaled.safetensors" in str(info.value)
    assert info.value.node_id == "3" and info.value.input_name == "unet_name"


def test_metadata_formats_are_checked(tmp_path):
    scaled, _ = scale_fp8(_flux_file(), "")
    meta = {"_quantization_metadata": json.dumps(
        {"format_version": "1.0", "layers": {"img_in": {"format": "int8_tensorwise"}}})}
    path = _save(scaled, tmp_path / "int8.safetensors", meta)
    with pytest.raises(ModelLoadError, match="'img_in'.*'int8_tensorwise'"):
        load_diffusion_model(path)


def test_an_integer_weight_with_a_scale_is_refused_on_read(tmp_path):
    scaled, _ = scale_fp8(_flux_file(), "")
    scaled["img_in.weight"] = torch.zeros(scaled["img_in.weight"].shape, dtype=torch.uint8)
    with pytest.raises(ModelLoadError, match=r"'img_in\.weight' is torch\.uint8 with a scale"):
        load_diffusion_model(_save(scaled, tmp_path / "packed.safetensors"))
