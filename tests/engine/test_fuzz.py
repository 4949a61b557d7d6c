"""Fuzz: mutated workflows only ever raise our error types (never a raw Python exception).

Valid seed workflows are mutated (nodes dropped, inputs deleted or replaced by arbitrary JSON,
links re-pointed, class_types changed, shapes broken), then loaded, validated and, when
valid, run. Anything escaping other than a WorkflowError fails the test.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from comfyless.engine.cache import OutputCache
from comfyless.engine.context import RunContext
from comfyless.engine.execute import run_plan
from comfyless.engine.validate import check_workflow
from comfyless.typesys.errors import WorkflowError
from tests.conftest import ApiNode, Link
from tests.testnodes import test_registry

REGISTRY = test_registry()
CLASS_TYPES = sorted(REGISTRY)

SEEDS = [
    {"1": {"class_type": "TestNumber", "inputs": {"seed": 5}},
     "2": {"class_type": "TestFormat", "inputs": {"value": ["1", 0], "style": "hex",
                                                   "scale": 2.0, "upper": True}},
     "3": {"class_type": "TestSink", "inputs": {"value": ["2", 0]}}},
    {"1": {"class_type": "TestRange", "inputs": {"count": 3}},
     "2": {"class_type": "TestAdd", "inputs": {"a": ["1", 0], "b": 4}},
     "3": {"class_type": "TestSum", "inputs": {"values": ["2", 0]}},
     "4": {"class_type": "TestIntSink", "inputs": {"value": ["3", 0]}}},
    {"1": {"class_type": "TestLegacyOut", "inputs": {"value": 2}},
     "2": {"class_type": "TestLatentInt", "inputs": {"samples": ["1", 1], "steps": ["1", 2]}},
     "3": {"class_type": "TestChecked", "inputs": {"low": 1, "high": 3}},
     "4": {"class_type": "TestIntSink", "inputs": {"value": ["3", 0]}},
     "5": {"class_type": "TestFile", "inputs": {"ckpt_name": "a.safetensors"}}},
]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=True)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                 max_size=3),
    max_leaves=6,
)
node_ids = st.sampled_from(["1", "2", "3", "4", "5", "99", "", "x"])
links = st.tuples(node_ids, st.integers(-2, 5)).map(list)


@st.composite
def mutated(draw):
    api = copy.deepcopy(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        node_id = draw(st.sampled_from(sorted(api) or ["1"]))
        node = api.get(node_id)
        kind = draw(st.integers(0, 7))
        if node is None or not isinstance(node, dict):
            api[node_id] = {"class_type": draw(st.sampled_from(CLASS_TYPES)), "inputs": {}}
        elif kind == 0:
            del api[node_id]
        elif kind == 1:
            node["class_type"] = draw(st.sampled_from(CLASS_TYPES) | st.text(max_size=8))
        elif kind == 2 and isinstance(node.get("inputs"), dict) and node["inputs"]:
            del node["inputs"][draw(st.sampled_from(sorted(node["inputs"])))]
        elif kind == 3 and isinstance(node.get("inputs"), dict):
            name = draw(st.sampled_from(sorted(node["inputs"]) + ["value", "extra"]))
            node["inputs"][name] = draw(json_values)
        elif kind == 4 and isinstance(node.get("inputs"), dict):
            name = draw(st.sampled_from(sorted(node["inputs"]) + ["value", "a"]))
            node["inputs"][name] = draw(links)
        elif kind == 5:
            node["inputs"] = draw(json_values)
        elif kind == 6:
            api[node_id] = draw(json_values)
        else:
            node.pop("class_type", None)
    return api


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    base = tmp_path_factory.mktemp("fuzz")
    (base / "models" / "checkpoints").mkdir(parents=True)
    (base / "models" / "checkpoints" / "a.safetensors").write_text("A")
    return RunContext.create(base)


def _validate_and_run(workflow, ctx) -> None:
    try:
        plan = check_workflow(workflow, REGISTRY, ctx.paths)
        if not plan.errors:
            run_plan(plan, ctx, cache=OutputCache())
    except WorkflowError:
        pass


def _to_api_nodes(api):
    """Plain conversion for the load-free fuzz: drop shapes load.py would refuse."""
    workflow = {}
    for node_id, node in api.items():
        if not isinstance(node, dict) or not isinstance(node.get("class_type"), str) \
                or not isinstance(node.get("inputs", {}), dict):
            continue
        inputs = {k: Link(str(v[0]), v[1]) if isinstance(v, list) and len(v) == 2
                  and isinstance(v[0], str) and isinstance(v[1], int) else v
                  for k, v in node.get("inputs", {}).items()}
        workflow[node_id] = ApiNode(node["class_type"], inputs, None)
    return workflow


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(api=mutated())
def test_engine_raises_only_workflow_errors(api, ctx):
    _validate_and_run(_to_api_nodes(api), ctx)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(api=mutated(), wrapped=st.booleans())
def test_api_json_raises_only_workflow_errors(api, wrapped, ctx):
    from comfyless.engine.load import load_workflow

    source = {"prompt": api} if wrapped else api
    try:
        workflow = load_workflow(json.dumps(source).encode(), REGISTRY)
    except WorkflowError:
        return
    _validate_and_run(workflow, ctx)


def _ui_seeds() -> list[dict]:
    data = Path(__file__).parent / "data"
    seeds = []
    for path in sorted(data.glob("*.json")) if data.is_dir() else []:
        try:
            doc = json.loads(path.read_text())
        except ValueError:
            continue
        if isinstance(doc, dict) and "nodes" in doc:
            seeds.append(doc)
    return seeds


UI_SEEDS = _ui_seeds()


@st.composite
def mutated_ui(draw):
    doc = copy.deepcopy(draw(st.sampled_from(UI_SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.integers(0, 5))
        nodes = doc.get("nodes") if isinstance(doc.get("nodes"), list) else []
        if kind == 0 and nodes:
            nodes.pop(draw(st.integers(0, len(nodes) - 1)))
        elif kind == 1 and nodes and isinstance(nodes[0], dict):
            node = nodes[draw(st.integers(0, len(nodes) - 1))]
            if isinstance(node, dict):
                key = draw(st.sampled_from(["widgets_values", "type", "inputs", "outputs",
                                            "mode", "id"]))
                node[key] = draw(json_values)
        elif kind == 2 and isinstance(doc.get("links"), list) and doc["links"]:
            i = draw(st.integers(0, len(doc["links"]) - 1))
            doc["links"][i] = draw(json_values | st.lists(st.integers(-1, 12), max_size=7))
        elif kind == 3:
            doc[draw(st.sampled_from(["links", "nodes", "version", "definitions"]))] = \
                draw(json_values)
        elif kind == 4 and nodes:
            node = nodes[draw(st.integers(0, len(nodes) - 1))]
            if isinstance(node, dict) and isinstance(node.get("widgets_values"), list) \
                    and node["widgets_values"]:
                wv = node["widgets_values"]
                wv[draw(st.integers(0, len(wv) - 1))] = draw(json_values)
        else:
            doc.pop(draw(st.sampled_from(sorted(doc) or ["nodes"])), None)
    return doc


@pytest.mark.skipif(not UI_SEEDS, reason="no UI-format workflows in tests/engine/data yet")
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=mutated_ui())
def test_ui_json_raises_only_workflow_errors(doc, ctx):
    load = pytest.importorskip("comfyless.engine.load")
    try:
        workflow = load.load_workflow(json.dumps(doc).encode(), REGISTRY)
    except WorkflowError:
        return
    _validate_and_run(workflow, ctx)
