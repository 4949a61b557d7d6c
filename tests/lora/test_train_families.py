"""TrainLoraNode's loop on the DiT families (tiny random weights in the real key layout): every
algorithm trains, the file keys are ComfyUI's trainer names (`diffusion_model.<path>`), and the
trained LoRA loads back onto the network with every key placed (lora-format.md §2, §4)."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from comfyless.lora import ALGORITHMS
from comfyless.lora.formats import read_lora
from comfyless.lora.training import TrainConfig, train_lora
from comfyless.models.checkpoint import load_diffusion_model
from tests.floats import assert_close_scaled

CONTEXT, TOKENS = 32, 6


def _sd3_file(path):
    from comfyless.models.families.sd3.writer import diffusion_model_state_dict

    save_file(diffusion_model_state_dict("sd35-medium", "tiny", 0, context_in=CONTEXT,
                                         adm_in=24), str(path))
    return path


def _flux_file(path):
    from comfyless.models.families.flux.writer import diffusion_model_state_dict

    save_file(diffusion_model_state_dict("flux", "tiny", 0, context_in_dim=CONTEXT,
                                         vec_in_dim=24), str(path))
    return path


def _zimage_file(path):
    from comfyless.models.families.zimage.writer import diffusion_model_state_dict

    save_file(diffusion_model_state_dict("zimage", "tiny", 0, cap_feat_dim=CONTEXT), str(path))
    return path


def _qwen_image_file(path):
    from comfyless.models.families.qwen_image.writer import diffusion_model_state_dict

    save_file(diffusion_model_state_dict("qwen-image", "tiny", 0, joint_attention_dim=CONTEXT),
              str(path))
    return path


# family -> (file writer, pooled width, keys the trainer must write with their shapes at rank r)
FAMILIES = {
    "sd3": (_sd3_file, 24, lambda r, h: {
        "diffusion_model.joint_blocks.0.x_block.attn.qkv.lora_up.weight": (3 * h, r),
        "diffusion_model.joint_blocks.0.x_block.attn2.qkv.lora_down.weight": (r, h),
        "diffusion_model.x_embedder.proj.lora_down.weight": (r, 16 * 2 * 2),
        "diffusion_model.context_embedder.lora_down.weight": (r, CONTEXT),
        "diffusion_model.joint_blocks.0.x_block.attn.qkv.diff_b": (3 * h,),
    }),
    "flux": (_flux_file, 24, lambda r, h: {  # model-families.md §1.6 with H = 64, F = 4H
        "diffusion_model.double_blocks.0.img_attn.qkv.lora_up.weight": (3 * h, r),
        "diffusion_model.double_blocks.0.img_attn.qkv.diff_b": (3 * h,),
        "diffusion_model.double_blocks.0.img_attn.norm.query_norm.diff": (32,),
        "diffusion_model.single_blocks.0.linear1.lora_up.weight": (3 * h + 4 * h, r),
        "diffusion_model.single_blocks.0.linear2.lora_down.weight": (r, h + 4 * h),
        "diffusion_model.double_blocks.0.img_mod.lin.lora_up.weight": (6 * h, r),
        "diffusion_model.img_in.lora_down.weight": (r, 64),
        "diffusion_model.txt_in.lora_down.weight": (r, CONTEXT),
        "diffusion_model.vector_in.in_layer.lora_down.weight": (r, 24),
        "diffusion_model.guidance_in.in_layer.lora_down.weight": (r, 256),
        "diffusion_model.final_layer.adaLN_modulation.1.lora_up.weight": (2 * h, r),
    }),
    "zimage": (_zimage_file, None, lambda r, h: {  # model-families.md §3.6
        "diffusion_model.layers.0.attention.qkv.lora_up.weight": (3 * h, r),
        "diffusion_model.layers.0.attention_norm1.diff": (h,),
        "diffusion_model.noise_refiner.0.adaLN_modulation.0.diff_b": (4 * h,),
        "diffusion_model.cap_embedder.0.diff": (CONTEXT,),
        "diffusion_model.cap_embedder.1.lora_down.weight": (r, CONTEXT),
        "diffusion_model.x_embedder.lora_down.weight": (r, 64),
    }),
    "qwen-image": (_qwen_image_file, None, lambda r, h: {  # model-families.md §4.6
        "diffusion_model.transformer_blocks.0.attn.to_q.lora_up.weight": (h, r),
        "diffusion_model.transformer_blocks.0.attn.to_q.diff_b": (h,),
        "diffusion_model.transformer_blocks.0.img_mod.1.lora_up.weight": (6 * h, r),
        "diffusion_model.txt_norm.diff": (CONTEXT,),
        "diffusion_model.txt_in.lora_down.weight": (r, CONTEXT),
        "diffusion_model.img_in.lora_down.weight": (r, 64),
    }),
}


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def dit(request, tmp_path_factory):
    writer, pooled, _ = FAMILIES[request.param]
    model = load_diffusion_model(writer(tmp_path_factory.mktemp(request.param) / "m.safetensors"))
    return request.param, model, pooled


def _data(pooled: int, n: int = 2):
    g = torch.Generator().manual_seed(0)
    lat = {"samples": torch.randn(n, 16, 8, 8, generator=g)}
    conds = [[torch.randn(1, TOKENS, CONTEXT, generator=g),
              {} if pooled is None else {"pooled_output": torch.randn(1, pooled, generator=g)}]
             for _ in range(n)]
    return [lat], [conds]


def _config(algorithm: str, steps: int = 2) -> TrainConfig:
    return TrainConfig(algorithm=algorithm, steps=steps, rank=4, learning_rate=1e-3,
                       training_dtype="fp32", lora_dtype="fp32", batch_size=2)


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_every_algorithm_trains_and_loads_back(dit, algorithm, one_torch_thread):
    name, model, pooled = dit
    before = {k: v.clone() for k, v in model.diffusion_model.state_dict().items()}
    result = train_lora(model, *_data(pooled), _config(algorithm))
    assert len(result.losses) == 2 and all(torch.isfinite(torch.tensor(result.losses)))
    assert all(k.startswith("diffusion_model.") for k in result.lora)
    for k, v in model.diffusion_model.state_dict().items():  # the shared network is restored
        assert torch.equal(v, before[k]), k
    patches, unplaced = read_lora(result.lora, "unet", model.diffusion_model)
    assert unplaced == {} and patches


def test_lora_keys_are_comfyui_trainer_names(dit, one_torch_thread):
    name, model, pooled = dit
    lora = train_lora(model, *_data(pooled), _config("LoRA", steps=1)).lora
    config = model.diffusion_model.config
    hidden = getattr(config, "hidden_size", None) or config.dim
    for key, shape in FAMILIES[name][2](4, hidden).items():
        assert tuple(lora[key].shape) == shape, key


def test_trained_lora_changes_the_prediction_merged_and_bypassed_alike(dit, one_torch_thread):
    name, model, pooled = dit
    lat, pos = _data(pooled)
    lora = train_lora(model, lat, pos, _config("LoRA", steps=3)).lora
    x = torch.randn(1, 16, 8, 8, generator=torch.Generator().manual_seed(1))
    sigma = torch.tensor([0.6])
    context, options = pos[0][0]
    extra = model.extra_conds(options, 64, 64)
    plain = model.apply_model(x, sigma, context, **extra)
    merged = model.with_lora(lora, 1.0).apply_model(x, sigma, context, **extra)
    bypassed = model.with_lora(lora, 1.0, bypass=True).apply_model(x, sigma, context, **extra)
    assert (merged - plain).abs().max() > 1e-4
    assert_close_scaled(bypassed, merged, rtol=1e-4)


def test_saved_lora_file_loads_with_the_lora_loader_node(dit, tmp_path, one_torch_thread):
    """SaveLoRA's file, read back by LoraLoaderModelOnly: every key placed, same prediction."""
    from comfyless.engine.context import RunContext
    from comfyless.nodes import REGISTRY

    name, model, pooled = dit
    lat, pos = _data(pooled)
    lora = train_lora(model, lat, pos, _config("LoKr", steps=2)).lora
    ctx = RunContext.create(tmp_path / "base").for_node("8", "LoraLoaderModelOnly")
    folder = tmp_path / "base" / "models" / "loras"
    folder.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in lora.items()}, str(folder / f"{name}.safetensors"))
    messages = []
    ctx.listeners.append(lambda event: messages.append(event))
    (loaded,) = REGISTRY.get("LoraLoaderModelOnly").execute(
        ctx, model=model, lora_name=f"{name}.safetensors", strength_model=0.8)
    x = torch.randn(1, 16, 8, 8, generator=torch.Generator().manual_seed(2))
    context, options = pos[0][0]
    extra = model.extra_conds(options, 64, 64)
    want = model.with_lora(lora, 0.8).apply_model(x, torch.tensor([0.4]), context, **extra)
    got = loaded.apply_model(x, torch.tensor([0.4]), context, **extra)
    assert_close_scaled(got, want, rtol=1e-5)
    assert not [m for m in messages if "not loaded" in str(m)]
