"""Node functions: one callable per registered node, generated from the registry.

    from comfyless.api import Workflow
    from comfyless.nodes.api import CheckpointLoaderSimple, CLIPTextEncode, KSampler, SamplerName

    with Workflow() as wf:
        model, clip, vae = CheckpointLoaderSimple(ckpt_name="sd15.safetensors")
        cond = CLIPTextEncode(text="a cat", clip=clip)
        latent = KSampler(model=model, sampler_name=SamplerName.euler, ...)

Names this module gives (module `__getattr__`, so the registry decides; `dir()` lists them):
- every registered class_type that is an identifier: its node function. Keyword arguments are
  the node's inputs (names that are not identifiers via `**{"a.b": v}`); the leading inputs
  (`comfyless.api.positional_inputs`) also by position; `_id=` / `_title=` set the node id and
  title. Returns the output `Socket`, a named tuple of Sockets (by output name) or None.
  Outside a `with Workflow()` block a call raises, naming the node.
- `node(class_type, /, *args, **inputs)`: the same for any class_type, by name.
- every IO type: its Socket subclass (`MODEL`, `LATENT`, ...), for annotations and isinstance.
- a str-valued `enum.Enum` per combo input with fixed choices (`choice_enum_names`): named
  after the input in CamelCase (`SamplerName`, `Scheduler`) where every built-in node with an
  input of that name offers the same choices, else `<ClassType><Input>`
  (`LatentUpscaleUpscaleMethod`); custom nodes never rename a built-in node's enum.
  Members are the choices (as identifiers: `dpmpp_2m`, `nearest_exact`, `_8_bit`); a member
  is accepted wherever its string is.

Which nodes: the built-in REGISTRY, or the registry given to `use_registry` (e.g. one with
custom nodes from `engine.plugins.registry_with_plugins`); inside a block, the workflow's own.
Torch-free: nothing here imports torch.
"""

from __future__ import annotations

import enum
import inspect
import keyword
import re
from typing import Any

from ..api import (
    Socket,
    _outputs_tuple,
    current_workflow,
    is_param_name,
    outputs_tuple_fields,
    positional_inputs,
    socket_class_name,
    socket_type,
)
from ..typesys.check import MATCH_TYPE
from ..typesys.schema import NO_DEFAULT, NodeRegistry, NodeSchema

__all__ = ["ChoiceEnum", "NodeFunction", "Socket", "choice_enum", "choice_enum_names", "node",
           "use_registry"]

_chosen: NodeRegistry | None = None


def use_registry(registry: NodeRegistry | None) -> None:
    """Node functions and names outside a block come from `registry` (None: the built-ins)."""
    global _chosen
    _chosen = registry


def _registry() -> NodeRegistry:
    from ..api import _ACTIVE

    active = _ACTIVE.get()
    if active:
        return active[-1].registry
    if _chosen is not None:
        return _chosen
    from . import REGISTRY

    return REGISTRY


# -- choice enums ----------------------------------------------------------------------------
def _camel(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"\W|_", name) if part)


def member_name(choice: str) -> str:
    """A choice string as an enum member name: non-word characters become `_`, a leading
    digit gets `_`, keywords, `name`/`value` and str method names a trailing `_`."""
    name = re.sub(r"\W", "_", choice).strip("_") or "_"
    if name[0].isdigit():
        name = "_" + name
    if keyword.iskeyword(name) or name in ("name", "value", "mro") or hasattr(str, name):
        name += "_"  # `center`, `title`, ...: an Enum with str would shadow the str method
    return name


def enum_members(choices: tuple[str, ...]) -> list[tuple[str, str]]:
    """(member name, choice) per choice; names made unique with a numeric suffix."""
    members: list[tuple[str, str]] = []
    used: set[str] = set()
    for choice in choices:
        base = member_name(choice)
        name, n = base, 2
        while name in used:
            name, n = f"{base}_{n}", n + 1
        used.add(name)
        members.append((name, choice))
    return members


def _fixed_choices(schema: NodeSchema):
    for inp in schema.inputs:
        if (inp.choices is not None and inp.choices_from is None and inp.choices
                and all(isinstance(c, str) for c in inp.choices)):
            yield inp


def choice_enum_names(registry: NodeRegistry) -> dict[tuple[str, str], str]:
    """(class_type, input name) -> enum name, for every combo input with fixed str choices.

    The short name (the input's, CamelCase) goes to an input whose choices are the one set all
    built-in nodes offer under that input name (or, for a name no built-in uses, all nodes in
    `registry`); others get `<ClassType><Input>`. So loading custom nodes never renames the
    enums of the built-in nodes.
    """
    from . import REGISTRY as builtin

    def choice_sets(reg: NodeRegistry) -> dict[str, set[tuple[str, ...]]]:
        found: dict[str, set[tuple[str, ...]]] = {}
        for class_type in reg:
            for inp in _fixed_choices(reg[class_type].schema):
                found.setdefault(inp.name, set()).add(tuple(inp.choices))
        return found

    reference = choice_sets(registry)
    reference.update(choice_sets(builtin))
    taken = set(registry) | {socket_class_name(t) for t in io_types(registry)} | set(__all__)
    names: dict[tuple[str, str], str] = {}
    for class_type in registry:
        for inp in _fixed_choices(registry[class_type].schema):
            shared = reference[inp.name] == {tuple(inp.choices)}
            name = (_camel(inp.name) if shared
                    else socket_class_name(class_type) + _camel(inp.name))
            if name in taken or not name.isidentifier():
                name = f"{socket_class_name(class_type)}{_camel(inp.name)}Choice"
            names[(class_type, inp.name)] = name
    return names


class ChoiceEnum(str, enum.Enum):
    """Base of the generated choice enums: members are their choice strings (`str()` and
    f-strings give the choice, as enum.StrEnum does)."""

    __str__ = str.__str__
    __format__ = str.__format__


_ENUMS: dict[tuple[str, tuple[str, ...]], type[ChoiceEnum]] = {}


def choice_enum(name: str, choices: tuple[str, ...]) -> type[ChoiceEnum]:
    """The str-valued Enum `name` over `choices` (created once per name and choices)."""
    key = (name, choices)
    if key not in _ENUMS:
        _ENUMS[key] = ChoiceEnum(name, enum_members(choices), module=__name__, qualname=name)
    return _ENUMS[key]


def _enums(registry: NodeRegistry) -> dict[str, type[ChoiceEnum]]:
    result = {}
    for (class_type, input_name), name in choice_enum_names(registry).items():
        choices = tuple(registry[class_type].schema.input_map[input_name].choices)
        result[name] = choice_enum(name, choices)
    return result


def io_types(registry: NodeRegistry) -> list[str]:
    """Every single IO type named by an input or output of a registered node (unions split;
    `*` and match types left out), sorted."""
    found: set[str] = set()
    for class_type in registry:
        schema = registry[class_type].schema
        for socket in (*schema.inputs, *schema.outputs):
            for part in socket.type.name.split(","):
                part = part.strip()
                if part and part not in ("*", MATCH_TYPE):
                    found.add(part)
    return sorted(found)


# -- node functions --------------------------------------------------------------------------
class NodeFunction:
    """The callable for one class_type: `KSampler(model=..., ...)` adds a KSampler to the
    enclosing Workflow and returns its output Socket(s); see the module docstring."""

    def __init__(self, class_type: str) -> None:
        self.class_type = class_type
        self.__name__ = self.__qualname__ = class_type
        self.__module__ = __name__

    def __call__(self, *args: Any, _id: str | None = None, _title: str | None = None,
                 **inputs: Any) -> Any:
        return current_workflow(self.class_type).call(self.class_type, *args, _id=_id,
                                                      _title=_title, **inputs)

    @property
    def schema(self) -> NodeSchema:
        return _registry()[self.class_type].schema

    @property
    def __doc__(self) -> str:  # type: ignore[override]
        return node_doc(self.schema)

    @property
    def __signature__(self) -> inspect.Signature:
        return node_signature(self.schema)

    def __repr__(self) -> str:
        return f"<node function {self.class_type}>"


def node_doc(schema: NodeSchema) -> str:
    """A node function's docstring: description, then one line per input and output."""
    lines = [schema.description or schema.display_name or schema.class_type, ""]
    for inp in schema.inputs:
        extra = " (optional)" if inp.optional else ""
        lines.append(f"{inp.name}: {inp.type.name}{extra}"
                     + (f" - {inp.tooltip}" if inp.tooltip else ""))
    if schema.outputs:
        lines += ["", "Returns: " + ", ".join(f"{o.name} ({o.type.name})"
                                             for o in schema.outputs)]
    return "\n".join(lines).strip()


def node_signature(schema: NodeSchema) -> inspect.Signature:
    """The runtime signature (help(), Jupyter): positional inputs, then the others by name."""
    positional = set(positional_inputs(schema))
    params = []
    for inp in schema.inputs:
        if not is_param_name(inp.name):
            continue
        kind = (inspect.Parameter.POSITIONAL_OR_KEYWORD if inp.name in positional
                else inspect.Parameter.KEYWORD_ONLY)
        default = inspect.Parameter.empty if inp.default is NO_DEFAULT else inp.default
        if inp.optional and default is inspect.Parameter.empty:
            default = None
        params.append(inspect.Parameter(inp.name, kind, default=default))
    for extra in ("_id", "_title"):
        params.append(inspect.Parameter(extra, inspect.Parameter.KEYWORD_ONLY, default=None))
    return inspect.Signature(params)


_FUNCTIONS: dict[str, NodeFunction] = {}


def _function(class_type: str) -> NodeFunction:
    if class_type not in _FUNCTIONS:
        _FUNCTIONS[class_type] = NodeFunction(class_type)
    return _FUNCTIONS[class_type]


def node(class_type: str, /, *args: Any, _id: str | None = None, _title: str | None = None,
         **inputs: Any) -> Any:
    """Add any node by class_type (e.g. one whose name is not an identifier)."""
    return current_workflow(class_type).call(class_type, *args, _id=_id, _title=_title,
                                             **inputs)


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    registry = _registry()
    if name in registry:
        return _function(name)
    for io_type in io_types(registry):
        if socket_class_name(io_type) == name:
            return socket_type(io_type)
    found = _enums(registry).get(name)
    if found is not None:
        return found
    if name.endswith("Outputs") and name[:-len("Outputs")] in registry:
        class_type = name[:-len("Outputs")]
        fields = outputs_tuple_fields(registry[class_type].schema)
        if fields and len(fields) > 1:
            return _outputs_tuple(class_type, fields)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r} (no registered node, "
                         f"IO type or choice enum of that name)")


def __dir__() -> list[str]:
    registry = _registry()
    names = [n for n in registry if n.isidentifier()]
    names += [socket_class_name(t) for t in io_types(registry)]
    names += list(_enums(registry))
    return sorted(set(names) | set(__all__) | set(globals()))


