"""`--fsdp` (comfyless/lora/sharding.py): over 2 CPU processes (gloo), each rank holds half of
the frozen weights while training, the LoRA equals the one a plain single process trains on the
same global batch, and the network comes back whole and as it was for the rest of the run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from comfyless.lora.sharding import ShardingError, check_shardable, shard_units
from comfyless.workflows import find_shipped
from tests.floats import assert_close_scaled
from tests.lora import test_distributed
from tests.lora.test_distributed import (
    TIMEOUT_S,
    _base,
    _config,
    _data,
    _env,
    _files,
    _lora,
    _losses,
    _ranks,
    _run,
    _single,
    _workflow,
    assert_same_training,
    joined,
    run_two_ranks,
    start_ranks,
)

base_template = test_distributed.base_template  # the fixture: tiny SD1.5, images, faults pack

# name: (latent shapes, per-rank options: the single-process run has batch_size * 2)
CASES = {
    "plain": ([(4, 8, 8)], dict(batch_size=1)),
    "checkpointing_depth_1": ([(2, 8, 8)], dict(batch_size=1, gradient_checkpointing=True)),
    "checkpointing_depth_2": ([(2, 8, 8)], dict(batch_size=1, gradient_checkpointing=True,
                                                checkpoint_depth=2)),
    "multi_resolution": ([(1, 8, 8), (1, 8, 16)], dict(batch_size=1)),
    # SGD throughout: Adam's first steps follow the gradient's sign, so rounding in near-zero
    # elements would show (the losses agree either way)
    "grad_accumulation": ([(4, 8, 8)], dict(batch_size=1, grad_accumulation_steps=2)),
}


def _local_bytes(module: nn.Module) -> tuple[int, int]:
    """(bytes of the weights this rank holds, bytes of the whole weights)."""
    from torch.distributed.tensor import DTensor

    held = whole = 0
    for p in module.parameters():
        size = p.element_size()
        whole += p.numel() * size
        held += (p.to_local().numel() if isinstance(p, DTensor) else p.numel()) * size
    return held, whole


def _fsdp_worker(rank: int, port: int, checkpoint: str, out: str) -> None:
    from comfyless.lora.training import train_lora
    from comfyless.models.checkpoint import load_checkpoint

    with joined(rank, port, fsdp=True) as group:
        model = load_checkpoint(checkpoint)[0]
        unet = model.diffusion_model
        before = {k: v.clone() for k, v in unet.state_dict().items()}
        classes = [type(m) for m in unet.modules()]
        report: dict = {"held": []}

        def progress(step: int, total: int, loss: float) -> None:
            report["held"].append(_local_bytes(unet))

        for name, (shapes, per_rank) in CASES.items():
            latents, positive = _data(model, shapes)
            result = train_lora(model, latents, positive, _config(per_rank, 1), group=group,
                                progress=progress)
            report[name] = {"lora": result.lora, "losses": result.losses}
        # the network as it was: same classes, no FSDP state or hooks, the same weights
        after = unet.state_dict()
        report["same_weights"] = after.keys() == before.keys() and all(
            torch.equal(after[k], before[k]) for k in before)
        report["same_classes"] = [type(m) for m in unet.modules()] == classes
        report["fsdp_left"] = sorted({k for m in unet.modules() for k in m.__dict__
                                      if "fsdp" in k or "composable" in k})
        report["hooks_left"] = sum(len(m._forward_pre_hooks) + len(m._forward_hooks)
                                   for m in unet.modules())
        report["all_plain"] = all(type(p) is nn.Parameter for p in unet.parameters())
        if rank == 0:
            torch.save(report, Path(out) / "fsdp.pt")


def test_sharded_training_equals_one_process_and_gives_the_network_back(
        tiny_sd15_checkpoint, tiny_sd15_model, tmp_path, one_torch_thread):
    from comfyless.lora.training import train_lora

    run_two_ranks(_fsdp_worker, str(tiny_sd15_checkpoint), str(tmp_path))
    report = torch.load(tmp_path / "fsdp.pt")
    model = tiny_sd15_model.clone()
    for name, (shapes, per_rank) in CASES.items():
        latents, positive = _data(model, shapes)
        single = train_lora(model, latents, positive, _config(per_rank, 2))
        assert_same_training(f"--fsdp {name}", report[name], single)
    # while training, rank 0 held about half of the frozen weights (padding rounds shards up)
    held, whole = report["held"][0]
    print(f"--fsdp: rank 0 held {held / 2**20:.2f} of {whole / 2**20:.2f} MiB while training")
    assert 0.45 * whole < held < 0.6 * whole
    assert report["same_weights"] and report["same_classes"] and report["all_plain"]
    assert report["fsdp_left"] == [] and report["hooks_left"] == 0


def test_fsdp_run_equals_one_process(base_template, tmp_path, one_torch_thread):
    """The CLI end to end: the shipped training workflow (then sampling with the new LoRA),
    torchrun 2 ranks x batch 1 with --fsdp against one process x batch 2: the same LoRA file
    (within fp tolerance), the same losses, the same files (rank 0's only), the same image."""
    plain, sharded = _base(base_template, tmp_path, "plain"), _base(base_template, tmp_path, "s")
    full = json.loads(find_shipped("lora-train-api").read_text())
    sample = {nid: full[nid] for nid in ("8", "9", "10", "11", "12", "13", "14")}
    sample["11"]["inputs"].update(width=64, height=64)
    sample["12"]["inputs"].update(steps=2)  # with the new LoRA, on the gathered network
    _single(_workflow(tmp_path, batch_size=2, gradient_checkpointing=True, extra=sample), plain)
    wf = _workflow(tmp_path, batch_size=1, gradient_checkpointing=True, extra=sample)
    ran = _run(["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                "-m", "comfyless", "run", str(wf), "--base-dir", str(sharded), "--fsdp"],
               tmp_path)
    assert ran.returncode == 0, ran.stderr[-3000:]
    a, b = _lora(plain), _lora(sharded)
    assert a.keys() == b.keys()
    scale = max(t.abs().max().item() for t in a.values())
    for key in a:
        assert_close_scaled(b[key], a[key], rtol=1e-4, scale=scale, msg=key)
    assert_close_scaled(torch.tensor(_losses(sharded)), torch.tensor(_losses(plain)), rtol=1e-5)
    assert _files(sharded) == _files(plain)
    (image,) = [f for f in _files(plain) if f.endswith(".png") and "loss" not in f]
    pixels = [np.asarray(Image.open(base / "output" / image), dtype=np.int16)
              for base in (plain, sharded)]
    assert np.abs(pixels[0] - pixels[1]).max() <= 1


def test_failure_in_a_forward_with_fsdp_ends_the_run_without_waiting(base_template, tmp_path):
    """Under --fsdp every forward all-gathers weights, so a rank that fails inside one leaves
    the group: its peer's all-gather fails instead of waiting (no torchrun agent here to stop
    it: a hang would be a timeout)."""
    base = _base(base_template, tmp_path, "base")
    wf = _workflow(tmp_path, batch_size=1, light=True,
                   extra={"20": {"class_type": "FailingForward",
                                 "inputs": {"model": ["1", 0], "rank": 1, "at_call": 2}}},
                   rewire={("5", "model"): ["20", 0]})
    zero, one = _ranks(wf, base, tmp_path, extra_args=("--fsdp",))
    assert (zero.returncode, one.returncode) == (3, 3), zero.stderr[-3000:]
    assert "[rank 1] error: node 5 (TrainLoraNode) failed: RuntimeError: injected failure " \
        "on rank 1 in forward 2" in one.stderr
    assert "error: node 5 (TrainLoraNode) failed" in zero.stderr
    assert not (base / "output" / "loras").exists()


def test_ctrl_c_on_one_rank_with_fsdp_stops_both_and_rank_0_keeps_the_lora(base_template,
                                                                           tmp_path):
    """SIGINT to rank 1 while it trains: it stops at its next step boundary and tells rank 0
    in the status round before the next forward; both stop after the same whole steps."""
    base = _base(base_template, tmp_path, "base")
    wf = _workflow(tmp_path, batch_size=1, light=True, steps=2000)
    procs = start_ranks(wf, base, tmp_path, ("--fsdp",))
    try:
        _wait_for(procs[0].stderr, b" 1/2000 ")  # rank 0 shows progress live: training
        procs[1].send_signal(signal.SIGINT)
        outputs = [p.communicate(timeout=TIMEOUT_S) for p in procs]
    finally:
        for p in procs:
            p.kill()
    codes = [p.returncode for p in procs]
    stderr = outputs[0][1].decode(errors="replace")
    assert codes == [130, 130], stderr[-3000:]
    (files,) = [f for f in _files(base) if f.startswith("loras/")] or [None]
    steps = int(files.split("_lora_")[1].split("_")[0])
    assert 1 <= steps < 2000 and f"interrupted after {steps} of 2000 training steps" in stderr


def _wait_for(stream, marker: bytes) -> None:
    """Read `stream` until `marker` appears (or the stream ends: then the test fails)."""
    seen = b""
    while marker not in seen:
        chunk = os.read(stream.fileno(), 4096)
        assert chunk, f"{marker!r} never appeared: {seen[-2000:]!r}"
        seen += chunk


@pytest.mark.parametrize("extra, says", [
    ([], "start the run with: torchrun --nproc-per-node N -m comfyless run WORKFLOW --fsdp"),
    (["--sweep", "5.seed=1..2"], "does not combine with --sweep"),
])
def test_fsdp_outside_torchrun_is_a_usage_error(base_template, tmp_path, extra, says):
    wf = _workflow(tmp_path, batch_size=1)
    ran = _run(["-m", "comfyless", "run", str(wf), "--base-dir", str(tmp_path), "--fsdp",
                *extra], tmp_path)
    assert ran.returncode == 2 and says in ran.stderr, ran.stderr


def test_a_sweep_under_torchrun_is_a_usage_error(base_template, tmp_path):
    """Every rank would run every variant, and ranks other than 0 would write into the base
    dir (a variant's folders are not the rank's scratch folder): refused before any work,
    without joining a process group (so no peer is needed to see it)."""
    wf = _workflow(tmp_path, batch_size=1)
    env = {**_env(tmp_path), "RANK": "1", "LOCAL_RANK": "1", "WORLD_SIZE": "2"}
    ran = subprocess.run([sys.executable, "-m", "comfyless", "run", str(wf), "--base-dir",
                          str(tmp_path), "--sweep", "5.seed=1..2"], capture_output=True,
                         text=True, env=env, timeout=TIMEOUT_S)
    assert ran.returncode == 2, ran.stderr
    assert "under torchrun every rank would run them all" in ran.stderr
    assert not (tmp_path / "output").exists()


def test_a_block_with_weights_of_two_dtypes_is_refused_before_sharding():
    net = nn.Sequential(nn.Linear(4, 4), nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4)))
    net[1][1].to(torch.float16)
    units = shard_units(net, [net[0], net[1]])
    with pytest.raises(ShardingError, match=r"--fsdp: block 1 holds weights of several "
                                            r"dtypes \(float16, float32\)"):
        check_shardable(units, net, set())
    # tensors left out of sharding (the adapters) do not count
    check_shardable(units, net, set(net[1][1].parameters()))


# -- the DiT families: other block layouts (double/single blocks, refiners), RMSNorm diffs ------
def _dit_worker(rank: int, port: int, files: dict, out: str) -> None:
    from comfyless.lora.training import train_lora
    from comfyless.models.checkpoint import load_diffusion_model
    from tests.lora.test_train_families import FAMILIES
    from tests.lora.test_train_families import _data as dit_data

    with joined(rank, port, fsdp=True) as group:
        report = {}
        for name, path in files.items():
            model = load_diffusion_model(path)
            result = train_lora(model, *dit_data(FAMILIES[name][1]),
                                _config(dict(batch_size=1), 1), group=group)
            report[name] = {"lora": result.lora, "losses": result.losses}
        if rank == 0:
            torch.save(report, Path(out) / "dit.pt")


def test_sharded_training_of_the_dit_families_equals_one_process(tmp_path, one_torch_thread):
    from comfyless.lora.training import train_lora
    from comfyless.models.checkpoint import load_diffusion_model
    from tests.lora.test_train_families import FAMILIES
    from tests.lora.test_train_families import _data as dit_data

    files = {name: str(writer(tmp_path / f"{name}.safetensors"))
             for name, (writer, _, _) in FAMILIES.items()}
    run_two_ranks(_dit_worker, files, str(tmp_path))
    report = torch.load(tmp_path / "dit.pt")
    for name, path in files.items():
        single = train_lora(load_diffusion_model(path), *dit_data(FAMILIES[name][1]),
                            _config(dict(batch_size=1), 2))
        assert_same_training(f"--fsdp {name}", report[name], single)
