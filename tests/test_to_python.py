"""`comfyless convert WF --to python` (comfyless/script_writer.py): the script it writes, and
that running the script rebuilds exactly the API JSON the loader gives for the workflow.

The execution tests need the node functions (`comfyless.nodes.api`, `comfyless.api.Workflow`);
they skip while that module is missing, and only then."""

from __future__ import annotations

import json
import runpy
import subprocess
import sys
from pathlib import Path

import comfyui_workflow_templates_json as templates_pkg
import pytest

from comfyless.cli import main
from comfyless.engine.load import load_workflow
from comfyless.engine.workflow import to_api_json
from comfyless.nodes import REGISTRY
from comfyless.script_writer import ScriptWriterError, identifier, workflow_to_python
from comfyless.typesys.schema import Input, Node, NodeRegistry, NodeSchema, Output
from comfyless.typesys.types import INT
from comfyless.workflows import SHIPPED_DIR

from .testnodes import test_registry

SMALL = {
    "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "fox", "images": ["8", 0]}},
    "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
    "3": {"class_type": "KSampler", "inputs": {
        "seed": 42, "steps": 20, "cfg": 8.0, "sampler_name": "euler", "scheduler": "normal",
        "denoise": 1.0, "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0],
        "latent_image": ["5", 0]}},
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd15.safetensors"}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": 'a "red" fox\nin snow',
                                                     "clip": ["4", 1]},
          "_meta": {"title": "Fox prompt"}},
    "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["4", 1]}},
    "5": {"class_type": "EmptyLatentImage",
          "inputs": {"width": 512, "height": 512, "batch_size": 1}},
    "10": {"class_type": "BatchImagesNode",
           "inputs": {"images.image0": ["8", 0], "images.image1": ["8", 0]}},
    "11": {"class_type": "PreviewImage", "inputs": {"images": ["10", 0]}},
}

GOLDEN = '''\
"""Workflow from small.json, written by `comfyless convert --to python`.

`python <this file>` prints its API JSON (the same as `comfyless convert`).
"""

import json

from comfyless.api import Workflow
from comfyless.nodes.api import (
    BatchImagesNode, CLIPTextEncode, CheckpointLoaderSimple, EmptyLatentImage, KSampler,
    PreviewImage, SaveImage, VAEDecode,
)

with Workflow() as wf:
    model, clip, vae = CheckpointLoaderSimple(ckpt_name="sd15.safetensors", _id="4")
    fox_prompt = CLIPTextEncode(
        text="a \\"red\\" fox\\nin snow", clip=clip, _id="6", _title="Fox prompt",
    )
    negative = CLIPTextEncode(text="blurry", clip=clip, _id="7")
    latent = EmptyLatentImage(width=512, height=512, batch_size=1, _id="5")
    latent_2 = KSampler(
        seed=42, steps=20, cfg=8.0, sampler_name="euler", scheduler="normal", denoise=1.0,
        model=model, positive=fox_prompt, negative=negative, latent_image=latent, _id="3",
    )
    image = VAEDecode(samples=latent_2, vae=vae, _id="8")
    SaveImage(filename_prefix="fox", images=image, _id="9")
    image_2 = BatchImagesNode(_id="10", **{"images.image0": image, "images.image1": image})
    PreviewImage(images=image_2, _id="11")


if __name__ == "__main__":
    print(json.dumps(wf.to_api()))
'''

TEMPLATE_DIR = Path(templates_pkg.__file__).parent / "templates"
# A sample of the published templates that validate with only missing model files
# (tests/workflows/test_template_coverage.py): subgraphs, dotted input names, switches,
# text generation, several model families.
TEMPLATE_SAMPLE = [
    "basic_datatype_conversion", "basic_switch_node", "flux_schnell", "image_z_image_turbo",
    "image_qwen_image_edit_2511", "llm_qwen3_text_gen", "sd3.5_simple_example",
    "sdxl_refiner_prompt_example", "templates-1_click_multiple_character_angles-v1.0",
    "utility_image_stitch", "utility_z_image_turbo_2k_upscaler.app",
]


@pytest.fixture
def node_functions():
    """The scripting API the scripts import; skip (only) while it is not there."""
    return pytest.importorskip("comfyless.nodes.api")


def _script(source, registry=REGISTRY, **kw) -> str:
    name = source.name if isinstance(source, Path) else "small.json"
    return workflow_to_python(load_workflow(source, registry), registry, source=name, **kw)


def _rebuilt(script: str, tmp_path: Path) -> dict:
    """Execute the script (not as __main__: it only builds) and return wf.to_api()."""
    path = tmp_path / "script.py"
    path.write_text(script, encoding="utf-8")
    return runpy.run_path(str(path))["wf"].to_api()


def test_golden_script_of_a_small_workflow():
    assert _script(SMALL) == GOLDEN
    compile(GOLDEN, "golden.py", "exec")


def test_golden_script_rebuilds_the_api_json(node_functions, tmp_path):
    assert _rebuilt(GOLDEN, tmp_path) == to_api_json(load_workflow(SMALL, REGISTRY))


@pytest.mark.parametrize("path", sorted(SHIPPED_DIR.glob("*.json")), ids=lambda p: p.stem)
def test_every_shipped_workflow_round_trips(node_functions, path, tmp_path):
    script = _script(path)
    assert _rebuilt(script, tmp_path) == to_api_json(load_workflow(path, REGISTRY))


@pytest.mark.parametrize("name", TEMPLATE_SAMPLE)
def test_published_templates_round_trip(node_functions, name, tmp_path):
    path = TEMPLATE_DIR / f"{name}.json"
    script = _script(path)
    assert _rebuilt(script, tmp_path) == to_api_json(load_workflow(path, REGISTRY))


def test_shipped_workflows_become_valid_python_without_the_node_functions():
    for path in sorted(SHIPPED_DIR.glob("*.json")):
        script = _script(path)
        compile(script, path.name, "exec")
        assert script.count("_id=") == len(load_workflow(path, REGISTRY))


def test_the_script_prints_the_json_when_run(node_functions, tmp_path):
    target = tmp_path / "txt2img.py"
    assert main(["convert", str(SHIPPED_DIR / "txt2img.json"), "--to", "python",
                 "-o", str(target)]) == 0
    done = subprocess.run([sys.executable, str(target)], capture_output=True, text=True,
                          timeout=60, check=True)
    expected = to_api_json(load_workflow(SHIPPED_DIR / "txt2img.json", REGISTRY))
    assert json.loads(done.stdout) == expected


def test_cli_writes_the_script(tmp_path, capsys):
    target = tmp_path / "out" / "lora.py"
    assert main(["convert", str(SHIPPED_DIR / "lora-train.json"), "--to", "python",
                 "-o", str(target)]) == 0
    text = target.read_text(encoding="utf-8")
    assert "lora, loss_map, steps = TrainLoraNode(" in text
    assert "wf.run(" not in text  # nothing heavy unless asked for
    assert main(["convert", str(SHIPPED_DIR / "lora-train.json"), "--to", "python",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["script"] == text


def test_run_code_adds_a_guarded_run():
    text = _script(SMALL, run=True)
    assert 'if sys.argv[1:2] == ["--run"]:' in text
    assert "results = wf.run(*sys.argv[2:3], progress=True)" in text
    assert text.index("wf.run(") > text.index('if __name__ == "__main__":')


class _Dotted(Node):
    schema = NodeSchema("Test.Dotted", inputs=(Input("value", INT, default=1),),
                        outputs=(Output("INT", INT),))


def test_custom_and_non_identifier_class_types_go_through_node():
    registry = test_registry()
    registry.register(_Dotted)
    workflow = {"1": {"class_type": "Test.Dotted", "inputs": {"value": 3}},
                "2": {"class_type": "TestFormat", "inputs": {
                    "value": ["1", 0], "style": "hex", "scale": float("inf"), "upper": False}}}
    text = workflow_to_python(load_workflow(workflow, registry), registry,
                              custom_nodes=["packs/mine"])
    assert 'int_ = node("Test.Dotted", value=3, _id="1")' in text
    assert 'node("TestFormat", value=int_, style="hex", scale=float("inf"), upper=False, ' \
           '_id="2")' in text
    assert 'registry = registry_with_plugins(["packs/mine"]).registry' in text
    assert "with Workflow(registry=registry) as wf:" in text
    assert "from comfyless.nodes.api import node" in text
    compile(text, "custom.py", "exec")


def test_names_are_valid_readable_and_unique():
    assert identifier("CLIP Text Encode (Prompt)") == "clip_text_encode_prompt"
    assert identifier("LoraModelLoader") == "lora_model_loader"
    assert identifier("3 images") == "n3_images"
    assert identifier("class") == "class_"
    assert identifier("list") == "list_"
    assert identifier("???") == "out"


def test_bad_workflows_are_refused_with_the_node_named():
    registry = NodeRegistry(tuple(REGISTRY.get(t) for t in ("EmptyLatentImage", "VAEDecode")))
    with pytest.raises(ScriptWriterError, match="node 1: class_type 'Nope'"):
        workflow_to_python(load_workflow({"1": {"class_type": "Nope", "inputs": {}}}, REGISTRY),
                           REGISTRY)
    cycle = {"1": {"class_type": "VAEDecode", "inputs": {"samples": ["2", 0], "vae": ["2", 0]}},
             "2": {"class_type": "VAEDecode", "inputs": {"samples": ["1", 0], "vae": ["1", 0]}}}
    with pytest.raises(ScriptWriterError, match="nodes 1, 2 form a cycle"):
        workflow_to_python(load_workflow(cycle, registry), registry)


def test_cli_names_the_node_it_cannot_write(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"1": {"class_type": "Nope", "inputs": {}}}))
    assert main(["convert", str(bad), "--to", "python", "-o", str(tmp_path / "x.py")]) == 1
    assert "node 1: class_type 'Nope' is not a known node type" in capsys.readouterr().err
    assert not (tmp_path / "x.py").exists()
