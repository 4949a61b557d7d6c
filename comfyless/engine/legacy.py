"""Workflows saved by older versions of a node: everything about older node layouts.

Node knowledge is declared on the schemas and read here generically:
- `NodeSchema.older_widget_layouts`: per older version, the inputs it did not have yet
  (train-nodes.md §9). Its UI widgets_values are shorter (`older_widget_values`), its API
  inputs lack those keys (`fill_older_inputs`); they take their schema defaults, which
  reproduce the old behaviour.
- `Input.added_in`: an input ComfyUI added later; a workflow without it gets the default
  (`added_later_default`, used by validation) instead of required_input_missing.
- `NodeSchema.legacy_outputs`: an older output layout; links made for it are moved onto the
  current outputs (`saved_with_legacy_outputs` and `current_slot_of_legacy` for UI files,
  `remap_legacy_slot` / `resolve_slot` by the consumer's type for API files).

Also here: `widget_layout`, where each widget input sits in widgets_values for the current
layout or an older one (the converter maps current-layout values with it too).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from ..typesys.check import compatible
from ..typesys.schema import NO_DEFAULT, Input, NodeRegistry, NodeSchema

log = logging.getLogger("comfyless.engine.validate")  # the line validation has always logged


# -- older widget layouts ---------------------------------------------------------------------
def older_layouts(schema: NodeSchema) -> tuple[frozenset[str], ...]:
    """The inputs each older version of the node lacked (newest older version first)."""
    return tuple(frozenset(lacks) for lacks in schema.older_widget_layouts)


_Layout = tuple[tuple[tuple[str, int], ...], int]
_LAYOUTS: dict[tuple[int, frozenset[str]], tuple[NodeSchema, _Layout]] = {}  # -> (schema, layout)


def widget_layout(schema: NodeSchema, lacks: frozenset[str] = frozenset()) -> _Layout:
    """((widget input name, position in widgets_values), ...), expected count; memoised.

    Frontend-only values that follow some widgets (`Input.ui_extra_values`) are skipped;
    `lacks`: inputs an older version of the node did not have (absent from its values).
    """
    key = (id(schema), lacks)
    cached = _LAYOUTS.get(key)
    if cached is not None and cached[0] is schema:
        return cached[1]
    positions, position = [], 0
    for inp in schema.inputs:
        if inp.is_widget and inp.name not in lacks:
            positions.append((inp.name, position))
            position += 1 + inp.ui_extra_values
    layout = (tuple(positions), position)
    _LAYOUTS[key] = (schema, layout)  # the schema is kept, so its id is never reused
    return layout


def _defaults(schema: NodeSchema, names: Iterable[str]) -> dict[str, Any]:
    found = (schema.input_map.get(name) for name in sorted(names))
    return {inp.name: inp.default for inp in found
            if inp is not None and inp.default is not NO_DEFAULT}


def older_widget_values(schema: NodeSchema, values: list[Any]) -> dict[str, Any] | None:
    """Map widgets_values saved by an older version of the node, if one's count fits."""
    for lacks in older_layouts(schema):
        positions, expected = widget_layout(schema, lacks)
        if expected == len(values):
            mapped = {name: values[position] for name, position in positions}
            mapped.update(_defaults(schema, lacks))
            return mapped
    return None


def fill_older_inputs(workflow: Mapping[str, Any], registry: NodeRegistry) -> Mapping[str, Any]:
    """API nodes saved by an older version of their node get defaults for the later inputs."""
    for node in workflow.values():
        cls = registry.get(node.class_type)
        eras = older_layouts(cls.schema) if cls is not None else ()
        if not eras:
            continue
        schema = cls.schema
        missing = {inp.name for inp in schema.inputs
                   if inp.name not in node.inputs and inp.default is not NO_DEFAULT}
        if missing and any(missing <= lacks for lacks in eras):
            node.inputs.update(_defaults(schema, missing))
    return workflow


def added_later_default(inp: Input, where: str) -> tuple[bool, Any]:
    """(True, default) if `inp` is one ComfyUI added after older workflows were saved
    (`added_in`), logging one line; (False, None) if its absence is an error."""
    if inp.added_in is None:
        return False, None
    log.info("%s: input '%s' missing (added in ComfyUI on %s; the workflow is older), "
             "using default %r", where, inp.name, inp.added_in, inp.default)
    return True, inp.default


# -- legacy output layouts ----------------------------------------------------------------------
def saved_with_legacy_outputs(schema: NodeSchema, saved: list[tuple[str | None, str]]) -> bool:
    """True if a UI node's saved outputs ((name, type name), ...) are the schema's
    `legacy_outputs` rather than its current ones."""
    legacy = schema.legacy_outputs
    if legacy is None or len(saved) != len(legacy) or len(legacy) == len(schema.outputs):
        return False
    return all(name == old.name or kind == old.type.name
               for (name, kind), old in zip(saved, legacy, strict=True))


def current_slot_of_legacy(schema: NodeSchema, legacy_slot: int) -> int | None:
    """The current output index of legacy output `legacy_slot` (same name, else sole same type)."""
    legacy = schema.legacy_outputs
    if legacy is None or not 0 <= legacy_slot < len(legacy):
        return None
    old = legacy[legacy_slot]
    for index, out in enumerate(schema.outputs):
        if out.name == old.name:
            return index
    same_type = [i for i, out in enumerate(schema.outputs) if out.type.name == old.type.name]
    return same_type[0] if len(same_type) == 1 else None


def remap_legacy_slot(schema: NodeSchema, slot: int, expected_type: str) -> int | None:
    """Current output index for a link to `slot` whose consumer expects `expected_type`.

    Without `legacy_outputs` the slot is kept if it exists. With them, the slot is read in
    whichever layout (current or legacy) gives an output compatible with `expected_type`;
    None when neither does or both do with different outputs (ambiguous: never guess).
    """
    outputs = schema.outputs
    if schema.legacy_outputs is None:
        return slot if 0 <= slot < len(outputs) else None
    candidates: list[int] = []
    if 0 <= slot < len(outputs) and compatible(outputs[slot].type.name, expected_type):
        candidates.append(slot)
    old = current_slot_of_legacy(schema, slot)
    if old is not None and old not in candidates \
            and compatible(schema.legacy_outputs[slot].type.name, expected_type):
        candidates.append(old)
    return candidates[0] if len(candidates) == 1 else None


def resolve_slot(schema: NodeSchema, slot: int, expected: str) -> tuple[int | None, str]:
    """(current output index, "") for a link's slot, or (None, why not).

    A node with `legacy_outputs` may be linked by a workflow of either era: `remap_legacy_slot`
    reads the slot in whichever layout gives an output of the consumer's type. If neither
    layout does, the current layout's output is kept so that the consumer gets a plain type
    mismatch; if both do with different outputs, it is an error that says so.
    """
    resolved = remap_legacy_slot(schema, slot, expected)
    if resolved is not None:
        return resolved, ""
    in_current = 0 <= slot < len(schema.outputs)
    legacy = schema.legacy_outputs
    if legacy is None:
        return None, f"has no output slot {slot} (it has {len(schema.outputs)})"
    fits_current = in_current and compatible(schema.outputs[slot].type.name, expected)
    fits_legacy = 0 <= slot < len(legacy) and compatible(legacy[slot].type.name, expected)
    if fits_current and fits_legacy:
        return None, (f"output slot {slot} is ambiguous between the current and the legacy "
                      f"output layouts for an input of type {expected}; re-link it in the "
                      f"workflow")
    if in_current:
        return slot, ""  # reported as a plain type mismatch against the current layout
    return None, f"has no output slot {slot} of type {expected} in either output layout"
