"""Build and run workflows in Python: `Graph`, the code form of a ComfyUI workflow.

    g = Graph()
    ckpt = g.node("CheckpointLoaderSimple", ckpt_name="sd15.safetensors")
    enc = g.node("CLIPTextEncode", text="a cat", clip=ckpt.out("CLIP"))
    ...
    errors = g.validate()          # [] when it can run
    results = g.run(progress=True) # RunResults: output node id -> its UI dict, and objects:
                                   # results.node(save).images / .pil() / .files, .loss, .lora
    api_json = g.to_api()          # ComfyUI API format, loadable by ComfyUI and by Graph.load

Widget inputs left out take their schema default; `handle.out(...)` returns a `Link` (the
engine's one link type, exported here); a node handle with exactly one output can be passed
where a link is expected. Everything the engine accepts is checked by the same
validator as `comfyless run`; typos in class_type or input names are caught when the node is
added.

`Workflow` is a Graph that node functions (comfyless.nodes.api) add to inside a `with` block;
they return `Socket`s, typed handles on outputs. A Workflow also checks every input when it is
given (a link's type, a constant's type, range and fixed choices), raising the validator's own
error at the call; what needs the whole graph or the base dir (missing inputs, files, save
targets, the node's cross-input `check`, cycles) is left to `validate()`.
"""

from __future__ import annotations

import enum
import json
import keyword
import os
import re
from collections import namedtuple
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from .engine.overrides import unknown_input_hint
from .engine.workflow import Link, link_of, to_api_json
from .typesys.check import nearest
from .typesys.errors import InvalidValue, UnknownNodeType, WorkflowError
from .typesys.schema import NO_DEFAULT, NodeRegistry

if TYPE_CHECKING:
    from .results import RunResults

__all__ = ["Graph", "Link", "NodeHandle", "Socket", "Workflow", "current_workflow",
           "socket_type", "unknown_input_hint"]


@dataclass
class NodeHandle:
    """A node in a Graph: its id, class_type and inputs (constants or Links)."""

    id: str
    class_type: str
    inputs: dict[str, Any]
    title: str | None = None
    _graph: Graph | None = field(default=None, repr=False, compare=False)

    def out(self, which: str | int = 0) -> Link:
        """A link to an output, by index or by name (or type name, if unique)."""
        outputs = self._graph._schema(self.class_type).outputs
        if isinstance(which, int) and not isinstance(which, bool):
            if 0 <= which < len(outputs):
                return Link(self.id, which)
        else:
            for match in (lambda o: o.name == which, lambda o: o.type.name == which):
                found = [i for i, o in enumerate(outputs) if match(o)]
                if len(found) == 1:
                    return Link(self.id, found[0])
        names = ", ".join(f"{i}:{o.name}" for i, o in enumerate(outputs)) or "none"
        raise InvalidValue(f"node {self.id} ({self.class_type}) has no output {which!r} "
                           f"(outputs: {names})", node_id=self.id)

    def set(self, **inputs: Any) -> NodeHandle:
        """Change inputs after the node was added; returns the handle."""
        self.inputs.update(self._graph._inputs(self.id, self.class_type, inputs))
        return self


class Graph:
    """A workflow under construction; ids are "1", "2", ... unless given with `_id`."""

    def __init__(self, registry: NodeRegistry | None = None) -> None:
        if registry is None:
            from .nodes import REGISTRY as registry  # noqa: N811
        self.registry = registry
        self.nodes: dict[str, NodeHandle] = {}
        self.last_run = None  # the RunResult of the latest run()

    # -- building ---------------------------------------------------------------------------
    def node(self, class_type: str, /, *, _id: str | None = None, _title: str | None = None,
             **inputs: Any) -> NodeHandle:
        """Add a node; widget inputs not given take their defaults."""
        node_id = str(_id) if _id is not None else self._next_id()
        if node_id in self.nodes:
            raise InvalidValue(f"node id {node_id!r} is already used", node_id=node_id)
        schema = self._schema(class_type, node_id)
        values = {i.name: i.default for i in schema.inputs
                  if not i.optional and i.is_widget and i.default is not NO_DEFAULT}
        values.update(self._inputs(node_id, class_type, inputs))
        handle = NodeHandle(node_id, class_type, values, _title, self)
        self.nodes[node_id] = handle
        return handle

    def _next_id(self) -> str:
        numbers = [int(n) for n in self.nodes if n.isdigit()]
        return str(max(numbers, default=0) + 1)

    def _schema(self, class_type: str, node_id: str | None = None):
        cls = self.registry.get(class_type)
        if cls is None:
            near = nearest(class_type, self.registry)
            hint = f"; did you mean {', '.join(near)}?" if near else ""
            raise UnknownNodeType(f"unknown class_type {class_type!r}{hint}", node_id=node_id,
                                  class_type=class_type, suggestions=near)
        return cls.schema

    def _inputs(self, node_id: str, class_type: str, inputs: dict[str, Any]) -> dict[str, Any]:
        schema = self._schema(class_type, node_id)
        result = {}
        for name, value in inputs.items():
            if name not in schema.input_map:
                raise InvalidValue(f"node {node_id} ({class_type}) has no input {name!r}"
                                   f"{unknown_input_hint(name, schema)}",
                                   node_id=node_id, input_name=name)
            if isinstance(value, NodeHandle):
                value = self._single_output(value, node_id, name)
            elif isinstance(value, Socket):
                value = self._own_socket(value, node_id, name)
            elif isinstance(value, enum.Enum):  # a generated choice enum: its string
                value = value.value
            result[name] = value
        return result

    def _single_output(self, handle: NodeHandle, node_id: str, name: str) -> Link:
        outputs = self._schema(handle.class_type).outputs
        if len(outputs) != 1:
            raise InvalidValue(
                f"node {node_id} input {name!r}: node {handle.id} ({handle.class_type}) has "
                f"{len(outputs)} outputs; pick one with .out(name)",
                node_id=node_id, input_name=name)
        return Link(handle.id, 0)

    def _own_socket(self, socket: Socket, node_id: str, name: str) -> Link:
        if socket._graph is not None and socket._graph is not self:
            raise InvalidValue(f"node {node_id} input {name!r}: {socket} belongs to another "
                               f"workflow", node_id=node_id, input_name=name)
        return socket.link

    # -- checking and running ---------------------------------------------------------------
    def validate(self, base_dir: str | os.PathLike | None = None) -> list[WorkflowError]:
        """Every validation error (empty: the graph can run)."""
        from .engine.paths import BasePaths
        from .engine.validate import validate

        return validate(self.nodes, self.registry, BasePaths.resolve(base_dir))

    def run(self, base_dir: str | os.PathLike | None = None, *, progress: bool | str = False,
            ctx=None, listeners=(), cache=None) -> RunResults:
        """Validate and run; raises WorkflowInvalid (every error), NodeExecutionError etc.

        `progress=True` shows what `comfyless run` shows on stderr (a line per node, a bar per
        sampler or trainer: tqdm in a terminal, a text bar in Jupyter or a log); "text" or
        "tqdm" picks the bar. The answer is a `RunResults` (comfyless/results.py): still the
        dict output node id -> its UI dict, plus images, files, LoRA and loss as objects.
        """
        from .engine.context import RunContext
        from .engine.execute import run_workflow
        from .results import RunResults

        display = None
        if progress:
            from .progress import ProgressDisplay

            display = ProgressDisplay(bar=progress if isinstance(progress, str) else "auto")
            listeners = [*listeners, display]
        if ctx is None:
            ctx = RunContext.create(base_dir, listeners=list(listeners))
        elif display is not None:
            ctx.listeners.append(display)
        ctx.prompt = self.to_api()
        try:
            self.last_run = run_workflow(self.nodes, ctx, self.registry, cache=cache)
        finally:
            if display is not None:
                display.close()
                if ctx.listeners and ctx.listeners[-1] is display:
                    ctx.listeners.pop()
        return RunResults(self.last_run, dict(self.nodes), self.registry, ctx.paths)

    def outputs(self, handle: NodeHandle) -> tuple[list[Any], ...]:
        """The per-slot output lists `handle` produced in the latest run."""
        if self.last_run is None or handle.id not in self.last_run.outputs:
            raise KeyError(f"node {handle.id} did not run (call run() first)")
        return self.last_run.outputs[handle.id]

    # -- formats ----------------------------------------------------------------------------
    def to_api(self) -> dict[str, Any]:
        """The ComfyUI API-format dict (links as [id, slot], titles as _meta): the engine's one
        writer, `engine.workflow.to_api_json`, as `comfyless convert` prints it."""
        return to_api_json(self.nodes)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the API form as JSON."""
        target = Path(path)
        target.write_text(json.dumps(self.to_api(), indent=2), encoding="utf-8")
        return target

    @classmethod
    def load(cls, source: str | os.PathLike | dict, registry: NodeRegistry | None = None
             ) -> Graph:
        """A Graph from a workflow in either format (API or UI): a shipped workflow's name
        (`Graph.load("txt2img")`, see `comfyless.workflows`), a path, JSON text or a dict."""
        from .engine.load import load_workflow

        graph = cls(registry)
        source = _workflow_source(source)
        for node_id, api_node in load_workflow(source, graph.registry).items():
            inputs = {}
            for name, value in api_node.inputs.items():
                link = link_of(value)
                inputs[name] = Link(*link) if link is not None else value
            graph.nodes[node_id] = NodeHandle(node_id, api_node.class_type, inputs,
                                              getattr(api_node, "title", None), graph)
        return graph


def _workflow_source(source: Any) -> Any:
    """What the loader reads: JSON text and dicts as they are, a path, or a shipped name."""
    if isinstance(source, str) and source.lstrip().startswith(("{", "[")):
        return source  # JSON text
    if not isinstance(source, (str, os.PathLike)):
        return source
    path = Path(source)
    if path.exists() or not isinstance(source, str):
        return path
    from .workflows import find_shipped, shipped_workflows

    shipped = find_shipped(source)
    if shipped is None:
        names = ", ".join(shipped_workflows())
        raise FileNotFoundError(f"{source}: no such file, and no shipped workflow of that "
                                f"name (shipped: {names})")
    return shipped


# -- scripting: typed output handles and the Workflow context ------------------------------------
@dataclass(frozen=True)
class Socket:
    """An output of a node in a Workflow: node id, output slot, output name, IO type name.

    What node functions return (one per output). Each IO type has its own subclass, named as
    the type (`socket_type("MODEL")`, also `comfyless.nodes.api.MODEL`), so type checkers and
    `isinstance` tell a MODEL from a LATENT; `Socket` itself stands for any type. `.link` is the
    engine's `Link`; `.node` the NodeHandle of the producing node (to `.set` inputs later).
    """

    node_id: str
    slot: int
    name: str
    io_type: str
    _graph: Graph | None = field(default=None, repr=False, compare=False)

    io_types: ClassVar[tuple[str, ...]] = ()  # the IO type(s) a subclass stands for

    @property
    def link(self) -> Link:
        return Link(self.node_id, self.slot)

    @property
    def node(self) -> NodeHandle:
        if self._graph is None:
            raise KeyError(f"{self} is not attached to a workflow")
        return self._graph.nodes[self.node_id]

    def __repr__(self) -> str:
        return f"<{self.io_type} socket: node {self.node_id} output {self.slot} {self.name!r}>"


_SOCKET_TYPES: dict[str, type[Socket]] = {}


def socket_class_name(io_type: str) -> str:
    """The Python name of an IO type's Socket subclass: the type name, made an identifier."""
    name = re.sub(r"\W", "_", io_type)
    return f"_{name}" if not name or name[0].isdigit() else name


def socket_type(io_type: str) -> type[Socket]:
    """The Socket subclass for one IO type (created once; `*` and match types give Socket)."""
    from .typesys.check import MATCH_TYPE

    if io_type in ("*", MATCH_TYPE) or "," in io_type:
        return Socket
    cls = _SOCKET_TYPES.get(io_type)
    if cls is None:
        cls = type(socket_class_name(io_type), (Socket,), {
            "__doc__": f"An output of IO type {io_type}.", "io_types": (io_type,),
            "__module__": "comfyless.nodes.api"})
        _SOCKET_TYPES[io_type] = cls
    return cls


_ACTIVE: ContextVar[tuple[Workflow, ...]] = ContextVar("comfyless_workflow", default=())


def current_workflow(caller: str | None = None) -> Workflow:
    """The innermost `with Workflow()` block of this thread/task; a clear error outside one."""
    active = _ACTIVE.get()
    if not active:
        what = f"{caller}()" if caller else "a node function"
        raise RuntimeError(f"{what} was called outside a `with Workflow() as wf:` block; node "
                           f"functions add their node to the workflow of the enclosing block")
    return active[-1]


def is_param_name(name: str) -> bool:
    """Can an input be a Python keyword argument of its node function?"""
    return name.isidentifier() and not keyword.iskeyword(name) and name not in ("_id", "_title")


def positional_inputs(schema) -> list[str]:
    """The inputs a node function also takes by position: the leading inputs in schema order,
    up to the first one that is not an identifier or that has no default after one that has
    (the same rule the stubs' signatures follow)."""
    names: list[str] = []
    seen_default = False
    for inp in schema.inputs:
        has_default = inp.optional or inp.default is not NO_DEFAULT
        if not is_param_name(inp.name) or (seen_default and not has_default):
            break
        seen_default |= has_default
        names.append(inp.name)
    return names


def outputs_tuple_fields(schema) -> tuple[str, ...] | None:
    """Field names of a multi-output node's named tuple (the output names), or None where a
    name cannot be a field (not an identifier, leading underscore, duplicate, tuple method):
    the outputs then come as a plain tuple."""
    names = tuple(o.name for o in schema.outputs)
    ok = all(n.isidentifier() and not n.startswith("_") and n not in ("count", "index")
             and not keyword.iskeyword(n) for n in names)
    return names if ok and len(set(names)) == len(names) else None


_OUTPUT_TUPLES: dict[tuple[str, tuple[str, ...]], type] = {}


def _outputs_tuple(class_type: str, names: tuple[str, ...]) -> type:
    key = (class_type, names)
    if key not in _OUTPUT_TUPLES:
        typename = socket_class_name(class_type) + "Outputs"
        _OUTPUT_TUPLES[key] = namedtuple(typename, names, module="comfyless.nodes.api")
    return _OUTPUT_TUPLES[key]


class Workflow(Graph):
    """A Graph that node functions (`comfyless.nodes.api`) add to inside `with Workflow() as wf:`.

    Blocks nest (the innermost is used) and are per thread / asyncio task (a contextvar).
    Inputs are checked when given (see the module docstring); everything Graph does works.
    """

    def __init__(self, registry: NodeRegistry | None = None) -> None:
        super().__init__(registry)
        self._tokens: list[Token] = []

    def __enter__(self) -> Workflow:
        self._tokens.append(_ACTIVE.set(_ACTIVE.get() + (self,)))
        return self

    def __exit__(self, *exc_info: Any) -> None:
        _ACTIVE.reset(self._tokens.pop())

    def _inputs(self, node_id: str, class_type: str, inputs: dict[str, Any]) -> dict[str, Any]:
        from .engine.validate import check_input

        values = super()._inputs(node_id, class_type, inputs)
        for name, value in values.items():
            errors = check_input(self.nodes, self.registry, node_id, class_type, name, value)
            if errors:
                raise errors[0]
        return values

    def call(self, class_type: str, /, *args: Any, _id: str | None = None,
             _title: str | None = None, **inputs: Any) -> Any:
        """Add a node as a node function does: positional arguments fill `positional_inputs`;
        returns the output Socket (one output), a named tuple of Sockets (several), or None."""
        schema = self._schema(class_type)
        positional = positional_inputs(schema)
        if len(args) > len(positional):
            raise TypeError(f"{class_type}() takes {len(positional)} positional argument(s) "
                            f"({', '.join(positional) or 'none'}), {len(args)} given; pass the "
                            f"others by name")
        for name, value in zip(positional[:len(args)], args, strict=True):
            if name in inputs:
                raise TypeError(f"{class_type}() got input {name!r} twice (by position and name)")
            inputs[name] = value
        handle = self.node(class_type, _id=_id, _title=_title, **inputs)
        return self.sockets(handle)

    def sockets(self, handle: NodeHandle) -> Any:
        """A node's outputs as Sockets: the one Socket, a named tuple (by output name), or None."""
        schema = self._schema(handle.class_type)
        sockets = [socket_type(o.type.name)(handle.id, i, o.name, o.type.name, self)
                   for i, o in enumerate(schema.outputs)]
        if not sockets:
            return None
        if len(sockets) == 1:
            return sockets[0]
        fields = outputs_tuple_fields(schema)
        return _outputs_tuple(handle.class_type, fields)(*sockets) if fields else tuple(sockets)
