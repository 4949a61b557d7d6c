"""`torchrun ... -m comfyless run`: training over 2 CPU processes (gloo) equals one process
with the same global batch; only rank 0 writes files; a failure on one rank stops all ranks
with that rank's error, without a hang (docs/distributed-training.md).

Each case launches `python -m torch.distributed.run --standalone --nproc-per-node 2` on the
shipped lora-train workflow (sampling nodes dropped) over a tiny SD1.5 checkpoint; children
run with one torch thread.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from comfyless.workflows import find_shipped
from tests.floats import assert_close_scaled

TRAIN_NODES = ("1", "2", "3", "4", "5", "6", "7")  # loader .. TrainLoraNode, SaveLoRA, LossGraph
TIMEOUT_S = 90  # far above a run's few seconds: reaching it means a hang

# A custom node pack: MODEL / LORA_MODEL pass-throughs that raise on one rank only.
FAULTS_PACK = '''
import os

import torch


class FailingForward:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL",), "rank": ("INT", {"default": 1}),
                             "at_call": ("INT", {"default": 2})},
                "optional": {"interrupt": ("BOOLEAN", {"default": False}),
                             "in_backward": ("BOOLEAN", {"default": False})}}

    RETURN_TYPES = ("MODEL",)
    FUNCTION = "wrap"

    def wrap(self, model, rank, at_call, interrupt=False, in_backward=False):
        if os.environ.get("RANK") != str(rank):
            return (model,)
        patched, calls, inner = model.clone(), [0], model.apply_model

        def apply_model(*args, **kwargs):
            calls[0] += 1
            if calls[0] == at_call and interrupt:  # as Ctrl-C on that rank only
                from comfyless.typesys.errors import Interrupted
                raise Interrupted("interrupted by the user")
            if calls[0] == at_call and in_backward:  # while the peers wait in all-reduce
                return FailingBackward.apply(inner(*args, **kwargs))
            if calls[0] == at_call:
                raise RuntimeError(f"injected failure on rank {rank} in forward {at_call}")
            return inner(*args, **kwargs)

        patched.apply_model = apply_model
        return (patched,)


class FailingBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        raise RuntimeError("injected failure in backward")


class FailingAfterTraining:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"lora": ("LORA_MODEL",), "rank": ("INT", {"default": 1})}}

    RETURN_TYPES = ("LORA_MODEL",)
    FUNCTION = "check"

    def check(self, lora, rank):
        if os.environ.get("RANK") == str(rank):
            raise ValueError(f"injected failure on rank {rank} after training")
        return (lora,)


NODE_CLASS_MAPPINGS = {"FailingForward": FailingForward,
                       "FailingAfterTraining": FailingAfterTraining}
'''


@pytest.fixture(scope="module")
def base_template(tmp_path_factory, tiny_sd15_checkpoint) -> Path:
    """Tiny SD1.5 under the shipped name, 4 training images, the faults pack."""
    from comfyless.demo import write_demo_dataset
    from tests.conftest import SHIPPED_CHECKPOINT_NAMES

    base = tmp_path_factory.mktemp("ddp_base")
    checkpoints = base / "models" / "checkpoints"
    checkpoints.mkdir(parents=True)
    shutil.copyfile(tiny_sd15_checkpoint, checkpoints / SHIPPED_CHECKPOINT_NAMES["sd15"])
    write_demo_dataset(base / "input" / "training_images", count=4, size=64)
    (base / "custom_nodes").mkdir()
    (base / "custom_nodes" / "rank_faults.py").write_text(FAULTS_PACK)
    return base


def _base(template: Path, tmp_path: Path, name: str) -> Path:
    target = tmp_path / name
    shutil.copytree(template, target)
    return target


def _workflow(tmp_path: Path, *, batch_size: int, extra: dict | None = None,
              rewire: dict | None = None, light: bool = False, **train) -> Path:
    """The shipped lora-train API workflow without its sampling nodes, fast fp32 settings.
    `light`: empty latents instead of encoded images, no loss graph (failure cases)."""
    full = json.loads(find_shipped("lora-train-api").read_text())
    wf = {nid: full[nid] for nid in TRAIN_NODES}
    if light:
        for nid in ("2", "3", "7"):
            del wf[nid]
        wf["30"] = {"class_type": "EmptyLatentImage",
                    "inputs": {"width": 64, "height": 64, "batch_size": 4}}
        wf["5"]["inputs"]["latents"] = ["30", 0]
    wf["5"]["inputs"].update({**dict(steps=3, training_dtype="fp32", lora_dtype="fp32",
                                      gradient_checkpointing=False, learning_rate=0.01,
                                      optimizer="SGD", batch_size=batch_size), **train})
    wf.update(extra or {})
    for (nid, name), link in (rewire or {}).items():
        wf[nid]["inputs"][name] = link
    path = tmp_path / f"wf_{len(list(tmp_path.glob('wf_*')))}.json"
    path.write_text(json.dumps(wf))
    return path


def _env(tmp_path: Path) -> dict[str, str]:
    scratch_parent = tmp_path / "tmp"  # where ranks' scratch folders appear (and must go)
    scratch_parent.mkdir(exist_ok=True)
    return {**os.environ, "OMP_NUM_THREADS": "1", "COMFYLESS_THREADS": "1",
            "TMPDIR": str(scratch_parent), "COMFYLESS_DEVICE": "cpu"}


def _run(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True,
                          env=_env(tmp_path), timeout=TIMEOUT_S)


def _single(wf: Path, base: Path) -> None:
    """The workflow in this process, as `comfyless run` runs it (no torchrun variables)."""
    from comfyless.engine.context import RunContext
    from comfyless.engine.execute import run_workflow
    from comfyless.engine.load import load_workflow
    from comfyless.engine.workflow import to_api_json
    from comfyless.nodes import REGISTRY

    workflow = load_workflow(wf, REGISTRY)
    ctx = RunContext.create(base)
    ctx.prompt = to_api_json(workflow)
    run_workflow(workflow, ctx, REGISTRY)


def _torchrun(wf: Path, base: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    return _run(["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                 "-m", "comfyless", "run", str(wf), "--base-dir", str(base)], tmp_path)


@dataclass
class _Rank:
    returncode: int
    stdout: str
    stderr: str


def _ranks(wf: Path, base: Path, tmp_path: Path, extra_args: tuple[str, ...] = ()
           ) -> list[_Rank]:
    """Two `comfyless run` processes with the variables torchrun would set, but no torchrun
    agent: nothing stops a rank that waits for a dead peer, so a hang shows as a timeout."""
    procs = start_ranks(wf, base, tmp_path, extra_args, text=True)
    try:
        outputs = [p.communicate(timeout=TIMEOUT_S) for p in procs]
    finally:
        for p in procs:
            p.kill()
    return [_Rank(p.returncode, out, err) for p, (out, err) in zip(procs, outputs, strict=True)]


def start_ranks(wf: Path, base: Path, tmp_path: Path, extra_args: tuple[str, ...] = (),
                **popen: Any) -> list[subprocess.Popen]:
    """Two `comfyless run` processes with the variables torchrun would set (pipes for
    stdout and stderr)."""
    port = _free_port()
    return [subprocess.Popen(
        [sys.executable, "-m", "comfyless", "run", str(wf), "--base-dir", str(base),
         *extra_args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**_env(tmp_path), "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": "2",
             "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}, **popen)
        for rank in range(2)]


def _files(base: Path) -> list[str]:
    out = base / "output"
    return sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())


def _lora(base: Path) -> dict:
    (path,) = (base / "output" / "loras").glob("*.safetensors")
    return load_file(str(path))


def _losses(base: Path) -> list[float]:
    (csv,) = (base / "output").glob("loss_graph_*.csv")
    return [float(line.split(",")[1]) for line in csv.read_text().splitlines()[1:]]


def test_two_ranks_batch_1_equal_one_process_batch_2(base_template, tmp_path, one_torch_thread):
    one, two = _base(base_template, tmp_path, "one"), _base(base_template, tmp_path, "two")
    _single(_workflow(tmp_path, batch_size=2), one)
    ranks = _torchrun(_workflow(tmp_path, batch_size=1), two, tmp_path)
    assert ranks.returncode == 0, ranks.stderr[-3000:]

    a, b = _lora(one), _lora(two)
    assert a.keys() == b.keys() and len(a) > 100
    scale = max(t.abs().max().item() for t in a.values())  # some diffs stay ~0 (rounding)
    for key in a:
        assert_close_scaled(b[key], a[key], rtol=1e-4, scale=scale, msg=key)
    worst = max((a[k] - b[k]).abs().max().item() for k in a)
    print(f"LoRA after 3 SGD steps, 2 ranks x batch 1 vs 1 process x batch 2: "
          f"max abs diff {worst:.3g}")
    assert_close_scaled(torch.tensor(_losses(two)), torch.tensor(_losses(one)), rtol=1e-5)
    # only rank 0 wrote: the same files as the single run, no second copy of any
    assert _files(two) == _files(one)
    assert "6 loras: output/loras/ComfyUI_trained_lora_3_steps_00001_.safetensors" in \
        ranks.stdout.splitlines()  # rank 0's result, printed once
    assert list((tmp_path / "tmp").glob("comfyless-rank*")) == []  # scratch removed


def test_failure_in_training_on_one_rank_stops_both(base_template, tmp_path):
    base = _base(base_template, tmp_path, "base")
    wf = _workflow(tmp_path, batch_size=1, light=True,
                   extra={"20": {"class_type": "FailingForward",
                                 "inputs": {"model": ["1", 0], "rank": 1, "at_call": 2}}},
                   rewire={("5", "model"): ["20", 0]})
    zero, one = _ranks(wf, base, tmp_path)  # a hang would raise TimeoutExpired
    assert (zero.returncode, one.returncode) == (3, 3)  # a node failed, on every rank
    # rank 0 reports rank 1's error; rank 1 prints only its own; nothing was saved
    assert "error: node 5 (TrainLoraNode) failed: RankFailed: rank 1 failed: injected " \
        "failure on rank 1 in forward 2" in zero.stderr, zero.stderr[-3000:]
    assert one.stderr.strip().endswith("[rank 1] error: node 5 (TrainLoraNode) failed: "
                                       "RuntimeError: injected failure on rank 1 in forward 2")
    assert zero.stdout == one.stdout == ""
    assert not (base / "output" / "loras").exists()


def test_failure_after_training_on_one_rank_fails_the_run(base_template, tmp_path):
    base = _base(base_template, tmp_path, "base")
    wf = _workflow(tmp_path, batch_size=1, light=True,
                   extra={"21": {"class_type": "FailingAfterTraining",
                                 "inputs": {"lora": ["5", 0], "rank": 1}}},
                   rewire={("6", "lora"): ["21", 0]})
    zero, one = _ranks(wf, base, tmp_path)
    # rank 0 finished its own run, yet prints rank 1's error (not a success) and its code
    assert (zero.returncode, one.returncode) == (3, 3), zero.stderr[-3000:]
    assert "error: rank 1: node 21 (FailingAfterTraining) failed: ValueError: injected " \
        "failure on rank 1 after training" in zero.stderr
    assert zero.stdout == ""


# -- the loop itself over 2 spawned gloo processes: every batching mode ------------------------
TOKENS = 8


def _data(model, shapes: list[tuple[int, int, int]], seed: int = 0):
    """(latents, positive): one LATENT per (n, h, w) entry, one caption per sample."""
    g = torch.Generator().manual_seed(seed)
    dim = model.config.context_dim
    latents = [{"samples": torch.randn(n, 4, h, w, generator=g) * 4} for n, h, w in shapes]
    total = sum(n for n, _, _ in shapes)
    return latents, [[[torch.randn(1, TOKENS, dim, generator=g), {}] for _ in range(total)]]


# name: (latent shapes, per-rank options; the single-process run has batch_size * 2)
CASES = {
    "grad_accumulation": ([(4, 8, 8)], dict(batch_size=1, grad_accumulation_steps=2)),
    "multi_resolution": ([(1, 8, 8), (1, 8, 16), (1, 16, 8), (1, 16, 16)], dict(batch_size=1)),
    "uneven_share": ([(3, 8, 8)], dict(batch_size=2)),  # 3 samples: ranks take 1 and 2
    "bucket": ([(3, 8, 8), (2, 16, 8)], dict(batch_size=1, bucket_mode=True)),
    "fewer_samples_than_ranks": ([(1, 8, 8)], dict(batch_size=1)),  # rank 1: weight 0
    "checkpointing": ([(2, 8, 8)], dict(batch_size=1, gradient_checkpointing=True)),
    # the accelerator's path on the CPU: losses summed by an all-reduce, read later
    "deferred_reads": ([(4, 8, 8)], dict(batch_size=1, grad_accumulation_steps=2)),
}


def _config(per_rank: dict, world: int):
    from comfyless.lora.training import TrainConfig

    options = {**dict(training_dtype="fp32", lora_dtype="fp32", steps=2, optimizer="SGD",
                      learning_rate=0.01, gradient_checkpointing=False), **per_rank}
    options["batch_size"] = per_rank["batch_size"] * world
    return TrainConfig(**options)


def run_two_ranks(worker: Callable[..., None], *args: Any) -> None:
    """`worker(rank, port, *args)` in 2 spawned processes; raises if a rank failed."""
    import torch.multiprocessing as mp

    ctx = mp.start_processes(worker, args=(_free_port(), *args), nprocs=2, join=False,
                             start_method="spawn")
    while not ctx.join(timeout=TIMEOUT_S):  # raises if a rank failed
        pass


@contextmanager
def joined(rank: int, port: int, fsdp: bool = False) -> Iterator[Any]:
    """This spawned process as rank `rank` of 2 (gloo, one torch thread); the group is left
    on exit."""
    os.environ.update(RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    from comfyless import distributed

    group = distributed.init_from_env("cpu", fsdp=fsdp)
    try:
        yield group
    finally:
        distributed.shutdown()


def _rank_worker(rank: int, port: int, checkpoint: str, out: str) -> None:
    from comfyless.lora import training
    from comfyless.lora.training import train_lora
    from comfyless.models.checkpoint import load_checkpoint

    with joined(rank, port) as group:
        model = load_checkpoint(checkpoint)[0]
        for name, (shapes, per_rank) in CASES.items():
            latents, positive = _data(model, shapes)
            cfg = _config(per_rank, 1)  # batch_size per rank
            if name == "deferred_reads":
                training.defers_reads = lambda device: True
            result = train_lora(model, latents, positive, cfg, group=group)
            if rank == 0:
                torch.save({"lora": result.lora, "losses": result.losses},
                           Path(out) / f"{name}.pt")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_every_batching_mode_equals_one_process(tiny_sd15_checkpoint, tiny_sd15_model,
                                                tmp_path, one_torch_thread):
    from comfyless.lora.training import train_lora

    run_two_ranks(_rank_worker, str(tiny_sd15_checkpoint), str(tmp_path))
    model = tiny_sd15_model.clone()
    for name, (shapes, per_rank) in CASES.items():
        latents, positive = _data(model, shapes)
        single = train_lora(model, latents, positive, _config(per_rank, 2))
        assert_same_training(name, torch.load(tmp_path / f"{name}.pt"), single)


def assert_same_training(name: str, ranks: dict, single) -> None:
    """The LoRA and losses the ranks trained ({"lora", "losses"}) equal a single process's."""
    scale = max(t.abs().max().item() for t in single.lora.values())
    worst = max((ranks["lora"][k] - t).abs().max().item() for k, t in single.lora.items())
    print(f"{name}: max abs diff {worst:.3g}")
    for key, t in single.lora.items():
        assert_close_scaled(ranks["lora"][key], t, rtol=1e-4, scale=scale, msg=f"{name} {key}")
    assert_close_scaled(torch.tensor(ranks["losses"]), torch.tensor(single.losses),
                        rtol=1e-5, msg=name)


def test_interrupt_on_one_rank_stops_both_and_rank_0_keeps_the_lora(base_template, tmp_path):
    base = _base(base_template, tmp_path, "base")
    wf = _workflow(tmp_path, batch_size=1, light=True,
                   extra={"20": {"class_type": "FailingForward",
                                 "inputs": {"model": ["1", 0], "rank": 1, "at_call": 2,
                                            "interrupt": True}}},
                   rewire={("5", "model"): ["20", 0]})
    zero, one = _ranks(wf, base, tmp_path)
    assert (zero.returncode, one.returncode) == (130, 130), zero.stderr[-3000:]
    # every rank stopped after the same whole step; rank 0 wrote what was trained (1 step)
    assert "interrupted after 1 of 3 training steps" in zero.stderr
    assert _files(base) == ["loras/ComfyUI_trained_lora_1_steps_00001_.safetensors"]


def test_failure_in_backward_on_one_rank_ends_the_run_without_waiting(base_template, tmp_path):
    """Rank 1 fails while rank 0 waits in the gradient all-reduce: no status round can reach
    rank 0 there; rank 1 leaves the group, so rank 0's all-reduce fails (no torchrun agent
    here to stop it: a hang would be a timeout)."""
    base = _base(base_template, tmp_path, "base")
    wf = _workflow(tmp_path, batch_size=1, light=True,
                   extra={"20": {"class_type": "FailingForward",
                                 "inputs": {"model": ["1", 0], "rank": 1, "at_call": 2,
                                            "in_backward": True}}},
                   rewire={("5", "model"): ["20", 0]})
    zero, one = _ranks(wf, base, tmp_path)
    assert (zero.returncode, one.returncode) == (3, 3), zero.stderr[-3000:]
    assert "[rank 1] error: node 5 (TrainLoraNode) failed: RuntimeError: injected failure " \
        "in backward" in one.stderr
    assert "error: node 5 (TrainLoraNode) failed" in zero.stderr
    assert not (base / "output" / "loras").exists()
