"""SaveLoRA / SaveLoRANode / LossGraphNode: file names, contents, never overwriting."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file

import comfyless
from comfyless.engine.context import RunContext
from comfyless.engine.execute import run_workflow
from comfyless.lora.weights import LoraWeights
from comfyless.nodes import build_registry
from comfyless.nodes.train_outputs import LossGraphNode, SaveLoRA, SaveLoRANode
from comfyless.typesys import INT, LORA_MODEL, LOSS_MAP, Node, NodeSchema, Output
from comfyless.typesys.errors import InvalidValue


@pytest.fixture
def ctx(tmp_path):
    return RunContext.create(tmp_path).for_node("9", "SaveLoRA")


def _lora():
    up = torch.randn(8, 4, dtype=torch.bfloat16)
    return {
        "diffusion_model.input_blocks.1.1.proj_in.lora_up.weight": up,
        "diffusion_model.input_blocks.1.1.proj_in.lora_down.weight": torch.randn(4, 8),
        "diffusion_model.input_blocks.1.1.proj_in.alpha": torch.tensor(1.0, dtype=torch.bfloat16),
        # a view sharing storage with `up`: safetensors refuses those unless copied
        "diffusion_model.out.0.diff_b": up[0],
    }


def test_save_lora_names_keys_dtypes(ctx, tmp_path):
    lora = _lora()
    result = SaveLoRA.execute(ctx, lora=lora, prefix="loras/ComfyUI_trained_lora", steps=16)
    path = tmp_path / "output" / "loras" / "ComfyUI_trained_lora_16_steps_00001_.safetensors"
    assert path.is_file()
    assert result.values == ()
    assert result.ui["loras"][0]["subfolder"] == "loras"
    loaded = load_file(path)
    assert sorted(loaded) == sorted(lora)
    for key, value in lora.items():
        assert loaded[key].dtype == value.dtype and torch.equal(loaded[key], value)
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left


def test_save_lora_never_overwrites(ctx, tmp_path):
    names = []
    for _ in range(3):
        SaveLoRA.execute(ctx, lora=_lora(), prefix="loras/x", steps=16)
    SaveLoRA.execute(ctx, lora=_lora(), prefix="loras/x", steps=32)
    SaveLoRA.execute(ctx, lora=_lora(), prefix="loras/x")
    names = sorted(p.name for p in (tmp_path / "output" / "loras").iterdir())
    assert names == ["x_00001_.safetensors", "x_16_steps_00001_.safetensors",
                     "x_16_steps_00002_.safetensors", "x_16_steps_00003_.safetensors",
                     "x_32_steps_00001_.safetensors"]


def test_save_lora_metadata(ctx, tmp_path):
    lora = LoraWeights(_lora(), {"training.steps": "16", "training.rank": "4"})
    SaveLoRA.execute(ctx, lora=lora, prefix="m", steps=16)
    with safe_open(tmp_path / "output" / "m_16_steps_00001_.safetensors", "pt") as f:
        meta = f.metadata()
    assert meta == {"training.steps": "16", "training.rank": "4",
                    "comfyless.version": comfyless.__version__}


def test_saved_lora_is_listed_as_a_lora(ctx):
    SaveLoRA.execute(ctx, lora=_lora(), prefix="loras/mine", steps=3)
    assert "mine_3_steps_00001_.safetensors" in ctx.paths.list_files("loras")


def test_legacy_save_lora_node(ctx, tmp_path):
    steps = SaveLoRANode.schema.input("steps")
    assert steps.force_input and steps.optional
    SaveLoRANode.execute(ctx, lora=_lora(), prefix="loras/old", steps=5)
    assert (tmp_path / "output" / "loras" / "old_5_steps_00001_.safetensors").is_file()


@pytest.mark.parametrize("bad, exc", [({}, ValueError), ({"k": 1}, TypeError), ([1], TypeError)])
def test_save_lora_rejects_non_loras(ctx, bad, exc):
    with pytest.raises(exc, match="'lora'"):
        SaveLoRA.execute(ctx, lora=bad, prefix="p")


def test_save_lora_refuses_escape(ctx):
    with pytest.raises(InvalidValue) as err:
        SaveLoRA.execute(ctx, lora=_lora(), prefix="../../etc/x", steps=1)
    assert err.value.input_name == "prefix" and err.value.node_id == "9"


def _graph(ctx, values, prefix="loss_graph"):
    result = LossGraphNode.execute(ctx, loss={"loss": values}, filename_prefix=prefix)
    entry = result.ui["images"][0]
    png = ctx.paths.output_dir / entry["subfolder"] / entry["filename"]
    return entry, png, png.with_suffix(".csv")


def test_loss_graph_png_and_csv(ctx):
    values = [1.0 / (i + 1) + 0.05 * math.sin(i) for i in range(200)]
    entry, png, csv_path = _graph(ctx, values, prefix="plots/run")
    assert entry == {"filename": "run_00001_.png", "subfolder": "plots", "type": "output"}
    img = Image.open(png)
    assert img.mode == "RGB" and img.size == (960, 540)
    pixels = np.asarray(img)
    assert (pixels != 255).any(axis=2).mean() > 0.01  # something was drawn
    red = (pixels[..., 0] > 150) & (pixels[..., 1] < 80) & (pixels[..., 2] < 80)
    assert red.sum() > 200  # the smoothed curve
    rows = list(csv.reader(csv_path.open()))
    assert rows[0] == ["step", "loss", "smoothed"]
    assert [int(r[0]) for r in rows[1:]] == list(range(1, 201))
    assert [float(r[1]) for r in rows[1:]] == values
    smoothed = [float(r[2]) for r in rows[1:]]
    assert smoothed[0] == values[0]
    assert np.std(np.diff(smoothed)) < np.std(np.diff(values))


@pytest.mark.parametrize("values", [[0.5], [0.25] * 7, [], [0.0, 0.0], [1e-9, 2e-9]])
def test_loss_graph_degenerate_values(ctx, values):
    _, png, csv_path = _graph(ctx, values)
    assert Image.open(png).size == (960, 540)
    assert len(csv_path.read_text().splitlines()) == len(values) + 1


def test_loss_graph_nan_values_do_not_break_it(ctx):
    _, png, csv_path = _graph(ctx, [1.0, float("nan"), 0.5, float("inf"), 0.25])
    assert png.is_file()
    assert csv_path.read_text().splitlines()[2].startswith("2,nan,")


def test_loss_graph_counter_and_pairs(ctx):
    first = _graph(ctx, [1.0, 0.5])
    (first[1].parent / "loss_graph_00002_.csv").write_text("someone else's\n")
    second = _graph(ctx, [1.0, 0.5])
    assert second[1].name == "loss_graph_00003_.png"
    assert second[2].name == "loss_graph_00003_.csv"
    assert (first[1].parent / "loss_graph_00002_.csv").read_text() == "someone else's\n"


def test_loss_graph_rejects_wrong_payload(ctx):
    with pytest.raises(TypeError, match="LOSS_MAP"):
        LossGraphNode.execute(ctx, loss={"losses": 3}, filename_prefix="x")


class FakeTrainer(Node):
    """Stands in for TrainLoraNode: (lora, loss_map, steps), as the current layout."""

    schema = NodeSchema("FakeTrainer", outputs=(Output("lora", LORA_MODEL),
                                                Output("loss_map", LOSS_MAP),
                                                Output("steps", INT)))

    @staticmethod
    def execute(ctx):
        return LoraWeights(_lora(), {"training.steps": "7"}), {"loss": [0.3, 0.2, 0.25]}, 7


def test_training_outputs_through_the_engine(tmp_path, builder):
    registry = build_registry()
    registry.register(FakeTrainer)
    trainer = builder.add("FakeTrainer")
    save = builder.add("SaveLoRA", lora=trainer.out(0), prefix="loras/run", steps=trainer.out(2))
    plot = builder.add("LossGraphNode", loss=trainer.out(1), filename_prefix="plots/run")
    result = run_workflow(builder.build(), RunContext.create(tmp_path), registry)
    assert result.ui[save.id]["loras"][0]["filename"] == "run_7_steps_00001_.safetensors"
    assert result.ui[plot.id]["images"][0]["filename"] == "run_00001_.png"
    with safe_open(tmp_path / "output" / "loras" / "run_7_steps_00001_.safetensors", "pt") as f:
        assert f.metadata()["training.steps"] == "7"
    assert (tmp_path / "output" / "plots" / "run_00001_.csv").is_file()


@pytest.mark.parametrize("lo, hi", [(1, 300), (0.0615, 0.4176), (0.45, 0.55), (1, 7), (3, 3)])
def test_loss_graph_ticks_are_round_and_inside(lo, hi):
    from comfyless.nodes.impl.loss_graph import _ticks

    ticks = _ticks(lo, hi)
    assert 1 <= len(ticks) <= 13
    assert all(lo - 1e-9 <= t <= hi + 1e-9 for t in ticks)
    steps = {round(b - a, 9) for a, b in zip(ticks, ticks[1:], strict=False)}
    assert len(steps) <= 1  # evenly spaced
