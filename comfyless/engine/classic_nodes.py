"""ComfyUI's classic node interface, adapted into our schemas (custom_nodes/ packs).

A classic node is a class with `INPUT_TYPES()` (a classmethod returning
{"required": {...}, "optional": {...}, "hidden": {...}}), `RETURN_TYPES`, `RETURN_NAMES`,
`FUNCTION` (the method to call), `OUTPUT_NODE`, `CATEGORY`, `INPUT_IS_LIST`, `OUTPUT_IS_LIST`,
and optional `IS_CHANGED` / `VALIDATE_INPUTS` classmethods. `adapt_classic` turns one into a
`Node` whose schema the validator checks like ours and whose `execute` makes an instance and
calls FUNCTION.

How ComfyUI's rules map (facts from ComfyUI's nodes.py / execution.py, in our words):
- An input spec is `"TYPE"` or `("TYPE", {options})`; a list or tuple in the type place is a
  combo (its choices); `("COMBO", {"options": [...]})` is the newer spelling of the same.
  INT/FLOAT/STRING/BOOLEAN are widgets (constants allowed); any other string is a socket type
  matched by name ("*" takes anything, "A,B" either). Options used: default, min, max, step,
  round (False: none), multiline, forceInput, tooltip, lazy, display_name,
  control_after_generate and image_upload (these two shape a UI workflow's widgets_values).
- Hidden inputs: UNIQUE_ID (the node id), PROMPT (the API workflow), EXTRA_PNGINFO (the UI
  workflow, if any); other hidden kinds get None.
- FUNCTION returns a tuple (one value per RETURN_TYPES entry), or a dict {"ui": {...},
  "result": (...)}; a node that returns a graph to expand ("expand") is not supported.
- IS_CHANGED(**inputs) (linked inputs arrive as None) joins the cache key: an equal value
  means the cached outputs are reused; NaN (ComfyUI's "always changed") or a failing hook means
  the node always runs.
- VALIDATE_INPUTS(**inputs) runs at validation: True passes, anything else is the error
  message (named with the node). Only the inputs its signature names are passed (all with
  **kwargs; `input_types` is passed as {} - link types are checked by the validator itself).
  As in ComfyUI, an INT/FLOAT input it names skips the built-in min/max check; unlike ComfyUI,
  a combo it names is still checked against its choices.
- One instance per call of FUNCTION (ComfyUI keeps one per node id for a run); what the node
  prints goes to stderr, so `--json` output on stdout stays JSON.
"""

from __future__ import annotations

import contextlib
import inspect
import math
import sys
from collections.abc import Callable, Mapping
from typing import Any

from ..typesys.errors import SchemaError
from ..typesys.schema import NO_DEFAULT, Input, Node, NodeSchema, Output, Result
from ..typesys.types import ALL_TYPES, ANY, COMBO, IOType, io_type

DEFAULT_CATEGORY = "custom"


class ClassicNodeError(ValueError):
    """A classic node class that cannot be adapted (the message says what and why)."""


def adapt_classic(class_type: str, cls: type, *, display_name: str | None = None,
                  module_label: str | None = None) -> type[Node]:
    """A Node for ComfyUI-style class `cls` registered as `class_type` (ClassicNodeError if
    its declarations cannot be read or break our schema rules)."""
    try:
        spec = _input_types(cls)
        function_name = _function_name(cls)
        validated = _parameters(getattr(cls, "VALIDATE_INPUTS", None))
        inputs = _inputs(spec, validated)
        hidden = _hidden(spec)
        schema = NodeSchema(
            class_type, inputs=inputs, outputs=_outputs(cls),
            display_name=display_name, category=str(getattr(cls, "CATEGORY", DEFAULT_CATEGORY)),
            description=str(getattr(cls, "DESCRIPTION", "") or ""),
            output_node=bool(getattr(cls, "OUTPUT_NODE", False)),
            not_idempotent=bool(getattr(cls, "NOT_IDEMPOTENT", False)),
            is_input_list=bool(getattr(cls, "INPUT_IS_LIST", False)),
            experimental=bool(getattr(cls, "EXPERIMENTAL", False)),
            deprecated=bool(getattr(cls, "DEPRECATED", False)),
            hidden=tuple(hidden),
        )
    except ClassicNodeError:
        raise
    except (SchemaError, TypeError, ValueError, AttributeError, KeyError) as exc:
        raise ClassicNodeError(f"{class_type}: {exc}") from exc
    except Exception as exc:  # INPUT_TYPES is the pack's code: anything may come out
        raise ClassicNodeError(f"{class_type}: INPUT_TYPES() raised "
                               f"{type(exc).__name__}: {exc}") from exc
    body: dict[str, Any] = {
        "schema": schema,
        "classic": cls,
        "__doc__": cls.__doc__,
        "__module__": module_label or cls.__module__,
        "execute": staticmethod(_executor(cls, function_name, hidden)),
    }
    if callable(getattr(cls, "IS_CHANGED", None)):
        body["fingerprint"] = staticmethod(_fingerprint_hook(cls.IS_CHANGED))
    if callable(getattr(cls, "VALIDATE_INPUTS", None)):
        body["check"] = staticmethod(_check_hook(cls.VALIDATE_INPUTS))
    if callable(getattr(cls, "check_lazy_status", None)):
        body["check_lazy_status"] = staticmethod(_lazy_hook(cls))
    return type(f"Classic_{cls.__name__}", (Node,), body)


# -- declarations ---------------------------------------------------------------------------
def _input_types(cls: type) -> Mapping[str, Any]:
    getter = getattr(cls, "INPUT_TYPES", None)
    if not callable(getter):
        raise ClassicNodeError(f"{cls.__name__}: no INPUT_TYPES classmethod")
    spec = getter()
    if not isinstance(spec, Mapping):
        raise ClassicNodeError(f"{cls.__name__}: INPUT_TYPES() returned "
                               f"{type(spec).__name__}, expected a dict")
    return spec


def _function_name(cls: type) -> str:
    name = getattr(cls, "FUNCTION", None)
    if not isinstance(name, str) or not callable(getattr(cls, name, None)):
        raise ClassicNodeError(f"{cls.__name__}: FUNCTION {name!r} does not name a method")
    return name


def _parameters(function: Callable[..., Any] | None) -> frozenset[str] | None:
    """The keyword names `function` takes; None when it takes **kwargs (or is absent)."""
    if not callable(function):
        return frozenset()
    try:
        params = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return frozenset(p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD,
                                                          p.KEYWORD_ONLY))


def _inputs(spec: Mapping[str, Any], validated: frozenset[str] | None) -> tuple[Input, ...]:
    inputs: list[Input] = []
    for group, optional in (("required", False), ("optional", True)):
        entries = spec.get(group) or {}
        if not isinstance(entries, Mapping):
            raise ClassicNodeError(f"INPUT_TYPES()[{group!r}] is not a dict")
        for name, entry in entries.items():
            relaxed = validated is None or name in validated
            inputs.append(classic_input(str(name), entry, optional=optional,
                                        skip_range=relaxed))
    return tuple(inputs)


def _hidden(spec: Mapping[str, Any]) -> dict[str, str]:
    """Hidden input name -> kind ("UNIQUE_ID", "PROMPT", ...)."""
    hidden = spec.get("hidden") or {}
    if not isinstance(hidden, Mapping):
        raise ClassicNodeError("INPUT_TYPES()['hidden'] is not a dict")
    return {str(name): str(kind) for name, kind in hidden.items()}


def socket_type(spec: Any) -> IOType:
    """Our IOType for a classic type string ("IMAGE", "*", "MY_TYPE", "A,B") or a combo list."""
    if isinstance(spec, (list, tuple)):
        return COMBO
    if not isinstance(spec, str) or not spec:
        raise ClassicNodeError(f"type {spec!r} is not a type name or a list of choices")
    if spec == "*":
        return ANY
    return ALL_TYPES.get(spec) or io_type(spec)


def classic_input(name: str, entry: Any, *, optional: bool = False,
                  skip_range: bool = False) -> Input:
    """One input from ComfyUI's `"TYPE"` / `("TYPE", {options})` / `([choices], {options})`."""
    if isinstance(entry, str):
        type_spec, options = entry, {}
    elif isinstance(entry, (list, tuple)) and entry:
        type_spec = entry[0]
        options = entry[1] if len(entry) > 1 and isinstance(entry[1], Mapping) else {}
    else:
        raise ClassicNodeError(f"input {name!r}: spec {entry!r} is not \"TYPE\" or "
                               f"(\"TYPE\", {{options}})")
    choices: tuple[Any, ...] | None = None
    if isinstance(type_spec, (list, tuple)):
        choices = tuple(type_spec)
    elif type_spec == "COMBO":
        choices = tuple(options.get("options") or ())
    kind = socket_type(type_spec)
    number = kind.name in ("INT", "FLOAT") and not skip_range
    rounding = options.get("round")  # False (or absent): no rounding
    if isinstance(rounding, bool) or not isinstance(rounding, (int, float)):
        rounding = None
    return Input(
        name, kind,
        default=options.get("default", NO_DEFAULT),
        min=options.get("min") if number else None,
        max=options.get("max") if number else None,
        step=options.get("step"),
        round=rounding,
        choices=choices,
        optional=optional,
        force_input=bool(options.get("forceInput", False)),
        multiline=bool(options.get("multiline", False)),
        lazy=bool(options.get("lazy", False)),
        control_after_generate=bool(options.get("control_after_generate", False)),
        image_upload=bool(options.get("image_upload", False)),
        display_name=options.get("display_name"),
        tooltip=str(options.get("tooltip", "") or ""),
    )


def _outputs(cls: type) -> tuple[Output, ...]:
    types = tuple(getattr(cls, "RETURN_TYPES", ()) or ())
    names = tuple(getattr(cls, "RETURN_NAMES", ()) or ())
    is_list = tuple(getattr(cls, "OUTPUT_IS_LIST", ()) or ())
    tooltips = tuple(getattr(cls, "OUTPUT_TOOLTIPS", ()) or ())
    outputs: list[Output] = []
    taken: set[str] = set()
    for slot, spec in enumerate(types):
        kind = socket_type(spec)
        name = str(names[slot]) if slot < len(names) else kind.name
        unique, n = name, 2
        while unique in taken:  # ("IMAGE", "IMAGE") without names: our names must differ
            unique, n = f"{name}_{n}", n + 1
        taken.add(unique)
        outputs.append(Output(unique, kind,
                              is_list=bool(is_list[slot]) if slot < len(is_list) else False,
                              tooltip=str(tooltips[slot]) if slot < len(tooltips) else ""))
    return tuple(outputs)


# -- behaviour ------------------------------------------------------------------------------
def _hidden_value(kind: str, ctx: Any) -> Any:
    if kind == "UNIQUE_ID":
        return ctx.node_id
    if kind == "PROMPT":
        return ctx.prompt
    if kind == "EXTRA_PNGINFO":
        return ctx.extra_pnginfo
    return None


def _executor(cls: type, function_name: str, hidden: Mapping[str, str]
              ) -> Callable[..., Result]:
    def execute(ctx: Any, **inputs: Any) -> Result:
        for name, kind in hidden.items():
            inputs[name] = _hidden_value(kind, ctx)
        with contextlib.redirect_stdout(sys.stderr):
            returned = getattr(cls(), function_name)(**inputs)
        return classic_result(returned)

    return execute


def classic_result(returned: Any) -> Result:
    """Our Result from what a classic FUNCTION returned (tuple, list, None or ui/result dict)."""
    if isinstance(returned, Mapping):
        if "expand" in returned:
            raise NotImplementedError("the node returned a graph to expand ('expand'), which "
                                      "comfyless does not support")
        ui = returned.get("ui") or {}
        if not isinstance(ui, Mapping):
            raise TypeError(f"'ui' must be a dict, got {type(ui).__name__}")
        values = returned.get("result") or ()
        return Result(tuple(values), {str(k): v for k, v in ui.items()})
    if returned is None:
        return Result(())
    if isinstance(returned, (tuple, list)):
        return Result(tuple(returned))
    raise TypeError(f"FUNCTION returned {type(returned).__name__}; expected a tuple of "
                    f"outputs or a {{'ui': ..., 'result': ...}} dict")


def _keywords(function: Callable[..., Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """The entries of `values` that `function` accepts by name."""
    accepted = _parameters(function)
    if accepted is None:
        return dict(values)
    return {k: v for k, v in values.items() if k in accepted}


def _fingerprint_hook(is_changed: Callable[..., Any]) -> Callable[..., Any]:
    def fingerprint(**constants: Any) -> Any:
        value = is_changed(**_keywords(is_changed, constants))
        if isinstance(value, float) and math.isnan(value):
            raise ValueError("IS_CHANGED returned NaN: the node always runs")
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        return repr(value)  # hashes, tuples, bytes: their repr is stable between runs

    return fingerprint


def _check_hook(validate_inputs: Callable[..., Any]) -> Callable[..., dict[str | None, str]]:
    def check(**constants: Any) -> dict[str | None, str]:
        kwargs = _keywords(validate_inputs, constants)
        accepted = _parameters(validate_inputs)
        if accepted is not None and "input_types" in accepted:
            kwargs["input_types"] = {}
        with contextlib.redirect_stdout(sys.stderr):
            verdict = validate_inputs(**kwargs)
        if verdict is True:
            return {}
        return {None: f"VALIDATE_INPUTS: {verdict}"}

    return check


def _lazy_hook(cls: type) -> Callable[..., Any]:
    def check_lazy_status(**inputs: Any) -> Any:
        method = cls().check_lazy_status
        return method(**_keywords(method, inputs))

    return check_lazy_status
