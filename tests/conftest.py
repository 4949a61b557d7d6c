"""Shared fixtures: the test registry, a RunContext over tmp_path, a workflow builder.

Model fixtures (tiny random-weight checkpoints in the real key layout) live in
tests/fixtures_models.py and are re-exported here when that module exists.
"""

from __future__ import annotations

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
