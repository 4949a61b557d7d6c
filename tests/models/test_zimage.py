"""Z-Image (models/families/zimage): detection and refusals, loading, the network against
diffusers' ZImageTransformer2DModel (the oracle), the diffusers-layout reader, LoRA key maps
and a LoRA training smoke test.

The ComfyUI -> diffusers renaming used to feed the oracle is written out here on purpose (from
model-families.md §3.6), independently of the package's table in zimage/names.py. The family is
in the registry (models/families/__init__.py).
"""

from __future__ import annotations

import re

import pytest
import torch
from safetensors.torch import save_file

from comfyless.lora.apply import loras_applied, weight_deltas
from comfyless.lora.formats import place_patches, read_lora
from comfyless.models import families
from comfyless.models.families import detect_family
from comfyless.models.families.base import DetectionError
from comfyless.models.families.zimage.conditioning import zimage_conds
from comfyless.models.families.zimage.detect import detect_zimage_config
from comfyless.models.families.zimage.network import ZImageNetwork
from comfyless.models.families.zimage.writer import (
    diffusion_model_shapes,
    diffusion_model_state_dict,
    network_config,
    write_diffusion_model,
)
from tests.floats import assert_close_scaled

CAP = 32  # a narrow caption width keeps the tiny model tiny (real: 2560)
ORACLE_TOL = 1e-4  # max abs difference allowed against diffusers (fp32)
PREFIX = "model.diffusion_model."


@pytest.fixture
def registered():
    """The zimage record, as the registry holds it."""
    return families.family("zimage")


def _shapes(sd):
    return {k: tuple(v.shape) for k, v in sd.items()}


def _tiny(seed=0):
    """(config, prefix-free state dict, loaded network) of the tiny layout."""
    cfg = network_config("zimage", "tiny", CAP)
    sd = diffusion_model_state_dict("zimage", "tiny", seed, CAP)
    net = ZImageNetwork(cfg)
    net.load_state_dict(sd)
    return cfg, sd, net.eval().requires_grad_(False)


def _inputs(batch=2, h=12, w=10, tokens=7, seed=3):
    """latents, σ, caption context (12x10 latents: 30 image tokens, padded to 32)."""
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, 16, h, w, generator=g), torch.tensor([0.8, 0.15])[:batch],
            torch.randn(batch, tokens, CAP, generator=g))


# -- detection -------------------------------------------------------------------------------

@pytest.mark.parametrize("prefix", ["", PREFIX])
def test_tiny_layout_is_detected_through_the_registry(registered, prefix):
    sd = diffusion_model_state_dict("zimage", "tiny", 0, CAP)
    detected = detect_family({prefix + k: s for k, s in _shapes(sd).items()}, prefix=prefix)
    assert detected.record is registered and detected.family == "zimage"
    assert (detected.prediction, detected.zsnr) == ("const", False)
    cfg = detected.config
    assert cfg == network_config("zimage", "tiny", CAP)
    assert (cfg.dim, cfg.n_heads, cfg.head_dim, cfg.axes_dims) == (256, 4, 64, (16, 24, 24))
    assert (cfg.ffn_hidden, cfg.t_hidden, cfg.adaln_dim) == (768, 256, 256)


def test_full_size_layout_detects_as_the_spec_says():
    shapes = {PREFIX + k: tuple(v) for k, v in diffusion_model_shapes("zimage", "full").items()}
    cfg = detect_zimage_config(shapes, PREFIX)
    assert (cfg.dim, cfg.n_heads, cfg.head_dim, cfg.n_layers, cfg.n_refiner_layers) == (
        3840, 30, 128, 30, 2)
    assert (cfg.axes_dims, cfg.rope_theta, cfg.ffn_hidden, cfg.cap_feat_dim) == (
        (32, 48, 48), 256.0, 10240, 2560)
    assert (cfg.t_hidden, cfg.adaln_dim, cfg.in_channels, cfg.pad_tokens_multiple) == (
        1024, 256, 16, 32)
    count = sum(torch.Size(s).numel() for s in shapes.values())
    assert round(count / 1e9, 3) == 6.155  # model-families.md §8


def _lumina2_shapes():
    """The Lumina 2 layout (dim 2304, 24 q heads / 8 kv heads, SiLU+Linear(1024) modulation)."""
    d, kv = 2304, 8 * 96
    block = {"attention.qkv.weight": (d + 2 * kv, d), "attention.q_norm.weight": (96,),
             "attention.k_norm.weight": (96,), "adaLN_modulation.1.weight": (4 * d, 1024)}
    shapes = {"cap_embedder.1.weight": (d, 2304), "cap_embedder.0.weight": (2304,)}
    for group in ("layers", "noise_refiner"):
        shapes.update({f"{group}.0.{k}": v for k, v in block.items()})
    return shapes


@pytest.mark.parametrize("edit, found", [
    (lambda s: s.update({"siglip_embedder.0.weight": (1152,)}), "Z-Image Omni"),
    (lambda s: s.update({"dec_net.cond_embed.weight": (64, 256)}), "pixel-space Z-Image"),
    (lambda s: s.pop("cap_pad_token"), "Lumina 2 is not supported"),
    (lambda s: s.update({"layers.0.attention.qkv.weight": (512, 256)}), "qkv rows 512"),
    (lambda s: s.update({"layers.0.attention.q_norm.weight": (24,)}), "q_norm width 24"),
    (lambda s: s.pop("t_embedder.mlp.2.weight"), "t_embedder.mlp.2.weight"),
    (lambda s: s.update({"layers.5.ffn_norm1.weight": (256,)}), "numbered"),
    (lambda s: s.update({"x_embedder.weight": (256, 128)}), "128 patch features"),
])
def test_relatives_and_odd_layouts_are_refused_with_what_was_found(registered, edit, found):
    shapes = _shapes(diffusion_model_state_dict("zimage", "tiny", 0, CAP))
    edit(shapes)
    with pytest.raises(DetectionError, match=found):
        detect_family(shapes, prefix="")


def test_lumina2_is_refused_by_name(registered):
    with pytest.raises(DetectionError, match="Lumina 2 is not supported.*dim 2304"):
        detect_family({PREFIX + k: v for k, v in _lumina2_shapes().items()})


def test_other_families_are_untouched_by_the_zimage_detector():
    assert detect_zimage_config({"double_blocks.0.img_in.weight": (3, 64)}, "") is None
    # the trigger alone, without the refiner's k_norm (or diffusers' norm_k), is not NextDiT
    assert detect_zimage_config({"cap_embedder.1.weight": (256, 32)}, "") is None


# -- loading and running ------------------------------------------------------------------------

@pytest.mark.parametrize("prefix", ["", PREFIX])
def test_load_diffusion_model_file(registered, tmp_path, prefix):
    from comfyless.models.checkpoint import load_diffusion_model

    cfg, sd, net = _tiny()
    path = tmp_path / "z_image_turbo_bf16.safetensors"
    save_file({prefix + k: v for k, v in sd.items()}, str(path))
    model = load_diffusion_model(path)
    assert model.family == "zimage" and isinstance(model.diffusion_model, ZImageNetwork)
    assert model.config == cfg and model.latent_format.channels == 16
    s = model.sampling
    assert (s.prediction, s.kind, s.shift, s.multiplier) == ("const", "discrete", 3.0, 1.0)
    x, t, ctx = _inputs()
    with torch.no_grad():
        assert_close_scaled(model.diffusion_model(x, t, ctx), net(x, t, ctx))


def test_fp8_file_keeps_fp8_weights_and_matches_the_upcast_model(registered, tmp_path):
    from comfyless.models.checkpoint import load_diffusion_model

    fp8 = torch.float8_e4m3fn
    cfg, sd, _ = _tiny()
    stored = {k: v.to(fp8) if v.ndim == 2 else v for k, v in sd.items()}
    save_file(stored, str(tmp_path / "z_image_fp8.safetensors"))
    model = load_diffusion_model(tmp_path / "z_image_fp8.safetensors")
    net = model.diffusion_model
    assert net.layers[0].attention.qkv.weight.dtype == fp8 and net.x_pad_token.dtype == fp8
    assert net.x_embedder.bias.dtype == torch.float32 and model.dtype == torch.float32
    upcast = ZImageNetwork(cfg)
    upcast.load_state_dict({k: v.float() for k, v in stored.items()})
    x, t, ctx = _inputs()
    with torch.no_grad():
        ours, reference = net(x, t, ctx), upcast(x, t, ctx)
    assert ours.dtype == torch.float32
    assert_close_scaled(ours, reference, rtol=1e-5, atol_rel=1e-5)


def test_apply_model_and_the_family_conditioning(registered, one_torch_thread):
    from comfyless.models.patcher import ModelPatcher

    cfg, sd, net = _tiny()
    model = ModelPatcher(net, registered.make_sampling(), registered.latent_format, "zimage")
    x, _, ctx = _inputs(batch=1)
    assert model.extra_conds({}, 80, 96) == {}
    assert model.extra_conds({"attention_mask": torch.ones(1, 7)}, 80, 96) == {}
    mask = torch.tensor([[1, 1, 1, 1, 0, 0, 0]])
    extra = model.extra_conds({"attention_mask": mask}, 80, 96)
    assert torch.equal(extra["attention_mask"], mask)
    sigma = torch.tensor([0.7])
    out = model.apply_model(x, sigma, ctx, **extra)
    with torch.no_grad():  # CONST: x0 = x − σ·v; the network sees σ (multiplier 1)
        v = net(x, sigma, ctx)
    assert_close_scaled(out, x - 0.7 * v)
    with pytest.raises(ValueError, match="const"):
        registered.make_sampling("eps")
    assert zimage_conds(model, {}, 64, 64) == {}


def test_odd_latent_sizes_are_padded_circularly_and_cropped():
    cfg, sd, net = _tiny()
    x, t, ctx = _inputs(h=9, w=7)
    with torch.no_grad():
        out = net(x, t, ctx)
        assert out.shape == x.shape
        padded = torch.cat([x, x[:, :, :1]], dim=2)
        padded = torch.cat([padded, padded[..., :1]], dim=3)
        assert_close_scaled(out, net(padded, t, ctx)[..., :9, :7])


def test_learned_pad_tokens_fill_up_to_multiples_of_32():
    """The caption pad token matters for a 7-token caption and not for a 32-token one; the
    image pad token matters for 30 image tokens (12x10 latents) and not for 32 (16x8)."""
    cfg, sd, net = _tiny()

    def changes(param, **shape):
        x, t, ctx = _inputs(**shape)
        with torch.no_grad():
            before = net(x, t, ctx)
            old = getattr(net, param).clone()
            getattr(net, param).add_(1.0)
            after = net(x, t, ctx)
            getattr(net, param).copy_(old)
        return float((after - before).abs().max()) > 1e-3

    assert changes("cap_pad_token", tokens=7) and not changes("cap_pad_token", tokens=32)
    assert changes("x_pad_token", h=12, w=10) and not changes("x_pad_token", h=16, w=8)


# -- diffusers: the oracle and the layout reader ---------------------------------------------

_D_RENAMES = [  # (ComfyUI regex, diffusers replacement), model-families.md §3.6
    (r"^x_embedder\.", "all_x_embedder.2-1."),
    (r"^final_layer\.", "all_final_layer.2-1."),
    (r"\.attention\.out\.", ".attention.to_out.0."),
    (r"\.attention\.q_norm\.", ".attention.norm_q."),
    (r"\.attention\.k_norm\.", ".attention.norm_k."),
]


def comfy_to_diffusers(sd):
    """ComfyUI state dict -> ZImageTransformer2DModel state dict (qkv split in thirds)."""
    out = {}
    for key, tensor in sd.items():
        if key.endswith(".attention.qkv.weight"):
            base = key[: -len("qkv.weight")]
            for name, piece in zip(("to_q", "to_k", "to_v"), tensor.chunk(3), strict=True):
                out[f"{base}{name}.weight"] = piece
            continue
        for pattern, repl in _D_RENAMES:
            key = re.sub(pattern, repl, key)
        out[key] = tensor
    return out


def diffusers_model(cfg, sd):
    from diffusers import ZImageTransformer2DModel
    from diffusers.models.transformers.transformer_z_image import (
        FeedForward,
        TimestepEmbedder,
    )

    model = ZImageTransformer2DModel(
        in_channels=cfg.in_channels, dim=cfg.dim, n_layers=cfg.n_layers,
        n_refiner_layers=cfg.n_refiner_layers, n_heads=cfg.n_heads, n_kv_heads=cfg.n_heads,
        cap_feat_dim=cfg.cap_feat_dim, rope_theta=cfg.rope_theta, t_scale=1000.0,
        axes_dims=list(cfg.axes_dims), axes_lens=[1024, 512, 512])
    # diffusers hard-codes the real model's t_embedder hidden (1024) and SwiGLU width
    # (int(dim/3·8)); ComfyUI builds min(dim, 1024) and rounds up to 256: use diffusers' own
    # classes at ComfyUI's widths for the tiny dim (equal to diffusers' at dim 3840)
    model.t_embedder = TimestepEmbedder(cfg.adaln_dim, mid_size=cfg.t_hidden)
    blocks = [*model.layers, *model.noise_refiner, *model.context_refiner]
    for block in blocks:
        block.feed_forward = FeedForward(cfg.dim, cfg.ffn_hidden)
        # ComfyUI's q/k norms have no eps (float32 machine epsilon); diffusers sets 1e-5
        block.attention.norm_q.eps = block.attention.norm_k.eps = torch.finfo(torch.float32).eps
    model.load_state_dict(comfy_to_diffusers(sd), strict=True)
    return model.eval().requires_grad_(False)


def _diffusers_forward(model, x, sigma, ctx):
    """diffusers takes per-sample lists ([C, F, H, W] latents, [L, D] captions) and t = 1 − σ
    (it embeds t·1000); its pipeline negates the output, as ComfyUI's network does."""
    out = model([xi.unsqueeze(1) for xi in x], 1.0 - sigma, list(ctx), return_dict=False)[0]
    return -torch.stack([o[:, 0] for o in out])


def test_network_matches_diffusers(one_torch_thread):
    cfg, sd, net = _tiny()
    oracle = diffusers_model(cfg, sd)
    x, t, ctx = _inputs()
    with torch.no_grad():
        ours, theirs = net(x, t, ctx), _diffusers_forward(oracle, x, t, ctx)
    diff = float((ours - theirs).abs().max())
    print(f"zimage: max abs diff vs diffusers {diff:.3g} (|out| max {ours.abs().max():.3g})")
    assert diff <= ORACLE_TOL


def test_a_diffusers_layout_file_detects_and_loads_as_the_comfy_file(registered, tmp_path):
    from comfyless.models.checkpoint import load_diffusion_model

    cfg, sd, net = _tiny()
    dif = comfy_to_diffusers(sd)
    assert detect_zimage_config(_shapes(dif), "") == cfg
    save_file(dif, str(tmp_path / "diffusers.safetensors"))
    model = load_diffusion_model(tmp_path / "diffusers.safetensors")
    loaded = model.diffusion_model.state_dict()
    assert sorted(loaded) == sorted(sd)
    assert all(torch.equal(loaded[k], sd[k]) for k in sd)  # renaming and stacking: exact
    del dif["layers.1.attention.to_k.weight"]
    with pytest.raises(DetectionError, match="lacks some of its pieces"):
        detect_zimage_config(_shapes(dif), "")


def test_streamed_writer_writes_the_state_dict(tmp_path):
    from safetensors.torch import load_file

    path = write_diffusion_model(tmp_path / "z.safetensors", size="tiny", seed=4,
                                 dtype=torch.float32, cap_feat_dim=CAP)
    written = load_file(str(path))
    want = diffusion_model_state_dict("zimage", "tiny", 4, CAP)
    assert sorted(written) == sorted(want)
    assert all(torch.equal(written[k], want[k]) for k in want)


# -- LoRA key maps ---------------------------------------------------------------------------

RANK = 2


def _factors(g, out_features, in_features):
    return (torch.randn(out_features, RANK, generator=g) * 0.1,
            torch.randn(RANK, in_features, generator=g) * 0.1)


def test_comfy_and_kohya_names_place_every_key():
    cfg, sd, net = _tiny()
    shapes = {n: tuple(p.shape) for n, p in net.named_parameters()}
    g = torch.Generator().manual_seed(5)
    lora, expected = {}, {}
    for i, (name, shape) in enumerate(shapes.items()):
        path = name.rpartition(".")[0]
        if name.endswith(".bias"):
            lora[f"diffusion_model.{path}.diff_b"] = torch.randn(shape, generator=g)
            expected[name] = lora[f"diffusion_model.{path}.diff_b"]
        elif len(shape) == 1:  # RMSNorm scales (block norms, q/k norms, cap_embedder.0)
            lora[f"diffusion_model.{path}.diff"] = torch.randn(shape, generator=g)
            expected[name] = lora[f"diffusion_model.{path}.diff"]
        elif name.endswith("_pad_token"):
            continue  # raw parameters: not trained, no LoRA names them
        else:  # every Linear as a LoRA, half in ComfyUI and half in kohya names
            prefix = f"diffusion_model.{path}" if i % 2 else "lora_unet_" + path.replace(".", "_")
            up, down = _factors(g, shape[0], shape[1])
            lora.update({f"{prefix}.lora_up.weight": up, f"{prefix}.lora_down.weight": down,
                         f"{prefix}.alpha": torch.tensor(float(RANK))})
            expected[name] = up @ down
    patches, unplaced = place_patches(lora, net.lora_key_map(), shapes)
    assert unplaced == {}
    deltas = weight_deltas(patches, dict(net.named_parameters()), 1.0)
    assert sorted(deltas) == sorted(expected)
    for name, delta in deltas.items():
        assert_close_scaled(delta, expected[name], msg=name)


# (file prefix of diffusers module D, up/down suffixes, alpha written?)
SPELLINGS = {
    "ai-toolkit": (lambda d: f"diffusion_model.{d}", "lora_B.weight", "lora_A.weight", False),
    "transformer": (lambda d: f"transformer.{d}", "lora_B.weight", "lora_A.weight", False),
    "lycoris": (lambda d: "lycoris_" + d.replace(".", "_"), "lora_up.weight", "lora_down.weight",
                True),
    "bare": (lambda d: d, "lora_up.weight", "lora_down.weight", True),
}


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_diffusers_lora_merges_like_the_diffusers_model(spelling, one_torch_thread):
    """A LoRA on every diffusers Linear (to_q/to_k/to_v as thirds of qkv included): our merged
    network computes what the diffusers model with the same deltas computes."""
    cfg, sd, net = _tiny()
    oracle = diffusers_model(cfg, sd)
    name_of, up_key, down_key, with_alpha = SPELLINGS[spelling]
    g = torch.Generator().manual_seed(7)
    lora, deltas = {}, {}
    for module, m in oracle.named_modules():
        if not isinstance(m, torch.nn.Linear):
            continue
        up, down = _factors(g, *m.weight.shape)
        prefix = name_of(module)
        lora[f"{prefix}.{up_key}"], lora[f"{prefix}.{down_key}"] = up, down
        scale = 0.5 if with_alpha else 1.0
        if with_alpha:
            lora[f"{prefix}.alpha"] = torch.tensor(RANK * scale)
        deltas[f"{module}.weight"] = scale * (up @ down)
    patches, unplaced = read_lora(lora, "unet", net)
    assert unplaced == {}
    merged = {k: v + deltas[k] if k in deltas else v for k, v in oracle.state_dict().items()}
    oracle.load_state_dict(merged)
    x, t, ctx = _inputs()
    with torch.no_grad(), loras_applied(net, [(lora, 1.0, False)]):
        ours = net(x, t, ctx)
    theirs = _diffusers_forward(oracle, x, t, ctx)
    diff = float((ours - theirs).abs().max())
    print(f"{spelling} LoRA: max abs diff vs diffusers {diff:.3g}")
    assert diff <= ORACLE_TOL


# -- LoRA training smoke ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("zimage") / "z.safetensors"
    save_file(diffusion_model_state_dict("zimage", "tiny", 0, CAP), str(path))
    return path


def _train(model, algorithm, steps=2):
    from comfyless.lora.training import TrainConfig, train_lora

    g = torch.Generator().manual_seed(0)
    latents = [{"samples": torch.randn(2, 16, 8, 8, generator=g)}]
    positive = [[[torch.randn(1, 6, CAP, generator=g), {}] for _ in range(2)]]
    cfg = TrainConfig(algorithm=algorithm, steps=steps, rank=4, learning_rate=1e-3,
                      training_dtype="fp32", lora_dtype="fp32", batch_size=2)
    return train_lora(model, latents, positive, cfg)


@pytest.mark.parametrize("algorithm", ["LoRA", "LoHa", "LoKr", "OFT"])
def test_every_algorithm_trains_and_loads_back(registered, tiny_file, algorithm,
                                               one_torch_thread):
    from comfyless.lora import ALGORITHMS
    from comfyless.models.checkpoint import load_diffusion_model

    assert algorithm in ALGORITHMS
    model = load_diffusion_model(tiny_file)
    before = {k: v.clone() for k, v in model.diffusion_model.state_dict().items()}
    result = _train(model, algorithm)
    assert len(result.losses) == 2 and all(torch.isfinite(torch.tensor(result.losses)))
    for k, v in model.diffusion_model.state_dict().items():  # the shared network is restored
        assert torch.equal(v, before[k]), k
    patches, unplaced = read_lora(result.lora, "unet", model.diffusion_model)
    assert unplaced == {} and patches


def test_trained_lora_keys_are_comfyui_trainer_names(registered, tiny_file, one_torch_thread):
    from comfyless.models.checkpoint import load_diffusion_model

    model = load_diffusion_model(tiny_file)
    lora = _train(model, "LoRA", steps=1).lora
    d, r = 256, 4
    want = {  # model-families.md §3.6 at the tiny widths
        "diffusion_model.layers.0.attention.qkv.lora_up.weight": (3 * d, r),
        "diffusion_model.layers.0.attention.qkv.lora_down.weight": (r, d),
        "diffusion_model.layers.0.attention.out.lora_up.weight": (d, r),
        "diffusion_model.layers.0.feed_forward.w2.lora_down.weight": (r, 768),
        "diffusion_model.layers.0.adaLN_modulation.0.lora_up.weight": (4 * d, r),
        "diffusion_model.layers.0.adaLN_modulation.0.lora_down.weight": (r, 256),
        "diffusion_model.layers.0.adaLN_modulation.0.diff_b": (4 * d,),
        "diffusion_model.layers.0.attention_norm1.diff": (d,),
        "diffusion_model.noise_refiner.1.ffn_norm2.diff": (d,),
        "diffusion_model.context_refiner.0.attention.q_norm.diff": (64,),
        "diffusion_model.cap_embedder.0.diff": (CAP,),
        "diffusion_model.cap_embedder.1.lora_down.weight": (r, CAP),
        "diffusion_model.x_embedder.lora_down.weight": (r, 64),
        "diffusion_model.t_embedder.mlp.0.lora_down.weight": (r, 256),
        "diffusion_model.final_layer.adaLN_modulation.1.lora_up.weight": (d, r),
    }
    for key, shape in want.items():
        assert tuple(lora[key].shape) == shape, key
    assert all(k.startswith("diffusion_model.") for k in lora)
    assert not [k for k in lora if "pad_token" in k or k.endswith("qkv.diff_b")
                or "context_refiner.0.adaLN" in k]
