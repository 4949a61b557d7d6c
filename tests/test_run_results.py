"""Graph.run(progress=True) and RunResults (comfyless/results.py, comfyless/progress.py), and
Graph.load from a shipped name, a path, JSON text or a dict."""

from __future__ import annotations

import io
import json

import pytest
import torch
from PIL import Image

from comfyless.api import Graph
from comfyless.demo import DEMO_OVERRIDES, prepare_base_dir
from comfyless.engine.cache import OutputCache
from comfyless.progress import ProgressDisplay, TextBar
from comfyless.results import RunResults
from comfyless.workflows import SHIPPED_DIR

TRAIN_STEPS = 4


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The shipped lora-train workflow on the demo's tiny files, 4 steps, with a PreviewAny
    and a SaveText of a number: (graph, results, what the progress display printed)."""
    base = tmp_path_factory.mktemp("base")
    prepare_base_dir(base)
    graph = Graph.load("lora-train")
    for key, value in {**DEMO_OVERRIDES, "5.steps": TRAIN_STEPS, "12.steps": 2}.items():
        node_id, name = key.split(".")
        graph.nodes[node_id].inputs[name] = value
    steps = graph.node("PrimitiveInt", value=TRAIN_STEPS, _id="19")
    shown = graph.node("PreviewAny", source=steps, _id="20")
    graph.node("SaveText", text=shown, filename_prefix="steps", _id="21")
    stream = io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("sys.stderr", stream)
        results = graph.run(base, progress=True, cache=OutputCache())
    return graph, results, stream.getvalue()


def test_results_are_still_the_ui_dict(trained):
    _graph, results, _ = trained
    assert isinstance(results, dict) and isinstance(results, RunResults)
    assert set(results) == {"6", "7", "14", "20", "21"}
    assert results["14"]["images"][0]["filename"] == "comfyless_demo_00001_.png"
    assert results["20"] == {"text": [str(TRAIN_STEPS)]}


def test_images_as_tensors_pil_and_files(trained):
    graph, results, _ = trained
    save = results.node(graph.nodes["14"])
    assert save.images.shape == (2, 64, 64, 3) and save.images.dtype == torch.float32
    pil = save.pil()
    assert [im.size for im in pil] == [(64, 64)] * 2 and pil[0].mode == "RGB"
    assert [p.name for p in save.files] == ["comfyless_demo_00001_.png",
                                            "comfyless_demo_00002_.png"]
    on_disk = Image.open(save.files[0]).convert("RGB")
    assert on_disk.tobytes() == pil[0].tobytes()  # the same 8-bit pixels
    assert len(results.images) == 1 and len(results.pil()) == 2


def test_lora_state_dict_and_path(trained):
    graph, results, _ = trained
    lora = results.node("6").lora
    assert lora is results.lora and len(lora) > 0
    assert all(isinstance(v, torch.Tensor) for v in lora.values())
    assert results.lora_path == results.node("6").path
    assert results.lora_path.name == f"comfyless_demo_lora_{TRAIN_STEPS}_steps_00001_.safetensors"
    assert results.lora_path.is_file()
    from safetensors.torch import load_file

    assert set(load_file(results.lora_path)) == set(lora)


def test_loss_values_from_the_trainer_and_the_graph_node(trained):
    graph, results, _ = trained
    loss = results.loss
    assert len(loss) == TRAIN_STEPS and all(isinstance(v, float) for v in loss)
    assert results.node("5").loss == loss  # TrainLoraNode, not an output node
    assert results.node("7").loss == loss  # LossGraphNode's input
    names = sorted(p.suffix for p in results.node("7").files)
    assert names == [".csv", ".png"]


def test_text_values(trained):
    _graph, results, _ = trained
    assert results.node("20").text == [str(TRAIN_STEPS)]
    save_text = results.node("21")
    assert save_text.text == [str(TRAIN_STEPS)]
    assert save_text.path.read_text() == str(TRAIN_STEPS)
    assert results.text == [str(TRAIN_STEPS)] * 2


def test_progress_is_the_cli_display(trained):
    _graph, results, shown = trained
    assert "running node 5 (TrainLoraNode)" in shown
    assert f"5 TrainLoraNode [{'#' * TextBar.WIDTH}] {TRAIN_STEPS}/{TRAIN_STEPS} loss=" in shown
    assert "12 KSampler [" in shown
    assert "SaveLoRA: " in str(results) and f"({TRAIN_STEPS} steps)" in str(results)


def test_unknown_node_is_named(trained):
    _graph, results, _ = trained
    with pytest.raises(KeyError, match="node 99 did not run"):
        results.node("99")


class _Event:
    def __init__(self, kind, value=None, max=None, info=None):
        self.kind, self.node_id, self.class_type = kind, "5", "TrainLoraNode"
        self.value, self.max, self.info = value, max, info or {}


class _Tty(io.StringIO):
    def isatty(self):
        return True


def _show(display, steps=20):
    display(_Event("started"))
    for step in range(1, steps + 1):
        display(_Event("progress", step, steps, {"loss": 0.5}))
    display(_Event("finished"))


def test_text_bar_in_a_log_prints_every_tenth():
    stream = io.StringIO()
    _show(ProgressDisplay(stream=stream))
    bars = [line for line in stream.getvalue().splitlines() if "[" in line]
    assert len(bars) == 11 and bars[-1].endswith("20/20 loss=0.5")  # the first, every 10 %


def test_text_bar_in_jupyter_redraws_one_line(monkeypatch):
    monkeypatch.setattr("comfyless.progress.in_jupyter", lambda: True)
    stream = _Tty()
    _show(ProgressDisplay(stream=stream))
    text = stream.getvalue()
    assert text.count("\r") == 20 and "tqdm" not in text
    assert text.splitlines()[-1].endswith("20/20 loss=0.5")


def test_tqdm_in_a_terminal():
    stream = _Tty()
    _show(ProgressDisplay(stream=stream))
    assert "20/20" in stream.getvalue() and "it/s" in stream.getvalue()


def test_load_by_name_path_json_text_and_dict():
    by_name = Graph.load("txt2img").to_api()
    assert Graph.load(SHIPPED_DIR / "txt2img.json").to_api() == by_name
    assert Graph.load(str(SHIPPED_DIR / "txt2img.json")).to_api() == by_name
    assert Graph.load("txt2img.json").to_api() == by_name
    api_text = json.dumps(by_name)
    assert Graph.load(api_text).to_api() == by_name
    assert Graph.load(json.loads(api_text)).to_api() == by_name
    with pytest.raises(FileNotFoundError, match="no shipped workflow of that name.*txt2img"):
        Graph.load("txt2imgg")
