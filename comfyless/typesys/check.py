"""Pure checks on types and constant values; no I/O, no engine state."""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable
from typing import Any

from .errors import InvalidValue, NotInChoices, ValueOutOfRange, WorkflowError
from .schema import Input
from .types import COMFY_MATCHTYPE_V3

MATCH_TYPE = COMFY_MATCHTYPE_V3.name


def nearest(name: Any, names: Iterable[Any], n: int = 3, cutoff: float = 0.6) -> list[str]:
    """The names closest to a misspelt `name`, best first (the one helper for every
    "did you mean" hint: class types, input names, combo choices). Case is ignored when
    comparing, so `adamw` finds `AdamW` first."""
    by_lower: dict[str, list[str]] = {}
    for candidate in map(str, names):
        by_lower.setdefault(candidate.lower(), []).append(candidate)
    found: list[str] = []
    for lower in difflib.get_close_matches(str(name).lower(), by_lower, n=n, cutoff=cutoff):
        found += by_lower[lower]
    return found[:n]


def compatible(received: str, expected: str) -> bool:
    """Can an output of type `received` feed an input of type `expected`? (ComfyUI's rules.)

    Equal names, `*` on either side, or (for comma unions) any shared member.
    """
    if received == expected or "*" in (received, expected):
        return True
    if MATCH_TYPE in (received, expected):  # V3 match-type sockets: the frontend enforces
        return True
    got = {t.strip() for t in received.split(",")}
    want = {t.strip() for t in expected.split(",")}
    return "*" in got or "*" in want or bool(got & want)


def _to_bool(value: Any) -> bool:
    # ComfyUI applies bool(v), so the string "false" is True there. We accept the obvious
    # spellings instead: a CLI user writing --set 3.flag=false means False.
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("true", "1", "yes", "on"):
            return True
        if lowered in ("false", "0", "no", "off", ""):
            return False
        raise ValueError(f"not a boolean: {value!r}")
    if isinstance(value, (bool, int, float)):
        return bool(value)
    raise ValueError(f"not a boolean: {value!r}")


def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError(f"{value!r} is not a whole number")
        return int(value)
    if isinstance(value, (int, str)):
        return int(value)
    raise ValueError(f"cannot convert {type(value).__name__} to int")


def _to_float(value: Any) -> float:
    if isinstance(value, (bool, int, float, str)):
        result = float(value)
        if math.isnan(result):
            raise ValueError("NaN is not a valid number")
        return result
    raise ValueError(f"cannot convert {type(value).__name__} to float")


def _to_str(value: Any) -> str:
    if isinstance(value, (str, int, float, bool)):
        return str(value)
    raise ValueError(f"cannot convert {type(value).__name__} to string")


CONVERTERS = {"INT": _to_int, "FLOAT": _to_float, "STRING": _to_str, "BOOLEAN": _to_bool,
              "COMBO": _to_str}


def convert_value(inp: Input, value: Any) -> Any:
    """Coerce a constant to the input's declared type; raises ValueError if it cannot."""
    convert = CONVERTERS.get(inp.type.name)
    if convert is None:
        raise ValueError(f"a {inp.type.name} input takes a link, not a constant")
    return convert(value)


def check_value(
    inp: Input, value: Any, *, node_id: str | None = None, choices: tuple[str, ...] | None = None
) -> tuple[Any, WorkflowError | None]:
    """Convert and range/choice-check one constant: (converted value, first error or None).

    `choices` overrides `inp.choices` (dynamic choices resolved from a folder by the caller).
    """
    where = {"node_id": node_id, "input_name": inp.name}
    try:
        converted = convert_value(inp, value)
    except (ValueError, TypeError, OverflowError) as exc:
        return value, InvalidValue(
            f"input '{inp.name}': failed to convert {value!r} to {inp.type.name}: {exc}",
            received_value=value, **where,
        )
    if inp.min is not None and converted < inp.min:
        return converted, ValueOutOfRange(
            f"input '{inp.name}': value {converted} smaller than min of {inp.min}",
            too_big=False, received_value=converted, **where,
        )
    if inp.max is not None and converted > inp.max:
        return converted, ValueOutOfRange(
            f"input '{inp.name}': value {converted} bigger than max of {inp.max}",
            too_big=True, received_value=converted, **where,
        )
    options = choices if choices is not None else inp.choices
    if options is not None and converted not in options:
        shown = list(options) if len(options) <= 20 else f"(list of length {len(options)})"
        near = nearest(converted, options)
        hint = f"; nearest: {', '.join(near)}" if near else ""
        return converted, NotInChoices(
            f"input '{inp.name}': {converted!r} not in {shown}{hint}",
            received_value=converted, **where,
        )
    return converted, None
