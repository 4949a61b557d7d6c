"""The node catalogue in the shape of ComfyUI's GET /object_info (`comfyless nodes --json`).

Built from the schemas alone, so it never imports torch. It lives in the engine, not in
typesys, because file choices (`choices_from`) are listed from a base dir (`BasePaths`);
without `paths` they list only their `extra_choices`.
"""

from __future__ import annotations

from typing import Any

from ..typesys.schema import NO_DEFAULT, Input, Node, NodeRegistry
from .paths import BasePaths


def object_info(registry: NodeRegistry, paths: BasePaths | None = None) -> dict[str, Any]:
    """class_type -> ComfyUI's /object_info entry, for every node of `registry`."""
    return {class_type: node_info(registry[class_type], paths) for class_type in registry}


def node_info(node: type[Node], paths: BasePaths | None = None) -> dict[str, Any]:
    """One node's /object_info entry (execution-semantics.md: the V1 input dict incl. hidden)."""
    schema = node.schema
    inputs: dict[str, dict[str, Any]] = {"required": {}, "optional": {}}
    order: dict[str, list[str]] = {"required": [], "optional": []}
    for inp in schema.inputs:
        group = "optional" if inp.optional else "required"
        inputs[group][inp.name] = [inp.type.name, _input_options(inp, paths)]
        order[group].append(inp.name)
    if schema.hidden:  # declared on the schema; output nodes get prompt + extra_pnginfo
        inputs["hidden"] = {name: name.upper() for name in schema.hidden}
    return {
        "input": inputs,
        "input_order": order,
        "is_input_list": schema.is_input_list,
        "output": [o.type.name for o in schema.outputs],
        "output_is_list": [o.is_list for o in schema.outputs],
        "output_name": [o.name for o in schema.outputs],
        "output_tooltips": [o.tooltip for o in schema.outputs],
        "name": schema.class_type,
        "display_name": schema.display_name or schema.class_type,
        "description": schema.description or (node.__doc__ or "").strip(),
        "python_module": node.__module__,
        "category": schema.category,
        "output_node": schema.output_node,
        "not_idempotent": schema.not_idempotent,
        "deprecated": schema.deprecated,
        "experimental": schema.experimental,
    }


def _input_options(inp: Input, paths: BasePaths | None) -> dict[str, Any]:
    opts: dict[str, Any] = {}
    if inp.default is not NO_DEFAULT:
        opts["default"] = inp.default
    for key in ("min", "max", "step", "round"):
        if getattr(inp, key) is not None:
            opts[key] = getattr(inp, key)
    if inp.choices is not None or inp.choices_from is not None:
        opts["options"] = list(_choices(inp, paths))
    for key, flag in (("multiline", inp.multiline), ("forceInput", inp.force_input),
                      ("control_after_generate", inp.control_after_generate),
                      ("image_upload", inp.image_upload), ("lazy", inp.lazy)):
        if flag:
            opts[key] = True
    if inp.display_name:
        opts["display_name"] = inp.display_name
    if inp.tooltip:
        opts["tooltip"] = inp.tooltip
    return opts


def _choices(inp: Input, paths: BasePaths | None) -> tuple[Any, ...]:
    if inp.choices is not None:
        return tuple(inp.choices) + inp.extra_choices
    found: list[str] = []
    if paths is not None:
        lister = paths.list_dirs if inp.choices_dirs_only else paths.list_files
        found = lister(inp.choices_from)
    return tuple(found) + inp.extra_choices
