"""Every shipped workflow loads, validates, and runs end to end on tiny checkpoints."""

from __future__ import annotations

import json

import pytest
from PIL import Image
from safetensors import safe_open

from comfyless.cli import main as comfyless
from comfyless.engine.load import load_workflow, to_api_json
from comfyless.engine.paths import BasePaths
from comfyless.engine.validate import check_workflow
from comfyless.nodes import REGISTRY
from comfyless.workflows import SHIPPED_DIR, find_shipped, shipped_workflows

from .conftest import FAST

WORKFLOW_FILES = sorted(SHIPPED_DIR.glob("*.json"))


def test_the_trainer_graph_and_its_variants_are_shipped():
    assert {"lora-train", "lora-train-api", "lora-train-sdxl",
            "lora-train-captioned"} <= set(shipped_workflows())
    assert find_shipped("lora-train") == SHIPPED_DIR / "lora-train.json"
    assert find_shipped("../pyproject") is None


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda p: p.stem)
def test_shipped_workflow_validates(path, shipped_base):
    checked = check_workflow(load_workflow(path, REGISTRY), REGISTRY,
                             BasePaths.resolve(shipped_base))
    assert checked.errors == []
    outputs = {checked.class_types[n] for n in checked.outputs}
    expected = {"SaveLoRA", "LossGraphNode", "SaveImage"} if "lora" in path.stem else {"SaveImage"}
    assert expected <= outputs


@pytest.mark.parametrize("name", ["lora-train", "sd35-lora-train", "flux-lora-train",
                                  "zimage-lora-train", "qwen-image-lora-train"])
def test_api_twin_is_the_conversion_of_the_ui_file(name):
    ui = to_api_json(load_workflow(SHIPPED_DIR / f"{name}.json", REGISTRY))
    api = json.loads((SHIPPED_DIR / f"{name}-api.json").read_text())
    assert ui == api


@pytest.mark.parametrize(("seed", "name"), list(enumerate([
    "lora-train", "lora-train-api", "lora-train-sdxl", "lora-train-captioned",
    "sd35-lora-train", "sd35-lora-train-api", "flux-lora-train", "flux-lora-train-api",
    "qwen-image-lora-train", "qwen-image-lora-train-api", "zimage-lora-train",
    "zimage-lora-train-api"])))
def test_shipped_workflow_runs_end_to_end(seed, name, shipped_base, capsys):
    out = shipped_base / "output"
    before = set(out.rglob("*")) if out.exists() else set()
    # A seed of its own: an unchanged recipe would be a cache hit in this process (as in
    # ComfyUI), and nothing would be saved again.
    args = ["run", name, "--base-dir", str(shipped_base), "--json", "--set", f"5.seed={seed}"]
    for key, value in FAST.items():
        if key.startswith("4.") and name == "lora-train-captioned":
            continue
        args += ["--set", f"{key}={json.dumps(value)}"]
    assert comfyless(args) == 0, capsys.readouterr().err
    new = sorted(p.relative_to(out).as_posix() for p in set(out.rglob("*")) - before
                 if p.is_file())
    loras = [p for p in new if p.startswith("loras/ComfyUI_trained_lora_2_steps_")]
    images = [p for p in new if p.startswith("lora_sample_")]
    assert len(loras) == 1 and len(images) == 1
    assert any(p.startswith("loss_graph_") and p.endswith(".png") for p in new)
    assert any(p.startswith("loss_graph_") and p.endswith(".csv") for p in new)
    with safe_open(str(out / loras[0]), framework="pt") as lora:
        keys = list(lora.keys())
        assert keys and all(k.startswith("diffusion_model.") for k in keys)
        assert lora.metadata()["training.steps"] == "2"
    with Image.open(out / images[0]) as png:
        assert png.size == (64, 64)
        assert json.loads(png.text["prompt"])["5"]["class_type"] == "TrainLoraNode"
        if not name.endswith("-api"):  # a UI file embeds itself, as ComfyUI does
            assert json.loads(png.text["workflow"])["nodes"]
