"""ControlNet network (models/controlnet.py) against diffusers' ControlNetModel on the same tiny
random weights, in both file layouts; hint resizing, strength, active range, chaining, the UNet's
control residuals and clear errors for other files."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from comfyless.models.controlnet import (
    ControlNet,
    broadcast_hint,
    hint_for_latent,
    load_controlnet_file,
    merge_residuals,
    random_controlnet_state_dict,
)
from comfyless.models.families.sd.writer import unet_config
from comfyless.models.sampling import ModelSampling
from comfyless.models.tensor_files import open_tensor_file
from comfyless.models.unet import UNetModel, timestep_embedding
from comfyless.typesys.errors import ModelLoadError
from tests.floats import assert_close_scaled

diffusers = pytest.importorskip("diffusers")
single_file_utils = pytest.importorskip("diffusers.loaders.single_file_utils")

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ARCHS = ("sd15", "sdxl")


def _diffusers_config(c) -> dict:
    """diffusers ControlNetModel config describing the same network as UNetConfig c."""
    chans = [c.model_channels * m for m in c.channel_mult]
    first_res = [sum(c.num_res_blocks[:i]) for i in range(len(chans))]
    depth = [c.transformer_depth[i] for i in first_res]
    per_head = c.num_head_channels
    heads = c.num_heads if per_head == -1 else [ch // per_head for ch in chans]
    cfg = dict(in_channels=c.in_channels, conditioning_channels=3,
               down_block_types=["CrossAttnDownBlock2D" if d else "DownBlock2D" for d in depth],
               block_out_channels=chans, layers_per_block=c.num_res_blocks[0],
               cross_attention_dim=c.context_dim, attention_head_dim=heads,
               use_linear_projection=c.use_linear_in_transformer,
               transformer_layers_per_block=[max(d, 1) for d in depth])
    if c.adm_in_channels:
        cfg.update(addition_embed_type="text_time", addition_time_embed_dim=256,
                   projection_class_embeddings_input_dim=c.adm_in_channels)
    return cfg


def _inputs(c, seed=1):
    """x, hint, t, context, y (SDXL) and diffusers' extra kwargs for the same call."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 4, 8, 12, generator=g)
    hint = torch.rand(2, 3, 64, 96, generator=g)
    context = torch.randn(2, 7, c.context_dim, generator=g)
    t = torch.tensor([10.0, 700.0])
    y, extra = None, {}
    if c.adm_in_channels:
        pooled = torch.randn(2, c.adm_in_channels - 1536, generator=g)
        time_ids = torch.tensor([[128.0, 96.0, 3.0, 0.0, 128.0, 96.0]] * 2)
        y = torch.cat([pooled, timestep_embedding(time_ids.flatten(), 256).reshape(2, -1)], 1)
        extra["added_cond_kwargs"] = {"text_embeds": pooled, "time_ids": time_ids}
    return x, hint, t, context, y, extra


def _compare(ours: ControlNet, reference, c) -> float:
    x, hint, t, context, y, extra = _inputs(c)
    with torch.no_grad():
        mine = ours.network(x, hint, t, context, y)
        down, mid = reference(x, t, encoder_hidden_states=context, controlnet_cond=hint,
                              return_dict=False, **extra)
    assert len(mine["output"]) == len(down)
    pairs = [*zip(mine["output"], down, strict=True), (mine["middle"][0], mid)]
    for a, b in pairs:
        assert a.abs().max() > 1e-3  # a real signal, not zeros
        assert_close_scaled(a, b, rtol=1e-4, atol_rel=1e-4)
    return max(float((a - b).abs().max()) for a, b in pairs)


def _load(path, name=None):
    with open_tensor_file(path) as tensors:
        return load_controlnet_file(tensors, name or path.name)


@pytest.mark.parametrize("arch", ARCHS)
def test_diffusers_layout_matches_diffusers(arch, tmp_path):
    c = unet_config(arch, "tiny")
    torch.manual_seed(0)
    reference = diffusers.ControlNetModel(**_diffusers_config(c)).eval()
    with torch.no_grad():  # the zero convs start at zero: give them weights
        for p in reference.parameters():
            if not p.any():
                p.normal_(0.0, 0.05)
    path = tmp_path / "diffusion_pytorch_model.safetensors"
    save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, path)
    ours = _load(path)
    assert ours.config.channel_mult == c.channel_mult
    assert _compare(ours, reference, c) < 1e-4


@pytest.mark.parametrize("arch", ARCHS)
def test_original_layout_matches_diffusers(arch, tmp_path):
    """Original keys under control_model. (SD1.5) or bare (SDXL); diffusers' own converter
    (an independent implementation) turns them into the reference model's keys."""
    c = unet_config(arch, "tiny")
    prefix = "control_model." if arch == "sd15" else ""
    sd = random_controlnet_state_dict(c, torch.Generator().manual_seed(2), prefix=prefix)
    path = tmp_path / f"control_{arch}.safetensors"
    save_file(sd, path)
    ours = _load(path)
    cfg = _diffusers_config(c)
    bare = {k[len(prefix):]: v for k, v in sd.items()}
    converted = single_file_utils.convert_controlnet_checkpoint(bare, cfg)
    for ldm, dif in (("label_emb.0.0", "add_embedding.linear_1"),
                     ("label_emb.0.2", "add_embedding.linear_2")):  # not in its table
        for leaf in ("weight", "bias"):
            if f"{ldm}.{leaf}" in bare:
                converted[f"{dif}.{leaf}"] = bare[f"{ldm}.{leaf}"]
    reference = diffusers.ControlNetModel(**cfg).eval()
    reference.load_state_dict(converted, strict=True)
    assert _compare(ours, reference, c) < 1e-4


def test_hint_is_centre_cropped_and_resized_nearest_exact():
    hint = torch.rand(1, 3, 10, 20)
    out = hint_for_latent(hint, 4, 4)  # a square latent: cut 5 columns off each side
    assert out.shape == (1, 3, 32, 32)
    expected = F.interpolate(hint[..., 5:15], size=(32, 32), mode="nearest-exact")
    assert torch.equal(out, expected)
    tall = hint_for_latent(torch.rand(2, 3, 30, 10), 3, 2)  # too tall: rows are cut
    assert tall.shape == (2, 3, 24, 16)


def test_broadcast_hint_follows_comfyui():
    h = torch.arange(3.0).reshape(3, 1, 1, 1)
    assert broadcast_hint(h[:1], 4, 2).shape[0] == 1  # batch 1 broadcasts by itself
    assert broadcast_hint(h, 3, 1) is h
    # 2 conds x 2 samples: the first 2 hints, once per cond
    assert broadcast_hint(h, 4, 2).flatten().tolist() == [0.0, 1.0, 0.0, 1.0]
    # 1 cond x 5 samples: tiled, then the remainder
    assert broadcast_hint(h[:2], 5, 1).flatten().tolist() == [0.0, 1.0, 0.0, 1.0, 0.0]


def test_merge_residuals_adds_elementwise_and_keeps_longer_lists():
    a = {"input": [], "middle": [torch.ones(1)], "output": [torch.ones(1)]}
    b = {"input": [torch.ones(1)], "middle": [torch.full((1,), 2.0)],
         "output": [None, torch.ones(1)]}
    m = merge_residuals(a, b)
    assert [float(v) for v in m["middle"]] == [3.0]
    assert float(m["output"][0]) == 1.0 and float(m["output"][1]) == 1.0
    assert len(m["input"]) == 1


@pytest.fixture(scope="module")
def tiny_cn():
    c = unet_config("sd15", "tiny")
    sd = random_controlnet_state_dict(c, torch.Generator().manual_seed(3))
    return load_controlnet_file(sd, "tiny_cn.safetensors")


def _residuals(cn, sigma=1.0):
    g = torch.Generator().manual_seed(4)
    x = torch.randn(1, 4, 8, 8, generator=g)
    context = torch.randn(1, 5, cn.config.context_dim, generator=g)
    with torch.no_grad():
        return cn.residuals(ModelSampling(), x, torch.tensor([sigma]), context)


def test_strength_scales_every_residual(tiny_cn):
    hint = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(5))
    full = _residuals(tiny_cn.with_hint(hint, 1.0, (0.0, 1.0), None))
    half = _residuals(tiny_cn.with_hint(hint, 0.5, (0.0, 1.0), None))
    assert len(full["output"]) == 4 and len(full["middle"]) == 1
    for a, b in zip(full["output"] + full["middle"], half["output"] + half["middle"],
                    strict=True):
        assert_close_scaled(b, a * 0.5, rtol=1e-6)
    assert _residuals(tiny_cn.with_hint(hint, 0.0, (0.0, 1.0), None)) is None


def test_active_range_follows_percent_to_sigma(tiny_cn):
    hint = torch.rand(1, 3, 64, 64)
    ms = ModelSampling()
    late = tiny_cn.with_hint(hint, 1.0, (0.5, 1.0), None)  # only below sigma(50%)
    edge = ms.percent_to_sigma(0.5)
    assert _residuals(late, sigma=edge * 1.5) is None
    assert _residuals(late, sigma=edge * 0.5) is not None
    early = tiny_cn.with_hint(hint, 1.0, (0.0, 0.5), None)
    assert _residuals(early, sigma=edge * 0.5) is None
    assert _residuals(early, sigma=edge * 1.5) is not None


def test_chain_adds_the_previous_controlnets_residuals(tiny_cn):
    g = torch.Generator().manual_seed(6)
    first = tiny_cn.with_hint(torch.rand(1, 3, 64, 64, generator=g), 1.0, (0.0, 1.0), None)
    second_alone = tiny_cn.with_hint(torch.rand(1, 3, 64, 64, generator=g), 0.7, (0.0, 1.0),
                                     None)
    chained = second_alone.with_hint(second_alone.hint, 0.7, (0.0, 1.0), first)
    a, b, ab = _residuals(first), _residuals(second_alone), _residuals(chained)
    for key in ("middle", "output"):
        for x, y, xy in zip(a[key], b[key], ab[key], strict=True):
            assert_close_scaled(xy, x + y, rtol=1e-5)
    # the previous one still counts while this one is outside its range
    off = second_alone.with_hint(second_alone.hint, 0.7, (1.0, 1.0), first)
    for x, y in zip(_residuals(off)["output"], a["output"], strict=True):
        assert_close_scaled(x, y, rtol=1e-6)


def test_unet_adds_control_residuals_in_comfyui_order(tiny_sd15_model):
    unet: UNetModel = tiny_sd15_model.diffusion_model
    g = torch.Generator().manual_seed(7)
    x = torch.randn(1, 4, 8, 8, generator=g)
    context = torch.randn(1, 5, unet.config.context_dim, generator=g)
    t = torch.tensor([500.0])
    with torch.no_grad():
        plain = unet(x, t, context)
        # residual shapes: the input blocks' outputs (recorded by hooks)
        shapes = []
        hooks = [b.register_forward_hook(lambda m, i, o: shapes.append(o.shape))
                 for b in unet.input_blocks]
        unet(x, t, context)
        for h in hooks:
            h.remove()
        zeros = {"output": [torch.zeros(s) for s in shapes],
                 "middle": [torch.zeros(shapes[-1])]}
        assert torch.equal(unet(x, t, context, control=zeros), plain)
        assert len(zeros["output"]) == len(shapes)  # the caller's lists are not consumed
        bump = {"output": [torch.zeros(s) for s in shapes], "middle": []}
        bump["output"][0] = torch.ones(shapes[0])  # the shallowest skip: the last output block
        assert not torch.allclose(unet(x, t, context, control=bump), plain)
        wrong = {"middle": [torch.zeros(1, 3, 2, 2)]}
        with pytest.raises(ValueError, match="made for another model"):
            unet(x, t, context, control=wrong)


def test_unknown_files_are_refused_naming_what_was_expected(tmp_path):
    with pytest.raises(ModelLoadError, match=r"other\.safetensors: not an SD1.x.*zero_convs"):
        load_controlnet_file({"lora_unet_x.lora_up.weight": torch.zeros(2, 2)},
                             "other.safetensors")
    with pytest.raises(ModelLoadError, match="Control-LoRA"):
        load_controlnet_file({"lora_controlnet": torch.zeros(1)}, "cl.safetensors")
    with pytest.raises(ModelLoadError, match=r"half\.safetensors: ControlNet keys incomplete"):
        load_controlnet_file({"controlnet_cond_embedding.conv_in.weight": torch.zeros(1),
                              "task_embedding": torch.zeros(8, 320)}, "half.safetensors")
    sd = random_controlnet_state_dict(unet_config("sd15", "tiny"), torch.Generator())
    del sd["zero_convs.2.0.weight"]
    with pytest.raises(ModelLoadError, match=r"cut\.safetensors: 1 ControlNet weights missing"):
        load_controlnet_file(sd, "cut.safetensors")


def test_controlnet_for_another_model_is_named(tiny_cn, tiny_sdxl_checkpoint):
    from comfyless.models.checkpoint import load_checkpoint

    model, _, _ = load_checkpoint(tiny_sdxl_checkpoint, load_clip=False, load_vae=False)
    assert "made for another model" in tiny_cn.check_model(model)


def test_union_controlnet_matches_diffusers_for_one_task(tmp_path):
    """ControlNet++ union (diffusers layout + union keys). Batch 1 and one task: there diffusers'
    union block (attention over the batch axis, plus a token of the sample) gives ComfyUI's
    numbers exactly, so it is an oracle for that case."""
    c = unet_config("sdxl", "tiny")
    cfg = _diffusers_config(c)
    cfg.update(num_control_type=4, num_trans_channel=c.model_channels, num_trans_head=8,
               num_proj_channel=c.model_channels,
               conditioning_embedding_out_channels=(16, 32, 96, 256))
    torch.manual_seed(0)
    reference = diffusers.ControlNetUnionModel(**cfg).eval()
    with torch.no_grad():
        for p in reference.parameters():
            if not p.any():
                p.normal_(0.0, 0.05)
    sd = {k: v.contiguous() for k, v in reference.state_dict().items()}
    assert "transformer_layes.0.attn.in_proj_weight" in sd and "task_embedding" in sd
    path = tmp_path / "controlnet-union-sdxl-promax.safetensors"
    save_file(sd, path)
    ours = _load(path)
    assert ours.network.union
    x, hint, t, context, y, extra = _inputs(c)
    x, hint, t, context, y = x[:1], hint[:1], t[1:], context[:1], y[:1]
    extra = {"added_cond_kwargs": {k: v[:1] for k, v in extra["added_cond_kwargs"].items()}}
    task = 2
    one_hot = torch.zeros(1, 4)
    one_hot[0, task] = 1.0
    with torch.no_grad():
        mine = ours.network(x, hint, t, context, y, control_type=(task,))
        auto = ours.network(x, hint, t, context, y)
        down, mid = reference(x, t, encoder_hidden_states=context, controlnet_cond=[hint],
                              control_type=one_hot, control_type_idx=[task], return_dict=False,
                              **extra)
    pairs = [*zip(mine["output"], down, strict=True), (mine["middle"][0], mid)]
    for a, b in pairs:
        assert_close_scaled(a, b, rtol=1e-4, atol_rel=1e-4)
    assert max(float((a - b).abs().max()) for a, b in pairs) < 1e-4
    assert (auto["middle"][0] - mine["middle"][0]).abs().max() > 1e-4  # the task matters
    # the payload hands SetUnionControlNetType's task to the network
    applied = ours.with_hint(hint, 1.0, (0.0, 1.0), None)
    typed = dataclasses.replace(applied, control_type=(task,))
    with torch.no_grad():
        sigma = torch.tensor([1.0])
        r_auto = applied.residuals(ModelSampling(), x, sigma, context, y)
        r_typed = typed.residuals(ModelSampling(), x, sigma, context, y)
    assert (r_auto["middle"][0] - r_typed["middle"][0]).abs().max() > 1e-4


def test_shuffle_files_pool_their_residuals():
    """ComfyUI: a file named *_shuffle(_fp16) averages each residual over space."""
    sd = random_controlnet_state_dict(unet_config("sd15", "tiny"), torch.Generator())
    cn = load_controlnet_file(sd, "control_v11e_sd15_shuffle.safetensors")
    assert cn.global_average_pooling
    assert not load_controlnet_file(sd, "control_v11p_sd15_canny.pth").global_average_pooling
    out = _residuals(cn.with_hint(torch.rand(1, 3, 64, 64), 1.0, (0.0, 1.0), None))
    for r in out["output"] + out["middle"]:
        assert torch.allclose(r, r[..., :1, :1].expand_as(r))
