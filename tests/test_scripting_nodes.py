"""Node functions (comfyless.nodes.api) inside `with Workflow()`: the same graphs as Graph.node,
typed Socket handles, choice enums, and the validator's checks raised at the call."""

from __future__ import annotations

import threading

import pytest

from comfyless import Graph
from comfyless.api import Socket, Workflow, current_workflow
from comfyless.nodes import api as nodes
from comfyless.nodes.api import (
    CheckpointLoaderSimple,
    CLIPTextEncode,
    EmptyLatentImage,
    KSampler,
    SamplerName,
    SaveImage,
    Scheduler,
    VAEDecode,
    node,
)
from comfyless.typesys.errors import (
    InvalidValue,
    MissingInput,
    NotInChoices,
    TypeMismatch,
    UnknownNodeType,
    ValueOutOfRange,
)

SAMPLING = dict(seed=7, steps=12, cfg=6.5, sampler_name="euler", scheduler="karras", denoise=1.0)


def _txt2img_with_functions() -> Workflow:
    with Workflow() as wf:
        model, clip, vae = CheckpointLoaderSimple("sd15.safetensors")
        positive = CLIPTextEncode(text="a cat", clip=clip)
        negative = CLIPTextEncode(text="blurry", clip=clip)
        empty = EmptyLatentImage(width=512, height=512)
        latent = KSampler(model=model, positive=positive, negative=negative,
                          latent_image=empty, **SAMPLING)
        image = VAEDecode(samples=latent, vae=vae)
        SaveImage(images=image, filename_prefix="cat", _id="9", _title="Save")
    return wf


def _txt2img_with_graph() -> Graph:
    g = Graph()
    ckpt = g.node("CheckpointLoaderSimple", ckpt_name="sd15.safetensors")
    pos = g.node("CLIPTextEncode", text="a cat", clip=ckpt.out("CLIP"))
    neg = g.node("CLIPTextEncode", text="blurry", clip=ckpt.out("CLIP"))
    empty = g.node("EmptyLatentImage", width=512, height=512)
    latent = g.node("KSampler", model=ckpt.out("MODEL"), positive=pos, negative=neg,
                    latent_image=empty, **SAMPLING)
    image = g.node("VAEDecode", samples=latent, vae=ckpt.out("VAE"))
    g.node("SaveImage", images=image, filename_prefix="cat", _id="9", _title="Save")
    return g


def test_txt2img_equals_graph_node():
    assert _txt2img_with_functions().to_api() == _txt2img_with_graph().to_api()


def test_the_built_graph_validates_as_the_graph_does(tmp_path):
    built, reference = _txt2img_with_functions(), _txt2img_with_graph()
    errors = [(type(e), str(e)) for e in built.validate(tmp_path)]
    assert errors == [(type(e), str(e)) for e in reference.validate(tmp_path)]
    assert [t for t, _ in errors] == [NotInChoices]  # only the checkpoint file is absent


def test_outputs_are_typed_sockets_by_position_and_name():
    with Workflow():
        out = CheckpointLoaderSimple(ckpt_name="x.safetensors")
        model, clip, vae = out
        empty = EmptyLatentImage()
    assert out.MODEL is model and out.VAE is vae and type(out).__name__ == \
        "CheckpointLoaderSimpleOutputs"
    assert isinstance(model, nodes.MODEL) and isinstance(model, Socket)
    assert not isinstance(empty, nodes.MODEL) and isinstance(empty, nodes.LATENT)
    assert (model.node_id, model.slot, model.name, model.io_type) == ("1", 0, "MODEL", "MODEL")
    assert (clip.slot, vae.slot, empty.node_id) == (1, 2, "2")
    assert nodes.CheckpointLoaderSimpleOutputs is type(out)


def _error_from_validate(class_type: str, **inputs) -> tuple[type, str]:
    """The validator's error for the same input, on a Graph built without build checks."""
    g = Graph()
    ckpt = g.node("CheckpointLoaderSimple", ckpt_name="x.safetensors")
    empty = g.node("EmptyLatentImage")
    values = {"ckpt": ckpt, "empty": empty}
    built = {k: (values[v[1:]] if isinstance(v, str) and v.startswith("@") else v)
             for k, v in inputs.items()}
    g.node(class_type, **built)
    found = [e for e in g.validate() if e.node_id == "3" and e.input_name in inputs]
    assert len(found) == 1, found
    return type(found[0]), str(found[0])


@pytest.mark.parametrize("inputs, expected", [
    ({"model": "@empty"}, TypeMismatch),            # a LATENT into `model`
    ({"steps": -5}, ValueOutOfRange),
    ({"cfg": 1000.0}, ValueOutOfRange),
    ({"sampler_name": "eulr"}, NotInChoices),
    ({"cfg": "lots"}, InvalidValue),                 # wrong Python type
    ({"positive": "a cat"}, InvalidValue),           # a constant where a link belongs
])
def test_bad_inputs_raise_at_the_call_as_validate_reports_them(inputs, expected):
    with Workflow() as wf:
        CheckpointLoaderSimple(ckpt_name="x.safetensors")
        empty = EmptyLatentImage()
        given = {k: (empty if v == "@empty" else v) for k, v in inputs.items()}
        with pytest.raises(expected) as info:
            KSampler(**given)
    assert (type(info.value), str(info.value)) == _error_from_validate("KSampler", **inputs)
    assert info.value.node_id == "3" and list(wf.nodes) == ["1", "2"]  # nothing was added


def test_set_checks_too_and_missing_inputs_wait_for_validate(tmp_path):
    with Workflow() as wf:
        model, _clip, _vae = CheckpointLoaderSimple(ckpt_name="x.safetensors")
        empty = EmptyLatentImage()
        latent = KSampler(model=model, **SAMPLING)     # conditioning wired later
        with pytest.raises(TypeMismatch):
            latent.node.set(latent_image=model)
        latent.node.set(latent_image=empty)
    missing = {e.input_name for e in wf.validate(tmp_path) if isinstance(e, MissingInput)}
    assert missing == {"positive", "negative"}


def test_choice_enums_are_accepted_where_their_string_is():
    assert SamplerName.euler.value == "euler" and issubclass(SamplerName, str)
    assert SamplerName.dpmpp_2m == "dpmpp_2m" and f"{SamplerName.lcm}" == str(SamplerName.lcm) \
        == "lcm"
    assert nodes.Scheduler is Scheduler and nodes.Optimizer.AdamW == "AdamW"
    with Workflow() as wf:
        model, clip, _vae = CheckpointLoaderSimple(ckpt_name="x.safetensors")
        cond = CLIPTextEncode(text="a", clip=clip)
        KSampler(model=model, positive=cond, negative=cond, latent_image=EmptyLatentImage(),
                 sampler_name=SamplerName.dpmpp_2m, scheduler=Scheduler.sgm_uniform)
    inputs = wf.to_api()["4"]["inputs"]
    assert (inputs["sampler_name"], inputs["scheduler"]) == ("dpmpp_2m", "sgm_uniform")
    assert type(inputs["sampler_name"]) is str


def test_enum_names_follow_the_input_or_the_node():
    names = nodes.choice_enum_names(nodes._registry())
    assert names[("KSampler", "sampler_name")] == names[("KSamplerAdvanced", "sampler_name")] \
        == "SamplerName"
    # `upscale_method` has different choices on different nodes: named per node
    assert names[("LatentUpscale", "upscale_method")] == "LatentUpscaleUpscaleMethod"
    assert nodes.member_name("nearest-exact") == "nearest_exact"
    assert nodes.member_name("8-bit") == "_8_bit" and nodes.member_name("center") == "center_"


def test_positional_inputs_and_errors():
    with Workflow() as wf:
        model, clip, _vae = CheckpointLoaderSimple("x.safetensors")
        cond = CLIPTextEncode("a cat", clip)
        with pytest.raises(TypeError, match="positional"):
            CLIPTextEncode("a", clip, "extra")
        with pytest.raises(TypeError, match="twice"):
            CLIPTextEncode("a", text="b")
    assert wf.to_api()["2"]["inputs"] == {"text": "a cat", "clip": ["1", 1]}
    assert cond.io_type == "CONDITIONING"


def test_node_by_name_ids_titles_and_unknown_names():
    with Workflow() as wf:
        empty = node("EmptyLatentImage", width=256, _id="40", _title="Empty")
        node("LatentUpscale", samples=empty, **{"upscale_method": "bilinear"})
        with pytest.raises(UnknownNodeType):
            node("EmptyLatentImag")
    api = wf.to_api()
    assert api["40"]["_meta"] == {"title": "Empty"} and "41" in api
    with pytest.raises(AttributeError, match="no registered node"):
        nodes.KSamplr  # noqa: B018
    assert {"KSampler", "SamplerName", "MODEL", "node"} <= set(dir(nodes))


def test_outside_a_block_names_the_node():
    with pytest.raises(RuntimeError, match=r"KSampler\(\) was called outside"):
        KSampler(steps=1)
    with pytest.raises(RuntimeError):
        current_workflow()


def test_nested_and_parallel_blocks_are_separate():
    with Workflow() as outer:
        EmptyLatentImage()
        with Workflow() as inner:
            inner_latent = EmptyLatentImage(width=64)
            assert current_workflow() is inner
        assert current_workflow() is outer
        with pytest.raises(InvalidValue, match="another workflow"):
            node("LatentUpscale", samples=inner_latent)
    seen = {}

    def build(name):
        with Workflow() as wf:
            for _ in range(20):
                EmptyLatentImage()
        seen[name] = len(wf.nodes)

    threads = [threading.Thread(target=build, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(outer.nodes) == 1 and len(inner.nodes) == 1
    assert seen == {i: 20 for i in range(4)}


def test_graph_api_unchanged_and_accepts_sockets():
    with Workflow() as wf:
        empty = EmptyLatentImage()
        handle = wf.node("LatentUpscale", samples=empty, upscale_method="bilinear")
    assert handle.inputs["samples"] == empty.link and handle.out(0) == wf.sockets(handle).link
