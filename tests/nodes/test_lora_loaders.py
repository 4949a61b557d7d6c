"""LoRA loader nodes on a tiny SD1.5 checkpoint: schemas, strengths, files, bypass, reports."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from comfyless.engine.context import ProgressEvent
from comfyless.lora import add_adapters
from comfyless.lora.keys import diffusers_names
from comfyless.nodes.lora_loaders import LoraLoader, LoraLoaderModelOnly, LoraModelLoader
from comfyless.typesys.errors import InvalidValue, ModelLoadError
from tests.floats import assert_close_scaled

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def node_ctx(ctx):
    return ctx.for_node("7", "LoraLoader")


@pytest.fixture(scope="module")
def trained(tiny_sd15_model):
    """A ComfyUI-layout LoRA for the tiny SD1.5 UNet, with non-zero up factors."""
    unet = tiny_sd15_model.diffusion_model
    aset = add_adapters(unet, "LoRA", 4, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for p in aset.parameters():
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(1)) * 0.05)
    sd = aset.state_dict()
    aset.remove()
    return sd


def _x0(model):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(1, 4, 8, 8, generator=g)
    context = torch.randn(1, 5, model.config.context_dim, generator=g)
    with torch.no_grad():
        return model.apply_model(x, torch.tensor([2.0]), context)


def test_schemas_follow_comfyui():
    s = LoraModelLoader.schema
    assert [i.name for i in s.inputs] == ["model", "lora", "strength_model", "bypass"]
    st = s.input("strength_model")
    assert (st.default, st.min, st.max, st.step) == (1.0, -100.0, 100.0, None)
    assert s.input("bypass").default is False and [o.type.name for o in s.outputs] == ["MODEL"]
    s = LoraLoader.schema
    assert [i.name for i in s.inputs] == ["model", "clip", "lora_name", "strength_model",
                                          "strength_clip"]
    assert s.input("lora_name").choices_from == "loras"
    for name in ("strength_model", "strength_clip"):
        i = s.input(name)
        assert (i.default, i.min, i.max, i.step) == (1.0, -100.0, 100.0, 0.01)
    assert [o.type.name for o in s.outputs] == ["MODEL", "CLIP"]
    s = LoraLoaderModelOnly.schema
    assert [i.name for i in s.inputs] == ["model", "lora_name", "strength_model"]


def test_node_module_does_not_import_torch():
    code = ("import sys; import comfyless.nodes.lora_loaders; "
            "sys.exit(1 if 'torch' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_lora_model_loader_strengths_and_bypass(tiny_sd15_model, trained, node_ctx):
    base = tiny_sd15_model
    assert LoraModelLoader.execute(node_ctx, base, trained, 0.0)[0] is base
    (full,) = LoraModelLoader.execute(node_ctx, base, trained, 1.0)
    (half,) = LoraModelLoader.execute(node_ctx, base, trained, 0.5)
    (hooked,) = LoraModelLoader.execute(node_ctx, base, trained, 1.0, True)
    y0, y1, yh, yb = _x0(base), _x0(full), _x0(half), _x0(hooked)
    assert (y1 - y0).abs().max() > 1e-4
    full_change, half_change = (y1 - y0).abs().max(), (yh - y0).abs().max()
    assert 0.25 * full_change < half_change < 0.75 * full_change
    assert_close_scaled(yb, y1)
    assert torch.equal(_x0(base), y0)  # the input model is untouched


def _kohya(sd, unet):
    """The same LoRA in kohya's diffusers-style names, conv factors 4-D (what kohya writes)."""
    weights = dict(unet.named_parameters())
    dif = diffusers_names([n[:-7] for n in weights if n.endswith(".weight")])
    out = {}
    for key, t in sd.items():
        rest = key[len("diffusion_model."):]
        for suffix in ("lora_up.weight", "lora_down.weight", "alpha"):
            if rest.endswith("." + suffix):
                mod = rest[: -len(suffix) - 1]
                w = weights[mod + ".weight"]
                if w.dim() == 4 and suffix == "lora_down.weight":
                    t = t.reshape(t.shape[0], -1, *w.shape[2:])
                elif w.dim() == 4 and suffix == "lora_up.weight":
                    t = t.reshape(*t.shape, 1, 1)
                out["lora_unet_" + dif[mod][0].replace(".", "_") + "." + suffix] = t
    return out


def _install(ctx, name, sd):
    path = ctx.paths.folders("loras")[0] / name
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    return name


def test_model_only_loader_reads_comfy_and_kohya_files_alike(tiny_sd15_model, trained, node_ctx):
    base = tiny_sd15_model
    no_diffs = {k: v for k, v in trained.items() if not k.endswith(("diff", "diff_b"))}
    _install(node_ctx, "comfy.safetensors", no_diffs)
    _install(node_ctx, "sub/kohya.safetensors", _kohya(no_diffs, base.diffusion_model))
    (a,) = LoraLoaderModelOnly.execute(node_ctx, base, "comfy.safetensors", 0.8)
    (b,) = LoraLoaderModelOnly.execute(node_ctx, base, "sub/kohya.safetensors", 0.8)
    ya, yb = _x0(a), _x0(b)
    assert (ya - _x0(base)).abs().max() > 1e-4
    assert_close_scaled(ya, yb)
    assert LoraLoaderModelOnly.execute(node_ctx, base, "missing.safetensors", 0.0)[0] is base


def test_missing_or_corrupt_file_names_the_input(tiny_sd15_model, node_ctx):
    with pytest.raises(InvalidValue) as exc:
        LoraLoaderModelOnly.execute(node_ctx, tiny_sd15_model, "missing.safetensors", 1.0)
    assert exc.value.input_name == "lora_name" and exc.value.node_id == "7"
    folder = node_ctx.paths.folders("loras")[0]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "bad.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(ModelLoadError) as exc:
        LoraLoaderModelOnly.execute(node_ctx, tiny_sd15_model, "bad.safetensors", 1.0)
    assert exc.value.input_name == "lora_name"


class _FakeClip:
    """Stands in for ClipModel: a HF-layout encoder module plus `with_lora`."""

    def __init__(self):
        layer = nn.ModuleDict({"mlp": nn.ModuleDict({"fc1": nn.Linear(8, 32)})})
        self.text_encoder = nn.ModuleDict({"text_model": nn.ModuleDict({"encoder": nn.ModuleDict(
            {"layers": nn.ModuleList([layer])})})})
        self.loras = []

    def with_lora(self, sd, strength):
        other = _FakeClip()
        other.text_encoder, other.loras = self.text_encoder, self.loras + [(sd, strength)]
        return other


def test_lora_loader_patches_model_and_clip_and_warns_on_leftovers(
        tiny_sd15_model, trained, node_ctx):
    clip = _FakeClip()
    sd = dict(trained)
    sd["lora_te_text_model_encoder_layers_0_mlp_fc1.lora_up.weight"] = torch.zeros(32, 2)
    sd["lora_te_text_model_encoder_layers_0_mlp_fc1.lora_down.weight"] = torch.zeros(2, 8)
    sd["lora_unet_bogus.lora_up.weight"] = torch.zeros(2, 2)
    _install(node_ctx, "both.safetensors", sd)
    events: list[ProgressEvent] = []
    node_ctx.listeners.append(events.append)
    model, clip2 = LoraLoader.execute(node_ctx, tiny_sd15_model, clip, "both.safetensors", 1.0, 0.5)
    assert clip2.loras and clip2.loras[0][1] == 0.5 and model.patches[-1][1] == 1.0
    warnings = [e.info["warning"] for e in events if e.kind == "message"]
    assert len(warnings) == 1 and "lora_unet_bogus.lora_up.weight" in warnings[0]
    assert "lora_te_" not in warnings[0]
    # both strengths 0: exact passthrough, file not even read
    out = LoraLoader.execute(node_ctx, tiny_sd15_model, clip, "nothing.safetensors", 0.0, 0.0)
    assert out[0] is tiny_sd15_model and out[1] is clip


def test_lora_for_another_model_is_an_error(tiny_sd15_model, node_ctx):
    sd = {"lora_unet_some_other_net.lora_up.weight": torch.zeros(4, 2),
          "lora_unet_some_other_net.lora_down.weight": torch.zeros(2, 4)}
    with pytest.raises(ModelLoadError) as exc:
        LoraModelLoader.execute(node_ctx, tiny_sd15_model, sd, 1.0)
    assert exc.value.input_name == "lora" and exc.value.node_id == "7"


def test_lora_loader_te2_keys_change_only_the_bigg_half(tiny_sdxl_checkpoint, node_ctx):
    from comfyless.models.checkpoint import load_checkpoint

    model, clip, _ = load_checkpoint(tiny_sdxl_checkpoint)
    stack = clip.lora_module
    fc1 = stack.clip_g.transformer.text_model.encoder.layers[0].mlp.fc1.weight
    width_l = stack.clip_l.transformer.text_model.encoder.layers[0].mlp.fc1.weight.shape[1]
    g = torch.Generator().manual_seed(0)
    sd = {"lora_te2_text_model_encoder_layers_0_mlp_fc1.lora_up.weight":
          torch.randn(fc1.shape[0], 2, generator=g),
          "lora_te2_text_model_encoder_layers_0_mlp_fc1.lora_down.weight":
          torch.randn(2, fc1.shape[1], generator=g),
          "lora_te2_text_model_encoder_layers_0_mlp_fc1.alpha": torch.tensor(2.0)}
    _install(node_ctx, "te2.safetensors", sd)
    events: list[ProgressEvent] = []
    node_ctx.listeners.append(events.append)
    model2, clip2 = LoraLoader.execute(node_ctx, model, clip, "te2.safetensors", 0.0, 1.0)
    assert model2 is model and not [e for e in events if e.kind == "message"]
    cond0, _ = clip.encode("a photo of a cat")
    cond1, _ = clip2.encode("a photo of a cat")
    assert torch.equal(cond1[..., :width_l], cond0[..., :width_l])  # CLIP-L: same path
    assert (cond1[..., width_l:] - cond0[..., width_l:]).abs().max() > 1e-4
    assert torch.equal(clip.encode("a photo of a cat")[0], cond0)  # weights restored
