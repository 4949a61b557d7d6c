"""Check a whole workflow before anything runs, collecting every error at once.

`check_workflow` returns a `Checked` plan: the errors (never raised mid-way) plus, per node that
will run, its converted constants and resolved links, and the execution order. `validate` is
the errors alone; `raise_if_invalid` turns a non-empty list into one `WorkflowInvalid` with
ComfyUI's `class_type`/`dependent_outputs` fields filled in.

What is checked (as ComfyUI's validate_prompt, but reporting all problems, not the first): every
node's class_type is known (else the nearest known names); there is an output node; then, for
the output nodes and their ancestors only (nothing else ever runs): required inputs present,
links are `[id, slot]` and point at an existing node and output slot (legacy output layouts
resolved by the consumer's type), linked types compatible, constants convertible and within
min/max/choices (file choices listed from the base dir, links followed; save prefixes may not
leave their folder; inputs ComfyUI added later take their default), the node's own `check` hook,
and no dependency cycle. Inputs present in the workflow but not declared by the schema are
ignored, as in ComfyUI. When a class_type is unknown, or there is no output node, the workflow
cannot run anyway and which nodes would run is unknowable (the unknown node may be the output):
then every node is checked, so that all mistakes come out in one pass. One deliberate
difference: ComfyUI runs the valid outputs of a partly invalid prompt; comfyless refuses the
whole workflow (pass `targets` to run a subset), so a half-run training job never looks like a
success.

Workflows are duck-typed: a mapping id -> node with `.class_type`, `.inputs` and optional
`.title`; a link is any value with `.node_id` and `.slot` (workflow.py's `Link`, `link_of`).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..files import UnsafePath, check_write_target
from ..typesys.check import MATCH_TYPE, check_value, compatible, nearest
from ..typesys.errors import (
    BadLink,
    CustomValidationFailed,
    DependencyCycle,
    InvalidValue,
    MissingInput,
    NoOutputs,
    NotInChoices,
    TypeMismatch,
    UnknownNodeType,
    WorkflowError,
    WorkflowInvalid,
)
from ..typesys.schema import Input, Node, NodeRegistry, NodeSchema
from . import graph
from .legacy import added_later_default, resolve_slot
from .paths import BasePaths, invalid_value
from .workflow import BadLink as BadLinkValue
from .workflow import link_of


@dataclass
class PlannedNode:
    """One node that will run: constants converted, links resolved to (producer id, slot)."""

    node_id: str
    class_type: str
    node: type[Node]
    constants: dict[str, Any] = field(default_factory=dict)
    links: dict[str, tuple[str, int]] = field(default_factory=dict)


@dataclass
class Checked:
    """The outcome of `check_workflow`; `order` is empty when there are errors.

    `deps`: node id -> producers it links to; `strong_deps`: the same for the planned nodes
    without the links into lazy inputs (what a run must compute first; execute.py).
    """

    errors: list[WorkflowError]
    nodes: dict[str, PlannedNode]
    outputs: list[str]
    order: list[str]
    deps: dict[str, list[str]]
    class_types: dict[str, str]
    strong_deps: dict[str, list[str]] = field(default_factory=dict)


def _where(node_id: str, class_type: str) -> str:
    return f"node {node_id} ({class_type})"


def _locate(err: WorkflowError, prefix: str) -> WorkflowError:
    """Prefix an error's message with the node it concerns (check_value only names the input)."""
    err.message = f"{prefix} {err.message}"
    err.args = (err.message,)
    return err


class _Checker:
    """One validation pass; state: the workflow, the registry, folder listings (memoised)."""

    def __init__(self, workflow: Mapping[str, Any], registry: NodeRegistry,
                 paths: BasePaths | None) -> None:
        self.workflow = workflow
        self.registry = registry
        self.paths = paths
        self.listings: dict[tuple[str, bool], tuple[str, ...]] = {}
        self.errors: list[WorkflowError] = []

    # -- class types --------------------------------------------------------------------
    def known_nodes(self) -> dict[str, type[Node]]:
        """Node id -> class of every node whose class_type is known; the others are errors."""
        known: dict[str, type[Node]] = {}
        names: list[str] | None = None
        for node_id in sorted(self.workflow, key=graph.node_order):
            api_node = self.workflow[node_id]
            class_type = getattr(api_node, "class_type", None)
            cls = self.registry.get(class_type) if isinstance(class_type, str) else None
            if cls is not None:
                known[node_id] = cls
                continue
            if names is None:
                names = list(self.registry)
            self.errors.append(self._unknown(node_id, class_type, api_node, names))
        return known

    @staticmethod
    def _unknown(node_id: str, class_type: Any, api_node: Any, names: list[str]) -> WorkflowError:
        title = getattr(api_node, "title", None)
        if not isinstance(class_type, str) or not class_type:
            return UnknownNodeType(f"node {node_id} has no class_type", node_id=node_id,
                                   class_type=None, node_title=title)
        near = nearest(class_type, names)
        hint = f"; did you mean {', '.join(near)}?" if near else ""
        return UnknownNodeType(
            f"node {node_id}: unknown class_type {class_type!r} (the node may not be supported "
            f"by comfyless){hint}",
            node_id=node_id, class_type=class_type, node_title=title, suggestions=near,
        )

    # -- inputs -------------------------------------------------------------------------
    def check_node(self, node_id: str, cls: type[Node], known: dict[str, type[Node]]
                   ) -> PlannedNode:
        schema = cls.schema
        planned = PlannedNode(node_id, schema.class_type, cls)
        inputs = getattr(self.workflow[node_id], "inputs", None) or {}
        prefix = _where(node_id, schema.class_type)
        for inp in schema.inputs:
            if inp.name not in inputs:
                self._absent(prefix, planned, inp)
                continue
            value = inputs[inp.name]
            if isinstance(value, BadLinkValue):
                self.errors.append(BadLink(
                    f"{prefix} input '{inp.name}': a list is a link and must be "
                    f"[\"<node id>\", <output index>], got {value.value!r}; wrap a list "
                    f"constant as {{\"__value__\": [...]}}", node_id=node_id,
                    input_name=inp.name, received_value=value.value))
                continue
            link = link_of(value)
            if link is not None:
                resolved = self._check_link(prefix, node_id, inp, link, known)
                if resolved is not None:
                    planned.links[inp.name] = resolved
            else:
                ok, converted = self._check_constant(prefix, node_id, schema, inp, value)
                if ok:
                    planned.constants[inp.name] = converted
        self._custom_check(prefix, planned, inputs)
        return planned

    def _absent(self, prefix: str, planned: PlannedNode, inp: Input) -> None:
        """An input the workflow leaves out: fine if optional; the default if ComfyUI added
        it after the workflow was saved (`added_in`); else required_input_missing."""
        if inp.optional:
            return
        added_later, default = added_later_default(inp, prefix)
        if added_later:
            planned.constants[inp.name] = default
            return
        self.errors.append(MissingInput(
            f"{prefix} input '{inp.name}': required input is missing "
            f"(expected {inp.type.name})", node_id=planned.node_id, input_name=inp.name))

    def _check_link(self, prefix: str, node_id: str, inp: Input, link: tuple[str, int],
                    known: dict[str, type[Node]]) -> tuple[str, int] | None:
        src_id, slot = link
        where = {"node_id": node_id, "input_name": inp.name}
        if src_id not in self.workflow:
            self.errors.append(BadLink(
                f"{prefix} input '{inp.name}': linked to node {src_id}, which does not exist",
                linked_node=[src_id, slot], **where))
            return None
        src_cls = known.get(src_id)
        if src_cls is None:
            return None  # unknown class_type, already reported on that node
        src = src_cls.schema
        resolved, problem = resolve_slot(src, slot, inp.type.name)
        if resolved is None:
            self.errors.append(BadLink(
                f"{prefix} input '{inp.name}': node {src_id} ({src.class_type}) {problem}",
                linked_node=[src_id, slot], **where))
            return None
        received = src.outputs[resolved].type.name
        if not compatible(received, inp.type.name):
            self.errors.append(TypeMismatch(
                f"{prefix} input '{inp.name}': expected {inp.type.name}, got {received} "
                f"from node {src_id} output {slot}",
                received_type=received, expected_type=inp.type.name,
                linked_node=[src_id, slot], **where))
            return None
        return src_id, resolved

    def _check_constant(self, prefix: str, node_id: str, schema: NodeSchema, inp: Input,
                        value: Any) -> tuple[bool, Any]:
        if inp.type.name in ("*", MATCH_TYPE):  # any type: ComfyUI passes the value unchanged
            return True, value
        if _fits_union(inp.type.name, value):  # e.g. FLOAT,INT,BOOLEAN: passed unchanged
            return True, value
        if not inp.type.widget:
            self.errors.append(InvalidValue(
                f"{prefix} input '{inp.name}': expected a link from a {inp.type.name} output, "
                f"got the constant {value!r}", node_id=node_id, input_name=inp.name,
                received_value=value))
            return False, value
        if schema.is_input_list and isinstance(value, list):
            results = [self._check_one(prefix, node_id, inp, v) for v in value]
            return all(ok for ok, _ in results), [v for _, v in results]
        return self._check_one(prefix, node_id, inp, value)

    def _check_one(self, prefix: str, node_id: str, inp: Input, value: Any) -> tuple[bool, Any]:
        # A file choice is a name from the folder's listing, which follows links but never
        # holds `..` or an absolute path: those are simply not in the list (value_not_in_list).
        # Without paths (a build-time check, `check_input`) no folder is listed: file choices
        # are only converted to str, save targets not checked.
        choices = None
        if inp.choices_from is not None and self.paths is not None:
            choices = self._listing(inp) + inp.extra_choices
        converted, err = check_value(inp, value, node_id=node_id, choices=choices)
        if isinstance(err, NotInChoices) and inp.choices_from is not None:
            err = self._missing_file(inp, converted, node_id, choices or ())
        if (err is None and inp.save_to is not None and isinstance(converted, str)
                and self.paths is not None):
            err = self._unwritable(inp, converted, node_id)
        if err is not None:
            self.errors.append(_locate(err, prefix))
            return False, converted
        return True, converted

    def _missing_file(self, inp: Input, name: Any, node_id: str, choices: tuple[str, ...]
                      ) -> WorkflowError:
        what = "folder" if inp.choices_dirs_only else "file"
        folders = ", ".join(str(f) for f in self.paths.folders(inp.choices_from))
        near = difflib.get_close_matches(str(name), choices, n=3, cutoff=0.5)
        shown = ", ".join(near or choices[:10]) or "none"
        text = str(name)
        escapes = text.startswith(("/", "\\")) or ".." in text.replace("\\", "/").split("/") \
            or (len(text) > 1 and text[1] == ":")
        why = (" (names are relative to the folder: no '..', not absolute)" if escapes else "")
        return NotInChoices(
            f"input '{inp.name}': {what} {name!r} not found in {folders}{why} "
            f"({'nearest' if near else 'present'}: {shown})",
            node_id=node_id, input_name=inp.name, received_value=name)

    def _listing(self, inp: Input) -> tuple[str, ...]:
        key = (inp.choices_from, inp.choices_dirs_only)
        if key not in self.listings:
            paths = self.paths
            if inp.choices_dirs_only:
                found = paths.list_dirs(inp.choices_from)
            else:
                found = paths.list_files(inp.choices_from)
            self.listings[key] = tuple(found)
        return self.listings[key]

    def _unwritable(self, inp: Input, name: str, node_id: str) -> WorkflowError | None:
        """A save prefix/folder that would leave its folder (`..`, absolute, a link out) is
        refused now, not after the training it would have saved."""
        root = self.paths.folders(inp.save_to)[0]
        try:
            check_write_target(root, name, node_id=node_id, input_name=inp.name)
        except UnsafePath as exc:
            err = invalid_value(exc)
            err.message = (f"input '{inp.name}': {err.message} (checked before running, so "
                           f"nothing is computed only to be refused when saving)")
            err.args = (err.message,)
            return err
        return None

    def _custom_check(self, prefix: str, planned: PlannedNode, inputs: Mapping[str, Any]) -> None:
        check = getattr(planned.node, "check", None)
        if check is None:
            return
        args = {name: planned.constants.get(name) for name in inputs
                if name in planned.node.schema.input_map}
        try:
            problems = check(**args) or {}
        except Exception as exc:  # a bug in the hook must still come out as a validation error
            problems = {None: f"check failed: {type(exc).__name__}: {exc}"}
        for name, message in problems.items():
            self.errors.append(CustomValidationFailed(
                f"{prefix} input '{name}': {message}" if name else f"{prefix}: {message}",
                node_id=planned.node_id, input_name=name))


def _deps(workflow: Mapping[str, Any], skip: Mapping[str, frozenset[str]] | None = None
          ) -> dict[str, list[str]]:
    """node id -> producers it links to, leaving out the inputs named in `skip[node id]`."""
    deps: dict[str, list[str]] = {}
    for node_id, api_node in workflow.items():
        inputs = getattr(api_node, "inputs", None) or {}
        skipped = skip.get(node_id, frozenset()) if skip else frozenset()
        found = []
        for name, value in inputs.items():
            if name in skipped:
                continue
            link = link_of(value)
            if link is not None and link[0] in workflow:
                found.append(link[0])
        deps[node_id] = found
    return deps


def check_workflow(workflow: Mapping[str, Any], registry: NodeRegistry,
                   paths: BasePaths | None = None, *,
                   targets: list[str] | None = None) -> Checked:
    """Validate everything; return the errors and, if none, the runnable plan.

    `targets` restricts the run to those output nodes (ComfyUI's partial_execution_targets).
    """
    checker = _Checker(workflow, registry, paths if paths is not None else BasePaths.resolve())
    known = checker.known_nodes()
    deps = _deps(workflow)
    outputs = _output_nodes(checker, known, targets)
    needed = graph.ancestors_of(outputs, deps)
    # Unknown class_type or no output: nothing runs, so check every node (see the docstring).
    checked = set(workflow) if checker.errors else needed
    nodes: dict[str, PlannedNode] = {}
    for node_id in sorted(checked, key=graph.node_order):
        if node_id in known:
            planned = checker.check_node(node_id, known[node_id], known)
            if node_id in needed:
                nodes[node_id] = planned
    order, leftover = graph.topological_order(checked, deps)
    for cycle in graph.find_cycles(leftover, deps) if leftover else ():
        text = " -> ".join(f"{n} ({_class_type(workflow, n)})" for n in cycle)
        for member in sorted(set(cycle), key=graph.node_order):
            checker.errors.append(DependencyCycle(
                f"node {member} ({_class_type(workflow, member)}) is part of a dependency cycle: "
                f"{text}", node_id=member, cycle=cycle))
    if checker.errors:
        order = []
    class_types = {n: _class_type(workflow, n) for n in workflow}
    lazy = {n: _lazy_inputs(p.node.schema) for n, p in nodes.items()}
    strong = _deps(workflow, lazy)
    strong_deps = {n: [d for d in strong[n] if d in nodes] for n in nodes}
    return Checked(checker.errors, nodes, outputs, order, deps, class_types, strong_deps)


def _lazy_inputs(schema: NodeSchema) -> frozenset[str]:
    return frozenset(inp.name for inp in schema.inputs if inp.lazy)


def _class_type(workflow: Mapping[str, Any], node_id: str) -> str:
    return str(getattr(workflow[node_id], "class_type", None))


def _output_nodes(checker: _Checker, known: dict[str, type[Node]],
                  targets: list[str] | None) -> list[str]:
    outputs = [n for n, cls in known.items() if cls.schema.output_node]
    if targets is not None:
        wanted = set(targets)
        outputs = [n for n in outputs if n in wanted]
    if not outputs:
        checker.errors.append(NoOutputs(
            "workflow has no output node (a node such as SaveImage or SaveLoRA that saves a "
            "result); nothing would run"))
    return sorted(outputs, key=graph.node_order)


def check_input(workflow: Mapping[str, Any], registry: NodeRegistry, node_id: str,
                class_type: str, name: str, value: Any) -> list[WorkflowError]:
    """The validator's own checks on one input value of node `node_id`, as the scripting API
    (api.Workflow) runs them when a node is added: a link's producer and output slot and its
    type, a constant's type, min/max and fixed choices; errors worded as `validate` words them.

    `workflow` holds the nodes built so far (a link's producer must be among them). Not
    checked here, but by `validate`: missing inputs, file choices (the folder is only known
    then), save targets, the node's `check` hook, cycles, output nodes.
    """
    checker = _Checker(workflow, registry, None)
    cls = registry[class_type]
    inp = cls.schema.input_map[name]
    prefix = _where(node_id, class_type)
    link = link_of(value)
    if link is not None:
        # only the producer's class is looked at: building a script stays linear in its size
        producer = workflow.get(link[0])
        src_cls = registry.get(getattr(producer, "class_type", None))
        known = {} if src_cls is None else {link[0]: src_cls}
        checker._check_link(prefix, node_id, inp, link, known)
    else:
        checker._check_constant(prefix, node_id, cls.schema, inp, value)
    return checker.errors


def validate(workflow: Mapping[str, Any], registry: NodeRegistry,
             paths: BasePaths | None = None, *, targets: list[str] | None = None
             ) -> list[WorkflowError]:
    """Every validation error of `workflow` (empty list: it can run)."""
    return check_workflow(workflow, registry, paths, targets=targets).errors


def invalid(checked: Checked) -> WorkflowInvalid:
    """The aggregate error for a checked workflow, with class_types and dependent_outputs."""
    exc = WorkflowInvalid(checked.errors, {n: checked.class_types[n] for n in checked.class_types})
    dependents = graph.dependent_outputs(checked.outputs, checked.deps)
    exc.dependent_outputs = {n: dependents.get(n, []) for n in checked.class_types}
    return exc


def raise_if_invalid(checked: Checked) -> None:
    """Raise one WorkflowInvalid carrying every error, if there are any."""
    if checked.errors:
        raise invalid(checked)


# the Python values a constant may have for each primitive member of a multi-type socket
_PRIMITIVE_VALUES = {"INT": (int,), "FLOAT": (int, float), "BOOLEAN": (bool,), "STRING": (str,)}


def _fits_union(type_name: str, value: Any) -> bool:
    """A constant on a multi-type socket (comma-joined names, e.g. ComfyMathExpression's
    FLOAT,INT,BOOLEAN values) fits when it is a value of one of its primitive members; ComfyUI
    passes such constants through unchanged (a subgraph's promoted widget sends them)."""
    if "," not in type_name:
        return False
    for member in type_name.split(","):
        kinds = _PRIMITIVE_VALUES.get(member.strip())
        if kinds and isinstance(value, kinds) and (member.strip() == "BOOLEAN"
                                                   or not isinstance(value, bool)):
            return True
    return False
