"""Execution: outputs, list semantics, caching, events, failures, interrupts."""

from __future__ import annotations

import pytest

from comfyless.engine.cache import OutputCache
from comfyless.engine.execute import run_workflow
from comfyless.typesys.errors import Interrupted, NodeExecutionError, WorkflowInvalid


@pytest.fixture
def cache():
    return OutputCache()


def _run(builder, ctx, registry, cache, **kw):
    return run_workflow(builder.build(), ctx, registry, cache=cache, **kw)


def test_chain_runs_and_returns_ui(builder, ctx, registry, cache, calls):
    num = builder.add("TestNumber", seed=5)
    fmt = builder.add("TestFormat", value=num.out(0), style="hex", scale=2.0, upper=True)
    builder.add("TestSink", value=fmt.out(0))
    result = _run(builder, ctx, registry, cache)
    assert result.ui == {"3": {"text": ["0XA"]}}
    assert calls == ["TestNumber", "TestFormat", "TestSink"]
    assert result.outputs["1"] == ([5],)


def test_only_output_ancestors_run(builder, ctx, registry, cache, calls):
    builder.add("TestIntSink", value=builder.add("TestNumber", seed=1).out(0))
    builder.add("TestAdd", a=1)  # not feeding an output
    result = _run(builder, ctx, registry, cache)
    assert calls == ["TestNumber", "TestIntSink"]
    assert "3" not in result.outputs


def test_invalid_workflow_raises_with_all_errors(builder, ctx, registry, cache, calls):
    builder.add("TestSink")
    builder.add("TestIntSink", value=builder.add("TestNumber", seed=-1).out(0))
    with pytest.raises(WorkflowInvalid) as info:
        _run(builder, ctx, registry, cache)
    assert [e.code for e in info.value.errors] == ["required_input_missing",
                                                   "value_smaller_than_min"]
    assert calls == []


def test_output_list_runs_consumer_per_item(builder, ctx, registry, cache):
    rng = builder.add("TestRange", count=3)
    add = builder.add("TestAdd", a=rng.out(0), b=10)
    builder.add("TestIntSink", value=add.out(0))
    result = _run(builder, ctx, registry, cache)
    assert result.outputs["2"] == ([10, 11, 12],)
    assert result.ui["3"] == {"value": [10, 11, 12]}


def test_input_list_node_gets_whole_list(builder, ctx, registry, cache):
    rng = builder.add("TestRange", count=4)
    total = builder.add("TestSum", values=rng.out(0))
    builder.add("TestIntSink", value=total.out(0))
    assert _run(builder, ctx, registry, cache).ui["3"] == {"value": [6]}


def test_empty_list_runs_nothing_downstream(builder, ctx, registry, cache):
    rng = builder.add("TestRange", count=0)
    builder.add("TestIntSink", value=rng.out(0))
    assert _run(builder, ctx, registry, cache).ui["2"] == {}


def test_cache_hit_on_second_run(builder, ctx, registry, cache, calls):
    num = builder.add("TestNumber", seed=5)
    builder.add("TestIntSink", value=num.out(0))
    _run(builder, ctx, registry, cache)
    result = _run(builder, ctx, registry, cache)
    assert calls == ["TestNumber", "TestIntSink"]
    assert result.cached == ["1", "2"] and result.executed == []
    assert result.ui == {"2": {"value": [5]}}


def test_cache_miss_when_upstream_constant_changes(builder, ctx, registry, cache, calls):
    num = builder.add("TestNumber", seed=5)
    add = builder.add("TestAdd", a=num.out(0), b=1)
    builder.add("TestIntSink", value=add.out(0))
    _run(builder, ctx, registry, cache)
    builder.nodes["1"].inputs["seed"] = 6
    result = _run(builder, ctx, registry, cache)
    assert result.executed == ["1", "2", "3"]
    assert result.ui["3"] == {"value": [7]}


def test_cache_ignores_node_ids(builder, ctx, registry, cache):
    num = builder.add("TestNumber", node_id="1", seed=5)
    builder.add("TestIntSink", node_id="2", value=num.out(0))
    _run(builder, ctx, registry, cache)
    from tests.conftest import WorkflowBuilder

    other = WorkflowBuilder()
    num = other.add("TestNumber", node_id="10", seed=5)
    other.add("TestIntSink", node_id="20", value=num.out(0))
    assert run_workflow(other.build(), ctx, registry, cache=cache).cached == ["10", "20"]


def test_not_idempotent_always_reruns_with_consumers(builder, ctx, registry, cache, calls):
    rnd = builder.add("TestRandom", value=3)
    builder.add("TestIntSink", value=rnd.out(0))
    _run(builder, ctx, registry, cache)
    result = _run(builder, ctx, registry, cache)
    assert result.executed == ["1", "2"]
    assert calls == ["TestRandom", "TestIntSink"] * 2


def test_cache_pruned_to_latest_run(builder, ctx, registry, cache):
    num = builder.add("TestNumber", seed=5)
    builder.add("TestIntSink", value=num.out(0))
    _run(builder, ctx, registry, cache)
    assert len(cache) == 2
    builder.nodes["1"].inputs["seed"] = 6
    _run(builder, ctx, registry, cache)
    assert len(cache) == 2


def test_node_failure_wraps_cause(builder, ctx, registry, cache):
    num = builder.add("TestNumber", seed=4)
    fail = builder.add("TestFail", value=num.out(0))
    builder.add("TestIntSink", value=fail.out(0))
    with pytest.raises(NodeExecutionError) as info:
        _run(builder, ctx, registry, cache)
    err = info.value
    assert err.code == "node_execution_failed"
    assert err.node_id == "2" and err.extra["class_type"] == "TestFail"
    assert isinstance(err.__cause__, RuntimeError) and "boom on 4" in str(err)


def test_a_node_error_naming_its_input_keeps_it(builder, ctx, registry, cache, monkeypatch):
    """A node's own WorkflowError (e.g. ModelLoadError) names the input; the wrapping error
    keeps it, so `--json` reports say which input was wrong."""
    from comfyless.typesys.errors import ModelLoadError
    from tests.testnodes import TestNumber

    def refuse(ctx, seed):
        raise ModelLoadError("x.safetensors: not a checkpoint", node_id="1", input_name="seed")

    monkeypatch.setattr(TestNumber, "execute", staticmethod(refuse))
    builder.add("TestIntSink", value=builder.add("TestNumber", seed=1).out(0))
    with pytest.raises(NodeExecutionError) as info:
        _run(builder, ctx, registry, cache)
    assert info.value.input_name == "seed" and info.value.node_id == "1"


def test_wrong_output_arity_is_a_node_error(builder, ctx, registry, cache, monkeypatch):
    from tests.testnodes import TestNumber

    monkeypatch.setattr(TestNumber, "execute", staticmethod(lambda ctx, seed: (seed, seed)))
    builder.add("TestIntSink", value=builder.add("TestNumber", seed=1).out(0))
    with pytest.raises(NodeExecutionError) as info:
        _run(builder, ctx, registry, cache)
    assert info.value.node_id == "1" and "expected a tuple of 1" in str(info.value)


def test_progress_events(builder, ctx, registry, cache):
    events = []
    ctx.listeners.append(events.append)
    slow = builder.add("TestSlow", steps=2)
    builder.add("TestIntSink", value=slow.out(0))
    _run(builder, ctx, registry, cache)
    _run(builder, ctx, registry, cache)
    seen = [(e.kind, e.node_id, e.value, e.max) for e in events]
    assert seen == [
        ("started", "1", None, None), ("progress", "1", 1, 2), ("progress", "1", 2, 2),
        ("finished", "1", None, None), ("started", "2", None, None),
        ("finished", "2", None, None), ("cached", "1", None, None), ("cached", "2", None, None),
    ]
    assert events[1].class_type == "TestSlow" and events[1].info == {"loss": 1.0}


def test_interrupt_stops_at_next_step(builder, ctx, registry, cache, calls):
    def stop_after_first_step(event):
        if event.kind == "progress" and event.value == 1:
            ctx.interrupt.set()

    ctx.listeners.append(stop_after_first_step)
    slow = builder.add("TestSlow", steps=5)
    builder.add("TestIntSink", value=slow.out(0))
    with pytest.raises(Interrupted) as info:
        _run(builder, ctx, registry, cache)
    assert info.value.node_id == "1"
    assert calls == ["TestSlow"]


def test_file_node_reads_from_base_dir(builder, ctx, registry, cache):
    folder = ctx.paths.folders("checkpoints")[0]
    folder.mkdir(parents=True)
    (folder / "m.safetensors").write_text("weights")
    builder.add("TestFile", ckpt_name="m.safetensors")
    assert _run(builder, ctx, registry, cache).outputs["1"] == (["weights"],)


def test_legacy_slot_delivers_current_output(builder, ctx, registry, cache):
    src = builder.add("TestLegacyOut", value=4)
    builder.add("TestLatentInt", samples=src.out(1), steps=src.out(2))  # a legacy-era workflow
    result = _run(builder, ctx, registry, cache)
    assert result.ui["2"] == {"samples": [{"samples": 4}], "steps": [4]}


def test_changed_file_invalidates_cache(builder, ctx, registry, cache, calls):
    import os

    folder = ctx.paths.folders("checkpoints")[0]
    folder.mkdir(parents=True)
    path = folder / "m.safetensors"
    path.write_text("v1")
    builder.add("TestFile", ckpt_name="m.safetensors")
    _run(builder, ctx, registry, cache)
    assert _run(builder, ctx, registry, cache).cached == ["1"]
    path.write_text("v2-longer")
    os.utime(path, ns=(1, 1))
    result = _run(builder, ctx, registry, cache)
    assert result.executed == ["1"] and result.outputs["1"] == (["v2-longer"],)


def test_fingerprint_hook_joins_key(builder, ctx, registry, cache, monkeypatch):
    from tests.testnodes import TestNumber

    stamp = {"v": 1}
    monkeypatch.setattr(TestNumber, "fingerprint", classmethod(lambda cls, seed: stamp["v"]),
                        raising=False)
    builder.add("TestIntSink", value=builder.add("TestNumber", seed=1).out(0))
    _run(builder, ctx, registry, cache)
    assert _run(builder, ctx, registry, cache).cached == ["1", "2"]
    stamp["v"] = 2
    assert _run(builder, ctx, registry, cache).executed == ["1", "2"]
