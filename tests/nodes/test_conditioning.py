"""CLIPTextEncode / CLIPSetLastLayer: schemas, outputs on tiny checkpoints, errors."""

from __future__ import annotations

import pytest
import torch

from comfyless.engine.context import RunContext
from comfyless.nodes import build_registry
from comfyless.nodes.conditioning import CLIPSetLastLayer, CLIPTextEncode
from comfyless.typesys.errors import NodeExecutionError
from comfyless.typesys.schema import Input, Node, NodeSchema, Result
from comfyless.typesys.types import CONDITIONING
from tests.conftest import WorkflowBuilder
from tests.fixtures_models import install_model
from tests.floats import assert_close_scaled


class _CondSink(Node):
    """Test output node: keeps the CONDITIONING it receives."""

    schema = NodeSchema("_CondSink", inputs=(Input("conditioning", CONDITIONING),), outputs=(),
                        output_node=True)

    @staticmethod
    def execute(ctx, conditioning):
        return Result((), ui={"conditioning": [conditioning]})


@pytest.fixture(scope="module")
def clips(tiny_checkpoints):
    from comfyless.models.checkpoint import load_checkpoint

    return {arch: load_checkpoint(path)[1] for arch, path in tiny_checkpoints.items()}


@pytest.fixture
def nctx(tmp_path):
    return RunContext.create(tmp_path / "base").for_node("6", "CLIPTextEncode")


def test_schemas_match_comfyui():
    s = CLIPTextEncode.schema
    assert [(i.name, i.type.name) for i in s.inputs] == [("text", "STRING"), ("clip", "CLIP")]
    assert s.input("text").multiline and s.display_name == "CLIP Text Encode (Prompt)"
    assert [o.type.name for o in s.outputs] == ["CONDITIONING"]
    s = CLIPSetLastLayer.schema
    layer = s.input("stop_at_clip_layer")
    assert [i.name for i in s.inputs] == ["clip", "stop_at_clip_layer"]
    assert (layer.default, layer.min, layer.max, layer.step) == (-1, -24, -1, 1)
    assert [o.type.name for o in s.outputs] == ["CLIP"]
    assert s.display_name == "CLIP Set Last Layer"


@pytest.mark.parametrize("arch,width,pooled", [("sd15", 64, 64), ("sd2", 64, 64),
                                               ("sdxl", 192, 128)])
def test_encode_gives_comfyui_conditioning(nctx, clips, arch, width, pooled):
    (conditioning,) = CLIPTextEncode.execute(nctx, text="a (red:1.2) cat", clip=clips[arch])
    [[cond, extra]] = conditioning
    assert cond.shape == (1, 77, width) and cond.dtype == torch.float32
    assert set(extra) == {"pooled_output"} and extra["pooled_output"].shape == (1, pooled)
    assert torch.isfinite(cond).all()
    plain, _ = clips[arch].encode("a red cat")
    assert not torch.allclose(cond, plain)  # the weight reached the output
    again, _ = clips[arch].encode("a (red:1.2) cat")
    assert torch.equal(cond, again)  # same path twice in one process: bitwise


def test_set_last_layer_changes_output_without_touching_input(nctx, clips):
    clip = clips["sd15"]
    (skipped,) = CLIPSetLastLayer.execute(nctx, clip=clip, stop_at_clip_layer=-2)
    (a,) = CLIPTextEncode.execute(nctx, text="a cat", clip=clip)
    (b,) = CLIPTextEncode.execute(nctx, text="a cat", clip=skipped)
    assert not torch.allclose(a[0][0], b[0][0])
    (c,) = CLIPTextEncode.execute(nctx, text="a cat", clip=clip)
    assert torch.equal(a[0][0], c[0][0])  # the original CLIP still ends at the last layer
    (last,) = CLIPSetLastLayer.execute(nctx, clip=clip, stop_at_clip_layer=-1)
    (d,) = CLIPTextEncode.execute(nctx, text="a cat", clip=last)
    assert_close_scaled(d[0][0], a[0][0])


def test_missing_clip_names_node_and_input(nctx):
    with pytest.raises(ValueError, match=r"node 6 \(CLIPTextEncode\) input 'clip'"):
        CLIPTextEncode.execute(nctx, text="x", clip=None)


def test_workflow_checkpoint_to_conditioning(tmp_path, tiny_sd15_checkpoint, clips):
    from comfyless.engine.execute import run_workflow
    from comfyless.engine.validate import validate

    ctx = RunContext.create(tmp_path / "base")
    name = install_model(ctx, tiny_sd15_checkpoint)
    registry = build_registry()
    registry.register(_CondSink)
    b = WorkflowBuilder()
    ckpt = b.add("CheckpointLoaderSimple", ckpt_name=name)
    skip = b.add("CLIPSetLastLayer", clip=ckpt.out(1), stop_at_clip_layer=-2)
    enc = b.add("CLIPTextEncode", text="a photo of a cat", clip=skip.out(0))
    b.add("_CondSink", conditioning=enc.out(0))
    result = run_workflow(b.build(), ctx, registry)
    [[cond, extra]] = result.ui["4"]["conditioning"][0]
    expected, pooled = clips["sd15"].clip_layer(-2).encode("a photo of a cat")
    assert_close_scaled(cond, expected)  # the workflow's own load of the checkpoint
    assert_close_scaled(extra["pooled_output"], pooled)

    bad = WorkflowBuilder()
    ckpt = bad.add("CheckpointLoaderSimple", ckpt_name=name)
    skip = bad.add("CLIPSetLastLayer", clip=ckpt.out(1), stop_at_clip_layer=0)
    enc = bad.add("CLIPTextEncode", text="x", clip=skip.out(0))
    bad.add("_CondSink", conditioning=enc.out(0))
    errors = validate(bad.build(), registry, ctx.paths)
    assert [(e.code, e.node_id, e.input_name) for e in errors] == [
        ("value_bigger_than_max", "2", "stop_at_clip_layer")]


def test_clip_none_in_a_workflow_is_a_node_error(tmp_path):
    from comfyless.engine.execute import run_workflow

    class _NoClip(Node):
        """Test node: a CLIP output that is None (a checkpoint without text encoder)."""

        schema = NodeSchema("_NoClip", outputs=(CLIPSetLastLayer.schema.outputs[0],))

        @staticmethod
        def execute(ctx):
            return (None,)

    registry = build_registry()
    registry.register(_CondSink)
    registry.register(_NoClip)
    b = WorkflowBuilder()
    none = b.add("_NoClip")
    enc = b.add("CLIPTextEncode", text="x", clip=none.out(0))
    b.add("_CondSink", conditioning=enc.out(0))
    with pytest.raises(NodeExecutionError) as info:
        run_workflow(b.build(), RunContext.create(tmp_path / "base"), registry)
    assert info.value.node_id == "2"
    assert "input 'clip'" in str(info.value.__cause__)


def test_clip_text_encode_carries_a_qwen_text_mask_only_when_it_has_zeros(tmp_path, ctx):
    """Qwen encoders (CLIPLoader qwen_image / lumina2): ComfyUI puts the text attention mask
    in the conditioning only when it masks something (a literal <|endoftext|> in the prompt)."""
    from safetensors.torch import save_file

    from comfyless.models import text_sets
    from comfyless.nodes.impl.conditioning import clip_text_encode

    files = text_sets.text_encoder_files("qwen_image", "tiny", torch.Generator().manual_seed(0))
    (name, sd), = files.items()
    save_file(sd, str(tmp_path / name))
    clip = text_sets.load_text_encoder_files([tmp_path / name], "qwen_image")
    ((cond, options),), = clip_text_encode(ctx, "a cat", clip)
    assert "attention_mask" not in options and options["pooled_output"] is None
    ((masked_cond, masked),), = clip_text_encode(ctx, "a cat <|endoftext|> hidden", clip)
    mask = masked["attention_mask"]
    assert mask.shape == masked_cond.shape[:2] and (mask == 0).any() and (mask == 1).any()
