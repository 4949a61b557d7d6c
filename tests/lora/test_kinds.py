"""Adapter math over plain tensors: factorization table, merge formulas, bypass == merge."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from comfyless.lora.kinds import (
    Patch,
    bypass_delta_out,
    factorization,
    merged_weight,
    oft_rotate_output,
    oft_rotation,
)
from tests.floats import assert_close_scaled


@pytest.mark.parametrize(
    ("dim", "factor", "expected"),
    [
        (320, 8, (8, 40)),
        (768, 8, (8, 96)),
        (4, 8, (2, 2)),
        (127, -1, (1, 127)),
        (128, -1, (8, 16)),
        (250, 4, (2, 125)),
        (360, -1, (18, 20)),
        (360, 16, (15, 24)),
    ],
)
def test_factorization_matches_spec_table(dim, factor, expected):
    assert factorization(dim, factor) == expected


def _g(seed=0):
    return torch.Generator().manual_seed(seed)


def test_lora_merge_formula_with_alpha_and_strength():
    w = torch.randn(6, 5, generator=_g())
    up, down = torch.randn(6, 2, generator=_g(1)), torch.randn(2, 5, generator=_g(2))
    p = Patch("lora", {"up": up, "down": down}, alpha=4.0)
    out = merged_weight(p, w, 0.5)
    torch.testing.assert_close(out, w + 0.5 * (4.0 / 2) * (up @ down))
    # missing alpha means scale 1.0 (alpha == rank)
    torch.testing.assert_close(merged_weight(Patch("lora", {"up": up, "down": down}), w, 1.0),
                               w + up @ down)


def test_lora_conv_accepts_kohya_4d_and_comfy_2d_factors():
    w = torch.randn(8, 3, 3, 3, generator=_g())
    up4, down4 = torch.randn(8, 2, 1, 1, generator=_g(1)), torch.randn(2, 3, 3, 3, generator=_g(2))
    a = merged_weight(Patch("lora", {"up": up4, "down": down4}, 2.0), w, 1.0)
    b = merged_weight(Patch("lora", {"up": up4.flatten(1), "down": down4.flatten(1)}, 2.0), w, 1.0)
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, w)


def test_locon_tucker_mid_equals_explicit_contraction():
    w = torch.zeros(4, 3, 3, 3)
    up, mid = torch.randn(4, 2, 1, 1, generator=_g(1)), torch.randn(2, 2, 3, 3, generator=_g(2))
    down = torch.randn(2, 3, 1, 1, generator=_g(3))
    got = merged_weight(Patch("lora", {"up": up, "down": down, "mid": mid}), w, 1.0)
    want = torch.einsum("oa,abhw,bi->oihw", up.flatten(1), mid, down.flatten(1))
    torch.testing.assert_close(got, want)


def test_loha_and_lokr_formulas():
    w = torch.zeros(6, 4)
    shapes = [("hada_w1_a", (6, 2)), ("hada_w1_b", (2, 4)), ("hada_w2_a", (6, 2)),
              ("hada_w2_b", (2, 4))]
    t = {k: torch.randn(s, generator=_g(i)) for i, (k, s) in enumerate(shapes)}
    got = merged_weight(Patch("loha", t, alpha=1.0), w, 1.0)
    want = 0.5 * (t["hada_w1_a"] @ t["hada_w1_b"]) * (t["hada_w2_a"] @ t["hada_w2_b"])
    torch.testing.assert_close(got, want)
    w1, w2 = torch.randn(2, 2, generator=_g(5)), torch.randn(3, 2, generator=_g(6))
    # full factors: alpha is stored but not used (scale 1)
    got = merged_weight(Patch("lokr", {"lokr_w1": w1, "lokr_w2": w2}, alpha=7.0), w, 1.0)
    torch.testing.assert_close(got, torch.kron(w1, w2))
    # decomposed w2: scale alpha / rank of that factor
    a, b = torch.randn(3, 1, generator=_g(7)), torch.randn(1, 2, generator=_g(8))
    got = merged_weight(Patch("lokr", {"lokr_w1": w1, "lokr_w2_a": a, "lokr_w2_b": b}, 3.0), w, 1.0)
    torch.testing.assert_close(got, 3.0 * torch.kron(w1, a @ b))


def test_lokr_conv_kron_matches_4d_kron():
    w = torch.zeros(8, 4, 3, 3)
    w1, w2 = torch.randn(2, 2, generator=_g(1)), torch.randn(4, 2, 3, 3, generator=_g(2))
    got = merged_weight(Patch("lokr", {"lokr_w1": w1, "lokr_w2": w2}), w, 1.0)
    torch.testing.assert_close(got, torch.kron(w1[:, :, None, None], w2))


def test_oft_rotation_is_orthogonal_and_norm_clipped():
    blocks = torch.randn(3, 4, 4, generator=_g())
    r = oft_rotation(blocks, alpha=0)
    eye = torch.eye(4).expand(3, 4, 4)
    torch.testing.assert_close(r @ r.transpose(1, 2), eye, atol=1e-5, rtol=0)
    # clipping to alpha: same as rotating with Q scaled to norm alpha
    q = blocks - blocks.transpose(1, 2)
    qs = q * (0.5 / torch.linalg.norm(q))
    want = (eye + qs) @ torch.linalg.inv(eye - qs)
    torch.testing.assert_close(oft_rotation(blocks, 0.5), want, atol=1e-5, rtol=1e-5)
    # zero blocks = identity
    ident = torch.eye(3).expand(2, 3, 3)
    torch.testing.assert_close(oft_rotation(torch.zeros(2, 3, 3), 1.0), ident)


def test_oft_merge_rotates_output_blocks_and_strength_squared():
    w = torch.randn(6, 5, generator=_g())
    blocks = torch.randn(2, 3, 3, generator=_g(1)) * 0.1
    p = Patch("oft", {"oft_blocks": blocks}, alpha=1.0)
    r = oft_rotation(blocks, 1.0)
    got = merged_weight(p, w, 1.0)
    want = torch.cat([r[k].T @ w[3 * k: 3 * k + 3] for k in range(2)])
    torch.testing.assert_close(got, want)
    half = merged_weight(p, w, 0.5)
    torch.testing.assert_close(half, w + 0.25 * (want - w))


def test_dora_output_axis_normalises_rows():
    w = torch.randn(4, 3, generator=_g())
    up, down = torch.randn(4, 1, generator=_g(1)), torch.randn(1, 3, generator=_g(2))
    mag = torch.rand(4, 1, generator=_g(3)) + 0.5
    p = Patch("lora", {"up": up, "down": down}, alpha=1.0, dora_scale=mag)
    got = merged_weight(p, w, 1.0)
    calc = w + up @ down
    torch.testing.assert_close(got, calc * mag / (w.norm(dim=1, keepdim=True) + torch.finfo().eps))


@pytest.mark.parametrize("kind", ["lora", "loha", "lokr", "oft"])
@pytest.mark.parametrize("layer", ["linear", "conv"])
def test_bypass_output_equals_merged_weight_output(kind, layer):
    g = _g(4)
    mod = nn.Linear(6, 8) if layer == "linear" else nn.Conv2d(6, 8, 3, stride=2, padding=1)
    x = torch.randn(2, 6) if layer == "linear" else torch.randn(2, 6, 7, 7)
    fan_in = mod.weight[0].numel()
    t = {
        "lora": lambda: {"up": torch.randn(8, 2, generator=g), "down": torch.randn(2, fan_in,
                                                                                   generator=g)},
        "loha": lambda: {"hada_w1_a": torch.randn(8, 2, generator=g),
                         "hada_w1_b": torch.randn(2, fan_in, generator=g),
                         "hada_w2_a": torch.randn(8, 2, generator=g),
                         "hada_w2_b": torch.randn(2, fan_in, generator=g)},
        "lokr": lambda: {"lokr_w1": torch.randn(2, 2, generator=g),
                         "lokr_w2": torch.randn(4, 3, *mod.weight.shape[2:], generator=g)},
        "oft": lambda: {"oft_blocks": torch.randn(2, 4, 4, generator=g) * 0.3},
    }[kind]()
    p = Patch(kind, t, alpha=1.0)
    merged = type(mod)(*([6, 8] if layer == "linear" else [6, 8, 3]),
                       **({} if layer == "linear" else {"stride": 2, "padding": 1}))
    with torch.no_grad():
        merged.weight.copy_(merged_weight(p, mod.weight, 0.7))
        merged.bias.copy_(mod.bias)
        y = mod(x)
        if kind == "oft":
            got = oft_rotate_output(p, y, mod.bias, -1 if layer == "linear" else 1, 0.7)
        else:
            got = y + 0.7 * bypass_delta_out(p, mod, x, mod.weight)
        assert_close_scaled(got, merged(x), atol_rel=1e-4)
