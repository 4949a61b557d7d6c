"""Shared fixtures: the test registry, a RunContext over tmp_path, a workflow builder.

Model fixtures (tiny random-weight checkpoints in the real key layout) live in
tests/fixtures_models.py and are re-exported here when that module exists.
"""

from __future__ import annotations

import os

# One intra-op thread: the test models are tiny, and on a shared 2-core machine a second
# OpenMP thread mostly spin-waits (measured: the suite went from >10 min to ~3 min). Must be
# set before torch is first imported; an explicit OMP_NUM_THREADS still wins.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import shutil
from pathlib import Path
from typing import Any

import pytest

from comfyless.engine.context import RunContext
from comfyless.engine.load import ApiNode, Link
from tests.testnodes import CALLS, test_registry

try:  # the model-package owner's session-scoped checkpoint fixtures
    from tests.fixtures_models import *  # noqa: F401,F403
except ModuleNotFoundError as exc:  # pragma: no cover - until that module lands
    if exc.name != "tests.fixtures_models":
        raise

class Handle:
    """A node added by `WorkflowBuilder`; `.out(i)` is a link to its output slot i."""

    def __init__(self, node_id: str) -> None:
        self.id = node_id

    def out(self, slot: int = 0) -> Link:
        return Link(self.id, slot)


class WorkflowBuilder:
    """Builds an ApiWorkflow (dict id -> ApiNode) with link handles, ids "1", "2", ..."""

    def __init__(self) -> None:
        self.nodes: dict[str, ApiNode] = {}

    def add(self, class_type: str, node_id: str | None = None, **inputs: Any) -> Handle:
        node_id = node_id or str(len(self.nodes) + 1)
        self.nodes[node_id] = ApiNode(class_type=class_type, inputs=dict(inputs), title=None)
        return Handle(node_id)

    def build(self) -> dict[str, ApiNode]:
        return dict(self.nodes)


@pytest.fixture
def registry():
    return test_registry()


@pytest.fixture
def ctx(tmp_path):
    return RunContext.create(tmp_path / "base")


@pytest.fixture
def builder():
    return WorkflowBuilder()


@pytest.fixture
def calls():
    """The test nodes' call log, emptied before the test."""
    CALLS.clear()
    return CALLS


# -- a base directory for the shipped workflows ------------------------------------------------
SHIPPED_CHECKPOINT_NAMES = {"sd15": "v1-5-pruned-emaonly.safetensors",
                            "sdxl": "sd_xl_base_1.0.safetensors"}
SHIPPED_DIT_ARCHS = ("sd35", "flux", "zimage", "qwen-image")


@pytest.fixture(scope="session")
def shipped_base(tmp_path_factory, tiny_sd15_checkpoint, tiny_sdxl_checkpoint) -> Path:
    """Tiny checkpoints under the file names the shipped workflows use, and a small training
    image set (with captions) in input/training_images."""
    from comfyless.demo import write_demo_dataset
    from comfyless.models.checkpoint_writer import write_model_files

    base = tmp_path_factory.mktemp("shipped_base")
    checkpoints = base / "models" / "checkpoints"
    checkpoints.mkdir(parents=True)
    shutil.copyfile(tiny_sd15_checkpoint, checkpoints / SHIPPED_CHECKPOINT_NAMES["sd15"])
    shutil.copyfile(tiny_sdxl_checkpoint, checkpoints / SHIPPED_CHECKPOINT_NAMES["sdxl"])
    for arch in SHIPPED_DIT_ARCHS:  # every file a user of the family has, under its real name
        write_model_files(lambda kind: base / "models" / kind, arch, "tiny")
    write_demo_dataset(base / "input" / "training_images", count=3, size=64)
    return base


@pytest.fixture
def one_torch_thread():
    """One intra-op thread for the test: tiny models gain nothing from more, and on a loaded
    machine the OpenMP spin-waits of 2+ threads make them many times slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
