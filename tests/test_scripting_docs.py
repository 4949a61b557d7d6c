"""docs/scripting.md: its LoRA-training script runs (on the demo's tiny files, in a temporary
base directory, with 4 training steps) and prints what the page says it prints.

Running it needs the node functions (`comfyless.nodes.api`); that test skips while the module
is missing, and only then. The static checks (names, inputs) always run."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from comfyless.nodes import REGISTRY

DOC = Path(__file__).resolve().parents[1] / "docs" / "scripting.md"
STEPS_LINE = "TRAIN_STEPS = 100"


def _example() -> str:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    assert blocks, "docs/scripting.md has no ```python block"
    return blocks[0]


def _node_calls(tree: ast.AST, names: set[str]):
    for call in ast.walk(tree):
        if isinstance(call, ast.Call) and isinstance(call.func, ast.Name) \
                and call.func.id in names:
            yield call.func.id, [k.arg for k in call.keywords if k.arg is not None]


def test_the_example_uses_real_nodes_and_inputs():
    tree = ast.parse(_example())
    imported = {alias.name for stmt in ast.walk(tree) if isinstance(stmt, ast.ImportFrom)
                and stmt.module == "comfyless.nodes.api" for alias in stmt.names}
    assert {"TrainLoraNode", "SaveLoRA", "KSampler", "LoraLoaderModelOnly"} <= imported
    for class_type in imported:
        assert REGISTRY.get(class_type) is not None, class_type
    for class_type, keywords in _node_calls(tree, imported):
        schema = REGISTRY[class_type].schema
        for name in keywords:
            assert name in schema.input_map, f"{class_type} has no input {name!r}"
    assert STEPS_LINE in _example()


def test_the_example_runs(tmp_path, monkeypatch, capsys):
    pytest.importorskip("comfyless.nodes.api")
    monkeypatch.chdir(tmp_path)  # BASE = ./comfyless-data, the default base directory
    monkeypatch.delenv("COMFYLESS_BASE_DIR", raising=False)
    code = _example().replace(STEPS_LINE, "TRAIN_STEPS = 4")
    exec(compile(code, str(DOC), "exec"), {"__name__": "scripting_doc"})
    out, err = capsys.readouterr()
    assert re.search(r"^loss \d+\.\d{3} -> \d+\.\d{3} over 4 steps$", out, re.M), out
    base = tmp_path / "comfyless-data" / "output"
    lora = base / "loras" / "scripted_lora_4_steps_00001_.safetensors"
    assert f"LoRA: {lora} (" in out and lora.is_file()
    assert "sampled (64, 64) images; tensor (2, 64, 64, 3)" in out
    assert (base / "scripted_loss_00001_.png").is_file()
    assert (base / "scripted_00002_.png").is_file()
    assert (base / "with_saved_lora_00001_.png").is_file()
    assert "running node" in err and "TrainLoraNode [" in err  # the progress display
