"""TextGenerate (nodes/text_generate.py): ComfyUI's schema, the node on tiny Qwen text-encoder
files loaded by CLIPLoader, its errors, the thinking split, and the published template
`llm_qwen3_text_gen` (validates with only its file missing; runs on a tiny file)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from comfyless.engine.context import RunContext
from comfyless.engine.load import load_workflow
from comfyless.engine.paths import BasePaths
from comfyless.engine.validate import check_workflow
from comfyless.models import qwen_generate as qg
from comfyless.models.text_sets import text_encoder_files
from comfyless.nodes import REGISTRY
from comfyless.nodes.impl.text_generate import sampling_from_inputs, split_thinking
from comfyless.nodes.loaders import CLIPLoader
from comfyless.nodes.text_generate import TextGenerate
from comfyless.typesys.errors import Interrupted
from tests.models.test_qwen_generate import tiny_generative_sd

templates_pkg = pytest.importorskip("comfyui_workflow_templates_json")
TEMPLATE = Path(templates_pkg.__file__).parent / "templates" / "llm_qwen3_text_gen.json"
GREEDY = {"sampling_mode": "off"}
SAMPLED = {"sampling_mode": "on", "sampling_mode.temperature": 0.7, "sampling_mode.top_k": 64,
           "sampling_mode.top_p": 0.95, "sampling_mode.min_p": 0.05,
           "sampling_mode.repetition_penalty": 1.05, "sampling_mode.seed": 3}


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A base dir with tiny Qwen3-4B and Qwen2.5-VL-7B files and a CLIP-L under their names."""
    root = tmp_path_factory.mktemp("base")
    folder = BasePaths.resolve(root).folders("text_encoders")[0]
    folder.mkdir(parents=True)
    save_file(tiny_generative_sd("lumina2"), str(folder / "qwen_3_4b.safetensors"))
    save_file(tiny_generative_sd("qwen_image"), str(folder / "qwen_2.5_vl_7b.safetensors"))
    flux_files = text_encoder_files("flux", "tiny", torch.Generator().manual_seed(0))
    save_file(flux_files["clip_l.safetensors"], str(folder / "clip_l.safetensors"))
    return root


def _ctx(base: Path, node_id: str = "7", class_type: str = "TextGenerate") -> RunContext:
    return RunContext.create(base).for_node(node_id, class_type)


@pytest.fixture(scope="module")
def clips(base):
    ctx = _ctx(base, "8", "CLIPLoader")
    return {"lumina2": CLIPLoader.execute(ctx, clip_name="qwen_3_4b.safetensors",
                                          type="lumina2")[0],
            "qwen_image": CLIPLoader.execute(ctx, clip_name="qwen_2.5_vl_7b.safetensors",
                                             type="qwen_image")[0],
            "clip_l": CLIPLoader.execute(ctx, clip_name="clip_l.safetensors",
                                         type="stable_diffusion")[0]}


def test_schema_is_comfyuis():
    s = TextGenerate.schema
    assert (s.class_type, s.display_name, s.category) == ("TextGenerate", "Generate Text", "text")
    assert [i.name for i in s.inputs] == [
        "clip", "prompt", "image", "video", "audio", "max_length", "sampling_mode",
        "sampling_mode.temperature", "sampling_mode.top_k", "sampling_mode.top_p",
        "sampling_mode.min_p", "sampling_mode.repetition_penalty", "sampling_mode.seed",
        "sampling_mode.presence_penalty", "thinking", "use_default_template", "mtp",
        "system_prompt"]
    m = s.input_map
    assert (m["max_length"].default, m["max_length"].min, m["max_length"].max) == (512, 1, 32768)
    assert m["sampling_mode"].choices == ("on", "off") and m["sampling_mode"].default == "on"
    assert [(m[f"sampling_mode.{n}"].default, m[f"sampling_mode.{n}"].min,
             m[f"sampling_mode.{n}"].max) for n in
            ("temperature", "top_k", "top_p", "min_p", "repetition_penalty", "seed",
             "presence_penalty")] == [
        (0.7, 0.01, 2.0), (64, 0, 1000), (0.95, 0.0, 1.0), (0.05, 0.0, 1.0),
        (1.05, 0.0, 5.0), (0, 0, 2**64 - 1), (0.0, 0.0, 5.0)]
    assert m["mtp"].choices == ("auto", "off", "2", "3", "4", "5")
    assert m["system_prompt"].force_input and m["audio"].type.name == "AUDIO"
    assert [o.name for o in s.outputs] == ["generated_text", "thinking"]


@pytest.mark.parametrize("clip_type", ["lumina2", "qwen_image"])
def test_node_generates_what_the_model_generates(base, clips, clip_type):
    clip = clips[clip_type]
    answer, reasoning = TextGenerate.execute(_ctx(base), clip=clip, prompt="a lighthouse",
                                             max_length=6, **GREEDY)
    text = qg.generation_text(clip.encoder, "a lighthouse")
    ids = qg.generate_text_ids(clip, text, 6, qg.Sampling(do_sample=False))
    assert len(ids) == 6 and (answer, reasoning) == split_thinking(qg.decode_ids(ids))
    assert answer and isinstance(answer, str)


def test_sampling_repeats_per_seed_and_differs_from_greedy(base, clips):
    run = lambda **kw: TextGenerate.execute(_ctx(base), clip=clips["lumina2"],  # noqa: E731
                                            prompt="hello", max_length=8, **kw)[0]
    assert run(**SAMPLED) == run(**SAMPLED)
    assert run(**SAMPLED) != run(**{**SAMPLED, "sampling_mode.seed": 4})
    assert run(**GREEDY) == run(**GREEDY)


def test_system_prompt_changes_the_text_of_both_encoders(base, clips):
    for clip in (clips["lumina2"], clips["qwen_image"]):
        plain = TextGenerate.execute(_ctx(base), clip=clip, prompt="x", max_length=6, **GREEDY)
        told = TextGenerate.execute(_ctx(base), clip=clip, prompt="x", max_length=6,
                                    system_prompt="Answer in French.", **GREEDY)
        assert plain != told


def test_image_prompt_on_qwen25_vl(base, clips):
    image = torch.rand(2, 28, 56, 3, generator=torch.Generator().manual_seed(0))
    answer, _ = TextGenerate.execute(_ctx(base), clip=clips["qwen_image"], prompt="what is it",
                                     image=image, max_length=4, **GREEDY)
    assert isinstance(answer, str)


def test_progress_per_token_and_interrupt(base, clips):
    ctx = _ctx(base)
    seen = []
    ctx.listeners.append(lambda e: seen.append((e.value, e.max)) if e.kind == "progress"
                         else None)
    TextGenerate.execute(ctx, clip=clips["lumina2"], prompt="x", max_length=3, **GREEDY)
    assert seen == [(1, 3), (2, 3), (3, 3)]
    ctx.interrupt.set()
    with pytest.raises(Interrupted):
        TextGenerate.execute(ctx, clip=clips["lumina2"], prompt="x", max_length=3, **GREEDY)


@pytest.mark.parametrize(("inputs", "name", "expected"), [
    ({"clip": None}, "clip", "expected a CLIP text encoder, got None"),
    ({"clip": "clip_l"}, "clip", "this CLIP is CLIP-L .*, which cannot generate text"),
    ({"image": torch.rand(1, 8, 8, 3)}, "image", "takes no images"),
    ({"image": torch.rand(8, 8, 3)}, "image", "expected an IMAGE \\[B, H, W, 3\\]"),
    ({"video": torch.rand(2, 8, 8, 3)}, "video", "takes no video"),
    ({"audio": {"waveform": torch.zeros(1, 1, 8), "sample_rate": 8}}, "audio",
     "takes no audio"),
])
def test_bad_inputs_name_the_input(base, clips, inputs, name, expected):
    clip = inputs.pop("clip", clips["lumina2"])
    clip = clips[clip] if isinstance(clip, str) else clip
    with pytest.raises(ValueError, match=expected) as info:
        TextGenerate.execute(_ctx(base), clip=clip, prompt="x", max_length=2, **inputs,
                             **GREEDY)
    assert f"node 7 (TextGenerate) input '{name}'" in str(info.value)


def test_images_need_the_vision_tower(base, clips, tmp_path):
    from comfyless.models import qwen_text as qt

    sd = {k: v for k, v in tiny_generative_sd("qwen_image").items() if not k.startswith("v")}
    clip = qt.build_qwen_text(sd, qt.QWEN_TEXT_ENCODERS["qwen_image"])
    with pytest.raises(ValueError, match="input 'image'.*no vision tower"):
        TextGenerate.execute(_ctx(base), clip=clip, prompt="x", max_length=2,
                             image=torch.rand(1, 28, 28, 3), **GREEDY)


def test_thinking_split_as_comfyui():
    assert split_thinking("<think>\nplan</think>\n\nThe answer. ") == ("The answer.", "plan")
    assert split_thinking("plan</think>answer") == ("answer", "plan")  # open tag in the prompt
    assert split_thinking(" <think>still planning") == ("", "still planning")  # cut short
    assert split_thinking(" just text ") == ("just text", "")


def test_sampling_values_and_comfyuis_fallbacks():
    assert sampling_from_inputs("off", SAMPLED) == qg.Sampling(do_sample=False)
    assert sampling_from_inputs("on", SAMPLED) == qg.Sampling(
        temperature=0.7, top_k=64, top_p=0.95, min_p=0.05, repetition_penalty=1.05, seed=3)
    assert sampling_from_inputs("on", {}) == qg.Sampling(
        temperature=1.0, top_k=50, top_p=1.0, min_p=0.0, repetition_penalty=1.0,
        presence_penalty=0.0, seed=42)


# --- the published template -------------------------------------------------------------------

def test_template_validates_with_only_its_file_missing(tmp_path):
    checked = check_workflow(load_workflow(TEMPLATE, REGISTRY), REGISTRY,
                             BasePaths.resolve(tmp_path))
    assert [(e.code, e.node_id, e.input_name, e.extra.get("received_value"))
            for e in checked.errors] == [
        ("value_not_in_list", "8", "clip_name", "qwen_3_4b.safetensors")]


def test_older_and_greedy_widget_layouts_load():
    """The template's 9-value layout (before presence_penalty, thinking, ...) and a greedy
    node (no sampling widgets) load with the defaults for what they lack."""
    (node,) = [n for n in load_workflow(TEMPLATE, REGISTRY).values()
               if n.class_type == "TextGenerate"]
    assert node.inputs["max_length"] == 2048 and node.inputs["sampling_mode.seed"] == 0
    assert node.inputs["sampling_mode.presence_penalty"] == 0.0
    assert (node.inputs["thinking"], node.inputs["use_default_template"]) == (False, True)
    doc = json.loads(TEMPLATE.read_text())
    for n in doc["nodes"]:
        if n["type"] == "TextGenerate":
            n["widgets_values"] = ["hi", 16, "off", True, False, "off"]
    (node,) = [n for n in load_workflow(json.dumps(doc).encode(), REGISTRY).values()
               if n.class_type == "TextGenerate"]
    assert (node.inputs["sampling_mode"], node.inputs["thinking"],
            node.inputs["use_default_template"], node.inputs["mtp"]) == ("off", True, False,
                                                                         "off")


def test_template_runs_on_a_tiny_file(base, tmp_path, capsys):
    """`comfyless run` of the template with the tiny Qwen3-4B file (CLIPLoader type set to
    lumina2: the template's 'ltxv' is not a CLIP type comfyless loads) and 5 tokens."""
    from comfyless.cli import main as comfyless
    from comfyless.engine.cache import DEFAULT_CACHE

    DEFAULT_CACHE.clear()
    args = ["run", str(TEMPLATE), "--base-dir", str(base), "--json",
            "--set", '8.type="lumina2"', "--set", "7.max_length=5"]
    assert comfyless(args) == 0, capsys.readouterr()
    report = json.loads(capsys.readouterr().out)
    (text,) = report["outputs"]["5"]["text"]
    assert isinstance(text, str) and text
