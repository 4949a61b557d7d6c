"""The workflow data types and the one API-JSON writer.

An API workflow is `dict[str, ApiNode]`; an input value is a constant or a `Link` to an output
of another node (`BadLink`: a list that is neither, kept for validation to report). The loader
(load.py), the UI converter (ui_format.py), the Graph API (api.py), the CLI and the validator
all use these types; `to_api_json` is the only code that writes ComfyUI's API format. Also the
loader's answer types (`LoadNotes`, `LoadedWorkflow`) and `invalid_from` (msgspec's error as
an InvalidWorkflow), shared by load.py and ui_format.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

from ..typesys.errors import InvalidWorkflow


class Link(msgspec.Struct, frozen=True):
    """A link to output `slot` of node `node_id` (hashable; what `NodeHandle.out` returns)."""

    node_id: str
    slot: int


class BadLink(msgspec.Struct, frozen=True):
    """An input value that is a list but not `[node id, output index]`, kept as read.

    Validation reports it as ComfyUI's `bad_linked_input` on its node and input, together with
    every other error, instead of the load stopping at the first one.
    """

    value: Any


class ApiNode(msgspec.Struct):
    """One node of an API-format workflow; `inputs` hold constants and `Link`s.

    `class_type` is "" when the file gives none (validation reports it as missing_node_type).
    """

    class_type: str
    inputs: dict[str, Any] = msgspec.field(default_factory=dict)
    title: str | None = None


ApiWorkflow = dict[str, ApiNode]


@dataclass
class LoadNotes:
    """What a UI conversion learnt besides the nodes.

    `primitives`: PrimitiveNode id -> the (node id, input) pairs its value was copied into
    (`--set <primitive id>.value=...` sets them all); `warnings`: one line per node type the
    registry has no schema for (its widget values could not be mapped and were dropped).
    """

    primitives: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


@dataclass
class LoadedWorkflow:
    """`load_workflow_info`'s answer: the API workflow, the UI JSON (or None), the notes."""

    workflow: ApiWorkflow
    ui_json: dict | None
    notes: LoadNotes


def invalid_from(exc: msgspec.ValidationError, base: str, **kw: Any) -> InvalidWorkflow:
    """Our error from msgspec's, with its `$...` path re-rooted at `base`."""
    text = str(exc)
    message, sep, where = text.rpartition(" - at `")
    if not sep:
        return InvalidWorkflow(text, path=base, **kw)
    return InvalidWorkflow(message, path=base + where.rstrip("`")[1:], **kw)


def link_of(value: Any) -> tuple[str, int] | None:
    """(node_id, slot) if `value` is a link, else None.

    Duck-typed: anything with a str `.node_id` and an int `.slot` is a link, so a workflow
    built by other code (the validator takes any mapping of node-like objects) works too.
    """
    if type(value) is Link:  # the common case, 3x faster than the duck-typed path
        return value.node_id, value.slot
    if isinstance(value, (str, int, float, bool, type(None))):
        return None
    node_id = getattr(value, "node_id", None)
    slot = getattr(value, "slot", None)
    if isinstance(node_id, str) and isinstance(slot, int) and not isinstance(value, Exception):
        return node_id, slot
    return None


def _api_json_value(value: Any) -> Any:
    link = link_of(value)
    if link is not None:
        return list(link)
    if isinstance(value, BadLink):
        return value.value  # written back as it was read
    if isinstance(value, (list, tuple)):
        return {"__value__": list(value)}  # a bare list would read as a link
    return value


def to_api_json(workflow: Mapping[str, Any]) -> dict[str, Any]:
    """The ComfyUI API-format JSON of a workflow: links as ["id", slot], list constants as
    {"__value__": [...]}, titles as `_meta`.

    Nodes are duck-typed (`.class_type`, `.inputs`, optional `.title`): ApiNodes and the Graph
    API's NodeHandles both serialise here.
    """
    out: dict[str, Any] = {}
    for node_id, node in workflow.items():
        entry: dict[str, Any] = {
            "class_type": node.class_type,
            "inputs": {name: _api_json_value(v) for name, v in node.inputs.items()},
        }
        title = getattr(node, "title", None)
        if title is not None:
            entry["_meta"] = {"title": title}
        out[node_id] = entry
    return out
