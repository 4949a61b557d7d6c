"""Flux / SD3 text nodes on tiny text-encoder files: schemas as ComfyUI declares them, the loaders
(Dual / Triple / CLIPLoader type sd3), CLIPTextEncodeFlux / SD3, FluxGuidance,
FluxDisableGuidance, T5TokenizerOptions, CLIPTextEncode on a set, through the engine too."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from comfyless.engine.context import RunContext
from comfyless.engine.execute import run_workflow
from comfyless.nodes import build_registry
from comfyless.nodes.conditioning import (
    CLIPTextEncode,
    CLIPTextEncodeFlux,
    CLIPTextEncodeSD3,
    FluxDisableGuidance,
    FluxGuidance,
    T5TokenizerOptions,
)
from comfyless.nodes.loaders import (
    CLIP_TYPES,
    DUAL_CLIP_TYPES,
    CLIPLoader,
    DualCLIPLoader,
    TripleCLIPLoader,
)
from comfyless.typesys.errors import ModelLoadError
from comfyless.typesys.schema import Input, Node, NodeSchema, Result
from comfyless.typesys.types import CONDITIONING
from tests.conftest import WorkflowBuilder
from tests.floats import assert_close_scaled

T5_W = 64  # the tiny T5's width


class _CondSink(Node):
    """Test output node: reports the shapes and guidance of a CONDITIONING."""

    schema = NodeSchema("_CondSink", inputs=(Input("conditioning", CONDITIONING),), outputs=(),
                        output_node=True)

    @staticmethod
    def execute(ctx, conditioning):
        cond, extras = conditioning[0]
        return Result((), ui={"cond": [tuple(cond.shape)],
                              "pooled": [tuple(extras["pooled_output"].shape)],
                              "guidance": [extras.get("guidance", "absent")]})


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A base dir whose models/text_encoders holds tiny clip_l, clip_g and t5xxl files."""
    from comfyless.models.text_sets import text_encoder_files

    root = tmp_path_factory.mktemp("text_nodes") / "base"
    ctx = RunContext.create(root)
    folder = ctx.paths.folders("text_encoders")[0]
    folder.mkdir(parents=True)
    for name, sd in text_encoder_files("sd3", "tiny", torch.Generator().manual_seed(0)).items():
        save_file({k: v.contiguous() for k, v in sd.items()}, str(folder / name))
    return root


@pytest.fixture
def ctx(base):
    return RunContext.create(base).for_node("7", "DualCLIPLoader")


@pytest.fixture(scope="module")
def flux_clip(base):
    ctx = RunContext.create(base).for_node("1", "DualCLIPLoader")
    return DualCLIPLoader.execute(ctx, clip_name1="t5xxl_fp16.safetensors",
                                  clip_name2="clip_l.safetensors", type="flux")[0]


@pytest.fixture(scope="module")
def sd3_clip(base):
    ctx = RunContext.create(base).for_node("1", "TripleCLIPLoader")
    return TripleCLIPLoader.execute(ctx, clip_name1="clip_l.safetensors",
                                    clip_name2="t5xxl_fp16.safetensors",
                                    clip_name3="clip_g.safetensors")[0]


# -- schemas (ComfyUI's names, order, defaults, ranges) ------------------------------------------

def _inputs(node):
    return [(i.name, i.type.name, None if i.default is i.__class__.default else i.default)
            for i in node.schema.inputs]


def test_schemas_match_comfyui():
    names = lambda node: [i.name for i in node.schema.inputs]  # noqa: E731
    assert DUAL_CLIP_TYPES == ("sdxl", "sd3", "flux", "hunyuan_video", "hidream", "hunyuan_image")
    assert CLIP_TYPES[-1] == "hunyuan_image" and "sd3" in CLIP_TYPES and len(CLIP_TYPES) == 16
    assert names(TripleCLIPLoader) == ["clip_name1", "clip_name2", "clip_name3"]
    assert all(TripleCLIPLoader.schema.input(n).choices_from == "text_encoders"
               for n in names(TripleCLIPLoader))
    assert names(CLIPTextEncodeFlux) == ["clip", "clip_l", "t5xxl", "guidance"]
    assert names(CLIPTextEncodeSD3) == ["clip", "clip_l", "clip_g", "t5xxl", "empty_padding"]
    assert CLIPTextEncodeSD3.schema.input("empty_padding").choices == ("none", "empty_prompt")
    assert CLIPTextEncodeSD3.schema.input("empty_padding").default == "none"
    assert all(CLIPTextEncodeSD3.schema.input(n).multiline for n in ("clip_l", "clip_g", "t5xxl"))
    for node in (CLIPTextEncodeFlux, FluxGuidance):
        g = node.schema.input("guidance")
        assert (g.type.name, g.default, g.min, g.max, g.step) == ("FLOAT", 3.5, 0.0, 100.0, 0.1)
    assert names(FluxGuidance) == ["conditioning", "guidance"]
    assert names(FluxDisableGuidance) == ["conditioning"]
    assert names(T5TokenizerOptions) == ["clip", "min_padding", "min_length"]
    for n in ("min_padding", "min_length"):
        i = T5TokenizerOptions.schema.input(n)
        assert (i.type.name, i.default, i.min, i.max, i.step) == ("INT", 0, 0, 10000, 1)
    assert [o.type.name for o in T5TokenizerOptions.schema.outputs] == ["CLIP"]
    assert CLIPTextEncodeFlux.schema.category == "advanced/conditioning/flux"


# -- loaders --------------------------------------------------------------------------------------

def test_dual_clip_loader_flux_in_either_order(ctx, flux_clip):
    (other,) = DualCLIPLoader.execute(ctx, clip_name1="clip_l.safetensors",
                                      clip_name2="t5xxl_fp16.safetensors", type="flux")
    a, b = flux_clip.encode("a fox"), other.encode("a fox")
    assert a[0].shape == (1, 256, T5_W)
    for x, y in zip(a, b, strict=True):
        assert_close_scaled(x, y)


def test_loader_errors_name_the_input(ctx):
    with pytest.raises(ModelLoadError) as info:
        DualCLIPLoader.execute(ctx, clip_name1="clip_l.safetensors",
                               clip_name2="clip_g.safetensors", type="flux")
    assert info.value.input_name == "clip_name2" and "T5-XXL" in str(info.value)
    with pytest.raises(ModelLoadError) as info:
        DualCLIPLoader.execute(ctx, clip_name1="clip_l.safetensors",
                               clip_name2="t5xxl_fp16.safetensors", type="hidream")
    assert info.value.input_name == "type" and "not supported" in str(info.value)


def test_clip_loader_type_sd3_takes_one_file(ctx):
    (clip,) = CLIPLoader.execute(ctx, clip_name="t5xxl_fp16.safetensors", type="sd3")
    cond, pooled = clip.encode("a fox")
    assert cond.shape == (1, 77, 4096) and torch.all(pooled == 0)


# -- encoders -------------------------------------------------------------------------------------

def test_clip_text_encode_flux_sets_guidance_and_splits_prompts(ctx, flux_clip):
    ((cond, extras),) = CLIPTextEncodeFlux.execute(ctx, clip=flux_clip, clip_l="a fox",
                                                   t5xxl="a red fox in the snow", guidance=2.0)[0]
    assert extras["guidance"] == 2.0 and extras["pooled_output"].shape == (1, 64)
    t5_only, _ = flux_clip.encode("a red fox in the snow")
    _, l_only = flux_clip.encode("a fox")
    assert_close_scaled(cond, t5_only)  # cond from the t5xxl field
    assert_close_scaled(extras["pooled_output"], l_only)  # pooled from the clip_l field


def test_flux_guidance_nodes_copy_every_entry(ctx, flux_clip):
    (conditioning,) = CLIPTextEncode.execute(ctx, text="a fox", clip=flux_clip)
    assert "guidance" not in conditioning[0][1]  # the model's default (3.5) applies
    two = conditioning + [[conditioning[0][0], {"pooled_output": None}]]
    (guided,) = FluxGuidance.execute(ctx, conditioning=two, guidance=4.0)
    assert [e[1]["guidance"] for e in guided] == [4.0, 4.0]
    (off,) = FluxDisableGuidance.execute(ctx, conditioning=guided)
    assert [e[1]["guidance"] for e in off] == [None, None]
    assert "guidance" not in two[0][1] and guided[0][1]["guidance"] == 4.0  # inputs unchanged
    assert off[0][0] is two[0][0]


def test_t5_tokenizer_options_change_the_t5_length(ctx, flux_clip):
    (clip,) = T5TokenizerOptions.execute(ctx, clip=flux_clip, min_padding=0, min_length=0)
    cond, _ = CLIPTextEncode.execute(ctx, text="a cat", clip=clip)[0][0]
    assert cond.shape[1] == 4  # 3 pieces + end token, no padding to 256
    (clip,) = T5TokenizerOptions.execute(ctx, clip=flux_clip, min_padding=3, min_length=0)
    assert CLIPTextEncode.execute(ctx, text="a cat", clip=clip)[0][0][0].shape[1] == 7
    assert flux_clip.encode("a cat")[0].shape[1] == 256  # the input CLIP is unchanged


def test_clip_text_encode_sd3_empty_padding(ctx, sd3_clip):
    ((cond, extras),) = CLIPTextEncodeSD3.execute(ctx, clip=sd3_clip, clip_l="a fox",
                                                  clip_g="a fox", t5xxl="a fox",
                                                  empty_padding="none")[0]
    assert cond.shape == (1, 154, 4096) and extras["pooled_output"].shape == (1, 64 + 128)
    assert_close_scaled(cond, sd3_clip.encode("a fox")[0])
    # "none": empty fields drop their tokens (only T5 is left, no pooled: zeros)
    ((cond, extras),) = CLIPTextEncodeSD3.execute(ctx, clip=sd3_clip, clip_l="", clip_g="",
                                                  t5xxl="a fox", empty_padding="none")[0]
    assert cond.shape == (1, 77, 4096) and torch.all(extras["pooled_output"] == 0)
    # "empty_prompt": empty fields are encoded as the empty prompt
    ((cond, extras),) = CLIPTextEncodeSD3.execute(ctx, clip=sd3_clip, clip_l="", clip_g="",
                                                  t5xxl="", empty_padding="empty_prompt")[0]
    assert cond.shape == (1, 154, 4096) and not torch.all(extras["pooled_output"] == 0)
    # l and g window counts are equalised with empty windows
    long_g = "masterpiece, best quality, " * 30  # two 77-token windows
    ((cond, _),) = CLIPTextEncodeSD3.execute(ctx, clip=sd3_clip, clip_l="a", clip_g=long_g,
                                             t5xxl="", empty_padding="none")[0]
    # l gets a second (empty) window; the dropped T5 still encodes its empty sequence (end token)
    assert cond.shape == (1, 2 * 77 + 1, 4096)


def test_flux_node_on_a_clip_without_t5_says_so(ctx, tiny_sd15_checkpoint):
    from comfyless.models.checkpoint import load_checkpoint

    _, clip, _ = load_checkpoint(tiny_sd15_checkpoint)
    with pytest.raises(ValueError, match="no t5xxl text encoder"):
        CLIPTextEncodeFlux.execute(ctx, clip=clip, clip_l="a", t5xxl="b", guidance=3.5)
    assert T5TokenizerOptions.execute(ctx, clip=clip, min_padding=1, min_length=0)[0] \
        .encode("a")[0].shape == clip.encode("a")[0].shape  # ignored by CLIP tokenizers


# -- through the engine --------------------------------------------------------------------------

def test_flux_text_workflow_runs(base):
    registry = build_registry()
    registry.register(_CondSink)
    b = WorkflowBuilder()
    loader = b.add("DualCLIPLoader", clip_name1="clip_l.safetensors",
                   clip_name2="t5xxl_fp16.safetensors", type="flux")
    enc = b.add("CLIPTextEncodeFlux", clip=loader.out(0), clip_l="a fox", t5xxl="a fox",
                guidance=3.5)
    guided = b.add("FluxGuidance", conditioning=enc.out(0), guidance=5.0)
    b.add("_CondSink", conditioning=guided.out(0))
    triple = b.add("TripleCLIPLoader", clip_name1="t5xxl_fp16.safetensors",
                   clip_name2="clip_g.safetensors", clip_name3="clip_l.safetensors")
    sd3 = b.add("CLIPTextEncodeSD3", clip=triple.out(0), clip_l="a", clip_g="b", t5xxl="c",
                empty_padding="empty_prompt")
    b.add("_CondSink", conditioning=sd3.out(0))
    result = run_workflow(b.build(), RunContext.create(base), registry)
    assert result.ui["4"] == {"cond": [(1, 256, T5_W)], "pooled": [(1, 64)], "guidance": [5.0]}
    assert result.ui["7"] == {"cond": [(1, 154, 4096)], "pooled": [(1, 192)],
                              "guidance": ["absent"]}
