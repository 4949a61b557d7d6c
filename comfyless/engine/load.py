"""Workflow JSON -> ApiWorkflow (dict id -> ApiNode), from either format ComfyUI writes.

Accepted shapes (detected, never declared):
  API format, bare `{"3": {"class_type": ..., "inputs": {...}, "_meta": {...}}, ...}`;
  wrapped `{"prompt": {...}}`, including the whole /prompt envelope (`extra_data.extra_pnginfo.
  workflow` is kept as the UI JSON); UI (litegraph) format 0.4 and 1.0, converted by
  `ui_format.convert_ui` exactly as the frontend's graphToPrompt does.

In an ApiNode a link is a `Link(node_id, slot)`; every other input value is a constant, with
ComfyUI's `{"__value__": [...]}` list wrapper already removed (so a list is never a link). Two
mistakes are left for validation to report with all the others, under ComfyUI's codes: a list
that is not `[id, slot]` (kept as a `BadLink`: bad_linked_input) and a node without class_type
(`class_type` "": missing_node_type). Every other shape error is an `InvalidWorkflow` whose
`path` is the JSONPath of the bad value (`$["3"].inputs.seed`, `$.nodes[4].widgets_values`),
its message starting with the file's name when the source is a file.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import msgspec

from ..typesys.errors import InvalidWorkflow
from ..typesys.schema import NodeRegistry
from .legacy import fill_older_inputs
from .workflow import (
    ApiNode,
    ApiWorkflow,
    BadLink,
    Link,
    LoadedWorkflow,
    LoadNotes,
    invalid_from,
    to_api_json,
)


# -- wire structs (ComfyUI's format, so unknown fields are allowed) ----------------------------
class _Meta(msgspec.Struct):
    title: str | None = None


class _ApiNodeIn(msgspec.Struct):
    class_type: str = ""  # absent: reported by validation (missing_node_type), with the rest
    inputs: dict[str, Any] = {}
    meta: _Meta | None = msgspec.field(default=None, name="_meta")


# -- reading and detecting --------------------------------------------------------------------
_BOM = b"\xef\xbb\xbf"  # UTF-8 byte order mark


def _read(source: str | bytes | os.PathLike | dict) -> bytes | dict:
    """The JSON bytes of a source (a dict is passed through), without a UTF-8 BOM."""
    if isinstance(source, dict):
        return source
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    elif isinstance(source, str) and source.lstrip().startswith(("{", "[")):
        data = source.encode()
    elif isinstance(source, (str, os.PathLike)):
        data = Path(source).read_bytes()
    else:
        raise TypeError(f"a workflow source is JSON text, bytes, a path or a dict, "
                        f"not {type(source).__name__}")
    return data[3:] if data.startswith(_BOM) else data  # Windows editors write a BOM


def _decode(data: bytes) -> Any:
    try:
        return msgspec.json.decode(data)
    except msgspec.DecodeError:
        pass
    try:  # Python's json also reads NaN/Infinity (json.dumps writes them; so did ComfyUI's server)
        return json.loads(data)
    except (ValueError, RecursionError) as exc:
        where = f" (line {exc.lineno}, column {exc.colno})" \
            if isinstance(exc, json.JSONDecodeError) else ""
        message = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
        raise InvalidWorkflow(f"not valid JSON: {message}{where}", path="$") from None


def _is_ui(doc: dict) -> bool:
    nodes = doc.get("nodes")  # in an API file this would be a node, i.e. an object
    return isinstance(nodes, list) or (
        "nodes" in doc and any(k in doc for k in ("links", "version", "last_node_id", "state")))


def _envelope(doc: dict) -> tuple[dict, dict | None] | None:
    """(prompt, UI workflow or None) if `doc` is `{"prompt": {...}, ...}`, else None."""
    prompt = doc.get("prompt")
    if not isinstance(prompt, dict) or "class_type" in prompt:
        return None  # absent, or a node that happens to have the id "prompt"
    extra = doc.get("extra_data")
    pnginfo = extra.get("extra_pnginfo") if isinstance(extra, dict) else None
    ui = pnginfo.get("workflow") if isinstance(pnginfo, dict) else None
    return prompt, ui if isinstance(ui, dict) else None


# -- API format --------------------------------------------------------------------------------
def _api_value(value: Any, where: str, node_id: str, name: str) -> Any:
    kind = type(value)
    if kind is list:
        # ComfyUI wants a string id; an integer id (hand-written files) is read as its string
        if len(value) == 2 and type(value[0]) in (str, int) and type(value[1]) in (int, float):
            slot = value[1]
            if type(slot) is int or slot.is_integer():
                return Link(str(value[0]), int(slot))
        return BadLink(value)  # validation reports it (bad_linked_input) with the rest
    if kind is dict and "__value__" in value:
        return value["__value__"]
    return value


def _api_node(node_id: str, node: _ApiNodeIn, where: str) -> ApiNode:
    inputs = node.inputs
    for name, value in inputs.items():
        if type(value) in (list, dict):  # most inputs are plain constants: leave them be
            inputs[name] = _api_value(value, f"{where}.inputs.{name}", node_id, name)
    return ApiNode(node.class_type, inputs, node.meta.title if node.meta is not None else None)


def _api_nodes(prompt: dict, base: str) -> ApiWorkflow:
    workflow: ApiWorkflow = {}
    for node_id, raw in prompt.items():
        where = f'{base}["{node_id}"]'
        try:
            node = msgspec.convert(raw, _ApiNodeIn)
        except msgspec.ValidationError as exc:
            raise invalid_from(exc, where, node_id=node_id) from None
        workflow[node_id] = _api_node(node_id, node, where)
    return workflow


_BARE_API = msgspec.json.Decoder(dict[str, _ApiNodeIn])


def _fast_bare_api(data: bytes) -> ApiWorkflow | None:
    """The common case in one typed pass; None if `data` is anything else (or malformed)."""
    try:
        nodes = _BARE_API.decode(data)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None  # the general path finds the format, or the error and its path
    if nodes and all(not node.class_type for node in nodes.values()):
        return None  # no node says what it is: the general path decides if it is a workflow
    return {node_id: _api_node(node_id, node, f'$["{node_id}"]')
            for node_id, node in nodes.items()}


# -- public API --------------------------------------------------------------------------------
_NODE_ID = re.compile(r"\d+(:\d+)*")  # "3", "5:3": the ids ComfyUI writes


def _not_a_workflow(doc: dict) -> bool:
    """True for JSON objects that are plainly something else (package.json, {"foo": 1}).

    An API workflow's values are node objects with `class_type` or `inputs`, under ids; `{}` is
    an empty workflow (validation says it has no outputs), and `{"3": 5}` a malformed one.
    """
    if not doc or any(isinstance(v, dict) and ("class_type" in v or "inputs" in v)
                      for v in doc.values()):
        return False
    return not all(_NODE_ID.fullmatch(str(key)) for key in doc)


def _what_it_is(doc: Any) -> str:
    if isinstance(doc, dict):
        keys = ", ".join(list(map(str, doc))[:6]) + (", ..." if len(doc) > 6 else "")
        return f"a JSON object with the keys {keys}"
    return f"a JSON {type(doc).__name__}"


def _not_workflow_error(doc: Any) -> InvalidWorkflow:
    return InvalidWorkflow(
        f"not a ComfyUI workflow: found {_what_it_is(doc)}; expected an API-format object "
        f'of nodes ({{"<id>": {{"class_type": ..., "inputs": {{...}}}}}}) or a UI workflow '
        f'with a "nodes" list', path="$")


def _load(source: str | bytes | os.PathLike | dict, registry: NodeRegistry, keep_ui: bool
          ) -> LoadedWorkflow:
    notes = LoadNotes()
    data = _read(source)
    if isinstance(data, bytes):  # typed one-pass decodes for well-formed files, API first
        if not data.strip():
            raise InvalidWorkflow("the file is empty (not valid JSON)", path="$")
        fast = _fast_bare_api(data)
        if fast is not None:
            return LoadedWorkflow(fill_older_inputs(fast, registry), None, notes)
        from .ui_format import convert_ui, decode_ui

        ui = decode_ui(data)
        if ui is not None:
            return LoadedWorkflow(convert_ui(ui, registry, notes),
                                  _decode(data) if keep_ui else None, notes)
    doc = _decode(data) if isinstance(data, bytes) else data
    if not isinstance(doc, dict):
        raise _not_workflow_error(doc)
    if _is_ui(doc):
        from .ui_format import convert_ui

        return LoadedWorkflow(convert_ui(doc, registry, notes), doc, notes)
    wrapped = _envelope(doc)
    if wrapped is not None:
        return LoadedWorkflow(fill_older_inputs(_api_nodes(wrapped[0], "$.prompt"), registry),
                              wrapped[1], notes)
    if _not_a_workflow(doc):
        raise _not_workflow_error(doc)
    return LoadedWorkflow(fill_older_inputs(_api_nodes(doc, "$"), registry), None, notes)


def _load_named(source: str | bytes | os.PathLike | dict, registry: NodeRegistry,
                keep_ui: bool) -> LoadedWorkflow:
    """`_load`, with the file's name in front of every shape error when the source is a file."""
    is_file = isinstance(source, os.PathLike) or (
        isinstance(source, str) and not source.lstrip().startswith(("{", "[")))
    try:
        return _load(source, registry, keep_ui)
    except InvalidWorkflow as err:
        if is_file:
            err.message = f"{os.fspath(source)}: {err.message}"
            err.args = (err.message,)
        raise


def load_workflow_info(source: str | bytes | os.PathLike | dict, registry: NodeRegistry
                       ) -> LoadedWorkflow:
    """The API workflow, the UI JSON (or None) and what the conversion noted (LoadNotes)."""
    return _load_named(source, registry, keep_ui=True)


def load_workflow_full(source: str | bytes | os.PathLike | dict, registry: NodeRegistry
                       ) -> tuple[ApiWorkflow, dict | None]:
    """(API workflow, UI workflow JSON or None): the UI JSON is what SaveImage embeds in PNGs."""
    loaded = _load_named(source, registry, keep_ui=True)
    return loaded.workflow, loaded.ui_json


def load_workflow(source: str | bytes | os.PathLike | dict, registry: NodeRegistry
                  ) -> ApiWorkflow:
    """An API workflow from JSON text, bytes, a path or a decoded dict, in any format."""
    return _load_named(source, registry, keep_ui=False).workflow


def convert_to_api_json(path: str | os.PathLike, registry: NodeRegistry) -> dict[str, Any]:
    """`comfyless convert`: the API-format JSON of a workflow file of either format."""
    return to_api_json(load_workflow(Path(path), registry))
