"""Input overrides on a loaded workflow: `--set ID.INPUT=VALUE` and regression manifests.

`parse_override` reads one `ID.INPUT=VALUE`; `set_input` writes one value (checking that the
node and the input exist, with "did you mean" names); `apply_overrides` does a list of them.
Mistakes are `UsageError`s (the CLI's exit 2), since they are the caller's, not the
workflow's; validation then checks the values themselves.
"""

from __future__ import annotations

import json
from typing import Any

from ..typesys.check import nearest


class UsageError(Exception):
    """Bad command-line arguments (exit 2); `info` goes into the JSON error's extra_info."""

    def __init__(self, message: str, **info: Any) -> None:
        super().__init__(message)
        self.info = info


def parse_override(text: str) -> tuple[str, str, Any]:
    """'ID.INPUT=VALUE' -> (id, input, value); VALUE is JSON if it parses, else a string."""
    target, eq, raw = text.partition("=")
    node_id, dot, name = target.partition(".")
    if not eq or not dot or not node_id or not name:
        raise UsageError(f"--set {text!r}: expected ID.INPUT=VALUE, e.g. --set 3.seed=42")
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    return node_id, name, value


def apply_overrides(workflow, overrides: list[str], registry=None, primitives=None) -> None:
    """Write --set values into the loaded workflow (validation then checks the values)."""
    for text in overrides:
        set_input(workflow, *parse_override(text), source=f"--set {text!r}",
                  registry=registry, primitives=primitives)


def set_input(workflow, node_id: str, name: str, value: Any, *, source: str, registry=None,
              primitives: dict[str, list[tuple[str, str]]] | None = None) -> None:
    """Override one input; `source` names where the override came from, for the error.

    The node must exist and have an input of that name (else UsageError with the nearest
    names). A UI workflow's PrimitiveNode id (`primitives`, from LoadNotes) sets its `value`
    in every input it feeds. `registry` defaults to comfyless.nodes.REGISTRY.
    """
    if node_id not in workflow and node_id in (primitives or {}):
        if name != "value":
            raise UsageError(f"{source}: node {node_id} is a PrimitiveNode; its one input is "
                             f"'value'", node_id=node_id, input_name=name, suggestions=["value"])
        for target, input_name in primitives[node_id]:
            workflow[target].inputs[input_name] = value
        return
    if node_id not in workflow:
        ids = list(workflow) + list(primitives or ())
        near = nearest(node_id, ids)
        hint = f"; did you mean {', '.join(near)}?" if near else ""
        shown = ", ".join(sorted(ids, key=_id_order)[:20]) or "none"
        raise UsageError(f"{source}: no node {node_id!r} in the workflow{hint} (nodes: {shown})",
                         node_id=node_id, suggestions=near)
    node = workflow[node_id]
    schema = _schema_of(node.class_type, registry)
    if schema is not None and name not in schema.input_map:
        raise UsageError(
            f"{source}: node {node_id} ({node.class_type}) has no input {name!r}"
            f"{unknown_input_hint(name, schema)}", node_id=node_id, input_name=name,
            suggestions=nearest(name, schema.input_map))
    # an unknown class_type cannot be checked here; validation reports the node itself
    node.inputs[name] = value


def unknown_input_hint(name: str, schema) -> str:
    """"; did you mean ...? (inputs: ...)" for an input name `schema` does not have (shared by
    the Graph API and `--set`)."""
    names = [i.name for i in schema.inputs]
    near = nearest(name, names)
    hint = f"; did you mean {', '.join(near)}?" if near else ""
    return f"{hint} (inputs: {', '.join(names) or 'none'})"


def _schema_of(class_type: str, registry):
    if registry is None:
        from ..nodes import REGISTRY as registry  # noqa: N811
    cls = registry.get(class_type) if isinstance(class_type, str) else None
    return cls.schema if cls is not None else None


def _id_order(node_id: str) -> tuple[int, str]:
    return (int(node_id), "") if node_id.isdigit() else (1 << 62, node_id)
