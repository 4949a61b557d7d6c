"""Output cache across runs in one process, keyed by recipe (never by tensor contents).

A node's key is a digest of its recipe: class_type, its `fingerprint` hook's value, the size
and mtime of each file it picks by name (`choices_from` inputs), its constant inputs sorted by
name, and for each linked input (sorted by name) the producer's key and slot. Producer keys are
digests of their own recipes, so a key covers the whole ancestry (ComfyUI's input signature),
node ids play no part, and identical sub-graphs share results.

A node gets no key (None: always runs, never stored) when it is `not_idempotent`, when a
constant is not plain JSON data, when its fingerprint hook raises, or when any producer has no
key - a rerun producer yields new objects, so its consumers must rerun too.

State of `OutputCache`: `entries` key -> (per-slot output lists, ui dict). Policy is ComfyUI's
"classic" cache: after each run only the entries that run used (hit or stored) survive, so
memory stays bounded by one workflow's outputs.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from ..typesys.errors import WorkflowError
from .paths import BasePaths
from .validate import PlannedNode


def _canonical(value: Any) -> Any:
    """Canonical plain form of a constant (dicts sorted), or TypeError if not plain data."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return repr(value)  # keeps -0.0, inf and the exact digits
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if isinstance(value, dict):
        items = sorted(value.items(), key=lambda kv: str(kv[0]))
        return ("dict", [[str(k), _canonical(v)] for k, v in items])  # tuple: never a list
    raise TypeError(f"not cacheable: {type(value).__name__}")


def file_stamps(planned: PlannedNode, paths: BasePaths) -> list[Any]:
    """(input, size, mtime) of every file (or folder's files) a node picks by name.

    Part of the key, so a checkpoint or dataset changed on disk is reloaded, not served stale.
    """
    stamps: list[Any] = []
    for inp in planned.node.schema.inputs:
        value = planned.constants.get(inp.name)
        if inp.choices_from is None or not isinstance(value, str) or value in inp.extra_choices:
            continue
        try:
            found = paths.find(inp.choices_from, value, input_name=inp.name)
            files = [found] if found.is_file() else sorted(p for p in found.rglob("*")
                                                          if p.is_file())
            for f in files:
                st = f.stat()
                stamps.append([inp.name, str(f), st.st_size, st.st_mtime_ns])
        except (OSError, WorkflowError):
            stamps.append([inp.name, value, None])  # the node itself will report it
    return stamps


def cache_key(planned: PlannedNode, producer_keys: dict[str, str | None],
              stamps: list[Any] | None = None) -> str | None:
    """The recipe digest of one node, given its producers' keys (None: never cache)."""
    schema = planned.node.schema
    if schema.not_idempotent:
        return None
    links = []
    for name in sorted(planned.links):
        src, slot = planned.links[name]
        src_key = producer_keys.get(src)
        if src_key is None:
            return None
        links.append([name, src_key, slot])
    try:
        fingerprint = _fingerprint(planned)
        recipe = [schema.class_type, fingerprint, stamps or [],
                  [[n, _canonical(planned.constants[n])] for n in sorted(planned.constants)],
                  links]
        text = repr(recipe)  # canonical: only lists, str, int, bool, None (floats as repr)
    except (TypeError, ValueError):
        return None
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def _fingerprint(planned: PlannedNode) -> Any:
    hook = getattr(planned.node, "fingerprint", None)
    if hook is None:
        return None
    args = {name: planned.constants.get(name) for name in planned.node.schema.input_map}
    try:
        return _canonical(hook(**args))
    except Exception as exc:  # ComfyUI: a failing IS_CHANGED means "always rerun"
        raise TypeError("fingerprint failed") from exc


@dataclass
class CacheEntry:
    outputs: tuple[list[Any], ...]
    ui: dict[str, list[Any]]


@dataclass
class OutputCache:
    """key -> CacheEntry, pruned to the keys of the latest run (see module docstring)."""

    entries: dict[str, CacheEntry] = field(default_factory=dict)
    used: set[str] = field(default_factory=set)

    def get(self, key: str | None) -> CacheEntry | None:
        if key is None:
            return None
        entry = self.entries.get(key)
        if entry is not None:
            self.used.add(key)
        return entry

    def put(self, key: str | None, entry: CacheEntry) -> None:
        if key is not None:
            self.entries[key] = entry
            self.used.add(key)

    def begin_run(self) -> None:
        self.used = set()

    def end_run(self) -> None:
        """Drop entries the run just finished did not touch (classic policy)."""
        self.entries = {k: v for k, v in self.entries.items() if k in self.used}

    def clear(self) -> None:
        self.entries.clear()
        self.used = set()

    def __len__(self) -> int:
        return len(self.entries)


DEFAULT_CACHE = OutputCache()  # shared by every run in this process unless one is passed
