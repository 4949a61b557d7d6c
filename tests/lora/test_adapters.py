"""Trainable adapters on real LDM UNets: keys and shapes of the file, init, resume, merge."""

from __future__ import annotations

import pytest
import torch

from comfyless.lora import ALGORITHMS, RankTooLarge, add_adapters
from tests.floats import assert_close_scaled, magnitude
from tests.lora.conftest import make_unet, unet_inputs

ATTN_Q = "diffusion_model.input_blocks.1.1.transformer_blocks.0.attn1.to_q"
CONV = "diffusion_model.input_blocks.1.0.in_layers.2"


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def sd15_full():
    return make_unet("sd15", "full")  # meta device: real SD1.5 names and shapes, no memory


def _shapes(sd):
    return {k: list(v.shape) for k, v in sd.items()}


def test_lora_keys_and_shapes_match_spec_worked_examples(sd15_full):
    aset = add_adapters(sd15_full, "LoRA", 8, dtype=torch.bfloat16, generator=_gen())
    try:
        sd = aset.state_dict()
    finally:
        aset.remove()
    s = _shapes(sd)
    assert s[f"{ATTN_Q}.lora_up.weight"] == [320, 8]
    assert s[f"{ATTN_Q}.lora_down.weight"] == [8, 320]
    assert s[f"{ATTN_Q}.alpha"] == []
    assert f"{ATTN_Q}.diff_b" not in s  # to_q has no bias
    ff = "diffusion_model.input_blocks.1.1.transformer_blocks.0.ff.net.0.proj"
    assert s[f"{ff}.lora_up.weight"] == [2560, 8] and s[f"{ff}.diff_b"] == [2560]
    assert s["diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.lora_down.weight"] \
        == [8, 768]
    assert s[f"{CONV}.lora_down.weight"] == [8, 2880] and s[f"{CONV}.diff_b"] == [320]
    assert s["diffusion_model.input_blocks.0.0.lora_down.weight"] == [8, 36]
    assert s["diffusion_model.input_blocks.1.0.in_layers.0.diff"] == [320]
    assert s["diffusion_model.input_blocks.1.1.transformer_blocks.0.norm1.diff_b"] == [320]
    assert s["diffusion_model.input_blocks.1.1.proj_in.lora_down.weight"] == [8, 320]
    # rank 8 on the 4-channel conv_out is kept, as ComfyUI does
    assert s["diffusion_model.out.2.lora_up.weight"] == [4, 8]
    assert all(v.dtype == torch.bfloat16 for v in sd.values())
    assert sd[f"{ATTN_Q}.alpha"].device.type == "meta"  # lives with its weight


def test_lokr_and_oft_conv_shapes_match_spec(sd15_full):
    for alg, key, shape in (("LoKr", "lokr_w1", [8, 8]), ("LoKr", "lokr_w2", [40, 40, 3, 3]),
                            ("OFT", "oft_blocks", [40, 8, 8])):
        aset = add_adapters(sd15_full, alg, 8, generator=_gen())
        try:
            assert list(aset.state_dict()[f"{CONV}.{key}"].shape) == shape
        finally:
            aset.remove()


def test_loha_keys(sd15_full):
    aset = add_adapters(sd15_full, "LoHa", 4, generator=_gen())
    try:
        s = _shapes(aset.state_dict())
    finally:
        aset.remove()
    assert s[f"{ATTN_Q}.hada_w1_a"] == [320, 4] and s[f"{ATTN_Q}.hada_w2_b"] == [4, 320]
    assert s[f"{ATTN_Q}.alpha"] == []


@pytest.mark.parametrize("algorithm", list(ALGORITHMS))
def test_fresh_adapters_are_identity_seeded_and_trainable(sd15_unet, algorithm):
    x = unet_inputs(sd15_unet)
    with torch.no_grad():
        y0 = sd15_unet(*x)
    aset = add_adapters(sd15_unet, algorithm, 4, generator=_gen(3))
    try:
        with torch.no_grad():
            assert_close_scaled(sd15_unet(*x), y0)  # through the adapters: another path
        a = aset.state_dict()
        assert all(float(v) == 1.0 for k, v in a.items() if k.endswith(".alpha"))
        # alpha is a fixed buffer, not a parameter; everything else trains
        assert all(p.requires_grad for p in aset.parameters())
        assert len(aset.parameters()) == len([k for k in a if not k.endswith(".alpha")])
        loss = sd15_unet(*x).square().mean()
        loss.backward()
        assert sum(float(p.grad.abs().sum()) for p in aset.parameters() if p.grad is not None) > 0
    finally:
        aset.remove()
    again = add_adapters(sd15_unet, algorithm, 4, generator=_gen(3))
    b = again.state_dict()
    again.remove()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    other = add_adapters(sd15_unet, algorithm, 4, generator=_gen(4))
    c = other.state_dict()
    other.remove()
    if algorithm != "OFT":  # OFT starts from zero blocks whatever the seed
        assert any(not torch.equal(a[k], c[k]) for k in a)
    assert [n for n, _ in sd15_unet.named_parameters()][0] == "time_embed.0.weight"


def _perturb(aset, seed=5):
    g = _gen(seed)
    with torch.no_grad():
        for p in aset.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)


@pytest.mark.parametrize(("arch", "algorithm"), [("sd15", a) for a in ALGORITHMS] + [
    ("sd2", "LoRA"), ("sdxl", "OFT")])
@pytest.mark.parametrize("bypass", [False, True])
def test_resume_restores_every_tensor_and_merge_matches(arch, algorithm, bypass):
    tiny_unet = make_unet(arch)
    x = unet_inputs(tiny_unet)
    with torch.no_grad():
        y0 = tiny_unet(*x)
    aset = add_adapters(tiny_unet, algorithm, 4, generator=_gen(), bypass=bypass)
    _perturb(aset)
    with torch.no_grad():
        y1 = tiny_unet(*x)
    sd = aset.state_dict()
    aset.remove()
    with torch.no_grad():
        # weights restored bit for bit, same code path in one process: bitwise
        torch.testing.assert_close(tiny_unet(*x), y0, atol=0, rtol=0)
    assert (y1 - y0).abs().max() > 1e-3
    # resume (the other mode): same tensors, same outputs, alpha and diffs included
    sd[next(k for k in sd if k.endswith(".alpha"))] = torch.tensor(0.5)
    resumed = add_adapters(tiny_unet, "LoRA", 16, existing=sd, bypass=not bypass)
    again = resumed.state_dict()
    assert again.keys() == sd.keys() and all(torch.equal(again[k], sd[k]) for k in sd)
    resumed.merge()
    assert all(type(m).__module__ != "torch.nn.utils.parametrize" for m in tiny_unet.modules())
    with torch.no_grad():
        merged_out = tiny_unet(*x)
    assert (merged_out - y0).abs().max() > 1e-3


def test_merge_equals_parametrized_forward(sd15_unet):
    import copy

    unet = copy.deepcopy(sd15_unet)
    x = unet_inputs(unet)
    aset = add_adapters(unet, "LoRA", 4, generator=_gen())
    _perturb(aset)
    with torch.no_grad():
        y1 = unet(*x)
    aset.merge()
    with torch.no_grad():
        assert_close_scaled(unet(*x), y1)
    assert set(dict(unet.named_parameters())) == set(dict(sd15_unet.named_parameters()))


def test_rank_above_both_layer_dimensions_is_a_clear_error(sd15_unet):
    with pytest.raises(RankTooLarge) as exc:
        add_adapters(sd15_unet, "LoRA", 128, generator=_gen())
    assert exc.value.rank == 128 and exc.value.limit < 128 and exc.value.module
    assert "rank 128" in str(exc.value)
    # nothing is left attached after the error
    assert all(type(m).__module__ != "torch.nn.utils.parametrize" for m in sd15_unet.modules())


def test_existing_keys_that_fit_no_layer_are_an_error(sd15_unet):
    with pytest.raises(ValueError, match="match no layer"):
        add_adapters(sd15_unet, "LoRA", 4, existing={
            "diffusion_model.nope.lora_up.weight": torch.zeros(2, 2),
            "lora_te_text_model_encoder_layers_0_mlp_fc1.alpha": torch.tensor(1.0)})
    assert all(type(m).__module__ != "torch.nn.utils.parametrize" for m in sd15_unet.modules())


def test_unknown_algorithm():
    with pytest.raises(ValueError, match="LoRA"):
        add_adapters(torch.nn.Linear(2, 2), "GLoRA", 1)


@pytest.mark.parametrize("algorithm", list(ALGORITHMS))
def test_bypass_adapters_train_like_weight_functions(sd15_unet, algorithm):
    x = unet_inputs(sd15_unet)
    grads = []
    for bypass in (False, True):
        aset = add_adapters(sd15_unet, algorithm, 4, generator=_gen(2), bypass=bypass)
        try:
            _perturb(aset)  # away from zero, where every kind has a gradient
            sd15_unet(*x).square().mean().backward()
            grads.append([p.grad.clone() for p in aset.parameters()])
        finally:
            aset.remove()
    # Two code paths; some parameters get gradients that are rounding noise (~1e-11), so the
    # absolute tolerance scales with the largest gradient of all parameters.
    scale = max(magnitude(*g) for g in grads)
    for a, b in zip(*grads, strict=True):
        assert_close_scaled(a, b, rtol=1e-3, scale=scale)
