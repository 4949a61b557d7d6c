"""Type stubs (.pyi) for `comfyless.nodes.api`, generated from a node registry.

`comfyless stubs` writes them (custom nodes included); the package ships the ones for the
built-in nodes as comfyless/nodes/api.pyi (tests/test_stubs.py checks it is current). The
stubs follow the runtime exactly (comfyless.api / comfyless.nodes.api): the same positional
inputs, Socket subclass names, choice enum names and output tuple names.

Input types: INT -> int, FLOAT -> float, STRING -> str, BOOLEAN -> bool, each also accepting a
Socket of that IO type (a link from e.g. a primitive node); a combo with fixed choices ->
Literal[...choices] | its enum; a file picker -> str; a linked type -> its Socket subclass
(`MODEL`); a union type (`IMAGE,MASK`) -> the union; `*` -> Any. Required inputs without a
default are required parameters (a type checker asks for them even though a Workflow lets
them be wired later with `.set`); widget defaults are shown where they are plain literals.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ..api import (
    Socket,
    is_param_name,
    outputs_tuple_fields,
    positional_inputs,
    socket_class_name,
    socket_type,
)
from ..typesys.check import MATCH_TYPE
from ..typesys.schema import NO_DEFAULT, Input, NodeRegistry, NodeSchema
from .api import choice_enum_names, enum_members, io_types, node_doc

PYTHON_TYPES = {"INT": "int", "FLOAT": "float", "STRING": "str", "BOOLEAN": "bool"}
ANY = "_t.Any"

HEADER = '''"""Type stubs for comfyless.nodes.api: {count} nodes.

Generated from the node registry by `comfyless stubs` (custom nodes included) or, for the copy
in the package (built-in nodes), `python -m comfyless.nodes.stubgen`; do not edit by hand.
"""

import enum as _enum
import inspect as _inspect
import typing as _t

from comfyless.api import Socket as Socket
from comfyless.typesys.schema import NodeRegistry as _NodeRegistry
from comfyless.typesys.schema import NodeSchema as _NodeSchema

__all__ = ["ChoiceEnum", "NodeFunction", "Socket", "choice_enum", "choice_enum_names", "node",
           "use_registry"]

class ChoiceEnum(str, _enum.Enum):  # type: ignore[misc]  # a base: members in subclasses
    def __str__(self) -> str: ...
    def __format__(self, format_spec: str) -> str: ...

def use_registry(registry: _NodeRegistry | None) -> None: ...
def node(class_type: str, /, *args: _t.Any, _id: str | None = None, _title: str | None = None,
         **inputs: _t.Any) -> _t.Any: ...
def member_name(choice: str) -> str: ...
def enum_members(choices: tuple[str, ...]) -> list[tuple[str, str]]: ...
def choice_enum_names(registry: _NodeRegistry) -> dict[tuple[str, str], str]: ...
def choice_enum(name: str, choices: tuple[str, ...]) -> type[ChoiceEnum]: ...
def io_types(registry: _NodeRegistry) -> list[str]: ...
def node_doc(schema: _NodeSchema) -> str: ...
def node_signature(schema: _NodeSchema) -> _inspect.Signature: ...

class NodeFunction:
    class_type: str
    def __init__(self, class_type: str) -> None: ...
    def __call__(self, *args: _t.Any, _id: str | None = None, _title: str | None = None,
                 **inputs: _t.Any) -> _t.Any: ...
    @property
    def schema(self) -> _NodeSchema: ...
'''


def generate(registry: NodeRegistry) -> str:
    """The stub text for `registry`."""
    enum_names = choice_enum_names(registry)
    parts = [HEADER.format(count=len(registry))]
    parts.append(_socket_classes(registry))
    parts.append(_enum_classes(registry, enum_names))
    for class_type in registry:
        if not is_param_name(class_type):
            continue  # reachable through node("...") only
        parts.append(_node_function(registry[class_type].schema, enum_names))
    return "\n".join(p.rstrip() + "\n" for p in parts if p)


# The package stubs beside it: present so that a type checker takes DIR/comfyless for the
# stubs of the package (a bare folder would lose to the installed package), open-ended so that
# every other module and name still comes from the package itself.
PACKAGE_STUB = '''"""Written by `comfyless stubs` beside nodes/api.pyi."""

import typing as _t

from comfyless.api import Graph as Graph

__version__: str

def __getattr__(name: str) -> _t.Any: ...
'''
NODES_STUB = '''"""Written by `comfyless stubs` beside api.pyi."""

import typing as _t

from comfyless.typesys.schema import NodeRegistry as _NodeRegistry

REGISTRY: _NodeRegistry

def __getattr__(name: str) -> _t.Any: ...
'''


def write(registry: NodeRegistry, out_dir: str | Path) -> Path:
    """Write `<out_dir>/comfyless/nodes/api.pyi` (with the two package `__init__.pyi`) for
    mypy_path / pyright's stubPath; returns the api.pyi written."""
    package = Path(out_dir) / "comfyless"
    (package / "nodes").mkdir(parents=True, exist_ok=True)
    (package / "__init__.pyi").write_text(PACKAGE_STUB, encoding="utf-8")
    (package / "nodes" / "__init__.pyi").write_text(NODES_STUB, encoding="utf-8")
    target = package / "nodes" / "api.pyi"
    target.write_text(generate(registry), encoding="utf-8")
    return target


SHIPPED = Path(__file__).with_name("api.pyi")


def write_shipped() -> Path:
    """Regenerate the package's own stubs (built-in nodes only)."""
    from . import REGISTRY

    SHIPPED.write_text(generate(REGISTRY), encoding="utf-8")
    return SHIPPED


# -- pieces ----------------------------------------------------------------------------------
def _socket_classes(registry: NodeRegistry) -> str:
    lines = ["# Sockets: one class per IO type (what node functions return)"]
    for io_type in io_types(registry):
        name = socket_class_name(io_type)
        lines += [f"class {name}(Socket):", f"    \"\"\"An output of IO type {io_type}.\"\"\"",
                  f"_{name}: _t.TypeAlias = {name}", ""]
    return "\n".join(lines)


def _enum_classes(registry: NodeRegistry, enum_names: dict[tuple[str, str], str]) -> str:
    users: dict[str, list[str]] = {}
    choices: dict[str, tuple[str, ...]] = {}
    for (class_type, input_name), name in enum_names.items():
        users.setdefault(name, []).append(f"{class_type}.{input_name}")
        choices[name] = tuple(registry[class_type].schema.input_map[input_name].choices)
    lines = ["# Choice enums: str-valued, accepted wherever their string is"]
    for name in sorted(users):
        shown = ", ".join(users[name][:4]) + (", ..." if len(users[name]) > 4 else "")
        lines += [f"class {name}(ChoiceEnum):", f"    \"\"\"Choices of {shown}.\"\"\""]
        lines += [f"    {member} = {value!r}" for member, value in enum_members(choices[name])]
        lines.append("")
    return "\n".join(lines)


def _node_function(schema: NodeSchema, enum_names: dict[tuple[str, str], str]) -> str:
    positional = positional_inputs(schema)
    params: list[str] = []
    extra = False
    for inp in schema.inputs:
        if not is_param_name(inp.name):
            extra = True
            continue
        if inp.name not in positional and "*" not in params:
            params.append("*")
        params.append(_param(inp, enum_names.get((schema.class_type, inp.name))))
    if "*" not in params:
        params.append("*")
    params += ["_id: str | None = None", "_title: str | None = None"]
    if extra:
        params.append("**inputs: _t.Any")
    returns, tuple_class = _returns(schema)
    signature = ",\n    ".join(params)
    text = (f"def {schema.class_type}(\n    {signature},\n) -> {returns}:\n"
            f"    {_docstring(node_doc(schema))}\n")
    return (tuple_class + "\n" + text) if tuple_class else text


def _param(inp: Input, enum_name: str | None) -> str:
    annotation = _input_type(inp, enum_name)
    if inp.default is not NO_DEFAULT:
        return f"{inp.name}: {annotation} = {_default(inp.default)}"
    if inp.optional:
        return f"{inp.name}: {annotation} = ..."
    return f"{inp.name}: {annotation}"


def _input_type(inp: Input, enum_name: str | None) -> str:
    parts: list[str] = []
    for member in (m.strip() for m in inp.type.name.split(",")):
        if member in ("*", MATCH_TYPE):
            return ANY
        if member == "COMBO":
            parts += _combo_types(inp, enum_name)
        elif member in PYTHON_TYPES:
            parts.append(PYTHON_TYPES[member])
        parts.append(socket_class_name(member))
    return " | ".join(dict.fromkeys(parts))


def _combo_types(inp: Input, enum_name: str | None) -> list[str]:
    choices = inp.choices
    if choices is None or inp.choices_from is not None:
        return ["str"]  # a file picker: the names are only known in the base dir
    if not choices or not all(isinstance(c, (str, int, bool)) for c in choices):
        return [ANY]
    found = [f"_t.Literal[{', '.join(repr(c) for c in choices)}]"]
    return found + [enum_name] if enum_name else found


def _default(value: Any) -> str:
    if value is None or isinstance(value, bool):
        return repr(value)
    if isinstance(value, int) or (isinstance(value, float) and math.isfinite(value)):
        return repr(value)
    if isinstance(value, str) and len(value) <= 80 and "\n" not in value:
        return repr(value)
    return "..."


def _returns(schema: NodeSchema) -> tuple[str, str]:
    """(return annotation, the named-tuple class declaration or "")."""
    outputs = schema.outputs
    if not outputs:
        return "None", ""
    types = [_output_type(o.type.name, aliased=False) for o in outputs]
    if len(outputs) == 1:
        return types[0], ""
    fields = outputs_tuple_fields(schema)
    if fields is None:
        return f"tuple[{', '.join(types)}]", ""
    name = f"{schema.class_type}Outputs"
    lines = [f"class {name}(_t.NamedTuple):"]
    lines += [f"    {field}: {_output_type(o.type.name, aliased=True)}"
              for field, o in zip(fields, outputs, strict=True)]
    return name, "\n".join(lines) + "\n"


def _output_type(io_type: str, *, aliased: bool) -> str:
    if socket_type(io_type) is Socket:
        return ANY  # the runtime gives a plain Socket (`*`, match, union), accepted anywhere
    name = socket_class_name(io_type)
    return f"_{name}" if aliased else name


def _docstring(text: str) -> str:
    safe = text.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
    if "\n" not in safe:
        return f'"""{safe}"""'
    body = "\n".join(("    " + line).rstrip() for line in safe.split("\n"))
    return f'"""{body.lstrip()}\n    """'


if __name__ == "__main__":
    print(write_shipped())
