"""`--sweep ID.INPUT=VALUES`: a grid of input overrides (the variants of a sweep run).

VALUES is `A..B` (whole numbers A to B, both included: `3.seed=1..8`) or a comma list of
values, each read as `--set` reads one (JSON if it parses, else a string):
`5.learning_rate=1e-4,5e-4`, `3.sampler_name=euler,dpmpp_2m`, `4.size=[64,64],[96,96]`.
Several --sweep flags make a grid: every combination, the first flag varying slowest.
Mistakes are UsageErrors naming the flag and the value, raised before anything runs.
"""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass
from typing import Any

from .overrides import UsageError, parse_override

_RANGE = re.compile(r"^\s*(-?\d+)\s*\.\.\s*(-?\d+)\s*$")
MAX_VARIANTS = 10_000  # a typo such as 1..10000000 is caught before anything runs
_UNSAFE = re.compile(r"[^A-Za-z0-9._=+-]+")


@dataclass(frozen=True)
class SweepAxis:
    node_id: str
    name: str
    values: tuple[Any, ...]

    @property
    def target(self) -> str:
        return f"{self.node_id}.{self.name}"


@dataclass(frozen=True)
class Variant:
    index: int  # 1-based, in grid order
    overrides: tuple[tuple[str, str, Any], ...]  # (node id, input, value)

    def label(self) -> str:
        return ", ".join(f"{n}.{i}={json.dumps(v)}" for n, i, v in self.overrides)

    def folder(self, width: int) -> str:
        """A file-system-safe sub-folder name: the index, then the values."""
        parts = "_".join(f"{n}.{i}={_plain(v)}" for n, i, v in self.overrides)
        return f"{self.index:0{width}d}_{_UNSAFE.sub('-', parts)[:80]}".rstrip("_")


def _plain(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def parse_sweep(text: str) -> SweepAxis:
    """'ID.INPUT=A..B' or 'ID.INPUT=V1,V2,...' -> SweepAxis (UsageError naming the flag)."""
    where = f"--sweep {text!r}"
    try:
        node_id, name, _value = parse_override(text)
    except UsageError:
        raise UsageError(f"{where}: expected ID.INPUT=A..B or ID.INPUT=V1,V2,..., "
                         "e.g. --sweep 3.seed=1..8 or --sweep 5.learning_rate=1e-4,5e-4"
                         ) from None
    spec = text.partition("=")[2]
    values = _range(spec, where) if ".." in spec and _looks_like_range(spec) else \
        _list(spec, where)
    return SweepAxis(node_id, name, values)


def _looks_like_range(spec: str) -> bool:
    """`1..8` and mistakes like `1..x` or `1.5..2` are ranges (then checked); a list, or a
    single string such as `a..b`, is not."""
    return "," not in spec and re.match(r"^\s*-?\d", spec) is not None


def _range(spec: str, where: str) -> tuple[int, ...]:
    match = _RANGE.match(spec)
    if not match:
        raise UsageError(f"{where}: a range A..B takes whole numbers (e.g. 1..8), got {spec!r}")
    start, stop = int(match[1]), int(match[2])
    if stop < start:
        raise UsageError(f"{where}: the range {spec!r} is empty (A..B needs A <= B)")
    if stop - start + 1 > MAX_VARIANTS:
        raise UsageError(f"{where}: {stop - start + 1} values; at most {MAX_VARIANTS}")
    return tuple(range(start, stop + 1))


def _list(spec: str, where: str) -> tuple[Any, ...]:
    """A comma list: as one JSON array if it reads as one (so `[1,2],[3,4]` keeps its lists),
    else split at the commas, each item JSON if it parses, else a string."""
    if not spec.strip():
        raise UsageError(f"{where}: no values after '='; give A..B or V1,V2,...")
    try:
        values = json.loads(f"[{spec}]")
    except ValueError:
        values = None
    if values is None:
        items = spec.split(",")
        if any(not item.strip() for item in items):
            raise UsageError(f"{where}: an empty value in the list {spec!r}")
        values = [_json_or_text(item.strip()) for item in items]
    return tuple(values)


def _json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def expand_grid(axes: list[SweepAxis]) -> list[Variant]:
    """Every combination of the axes' values (first axis slowest); UsageError on a target
    named twice or a grid too large."""
    seen: dict[str, int] = {}
    for axis in axes:
        if axis.target in seen:
            raise UsageError(f"--sweep {axis.target} is given twice; put all its values in "
                             "one flag (e.g. --sweep 3.seed=1,2,3)")
        seen[axis.target] = 1
    size = 1
    for axis in axes:
        size *= len(axis.values)
    if size > MAX_VARIANTS:
        raise UsageError(f"--sweep: the grid has {size} variants; at most {MAX_VARIANTS}")
    combos = itertools.product(*(axis.values for axis in axes))
    return [Variant(i, tuple((a.node_id, a.name, v) for a, v in zip(axes, combo, strict=True)))
            for i, combo in enumerate(combos, start=1)]
