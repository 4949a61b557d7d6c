"""Declarative node schemas: inputs, outputs and flags, frozen and self-checked.

A node is data plus one function (`Node.schema` + `Node.execute`). The schema tells the
validator, the cache, the UI-format converter and `comfyless nodes` everything they need.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field
from typing import Any, ClassVar

from .errors import SchemaError
from .types import IOType


class _NoDefault:
    def __repr__(self) -> str:
        return "NO_DEFAULT"


NO_DEFAULT: Any = _NoDefault()

# The folder kinds files are written to (engine/paths.py); `Input.save_to` names one.
SAVE_FOLDERS = ("output", "temp", "datasets")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


@dataclass(frozen=True)
class Input:
    """One input socket/widget, in UI widget order.

    `choices_from` names a model/input folder kind ("checkpoints", "loras", "input", ...): the
    choices are the files found there, resolved at validation time; `extra_choices` are fixed
    values added after them (e.g. "[None]"). `control_after_generate` marks INT inputs after
    which the UI stores an extra control value in widgets_values (seed inputs always have it).

    `added_in`: when ComfyUI gave the node this input (the date of the change in the spec's
    history tables, e.g. "2026-01-25"). A workflow saved before then leaves it out; it then
    takes `default` (required), with one log line, instead of failing as a missing input.
    `save_to`: this STRING names a file prefix or folder to be written under that folder kind
    ("output", "temp", "datasets"); validation refuses one that would leave the folder.
    `lazy`: a linked value is computed only if the node's `check_lazy_status` hook asks for it
    (ComfyUI's lazy inputs); until then, and if never asked, the node sees None there.
    """

    name: str
    type: IOType
    _: KW_ONLY
    default: Any = NO_DEFAULT
    min: float | None = None
    max: float | None = None
    step: float | None = None
    round: float | None = None
    choices: tuple[Any, ...] | None = None
    choices_from: str | None = None
    choices_dirs_only: bool = False
    extra_choices: tuple[str, ...] = ()
    optional: bool = False
    force_input: bool = False
    multiline: bool = False
    control_after_generate: bool = False
    image_upload: bool = False
    display_name: str | None = None
    tooltip: str = ""
    added_in: str | None = None
    save_to: str | None = None
    lazy: bool = False

    @property
    def is_widget(self) -> bool:
        """True if the UI stores a value for this input in widgets_values."""
        return self.type.widget and not self.force_input

    @property
    def ui_extra_values(self) -> int:
        """How many frontend-only values follow this widget's value in widgets_values."""
        if not self.is_widget:
            return 0
        if self.type.name == "INT" and (
            self.control_after_generate or self.name in ("seed", "noise_seed")
        ):
            return 1
        if self.type.name == "COMBO" and self.control_after_generate:
            return 2
        if self.image_upload:
            return 1
        return 0


@dataclass(frozen=True)
class Output:
    """One output slot; `is_list` outputs emit a list that consumers receive item by item."""

    name: str
    type: IOType
    _: KW_ONLY
    is_list: bool = False
    tooltip: str = ""


@dataclass(frozen=True)
class NodeSchema:
    """Everything about a node except how it computes.

    `legacy_outputs`: an older output layout of the same class_type (e.g. TrainLoraNode's
    `(model, lora, loss_map, steps)`); the engine maps links made for it onto `outputs`.
    `older_widget_layouts`: per older version of the node, the inputs it did not have yet
    (its saved widgets_values are shorter); they get their defaults (engine/legacy.py).
    `hidden`: ComfyUI's hidden inputs (`"prompt"`, `"extra_pnginfo"`, `"unique_id"`, ...), as
    /object_info lists them; by default `("prompt", "extra_pnginfo")` for an output node and
    none otherwise (ComfyUI adds those two to every output node).
    """

    class_type: str
    _: KW_ONLY
    inputs: tuple[Input, ...] = ()
    outputs: tuple[Output, ...] = ()
    display_name: str | None = None
    category: str = "comfyless"
    description: str = ""
    output_node: bool = False
    not_idempotent: bool = False
    is_input_list: bool = False
    experimental: bool = False
    deprecated: bool = False
    legacy_outputs: tuple[Output, ...] | None = None
    older_widget_layouts: tuple[tuple[str, ...], ...] = ()
    hidden: tuple[str, ...] | None = None
    input_map: dict[str, Input] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_map", {i.name: i for i in self.inputs})
        if self.hidden is None:
            object.__setattr__(self, "hidden", _OUTPUT_NODE_HIDDEN if self.output_node else ())
        problems = list(_schema_problems(self))
        if problems:
            raise SchemaError(f"{self.class_type}: " + "; ".join(problems))

    def input(self, name: str) -> Input:
        return self.input_map[name]


_OUTPUT_NODE_HIDDEN = ("prompt", "extra_pnginfo")  # what ComfyUI gives every output node


def _schema_problems(schema: NodeSchema):
    names = [i.name for i in schema.inputs]
    if len(set(names)) != len(names):
        yield f"duplicate input names in {names}"
    out_names = [o.name for o in schema.outputs]
    if len(set(out_names)) != len(out_names):
        yield f"duplicate output names in {out_names}"
    for lacks in schema.older_widget_layouts:
        unknown = sorted(set(lacks) - set(names))
        if unknown:
            yield f"older_widget_layouts names unknown inputs {unknown}"
    for inp in schema.inputs:
        if inp.type.name == "COMBO" and inp.choices is None and inp.choices_from is None:
            yield f"input {inp.name}: COMBO needs choices or choices_from"
        if inp.added_in is not None and inp.default is NO_DEFAULT:
            yield f"input {inp.name}: added_in needs a default (what older workflows get)"
        if inp.added_in is not None and not _DATE.fullmatch(inp.added_in):
            yield f"input {inp.name}: added_in {inp.added_in!r} is not a YYYY-MM-DD date"
        if inp.save_to is not None and (inp.type.name != "STRING"
                                        or inp.save_to not in SAVE_FOLDERS):
            yield (f"input {inp.name}: save_to needs a STRING input and one of "
                   f"{', '.join(SAVE_FOLDERS)}")
        if inp.default is NO_DEFAULT:
            continue
        if inp.min is not None and inp.default < inp.min:
            yield f"input {inp.name}: default {inp.default} < min {inp.min}"
        if inp.max is not None and inp.default > inp.max:
            yield f"input {inp.name}: default {inp.default} > max {inp.max}"
        allowed = (inp.choices or ()) + inp.extra_choices
        if inp.choices is not None and inp.default not in allowed:
            yield f"input {inp.name}: default {inp.default!r} not in choices"


@dataclass
class Result:
    """What `execute` may return instead of a bare tuple: values plus a UI dict (saved files)."""

    values: tuple[Any, ...]
    ui: dict[str, list[Any]] = field(default_factory=dict)


class Node:
    """Base of every node: a schema and a static `execute(ctx, **inputs) -> tuple | Result`.

    Shipped nodes name their execute instead (`execute = implemented_by("module:function")`),
    so the module declaring the schema never imports torch.

    Optional hooks:
      check(**constants) -> dict[input_name, message]: cross-input validation on constants
        (linked inputs arrive as None), run before anything executes.
      fingerprint(**constants) -> hashable: joins the cache key (e.g. a file's mtime).
      check_lazy_status(**inputs) -> list[input_name] | None: called at run time, once per
        item like execute, before execute; lazy inputs not computed yet arrive as None. The
        named ones are computed (their producers run) and the hook is asked again, until it
        names nothing new; lazy inputs never named stay None and their producers never run.
      ui_widgets(values: list) -> dict[input_name, value] | None: maps the node's saved UI
        widgets_values itself, for nodes whose widget count depends on a value (a V3
        DynamicCombo); None falls back to the schema's fixed layout.
    """

    schema: ClassVar[NodeSchema]
    execute: ClassVar[Callable[..., Any]]
    check: ClassVar[Callable[..., dict[str, str]] | None] = None
    fingerprint: ClassVar[Callable[..., Any] | None] = None
    check_lazy_status: ClassVar[Callable[..., list[str] | None] | None] = None
    ui_widgets: ClassVar[Callable[[list[Any]], dict[str, Any] | None] | None] = None


class Implementation:
    """A node's `execute` that lives in another module, imported on its first call.

    Node modules declare schemas only; the code that needs torch sits in the module named
    here, so importing the node catalogue (and validating a workflow) never loads it.
    Callable as `Node.execute(ctx, **inputs)`; `inspect.signature` gives the target's.
    """

    __slots__ = ("target", "_function")

    def __init__(self, target: str) -> None:
        module, _, name = target.partition(":")
        if not module or not name.isidentifier() or module.startswith("."):
            raise SchemaError(f"implementation {target!r}: expected 'package.module:function'")
        self.target = target
        self._function: Callable[..., Any] | None = None

    def resolve(self) -> Callable[..., Any]:
        """Import the target module (once) and return the function."""
        if self._function is None:
            module, _, name = self.target.partition(":")
            function = getattr(importlib.import_module(module), name, None)
            if not callable(function):
                raise SchemaError(f"implementation {self.target!r}: {module} has no "
                                  f"function {name!r}")
            self._function = function
        return self._function

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.resolve()(*args, **kwargs)

    @property
    def __signature__(self) -> inspect.Signature:  # imports the target
        return inspect.signature(self.resolve())

    def __repr__(self) -> str:
        return f"implemented_by({self.target!r})"


def implemented_by(target: str, package: str | None = None) -> Implementation:
    """`execute = implemented_by("comfyless.nodes.impl.latent:vae_encode")`: the node's code,
    loaded at execute time. A target starting with "." is relative to `package`
    (importlib's rule), e.g. `implemented_by(".latent:vae_encode", "comfyless.nodes.impl")`.
    """
    module, sep, name = target.partition(":")
    if module.startswith("."):
        if not package:
            raise SchemaError(f"implementation {target!r}: a relative module needs a package")
        dots = len(module) - len(module.lstrip("."))
        base = package.rsplit(".", dots - 1)[0] if dots > 1 else package
        module = f"{base}.{module[dots:]}" if module[dots:] else base
    return Implementation(f"{module}{sep}{name}")


class NodeRegistry:
    """class_type -> Node class; a duplicate class_type is a SchemaError."""

    def __init__(self, nodes: list[type[Node]] | tuple[type[Node], ...] = ()) -> None:
        self._nodes: dict[str, type[Node]] = {}
        for node in nodes:
            self.register(node)

    def register(self, node: type[Node]) -> type[Node]:
        class_type = node.schema.class_type
        if class_type in self._nodes and self._nodes[class_type] is not node:
            raise SchemaError(f"duplicate class_type {class_type!r}")
        self._nodes[class_type] = node
        return node

    def copy(self) -> NodeRegistry:
        return NodeRegistry(tuple(self._nodes.values()))

    def get(self, class_type: str) -> type[Node] | None:
        return self._nodes.get(class_type)

    def __getitem__(self, class_type: str) -> type[Node]:
        return self._nodes[class_type]

    def __contains__(self, class_type: object) -> bool:
        return class_type in self._nodes

    def __iter__(self):
        return iter(sorted(self._nodes))

    def __len__(self) -> int:
        return len(self._nodes)
