"""A stopped training run keeps what it trained, and `existing_lora` continues it.

Interrupt TrainLoraNode after k steps (the interrupt flag, as Ctrl-C/SIGTERM set it; and real
signals to a `python -m comfyless run` subprocess), find the LoRA file in SaveLoRA's naming
under output/loras/, resume from it for the remaining steps: the steps output, the file name
and the metadata `training.steps` add up. `--save-every N` writes such files every N steps and
keeps the newest two of the run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from comfyless import cli
from comfyless.engine.cache import OutputCache
from comfyless.engine.context import RunContext
from comfyless.engine.execute import run_workflow
from comfyless.engine.load import load_workflow
from comfyless.engine.overrides import set_input
from comfyless.engine.workflow import to_api_json
from comfyless.lora.training import TrainConfig, TrainingStopped, train_lora
from comfyless.nodes import REGISTRY
from comfyless.nodes.impl.train import lora_prefix
from comfyless.typesys.errors import Interrupted
from comfyless.workflows import find_shipped
from tests.workflows.conftest import FAST

ROOT = Path(__file__).resolve().parents[2]
TRAIN, SAVE = "5", "6"  # node ids in the shipped lora-train-api workflow


@pytest.fixture
def base(tmp_path, tiny_sd15_checkpoint) -> Path:
    """A base dir of its own (output/loras/ starts empty) for the shipped training workflow."""
    from comfyless.demo import write_demo_dataset
    from tests.conftest import SHIPPED_CHECKPOINT_NAMES

    checkpoints = tmp_path / "models" / "checkpoints"
    checkpoints.mkdir(parents=True)
    shutil.copyfile(tiny_sd15_checkpoint, checkpoints / SHIPPED_CHECKPOINT_NAMES["sd15"])
    write_demo_dataset(tmp_path / "input" / "training_images", count=2, size=64)
    return tmp_path


def _workflow(**sets):
    """lora-train-api made fast, with `sets` ({"5.steps": 7, ...}) applied."""
    wf = load_workflow(find_shipped("lora-train-api"), REGISTRY)
    for key, value in {**FAST, "5.learning_rate": 0.01, **sets}.items():
        node_id, name = key.split(".")
        set_input(wf, node_id, name, value, source=key)
    return wf


def _run(base: Path, wf, *, stop_at: int | None = None, save_every: int | None = None,
         events: list | None = None):
    """Run up to SaveLoRA; with `stop_at`, set the interrupt flag at that training step."""
    ctx = RunContext.create(base, save_every=save_every)
    ctx.prompt = to_api_json(wf)  # as `comfyless run` sets it: where SaveLoRA's prefix is read

    def listen(event):
        if events is not None:
            events.append(event)
        if event.kind == "progress" and event.node_id == TRAIN and event.value == stop_at:
            ctx.interrupt.set()  # what the CLI's Ctrl-C / SIGTERM handler does

    ctx.listeners.append(listen)
    return run_workflow(wf, ctx, REGISTRY, cache=OutputCache(), targets=[SAVE])


def _loras(base: Path) -> list[str]:
    folder = base / "output" / "loras"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def _steps_meta(path: Path) -> str:
    with safe_open(path, "pt") as f:
        return f.metadata()["training.steps"]


def test_interrupt_keeps_the_lora_and_resume_adds_up(base):
    wf = _workflow(**{"5.steps": 7, "5.seed": 21, "6.prefix": "loras/style/mine"})
    with pytest.raises(Interrupted) as info:
        _run(base, wf, stop_at=3)
    name = "style/mine_3_steps_00001_.safetensors"
    assert _loras(base) == ["style"] and info.value.node_id == TRAIN
    extra = info.value.extra
    assert extra == {"saved_lora": f"loras/{name}", "existing_lora": name, "steps": 3,
                     "steps_remaining": 4}
    assert f"--set 5.existing_lora={name} --set 5.steps=4" in str(info.value)
    kept = base / "output" / "loras" / name
    assert _steps_meta(kept) == "3"

    # The file holds the state after step 3: what an uninterrupted 3-step run returns.
    three = _run(base, _workflow(**{"5.steps": 3, "5.seed": 21, "6.prefix": "loras/three"}))
    assert three.outputs[TRAIN][2] == [3]
    reference = load_file(base / "output" / "loras" / "three_3_steps_00001_.safetensors")
    interrupted = load_file(kept)
    assert sorted(interrupted) == sorted(reference)
    for key, value in reference.items():
        torch.testing.assert_close(interrupted[key], value, rtol=1e-5, atol=1e-7)

    # Resume for the remaining 4 steps: 3 + 4 = 7 in the steps output, the name, the metadata.
    resumed = _run(base, _workflow(**{"5.steps": 4, "5.seed": 21, "5.existing_lora": name,
                                      "6.prefix": "loras/style/mine"}))
    assert resumed.outputs[TRAIN][2] == [7]
    final = base / "output" / "loras" / "style" / "mine_7_steps_00001_.safetensors"
    assert _steps_meta(final) == "7"
    trained_on = load_file(final)  # resumed from the kept weights, and trained on
    assert any(not torch.allclose(trained_on[k], v) for k, v in interrupted.items())


def test_save_every_writes_and_rotates_only_this_runs_files(base):
    folder = base / "output" / "loras"
    folder.mkdir(parents=True)
    (folder / "run_2_steps_00001_.safetensors").write_bytes(b"someone else's file")
    events: list = []
    result = _run(base, _workflow(**{"5.steps": 7, "5.seed": 22, "6.prefix": "loras/run"}),
                  save_every=2, events=events)
    saved = [e.info for e in events if e.kind == "message" and "saved" in e.info]
    # every 2 steps except the last; the step-2 file of this run got counter 2 (never overwrite)
    assert [s["steps"] for s in saved] == [2, 4, 6]
    assert saved[0]["saved"] == "output/loras/run_2_steps_00002_.safetensors"
    # kept: the newest 2 snapshots, the final SaveLoRA file, and the file this run did not write
    assert _loras(base) == ["run_2_steps_00001_.safetensors", "run_4_steps_00001_.safetensors",
                            "run_6_steps_00001_.safetensors", "run_7_steps_00001_.safetensors"]
    assert (folder / "run_2_steps_00001_.safetensors").read_bytes() == b"someone else's file"
    for steps in (4, 6, 7):
        assert _steps_meta(folder / f"run_{steps}_steps_00001_.safetensors") == str(steps)
    assert result.outputs[TRAIN][2] == [7]


def test_interrupt_on_a_snapshot_step_reuses_that_file(base):
    with pytest.raises(Interrupted) as info:
        _run(base, _workflow(**{"5.steps": 9, "5.seed": 23}), save_every=2, stop_at=4)
    # no SaveLoRA-prefix change: the shipped prefix; no duplicate of the step-4 snapshot
    assert _loras(base) == ["ComfyUI_trained_lora_2_steps_00001_.safetensors",
                            "ComfyUI_trained_lora_4_steps_00001_.safetensors"]
    assert info.value.extra["existing_lora"] == "ComfyUI_trained_lora_4_steps_00001_.safetensors"


def test_resumed_run_interrupted_counts_prior_steps(base):
    with pytest.raises(Interrupted):
        _run(base, _workflow(**{"5.steps": 5, "5.seed": 24, "6.prefix": "loras/r"}), stop_at=2)
    with pytest.raises(Interrupted) as info:
        _run(base, _workflow(**{"5.steps": 3, "5.seed": 24, "6.prefix": "loras/r",
                                "5.existing_lora": "r_2_steps_00001_.safetensors"}), stop_at=1)
    assert info.value.extra["steps"] == 3 and info.value.extra["steps_remaining"] == 2
    assert _steps_meta(base / "output" / "loras" / "r_3_steps_00001_.safetensors") == "3"


def test_loop_hands_back_whole_steps_only(tiny_sd15_model):
    """With gradient accumulation an interrupt mid-accumulation keeps the last whole step."""
    g = torch.Generator().manual_seed(0)
    lat = [{"samples": torch.randn(2, 4, 8, 8, generator=g)}]
    pos = [[[torch.randn(1, 8, tiny_sd15_model.config.context_dim, generator=g), {}]] * 2]
    cfg = TrainConfig(steps=4, grad_accumulation_steps=2, training_dtype="fp32",
                      lora_dtype="fp32", gradient_checkpointing=False, rank=2)
    snapshots = []
    names = [n for n, _ in tiny_sd15_model.diffusion_model.named_parameters()]

    def progress(i, total, loss):
        if i == 5:
            raise Interrupted("stop")

    with pytest.raises(TrainingStopped) as info:
        train_lora(tiny_sd15_model, lat, pos, cfg, progress=progress, snapshot_every=1,
                   on_snapshot=snapshots.append)
    partial = info.value.partial
    assert isinstance(info.value.__cause__, Interrupted)
    assert partial.steps == 2 and len(partial.losses) == 5 and info.value.total_steps == 4
    assert [s.steps for s in snapshots] == [1, 2]
    for key, value in snapshots[-1].lora.items():  # iteration 5 did not step: same as step 2
        torch.testing.assert_close(partial.lora[key], value, rtol=0, atol=0)
    # the shared model is left as it was (adapters removed)
    assert [n for n, _ in tiny_sd15_model.diffusion_model.named_parameters()] == names


@pytest.mark.parametrize(("prompt", "expected"), [
    (None, "loras/ComfyUI_trained_lora"),
    ({"6": {"class_type": "SaveLoRA", "inputs": {"lora": ["5", 0], "prefix": "loras/a/b"}}},
     "loras/a/b"),
    ({"6": {"class_type": "SaveLoRANode", "inputs": {"lora": ["5", 1], "prefix": "x/mine"}}},
     "loras/mine"),  # outside loras/: moved there, so existing_lora lists it
    ({"6": {"class_type": "SaveLoRA", "inputs": {"lora": ["4", 0], "prefix": "loras/other"}}},
     "loras/ComfyUI_trained_lora"),  # fed by another trainer
    ({"6": {"class_type": "SaveLoRA", "inputs": {"lora": ["5", 0], "prefix": ["9", 0]}}},
     "loras/ComfyUI_trained_lora"),  # a linked prefix is not known before it runs
    ({"6": {"class_type": "SaveLoRA", "inputs": {"lora": ["5", 0], "prefix": "../../x"}}},
     "loras/ComfyUI_trained_lora"),
])
def test_prefix_of_the_savelora_fed_by_this_trainer(prompt, expected):
    assert lora_prefix(prompt, "5") == expected


def test_cli_restores_both_signal_handlers(base, capsys):
    def mine(signum, frame):
        pass

    before = {s: signal.signal(s, mine) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        args = ["run", "lora-train-api", "--base-dir", str(base), "--json", "--set", "5.seed=25",
                "--save-every", "1", "--set", "5.steps=2"]
        for key, value in FAST.items():
            args += ["--set", f"{key}={json.dumps(value)}"]
        assert cli.main(args) == 0
        out = json.loads(capsys.readouterr().out)
        assert out["saved"] == ["output/loras/ComfyUI_trained_lora_1_steps_00001_.safetensors"]
        assert signal.getsignal(signal.SIGINT) is mine
        assert signal.getsignal(signal.SIGTERM) is mine
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)


def test_save_every_must_be_positive(capsys):
    assert cli.main(["run", "lora-train-api", "--save-every", "0"]) == cli.EXIT_USAGE
    assert "--save-every" in capsys.readouterr().err


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_to_a_real_run_keeps_the_lora_and_exits_130(base, sig):
    """`python -m comfyless run` in a process of its own; the signal comes once the log shows
    step 3 was saved (--save-every 1 prints one line per step)."""
    args = [sys.executable, "-m", "comfyless", "run", "lora-train-api", "--base-dir", str(base),
            "--json", "--save-every", "1", "--set", "5.steps=400", "--set", "5.seed=26"]
    for key, value in FAST.items():
        if key != "5.steps":
            args += ["--set", f"{key}={json.dumps(value)}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline, seen = time.monotonic() + 120, []
        for line in proc.stderr:
            seen.append(line)
            if re.search(r"saved output/loras/\S+_3_steps_", line):
                proc.send_signal(sig)
                break
            assert time.monotonic() < deadline, "no training step 3 within 120 s"
        out, rest = proc.communicate(timeout=120)
        err = "".join(seen) + rest
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    error = json.loads(out)["error"]
    assert error["type"] == "execution_interrupted"
    extra = error["extra_info"]
    steps = extra["steps"]
    assert 3 <= steps < 400 and extra["steps_remaining"] == 400 - steps
    name = extra["existing_lora"]
    assert name == f"ComfyUI_trained_lora_{steps}_steps_00001_.safetensors"
    assert f"saved output/loras/{name}" in err
    path = base / "output" / "loras" / name
    assert _steps_meta(path) == str(steps)
    assert len(_loras(base)) == 2  # --save-every kept the newest two (the last is this one)

    # continue it for the remaining steps (few: make the remainder short with a smaller total)
    resumed = _run(base, _workflow(**{"5.steps": 2, "5.seed": 26, "5.existing_lora": name}))
    assert resumed.outputs[TRAIN][2] == [steps + 2]
    final = f"ComfyUI_trained_lora_{steps + 2}_steps_00001_.safetensors"
    assert _steps_meta(base / "output" / "loras" / final) == str(steps + 2)
