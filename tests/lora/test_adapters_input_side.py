"""Adapters computed from the layer input (bypass hooks) train exactly like the merged-weight
form ComfyUI uses: same outputs, same adapter gradients, same file after training; and no
tensor the size of the frozen weight (ΔW or its gradient) is formed."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from comfyless.lora import ALGORITHMS, add_adapters
from comfyless.lora import training as training_mod
from comfyless.lora.training import TrainConfig, train_lora
from tests.floats import assert_close_scaled, magnitude

IN, OUT = 24, 40  # distinct from every activation shape below, so a weight-sized tensor shows

LAYERS = {
    "linear": (lambda: nn.Linear(IN, OUT), (2, 5, IN)),
    "conv3x3": (lambda: nn.Conv2d(IN, OUT, 3, padding=1), (2, IN, 6, 6)),
    "conv3x3_stride2": (lambda: nn.Conv2d(IN, OUT, 3, stride=2, padding=1), (2, IN, 7, 7)),
}


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _model_and_input(layer: str) -> tuple[nn.Module, torch.Tensor]:
    make, x_shape = LAYERS[layer]
    torch.manual_seed(0)
    model = nn.Sequential(make())
    for p in model.parameters():
        p.requires_grad_(False)  # frozen base, as in training
    return model, torch.randn(x_shape, generator=_gen(1))


def _perturb(aset) -> None:
    # away from the identity init, where some factors have no gradient
    g = _gen(5)
    with torch.no_grad():
        for p in aset.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.1)


def _forward_backward(model, x, algorithm, rank, input_side):
    aset = add_adapters(model, algorithm, rank, generator=_gen(2), bypass=input_side)
    try:
        _perturb(aset)
        params = aset.parameters()
        for p in params:
            p.requires_grad_(True)
        y = model(x)
        y.square().mean().backward()
        return y.detach(), [p.grad.clone() for p in params]
    finally:
        aset.remove()


@pytest.mark.parametrize("layer", list(LAYERS))
@pytest.mark.parametrize(("algorithm", "rank"), [
    ("LoRA", 4), ("LoHa", 2), ("LoHa", 8), ("LoKr", 4), ("OFT", 4)])
def test_input_side_equals_merged_outputs_and_gradients(layer, algorithm, rank):
    # LoHa rank 2 runs as a rank-4 product from the input; rank 8 (64 > the layer) via its ΔW
    model, x = _model_and_input(layer)
    y_merged, g_merged = _forward_backward(model, x, algorithm, rank, input_side=False)
    y_input, g_input = _forward_backward(model, x, algorithm, rank, input_side=True)
    assert_close_scaled(y_input, y_merged, rtol=1e-5)
    scale = magnitude(*g_merged)  # some gradients are ~0 next to the others: rounding only
    assert len(g_input) == len(g_merged)
    for a, b in zip(g_input, g_merged, strict=True):
        assert_close_scaled(a, b, rtol=1e-5, scale=scale)


class _Shapes(TorchDispatchMode):
    """Records the shape of every tensor an op produces."""

    def __init__(self) -> None:
        super().__init__()
        self.shapes: set[tuple[int, ...]] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                self.shapes.add(tuple(t.shape))
        return out


def _weight_sized_tensors(model, x, algorithm, rank, input_side) -> bool:
    weight_shape = tuple(model[0].weight.shape)
    aset = add_adapters(model, algorithm, rank, generator=_gen(2), bypass=input_side)
    try:
        _perturb(aset)
        for p in aset.parameters():
            p.requires_grad_(True)
        with _Shapes() as seen:
            model(x).square().mean().backward()
        return weight_shape in seen.shapes or (weight_shape[0], math.prod(weight_shape[1:])) \
            in seen.shapes
    finally:
        aset.remove()


@pytest.mark.parametrize("layer", ["linear", "conv3x3_stride2"])
@pytest.mark.parametrize("algorithm", ["LoRA", "LoHa", "LoKr", "OFT"])
def test_input_side_forms_no_weight_sized_tensor(layer, algorithm):
    model, x = _model_and_input(layer)
    # the check sees the merged form's ΔW / weight gradient (the base weight alone is not
    # recreated by any op) ...
    assert _weight_sized_tensors(model, x, algorithm, 2, input_side=False)
    # ... and none in the input-side form: neither ΔW nor a gradient w.r.t. a frozen weight
    assert not _weight_sized_tensors(model, x, algorithm, 2, input_side=True)


def _merged_add_adapters(*args, **kwargs):
    return add_adapters(*args, **{**kwargs, "bypass": False})


@pytest.mark.parametrize("algorithm", list(ALGORITHMS))
def test_train_lora_gives_the_same_file_either_way(tiny_sd15_model, monkeypatch, algorithm):
    g = _gen(0)
    lat = [{"samples": torch.randn(2, 4, 8, 8, generator=g) * 4}]
    dim = tiny_sd15_model.config.context_dim
    pos = [[[torch.randn(1, 8, dim, generator=g), {}] for _ in range(2)]]
    # SGD: the update is linear in the gradient, so equal gradients give equal files (Adam
    # would turn rounding noise in a ~0 gradient into a full lr-sized step)
    cfg = TrainConfig(training_dtype="fp32", lora_dtype="fp32", steps=3, algorithm=algorithm,
                      rank=2, optimizer="SGD", learning_rate=0.05)
    input_side = train_lora(tiny_sd15_model, lat, pos, cfg)
    monkeypatch.setattr(training_mod, "add_adapters", _merged_add_adapters)
    merged = train_lora(tiny_sd15_model, lat, pos, cfg)
    assert list(input_side.lora) == list(merged.lora)  # same keys, same order
    assert merged.losses[-1] != merged.losses[0]  # it trained
    scale = magnitude(*merged.lora.values())
    for key, t in merged.lora.items():
        assert input_side.lora[key].dtype == t.dtype
        assert_close_scaled(input_side.lora[key], t, rtol=1e-4, scale=scale, msg=key)
    assert input_side.losses == pytest.approx(merged.losses, rel=1e-5)
    assert not any(m._forward_hooks for m in tiny_sd15_model.diffusion_model.modules())
