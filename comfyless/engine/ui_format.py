"""UI (litegraph) workflow -> API workflow, as the ComfyUI frontend's graphToPrompt does it.

Restated from workflow-formats.md §3-§6:
- widgets_values are mapped onto the schema's widget inputs in declaration order, skipping the
  frontend-only values that follow some widgets (`Input.ui_extra_values`); values saved by an
  older version of the node (legacy.py) and the older form with `null` holes for non-serialised
  widgets are recognised by their length; a count that fits none is an error naming the node
  (never a guess);
- every linked input slot is resolved through Reroutes, bypassed nodes (mode 4, matched by
  type), PrimitiveNodes (their value becomes a constant) and subgraph boundaries; the link wins
  over a widget value of the same name; a link that resolves to nothing (muted source, bypass
  without a matching input, dangling id) leaves the widget value, if any;
- muted (mode 2) and bypassed nodes, Reroute, PrimitiveNode, Note and MarkdownNote are not
  emitted; subgraph instances are flattened, inner ids joined with ':' (`"5:3"`, `"5:7:2"`);
- node types we do not know are emitted with their linked inputs only, so validation reports
  them as `missing_node_type` with the nearest known names; their widget values cannot be
  mapped without a schema, so each such type gets a warning in `LoadNotes.warnings`;
- each PrimitiveNode whose value reaches an input is recorded in `LoadNotes.primitives`
  (primitive id -> the (node id, input) pairs it fed), so `--set` can address it;
- links from a node whose saved outputs are its schema's `legacy_outputs` are moved onto the
  current layout (legacy.py).

State of one conversion (`_Converter`): the registry, the subgraph definitions by id, the
scopes built so far (one per subgraph instance path) and the API nodes emitted, in UI order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import msgspec

from ..typesys.check import compatible
from ..typesys.errors import InvalidWorkflow
from ..typesys.schema import NodeRegistry, NodeSchema
from .legacy import (
    current_slot_of_legacy,
    older_widget_values,
    saved_with_legacy_outputs,
    widget_layout,
)
from .workflow import ApiNode, ApiWorkflow, Link, LoadNotes, invalid_from

MUTED, BYPASS = 2, 4
VIRTUAL_TYPES = frozenset({"Reroute", "PrimitiveNode", "Note", "MarkdownNote"})
SUBGRAPH_INPUT, SUBGRAPH_OUTPUT = "-10", "-20"  # litegraph's reserved pseudo node ids
MAX_NESTING = 32  # deeper subgraph nesting means a definition contains itself
MAX_HOPS = 100_000  # reroute/bypass/boundary steps when resolving one link


# -- wire structs (litegraph's format: unknown fields allowed and ignored) --------------------
class _Widget(msgspec.Struct):
    name: str | None = None


class _InSlot(msgspec.Struct):
    name: str | None = None
    type: Any = "*"
    link: int | None = None
    widget: _Widget | None = None


class _OutSlot(msgspec.Struct):
    name: str | None = None
    type: Any = "*"


class _UiNode(msgspec.Struct):
    id: int | str
    type: str
    mode: int = 0
    inputs: list[_InSlot] | None = None
    outputs: list[_OutSlot] | None = None
    widgets_values: list[Any] | dict[str, Any] | None = None
    title: str | None = None


class _LinkObj(msgspec.Struct):
    id: int
    origin_id: int | str
    origin_slot: int
    target_id: int | str
    target_slot: int
    type: Any = "*"


class _SubgraphIO(msgspec.Struct):
    name: str | None = None
    type: Any = "*"


class _Subgraph(msgspec.Struct):
    id: str
    nodes: list[_UiNode] = []
    links: list[Any] = []
    inputs: list[_SubgraphIO] = []
    outputs: list[_SubgraphIO] = []
    definitions: _Definitions | None = None


class _Definitions(msgspec.Struct):
    subgraphs: list[_Subgraph] = []


class _UiDoc(msgspec.Struct):
    nodes: list[_UiNode]
    links: list[Any] | None = None
    definitions: _Definitions | None = None


@dataclass(frozen=True)
class _LinkRec:
    id: int
    origin_id: str
    origin_slot: int
    target_id: str
    target_slot: int
    type: str


def _link_rec(raw: Any, where: str) -> tuple[int, _LinkRec]:
    """(link id, record) from a 0.4 6-tuple or a 1.0 link object."""
    if type(raw) is list:
        if len(raw) < 5 or type(raw[0]) is not int or type(raw[2]) is not int \
                or type(raw[4]) is not int or type(raw[1]) not in (int, str) \
                or type(raw[3]) not in (int, str):
            raise InvalidWorkflow(
                "a link is [link_id, origin_id, origin_slot, target_id, target_slot, type] "
                f"with integer ids and slots, got {raw!r}", path=where)
        kind = raw[5] if len(raw) > 5 else "*"
        return raw[0], _LinkRec(raw[0], str(raw[1]), raw[2], str(raw[3]), raw[4], _type_name(kind))
    try:
        obj = msgspec.convert(raw, _LinkObj)
    except msgspec.ValidationError as exc:
        raise invalid_from(exc, where) from None
    return obj.id, _LinkRec(obj.id, str(obj.origin_id), obj.origin_slot, str(obj.target_id),
                            obj.target_slot, _type_name(obj.type))


def _type_name(kind: Any) -> str:
    if kind is None or kind == "" or kind == 0 or kind == -1:  # litegraph's "any" spellings
        return "*"
    return str(kind)


@dataclass
class _Scope:
    """The top-level graph, or one subgraph instance's copy of its definition."""

    prefix: str  # "" at top level, "5:" inside instance 5, "5:7:" inside 7 inside 5
    path: str  # JSONPath of the graph object, for errors
    nodes: dict[str, _UiNode]
    node_paths: dict[str, str]
    links: dict[int, _LinkRec]
    parent: _Scope | None = None
    instance: _UiNode | None = None
    definition: _Subgraph | None = None
    depth: int = 0
    into_output: dict[int, _LinkRec] = field(default_factory=dict)  # subgraph output slot -> link
    from_input: dict[int, list[_LinkRec]] = field(default_factory=dict)  # input slot -> links


def _scope(prefix: str, path: str, nodes: list[_UiNode], raw_links: list[Any] | None,
           **kw: Any) -> _Scope:
    by_id: dict[str, _UiNode] = {}
    node_paths: dict[str, str] = {}
    for index, node in enumerate(nodes):
        key = str(node.id)
        if key in by_id:
            raise InvalidWorkflow(f"node id {key} is used twice", path=f"{path}.nodes[{index}].id")
        by_id[key] = node
        node_paths[key] = f"{path}.nodes[{index}]"
    links: dict[int, _LinkRec] = {}
    scope = _Scope(prefix, path, by_id, node_paths, links, **kw)
    for index, raw in enumerate(raw_links or ()):
        if raw is None:
            continue  # deleted links are sometimes saved as null
        link_id, rec = _link_rec(raw, f"{path}.links[{index}]")
        links[link_id] = rec
        if rec.target_id == SUBGRAPH_OUTPUT:
            scope.into_output[rec.target_slot] = rec
        if rec.origin_id == SUBGRAPH_INPUT:
            scope.from_input.setdefault(rec.origin_slot, []).append(rec)
    return scope


def _collect_subgraphs(defs: _Definitions | None, path: str, out: dict[str, tuple[_Subgraph, str]]
                       ) -> None:
    if defs is None:
        return
    for index, sub in enumerate(defs.subgraphs):
        where = f"{path}.subgraphs[{index}]"
        out.setdefault(sub.id, (sub, where))
        _collect_subgraphs(sub.definitions, f"{where}.definitions", out)


# -- widgets_values -> inputs ----------------------------------------------------------------
def _without_holes(values: list[Any], expected: int) -> list[Any] | None:
    """The compact form of an older widgets_values with `null` holes, if it is one."""
    excess = len(values) - expected
    holes = [i for i, v in enumerate(values) if v is None]
    if excess <= 0 or len(holes) < excess:
        return None
    drop = set(holes[-excess:])  # non-serialised widgets (previews) come after the real ones
    return [v for i, v in enumerate(values) if i not in drop]


def widget_values(schema: NodeSchema, values: Any, node_id: str, where: str) -> dict[str, Any]:
    """Map a node's widgets_values onto its widget inputs (frontend-only values skipped)."""
    positions, expected = widget_layout(schema)
    if isinstance(values, dict):  # some nodes save an object keyed by widget name
        return {name: values[name] for name, _ in positions if name in values}
    values = [] if values is None else values
    if expected == 0:
        # a node without widget inputs can only have saved display state here (PreviewAny's
        # preview text, ...): there is nothing to map, so nothing is lost by skipping it
        return {}
    if len(values) != expected:
        older = older_widget_values(schema, values)
        if older is not None:
            return older
        compact = _without_holes(values, expected)
        if compact is None:
            layout = ", ".join(inp.name + " +control" * inp.ui_extra_values
                               for inp in schema.inputs if inp.is_widget)
            raise InvalidWorkflow(
                f"node {node_id} ({schema.class_type}): widgets_values has {len(values)} "
                f"value(s), expected {expected} ({layout or 'no widgets'}); the node was "
                f"probably saved by another version of it or has widgets added by an "
                f"extension", path=f"{where}.widgets_values", node_id=node_id,
                class_type=schema.class_type, expected=expected, found=len(values))
        values = compact
    return {name: values[position] for name, position in positions}


# -- the conversion ----------------------------------------------------------------------------
def _bypass_input(node: _UiNode, slot: int, want: str) -> int | None:
    """Which input of a bypassed node stands in for its output `slot` (workflow-formats §4)."""
    inputs = node.inputs or []
    if not inputs:
        return None
    if want == "*":
        return slot if slot < len(inputs) else 0
    outputs = node.outputs or []
    out_type = _type_name(outputs[slot].type) if 0 <= slot < len(outputs) else "*"
    if 0 <= slot < len(inputs):
        in_type = _type_name(inputs[slot].type)
        if compatible(in_type, out_type) and compatible(in_type, want):
            return slot
    for index, inp in enumerate(inputs):
        if _type_name(inp.type) == want:
            return index
    return None  # no match: the consumer is left unconnected


class _Converter:
    """One UI -> API conversion (state described in the module docstring)."""

    def __init__(self, registry: NodeRegistry, subgraphs: dict[str, tuple[_Subgraph, str]],
                 notes: LoadNotes) -> None:
        self.registry = registry
        self.subgraphs = subgraphs
        self.children: dict[str, _Scope] = {}
        self.out: ApiWorkflow = {}
        self.notes = notes
        self.primitive: str | None = None  # the PrimitiveNode the latest resolve() ended at
        self.unknown: dict[str, list[str]] = {}  # node type without schema -> node ids

    def schema(self, class_type: str) -> NodeSchema | None:
        cls = self.registry.get(class_type)
        return cls.schema if cls is not None else None

    # -- emitting ------------------------------------------------------------------------
    def emit(self, scope: _Scope) -> None:
        for key, node in scope.nodes.items():
            if node.mode in (MUTED, BYPASS) or node.type in VIRTUAL_TYPES:
                continue
            if node.type in self.subgraphs:
                self.emit(self.child(scope, key, node))
            else:
                self.out[scope.prefix + key] = self.api_node(scope, key, node)

    def child(self, scope: _Scope, key: str, node: _UiNode) -> _Scope:
        prefix = f"{scope.prefix}{key}:"
        if prefix not in self.children:
            if scope.depth >= MAX_NESTING:
                raise InvalidWorkflow(
                    f"subgraphs nested deeper than {MAX_NESTING} at node {scope.prefix}{key} "
                    f"(a subgraph that contains itself?)", path=scope.node_paths[key])
            sub, where = self.subgraphs[node.type]
            self.children[prefix] = _scope(prefix, where, sub.nodes, sub.links, parent=scope,
                                           instance=node, definition=sub, depth=scope.depth + 1)
        return self.children[prefix]

    def api_node(self, scope: _Scope, key: str, node: _UiNode) -> ApiNode:
        node_id = scope.prefix + key
        schema = self.schema(node.type)
        inputs: dict[str, Any] = {}
        if schema is not None:
            inputs = widget_values(schema, node.widgets_values, node_id, scope.node_paths[key])
        else:
            self.unknown.setdefault(node.type, []).append(node_id)
        for slot in node.inputs or ():
            if slot.link is None:
                continue
            name = slot.widget.name if slot.widget is not None and slot.widget.name else slot.name
            if not name:
                continue
            self.primitive = None
            found = self.resolve(scope, slot.link, _type_name(slot.type))
            if found is not None:
                inputs[name] = found[0]
                if self.primitive is not None:
                    self.notes.primitives.setdefault(self.primitive, []).append((node_id, name))
        title = node.title if node.title is not None else (
            schema.display_name if schema is not None and schema.display_name else node.type)
        return ApiNode(node.type, inputs, title)

    def warn_unknown(self) -> None:
        """One warning per node type without a schema: its widget values were not mapped."""
        for class_type, ids in self.unknown.items():
            shown = ", ".join(ids[:10]) + (f" and {len(ids) - 10} more" if len(ids) > 10 else "")
            self.notes.warnings.append(
                f"node type {class_type!r} (node{'s' if len(ids) > 1 else ''} {shown}) is not "
                f"known to comfyless: its widget values were dropped, only its links were kept")

    # -- link resolution -------------------------------------------------------------------
    def resolve(self, scope: _Scope, link_id: int, want: str) -> tuple[Any] | None:
        """(Link or constant,) for the value behind link `link_id`, or None if there is none.

        A loop, not recursion: long Reroute chains must not hit Python's recursion limit.
        """
        rec = scope.links.get(link_id)
        if rec is None:
            return None
        origin, slot = rec.origin_id, rec.origin_slot
        for _ in range(MAX_HOPS):
            if origin == SUBGRAPH_INPUT:
                step = self.from_instance_input(scope, slot)
            else:
                node = scope.nodes.get(origin)
                if node is None:
                    return None
                step = self.step(scope, origin, node, slot, want)
            if step is None or len(step) == 1:
                return step
            scope, link = step
            rec = scope.links.get(link) if link is not None else None
            if rec is None:
                return None
            origin, slot = rec.origin_id, rec.origin_slot
        raise InvalidWorkflow(f"a link in {scope.path} goes round in a loop of Reroutes or "
                              f"bypassed nodes", path=scope.path)

    def step(self, scope: _Scope, key: str, node: _UiNode, slot: int, want: str
             ) -> tuple[Any, ...] | None:
        """What output `slot` of `node` leads to: (value,), (scope, link id to follow) or None."""
        if node.type == "Reroute":
            inputs = node.inputs or []
            return (scope, inputs[0].link) if inputs else None
        if node.type == "PrimitiveNode":
            values = node.widgets_values
            if not (isinstance(values, list) and values):
                return None
            self.primitive = scope.prefix + key
            return (values[0],)
        if node.type in VIRTUAL_TYPES or node.mode == MUTED:
            return None
        if node.mode == BYPASS:
            index = _bypass_input(node, slot, want)
            return None if index is None else (scope, (node.inputs or [])[index].link)
        if node.type in self.subgraphs:
            inner = self.child(scope, key, node)
            rec = inner.into_output.get(slot)
            return None if rec is None else (inner, rec.id)
        return (Link(scope.prefix + key, self.current_slot(scope, key, node, slot)),)

    def current_slot(self, scope: _Scope, key: str, node: _UiNode, slot: int) -> int:
        schema = self.schema(node.type)
        if schema is None or schema.legacy_outputs is None:
            return slot
        saved = [(out.name, _type_name(out.type)) for out in node.outputs or ()]
        if not saved_with_legacy_outputs(schema, saved):
            return slot
        current = current_slot_of_legacy(schema, slot)
        if current is None:
            name = schema.legacy_outputs[slot].name if 0 <= slot < len(
                schema.legacy_outputs) else str(slot)
            raise InvalidWorkflow(
                f"node {scope.prefix}{key} ({node.type}) was saved with its old output layout "
                f"and a link uses its old output {slot} ('{name}'), which the current node no "
                f"longer has; re-link it", path=f"{scope.node_paths[key]}.outputs[{slot}]",
                node_id=scope.prefix + key)
        return current

    def from_instance_input(self, scope: _Scope, slot: int) -> tuple[Any, ...] | None:
        """Subgraph input `slot`: whatever feeds the instance, else the instance's widget value."""
        sub, instance, parent = scope.definition, scope.instance, scope.parent
        if sub is None or instance is None or parent is None or not 0 <= slot < len(sub.inputs):
            return None
        name = sub.inputs[slot].name
        for inp in instance.inputs or ():
            if name and name in (inp.name, inp.widget.name if inp.widget else None):
                if inp.link is not None:
                    return parent, inp.link
                break
        value = self.instance_widget(scope, slot)
        return None if value is None else value

    def instance_widget(self, scope: _Scope, slot: int) -> tuple[Any] | None:
        """The instance's saved widget value for subgraph input `slot`, if it has one.

        The instance has one widget per subgraph input that feeds a widget input inside, in
        subgraph-input order. A promoted seed's control value ("randomize") is saved after it
        only when the list is long enough to hold every control value: the published templates
        (73 instances with a promoted seed, package 0.1.123) save none.
        """
        values = scope.instance.widgets_values if scope.instance else None
        if not isinstance(values, list):
            return None
        extras = {index: extra for index in range(len(scope.definition.inputs))
                  if (extra := self.inner_widget_extra(scope, index)) is not None}
        with_controls = len(values) >= len(extras) + sum(extras.values())
        position = 0
        for index, extra in extras.items():
            if index == slot:
                return (values[position],) if position < len(values) else None
            position += 1 + (extra if with_controls else 0)
        return None

    def inner_widget_extra(self, scope: _Scope, index: int) -> int | None:
        """ui_extra_values of the widget input subgraph input `index` feeds (None: no widget)."""
        for rec in scope.from_input.get(index, ()):
            target = scope.nodes.get(rec.target_id)
            slots = (target.inputs or []) if target is not None else []
            if not 0 <= rec.target_slot < len(slots) or slots[rec.target_slot].widget is None:
                continue
            schema = self.schema(target.type)
            name = slots[rec.target_slot].widget.name
            if schema is not None and name in schema.input_map:
                return schema.input_map[name].ui_extra_values
            return 0
        return None


def _name_node(err: InvalidWorkflow, doc: dict) -> InvalidWorkflow:
    """Say which node a top-level `$.nodes[i]...` shape error is in (id and type)."""
    match = re.match(r"\$\.nodes\[(\d+)\]", err.path)
    nodes = doc.get("nodes")
    node = nodes[int(match[1])] if match and isinstance(nodes, list) else None
    if isinstance(node, dict) and type(node.get("id")) in (int, str):
        err.node_id = str(node["id"])
        err.message = f"node {node['id']} ({node.get('type')!s}): {err.message}"
        err.args = (err.message,)
    return err


_UI_DECODER = msgspec.json.Decoder(_UiDoc)


def decode_ui(data: bytes) -> _UiDoc | None:
    """One typed pass over JSON bytes; None if they are not a well-formed UI workflow."""
    try:
        return _UI_DECODER.decode(data)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None  # the general path finds the format, or the error and its path


def convert_ui(doc: dict | _UiDoc, registry: NodeRegistry, notes: LoadNotes | None = None
               ) -> ApiWorkflow:
    """The API workflow of a UI-format (litegraph 0.4 or 1.0) workflow.

    `notes`, if given, receives the primitive-node targets and the warnings (LoadNotes).
    """
    if isinstance(doc, _UiDoc):
        ui = doc
    else:
        try:
            ui = msgspec.convert(doc, _UiDoc)
        except msgspec.ValidationError as exc:
            raise _name_node(invalid_from(exc, "$"), doc) from None
    subgraphs: dict[str, tuple[_Subgraph, str]] = {}
    _collect_subgraphs(ui.definitions, "$.definitions", subgraphs)
    converter = _Converter(registry, subgraphs, notes if notes is not None else LoadNotes())
    converter.emit(_scope("", "$", ui.nodes, ui.links))
    converter.warn_unknown()
    workflow = converter.out
    for node in workflow.values():  # §6 step 5: links to nodes not emitted are dropped
        for name in [n for n, v in node.inputs.items()
                     if isinstance(v, Link) and v.node_id not in workflow]:
            del node.inputs[name]
    return workflow
