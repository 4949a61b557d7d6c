"""Run a checked workflow: a short loop over the plan, with caching and progress events.

State of one run (`run_plan`): `plan` (validate.Checked: planned nodes, strong edges),
`schedule` (graph.DemandSchedule: what is ready, what waits), `keys` node id -> cache key or
None (computed up front from the recipes, for every planned node), `result.outputs` node id ->
per-slot output lists of the nodes that ran or came from the cache (every stored output is a
list, as in ComfyUI), `result.ui` output node id -> merged UI dict, and the caller's `ctx`
(listeners, interrupt flag) and `cache`.

Ordering policy: the smallest lexicographic topological order (graph.py) of the output nodes
and their ancestors along links into non-lazy inputs; it depends only on ids and edges, so it
is the same for every PYTHONHASHSEED (without lazy inputs it is `plan.order`). Each node: cache
lookup -> gather inputs -> lazy inputs its `check_lazy_status` asks for and that have not run:
schedule their producers and come back later -> call execute once per item (or once with whole
lists for `is_input_list` nodes) -> check arity -> merge per slot. A lazy input nobody asks
for is None and its producer never runs (ComfyUI's lazy evaluation, e.g. ComfySwitchNode).

Autograd: nodes run with torch's grad mode as the caller left it; the engine never enters
`torch.inference_mode()` (ComfyUI does) because the trainer needs autograd and inference-mode
tensors cannot be used in autograd later. Nodes that only infer use `torch.no_grad()` themselves.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..memory import return_freed_memory
from ..typesys.errors import Interrupted, NodeExecutionError
from ..typesys.schema import NodeRegistry, Result
from .cache import DEFAULT_CACHE, CacheEntry, OutputCache, cache_key, file_stamps
from .context import ProgressEvent, RunContext
from .graph import DemandSchedule
from .validate import Checked, PlannedNode, check_workflow, raise_if_invalid


@dataclass
class RunResult:
    """What a run produced: `ui` per output node, `outputs` per executed node (slot lists)."""

    ui: dict[str, dict[str, list[Any]]] = field(default_factory=dict)
    outputs: dict[str, tuple[list[Any], ...]] = field(default_factory=dict)
    executed: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)


def prepare(workflow: Mapping[str, Any], registry: NodeRegistry, ctx: RunContext,
            targets: list[str] | None = None) -> Checked:
    """Validate against ctx's base dir; raise WorkflowInvalid with every error, or the plan."""
    checked = check_workflow(workflow, registry, ctx.paths, targets=targets)
    raise_if_invalid(checked)
    return checked


def run_workflow(workflow: Mapping[str, Any], ctx: RunContext,
                 registry: NodeRegistry | None = None, *, cache: OutputCache | None = None,
                 targets: list[str] | None = None) -> RunResult:
    """Validate, then run the output nodes of `workflow` and their ancestors."""
    if registry is None:
        from ..nodes import REGISTRY as registry  # noqa: N811
    return run_plan(prepare(workflow, registry, ctx, targets), ctx, cache=cache)


def run_plan(plan: Checked, ctx: RunContext, *, cache: OutputCache | None = None) -> RunResult:
    """Execute a checked plan in order (raises NodeExecutionError / Interrupted)."""
    cache = DEFAULT_CACHE if cache is None else cache
    result = RunResult()
    keys = plan_keys(plan, ctx)
    outputs = set(plan.outputs)
    schedule = DemandSchedule(plan.outputs, plan.strong_deps)
    cache.begin_run()
    while (node_id := schedule.next()) is not None:
        ctx.check_interrupt()
        planned = plan.nodes[node_id]
        entry = cache.get(keys[node_id])
        if entry is not None:
            ctx.emit(ProgressEvent("cached", node_id, planned.class_type))
            result.cached.append(node_id)
        else:
            wanted = lazy_producers_wanted(planned, result.outputs)
            if wanted:
                schedule.demand(node_id, wanted)
                continue
            entry = run_node(planned, ctx, result.outputs)
            return_freed_memory()  # a node's freed temporaries stay resident otherwise
            cache.put(keys[node_id], entry)
            result.executed.append(node_id)
        result.outputs[node_id] = entry.outputs
        if node_id in outputs:
            result.ui[node_id] = entry.ui
        schedule.finished(node_id)
    cache.end_run()
    return result


def plan_keys(plan: Checked, ctx: RunContext) -> dict[str, str | None]:
    """Every planned node's cache key, producers first (keys hash recipes, never results, so
    a node's key covers a lazy branch whether or not that branch will run)."""
    keys: dict[str, str | None] = {}
    for node_id in plan.order:
        planned = plan.nodes[node_id]
        keys[node_id] = cache_key(planned, keys, file_stamps(planned, ctx.paths))
    return keys


def lazy_producers_wanted(planned: PlannedNode, results: Mapping[str, tuple[list[Any], ...]]
                          ) -> list[str]:
    """Producers of the lazy inputs the node's `check_lazy_status` asks for that have not run."""
    hook = getattr(planned.node, "check_lazy_status", None)
    schema = planned.node.schema
    pending = {name: src for name, (src, _) in planned.links.items()
               if schema.input(name).lazy and src not in results}
    if hook is None or not pending:
        return []
    wanted: list[str] = []
    for kwargs in _calls(planned, resolve_inputs(planned, results)):
        for name in _call_hook(planned, hook, kwargs) or ():
            if name in pending and pending[name] not in wanted:
                wanted.append(pending[name])
    return wanted


def _call_hook(planned: PlannedNode, hook: Any, kwargs: dict[str, Any]) -> Any:
    try:
        return hook(**kwargs)
    except Exception as exc:
        raise NodeExecutionError(
            f"node {planned.node_id} ({planned.class_type}) failed in check_lazy_status: "
            f"{type(exc).__name__}: {exc}", node_id=planned.node_id,
            class_type=planned.class_type, exception_type=type(exc).__name__,
            exception_message=str(exc)) from exc


def resolve_inputs(planned: PlannedNode, results: Mapping[str, tuple[list[Any], ...]]
                   ) -> dict[str, list[Any]]:
    """Every input as a list: a link gives the producer's slot list, a constant [value], a
    lazy input whose producer has not run [None]."""
    inputs: dict[str, list[Any]] = {}
    schema = planned.node.schema
    for name, value in planned.constants.items():
        inputs[name] = value if schema.is_input_list and isinstance(value, list) else [value]
    for name, (src, slot) in planned.links.items():
        if src not in results and schema.input(name).lazy:
            inputs[name] = [None]
        else:
            inputs[name] = results[src][slot]
    return inputs


def _calls(planned: PlannedNode, inputs: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """The keyword sets to call execute with (ComfyUI's list semantics)."""
    if planned.node.schema.is_input_list:
        return [inputs]
    if any(len(v) == 0 for v in inputs.values()):
        return []  # an empty list upstream: nothing to compute
    count = max((len(v) for v in inputs.values()), default=1)
    # Shorter lists repeat their last item, so a 1-element constant broadcasts.
    return [{n: v[min(i, len(v) - 1)] for n, v in inputs.items()} for i in range(count)]


def run_node(planned: PlannedNode, ctx: RunContext,
             results: Mapping[str, tuple[list[Any], ...]]) -> CacheEntry:
    """Run one node (once per item), merging per-slot outputs and UI dicts."""
    node_ctx = ctx.for_node(planned.node_id, planned.class_type)
    if ctx.listeners:
        node_ctx.emit(ProgressEvent("started", planned.node_id, planned.class_type))
    schema = planned.node.schema
    slots: tuple[list[Any], ...] = tuple([] for _ in schema.outputs)
    ui: dict[str, list[Any]] = {}
    for kwargs in _calls(planned, resolve_inputs(planned, results)):
        values, call_ui = _call(planned, node_ctx, kwargs)
        for slot, (out, value) in enumerate(zip(schema.outputs, values, strict=True)):
            if out.is_list:
                slots[slot].extend(_as_list(planned, out.name, value))
            else:
                slots[slot].append(value)
        for k, v in call_ui.items():
            ui.setdefault(k, []).extend(v if isinstance(v, list) else [v])
    if ctx.listeners:
        node_ctx.emit(ProgressEvent("finished", planned.node_id, planned.class_type))
    return CacheEntry(slots, ui)


def _call(planned: PlannedNode, ctx: RunContext, kwargs: dict[str, Any]
          ) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Call execute; wrap anything it raises (except Interrupted) as NodeExecutionError."""
    try:
        returned = planned.node.execute(ctx, **kwargs)
    except Interrupted:
        raise
    except Exception as exc:
        raise NodeExecutionError(
            f"node {planned.node_id} ({planned.class_type}) failed: {type(exc).__name__}: {exc}",
            node_id=planned.node_id, class_type=planned.class_type,
            input_name=getattr(exc, "input_name", None),  # a node's own error may name one
            exception_type=type(exc).__name__, exception_message=str(exc),
        ) from exc
    return check_outputs(planned, returned)


def check_outputs(planned: PlannedNode, returned: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """(values, ui) from what execute returned; the arity must match the schema."""
    ui: dict[str, Any] = {}
    if isinstance(returned, Result):
        returned, ui = returned.values, returned.ui
    if returned is None:
        returned = ()
    expected = len(planned.node.schema.outputs)
    if not isinstance(returned, (tuple, list)) or len(returned) != expected:
        got = f"{len(returned)} values" if isinstance(returned, (tuple, list)) else \
            type(returned).__name__
        raise NodeExecutionError(
            f"node {planned.node_id} ({planned.class_type}) returned {got}, expected a tuple "
            f"of {expected} output(s)", node_id=planned.node_id, class_type=planned.class_type)
    return tuple(returned), ui


def _as_list(planned: PlannedNode, name: str, value: Any) -> list[Any]:
    if not isinstance(value, (list, tuple)):
        raise NodeExecutionError(
            f"node {planned.node_id} ({planned.class_type}) output '{name}' is a list output "
            f"but execute returned {type(value).__name__}",
            node_id=planned.node_id, class_type=planned.class_type)
    return list(value)
