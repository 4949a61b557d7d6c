"""Workflow -> Python script (`comfyless convert WF --to python`), torch-free.

The script uses the scripting API's node functions (`comfyless.nodes.api`) inside a
`with Workflow() as wf:` block, so that running it rebuilds exactly the API JSON the loader
gives for the file (`to_api_json(load_workflow(WF))`, compared as dicts: the nodes come in a
dependency order, not the file's). What the writer emits, and why:

- every node in a dependency order (producers first; among ready nodes the file's order);
  subgraphs are already inlined by the loader and come out inlined;
- `_id="..."` on every node (the ids are the file's, so the JSON is the same) and
  `_title="..."` when the node has a title;
- every input the loaded node has, in the file's order, none added: widget defaults are
  written out explicitly, so a later change of a default does not change the script;
  names that are not Python identifiers (`format.bit_depth`) go in a trailing `**{...}`;
- class_types that are identifiers and built-in nodes are imported by name; any other
  (`EmptyAceStep1.5LatentAudio`, custom nodes) is called as `node("...")`; with custom nodes
  the Workflow gets the registry with plugins (`engine.plugins.registry_with_plugins`);
- variable names from the node's title when it is not the node's display name, else from the
  output names (`model, clip, vae = CheckpointLoaderSimple(...)`), made valid, readable and
  unique (`latent`, `latent_2`); outputs nothing reads are `_`;
- values as Python literals (`float("inf")` / `float("nan")` for the non-finite floats).

Running the script prints the API JSON under `if __name__ == "__main__":` and does nothing
heavy: it never runs the workflow. With `run=True` (`--run-code` on the command line) the main
block instead runs it with progress when the script is called as `python script.py --run
[BASE_DIR]`, and still prints the JSON without `--run`.
"""

from __future__ import annotations

import builtins
import json
import keyword
import math
import re
from collections.abc import Mapping
from typing import Any

from .api import is_param_name
from .engine.graph import topological_order
from .engine.workflow import BadLink, link_of
from .typesys.errors import WorkflowError
from .typesys.schema import NodeRegistry

__all__ = ["ScriptWriterError", "workflow_to_python"]

LINE_LIMIT = 100
INDENT = "    "
# names the script itself uses; a variable never takes one of them
_RESERVED = {"json", "sys", "wf", "node", "Workflow", "registry_with_plugins", "registry",
             "results", "_"}


class ScriptWriterError(WorkflowError):
    """The workflow cannot be written as a script (unknown node type, a cycle, a bad link)."""

    code = "script_not_writable"


def workflow_to_python(workflow: Mapping[str, Any], registry: NodeRegistry, *,
                       source: str | None = None, builtin: NodeRegistry | None = None,
                       run: bool = False, custom_nodes: list[str] | tuple[str, ...] = ()
                       ) -> str:
    """The Python script that rebuilds `workflow` (an API workflow: id -> node with
    `.class_type`, `.inputs`, `.title`) with the node functions.

    `registry` knows every class_type in the workflow; `builtin` is the registry of
    `comfyless.nodes.api`'s importable functions (default: the built-in REGISTRY) — other
    node types are called through `node("...")` on a Workflow with plugins loaded (and the
    `custom_nodes` pack folders, as `--custom-nodes` gave them).
    """
    if builtin is None:
        from .nodes import REGISTRY as builtin  # noqa: N811
    order = dependency_order(workflow)
    schemas = {nid: _schema(registry, nid, workflow[nid].class_type) for nid in order}
    readers = _readers(workflow)
    used: dict[str, set[int]] = {}
    for producer, slot in readers:
        used.setdefault(producer, set()).add(slot)
    # the input name every reader of an output uses, when they agree
    consumers = {link: next(iter(names)) for link, names in readers.items() if len(names) == 1}
    imported = sorted({workflow[nid].class_type for nid in order
                       if _importable(workflow[nid].class_type, builtin)})
    names = _Names(set(imported))
    variables: dict[tuple[str, int], str] = {}
    body = []
    for nid in order:
        node = workflow[nid]
        targets = _targets(nid, node, schemas[nid], used.get(nid, set()), names, consumers)
        variables.update({(nid, slot): name for slot, name in enumerate(targets) if name != "_"})
        body.append(_statement(nid, node, targets, variables, builtin))
    plugins = any(not _known(workflow[nid].class_type, builtin) for nid in order)
    by_name = any(not _importable(workflow[nid].class_type, builtin) for nid in order)
    packs = list(custom_nodes) if plugins else None
    return _module(source, imported + (["node"] if by_name else []), body, packs, run)


# -- order ----------------------------------------------------------------------------------
def dependency_order(workflow: Mapping[str, Any]) -> list[str]:
    """Node ids with every producer before its consumers; ready nodes in the file's order
    (the engine's `topological_order`, keyed by file position)."""
    deps: dict[str, list[str]] = {}
    for nid, node in workflow.items():
        deps[nid] = []
        for name, value in node.inputs.items():
            if isinstance(value, BadLink):
                raise ScriptWriterError(f"node {nid} input {name!r}: {value.value!r} is not a "
                                        "link [node id, output index]", node_id=nid)
            link = link_of(value)
            if link is None:
                continue
            if link[0] not in workflow:
                raise ScriptWriterError(f"node {nid} input {name!r} links to node {link[0]!r}, "
                                        "which the workflow does not have", node_id=nid)
            deps[nid].append(link[0])
    position = {nid: i for i, nid in enumerate(workflow)}
    order, stuck = topological_order(workflow, deps, key=position.__getitem__)
    if stuck:
        raise ScriptWriterError(f"the links of nodes {', '.join(stuck)} form a cycle (or "
                                "follow one); a script needs every producer before its consumers")
    return order


def _readers(workflow: Mapping[str, Any]) -> dict[tuple[str, int], set[str]]:
    """(node, slot) -> the input names that read that output."""
    seen: dict[tuple[str, int], set[str]] = {}
    for node in workflow.values():
        for name, value in node.inputs.items():
            link = link_of(value)
            if link is not None:
                seen.setdefault(link, set()).add(name)
    return seen


# -- nodes ----------------------------------------------------------------------------------
def _schema(registry: NodeRegistry, nid: str, class_type: str):
    if not class_type:
        raise ScriptWriterError(f"node {nid} has no class_type", node_id=nid)
    cls = registry.get(class_type)
    if cls is None:
        raise ScriptWriterError(
            f"node {nid}: class_type {class_type!r} is not a known node type (a custom node? "
            "load its pack with --custom-nodes)", node_id=nid, class_type=class_type)
    return cls.schema


def _known(class_type: str, builtin: NodeRegistry) -> bool:
    return builtin.get(class_type) is not None


def _importable(class_type: str, builtin: NodeRegistry) -> bool:
    return (_known(class_type, builtin) and class_type.isidentifier()
            and not keyword.iskeyword(class_type) and class_type not in _RESERVED)


def _targets(nid: str, node: Any, schema: Any, used: set[int], names: _Names,
             consumers: dict[tuple[str, int], str]) -> list[str]:
    """One variable name per output slot ("_" for outputs nothing reads)."""
    outputs = schema.outputs
    beyond = sorted(s for s in used if s >= len(outputs))
    if beyond:
        raise ScriptWriterError(
            f"node {nid} ({node.class_type}): a link reads output {beyond[0]}, but the node "
            f"has {len(outputs)} output(s)", node_id=nid)
    title = node.title if node.title not in (None, schema.display_name, node.class_type) \
        else None
    targets = []
    for slot, out in enumerate(outputs):
        if slot not in used:
            targets.append("_")
            continue
        consumer = consumers.get((nid, slot))
        if title is not None and len(used) == 1:
            base = title
        elif title is not None:
            base = f"{title} {out.name}"
        elif out.type.name == "CONDITIONING" and consumer:
            base = consumer  # positive / negative, as the sampler reads it
        else:
            base = out.name or out.type.name or node.class_type
        targets.append(names.take(base))
    return targets


def _statement(nid: str, node: Any, targets: list[str], variables: dict[tuple[str, int], str],
               builtin: NodeRegistry) -> str:
    if _importable(node.class_type, builtin):
        callee, first = node.class_type, []
    else:
        callee, first = "node", [_literal(node.class_type)]
    args = list(first)
    extra = {}
    for name, value in node.inputs.items():
        text = _value(value, variables)
        if _plain_keyword(name):
            args.append(f"{name}={text}")
        else:
            extra[name] = text
    args.append(f"_id={_literal(str(nid))}")
    if node.title is not None:
        args.append(f"_title={_literal(node.title)}")
    if extra:
        args.append("**{" + ", ".join(f"{_literal(k)}: {v}" for k, v in extra.items()) + "}")
    lhs = _lhs(targets)
    return _call(lhs, callee, args)


def _plain_keyword(name: str) -> bool:
    """A keyword argument of a node function (`is_param_name`), not one of the `_` names."""
    return is_param_name(name) and not name.startswith("_")


def _lhs(targets: list[str]) -> str:
    if not targets or all(t == "_" for t in targets):
        return ""
    if len(targets) == 1:
        return f"{targets[0]} = "
    return ", ".join(targets) + " = "


def _call(lhs: str, callee: str, args: list[str]) -> str:
    one_line = f"{INDENT}{lhs}{callee}({', '.join(args)})"
    if len(one_line) <= LINE_LIMIT and "\n" not in one_line:
        return one_line
    inner = INDENT * 2
    lines = [f"{INDENT}{lhs}{callee}("]
    current = ""
    for arg in args:  # packed greedily, several short arguments a line
        piece = f"{arg},"
        if current and len(inner) + len(current) + 1 + len(piece) > LINE_LIMIT:
            lines.append(inner + current)
            current = ""
        current = f"{current} {piece}" if current else piece
    lines += [inner + current, f"{INDENT})"]
    return "\n".join(lines)


# -- values ---------------------------------------------------------------------------------
def _value(value: Any, variables: dict[tuple[str, int], str]) -> str:
    link = link_of(value)
    if link is not None:
        return variables[link]
    return _literal(value)


def _literal(value: Any) -> str:
    """A Python expression equal to `value` (JSON-like data)."""
    if isinstance(value, str):
        return _string(value)
    if value is None or isinstance(value, (bool, int)):
        return repr(value)
    if isinstance(value, float):
        if math.isnan(value):
            return 'float("nan")'
        if math.isinf(value):
            return 'float("inf")' if value > 0 else 'float("-inf")'
        return repr(value)
    if isinstance(value, (list, tuple)):
        inner = ", ".join(_literal(v) for v in value)
        if isinstance(value, list):
            return f"[{inner}]"
        return f"({inner}{',' if len(value) == 1 else ''})"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_literal(k)}: {_literal(v)}" for k, v in value.items()) + "}"
    raise ScriptWriterError(f"cannot write a {type(value).__name__} value as Python: {value!r}")


def _string(text: str) -> str:
    """Double-quoted, as the JSON it came from (JSON's escapes are Python's too)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: only repr's escape keeps the file UTF-8
        return repr(text)
    return json.dumps(text, ensure_ascii=False)


# -- names ----------------------------------------------------------------------------------
class _Names:
    """Valid, readable, unique variable names (`Positive Prompt` -> positive_prompt)."""

    def __init__(self, taken: set[str]) -> None:
        self.taken = set(taken) | _RESERVED

    def take(self, text: str) -> str:
        base = identifier(text)
        name, n = base, 1
        while name in self.taken:
            n += 1
            name = f"{base}_{n}"
        self.taken.add(name)
        return name


def identifier(text: str) -> str:
    """A snake_case identifier from any text (`Positive Prompt` -> positive_prompt)."""
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", str(text))
    name = re.sub(r"[^0-9a-zA-Z]+", "_", text).strip("_").lower()
    if not name:
        name = "out"
    if name[0].isdigit():
        name = f"n{name}"
    if keyword.iskeyword(name) or keyword.issoftkeyword(name) or hasattr(builtins, name):
        name += "_"
    return name


# -- module ---------------------------------------------------------------------------------
def _module(source: str | None, imported: list[str], body: list[str],
            plugins: list[str] | None, run: bool) -> str:
    origin = f" from {source}" if source else ""
    doc = [f'"""Workflow{origin}, written by `comfyless convert --to python`.', "",
           "`python <this file>` prints its API JSON (the same as `comfyless convert`)."]
    if run:
        doc.append("`python <this file> --run [BASE_DIR]` runs it, with progress.")
    doc.append('"""')
    lines = doc + ["", "import json"]
    if run:
        lines.append("import sys")
    lines += ["", "from comfyless.api import Workflow"]
    if plugins is not None:
        lines.append("from comfyless.engine.plugins import registry_with_plugins")
    if imported:
        lines += _import_lines(imported)
    lines.append("")
    if plugins is not None:  # custom nodes: plugins, the packs named, <base dir>/custom_nodes
        lines += [f"registry = registry_with_plugins({_literal(plugins)}).registry", "",
                  "with Workflow(registry=registry) as wf:"]
    else:
        lines.append("with Workflow() as wf:")
    lines += body or [f"{INDENT}pass"]
    lines += ["", "", 'if __name__ == "__main__":']
    if run:
        lines += [f'{INDENT}if sys.argv[1:2] == ["--run"]:',
                  f"{INDENT * 2}results = wf.run(*sys.argv[2:3], progress=True)",
                  f"{INDENT * 2}print(results)",
                  f"{INDENT}else:",
                  f"{INDENT * 2}print(json.dumps(wf.to_api()))"]
    else:
        lines.append(f"{INDENT}print(json.dumps(wf.to_api()))")
    return "\n".join(lines) + "\n"


def _import_lines(names: list[str]) -> list[str]:
    head = "from comfyless.nodes.api import "
    one = head + ", ".join(names)
    if len(one) <= LINE_LIMIT:
        return [one]
    lines = [head + "("]
    current = INDENT
    for name in names:
        piece = f"{name}, "
        if len(current) + len(piece) > LINE_LIMIT and current.strip():
            lines.append(current.rstrip())
            current = INDENT
        current += piece
    lines.append(current.rstrip())
    lines.append(")")
    return lines
