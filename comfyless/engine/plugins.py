"""Nodes from outside comfyless: entry-point plugins and ComfyUI-style custom_nodes/ packs.

`registry_with_plugins(...)` returns a NEW registry: the built-in nodes (comfyless.nodes
REGISTRY, which stays unchanged) plus
1. every entry point of the group `comfyless.nodes` (installed Python packages): the entry point
   names a module exporting NODES (Node classes, as comfyless/nodes/*.py), a callable returning
   them, or a module with ComfyUI's NODE_CLASS_MAPPINGS;
2. every pack in the custom_nodes folders: the base dir's `custom_nodes/` if it exists, and each
   folder given (`--custom-nodes DIR`). A pack is a `*.py` file or a folder with `__init__.py`
   exporting NODE_CLASS_MAPPINGS (and NODE_DISPLAY_NAME_MAPPINGS), adapted by classic_nodes.py.

Loading runs the plugin's code (docs/plugins.md); nothing is loaded from a folder that does
not exist or was not named. Every failure is a `PluginProblem` in the result, never an
exception: a pack that imports ComfyUI's own modules (`comfy`, `folder_paths`, `server`, ...)
is reported with the module it wanted, a pack that raises at import is reported with the
error, and the other packs still load. Duplicate class_types: built-in nodes always win; among
plugins the first loaded wins (entry points sorted by distribution and name, then folders in
order, packs in name order); each loser is reported.

This module imports no torch (a plugin may: that is its own choice).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.abc
import importlib.util
import os
import re
import sys
import types
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..typesys.schema import Node, NodeRegistry, NodeSchema
from .classic_nodes import ClassicNodeError, adapt_classic
from .paths import BasePaths

ENTRY_POINT_GROUP = "comfyless.nodes"
BUILTIN = "built-in"
CUSTOM_NODES_FOLDER = "custom_nodes"
# ComfyUI's own top-level modules: a pack that imports one needs ComfyUI itself.
COMFYUI_MODULES = frozenset({
    "comfy", "comfy_extras", "comfy_execution", "comfy_api", "comfy_api_nodes", "comfy_config",
    "folder_paths", "server", "nodes", "execution", "latent_preview", "node_helpers",
})
_PACKAGE = "comfyless_custom_nodes"  # sys.modules parent of the imported packs


@dataclass(frozen=True)
class PluginProblem:
    """Something a plugin or pack could not do; `source` is its origin string."""

    source: str
    message: str
    wanted_module: str | None = None  # the ComfyUI module a pack tried to import

    def __str__(self) -> str:
        return f"{self.source}: {self.message}"


@dataclass
class LoadedNodes:
    """A registry with plugins added, where each node came from, and what went wrong."""

    registry: NodeRegistry
    origins: dict[str, str] = field(default_factory=dict)
    problems: list[PluginProblem] = field(default_factory=list)

    def origin(self, class_type: str) -> str:
        return self.origins.get(class_type, BUILTIN)

    def add(self, node: type[Node], origin: str) -> None:
        """Register `node` unless its class_type is taken (then a problem: the first stays)."""
        class_type = node.schema.class_type
        if self.registry.get(class_type) is node:
            return  # the same class again (a distribution seen twice on sys.path)
        if class_type in self.registry:
            kept = self.origin(class_type)
            self.problems.append(PluginProblem(
                origin, f"class_type {class_type!r} is already defined by {kept}; the "
                f"{'built-in node' if kept == BUILTIN else 'first one loaded'} is kept"))
            return
        self.registry.register(node)
        self.origins[class_type] = origin


def registry_with_plugins(custom_nodes: Iterable[str | os.PathLike] = (), *,
                          base_dir: str | os.PathLike | None = None,
                          paths: BasePaths | None = None,
                          entry_points: bool = True) -> LoadedNodes:
    """Built-in nodes + entry-point plugins + custom_nodes packs (see the module docstring).

    `custom_nodes`: folders named by the user (each must exist: OSError otherwise). The base
    dir's `custom_nodes/` (from `paths`, else `base_dir` as BasePaths.resolve reads it) is
    added when it exists.
    """
    from ..nodes import REGISTRY

    loaded = LoadedNodes(REGISTRY.copy(), {name: BUILTIN for name in REGISTRY})
    if entry_points:
        for entry in _entry_points():
            _load_entry_point(loaded, entry)
    for folder in custom_node_folders(custom_nodes, paths or BasePaths.resolve(base_dir)):
        for pack in _packs(folder, loaded):
            _load_pack(loaded, pack)
    return loaded


@functools.cache
def worker_registry(custom_nodes: tuple[str, ...], base_dir: str | None) -> NodeRegistry:
    """registry_with_plugins(...).registry, built once per (worker) process for each pair
    (a worker runs many jobs; the driver already printed any pack problem)."""
    return registry_with_plugins(custom_nodes, base_dir=base_dir).registry


def custom_node_folders(given: Iterable[str | os.PathLike], paths: BasePaths) -> list[Path]:
    """The base dir's custom_nodes/ (if it exists), then each folder given (must exist)."""
    folders: list[Path] = []
    default = paths.custom_nodes_dir
    if default.is_dir():
        folders.append(default.resolve())
    for name in given:
        folder = Path(name).expanduser()
        if not folder.is_dir():
            raise OSError(f"--custom-nodes {name}: no such folder")
        if folder.resolve() not in folders:
            folders.append(folder.resolve())
    return folders


# -- entry points ---------------------------------------------------------------------------
def _entry_points() -> list[Any]:
    from importlib.metadata import entry_points

    found = entry_points(group=ENTRY_POINT_GROUP)
    return sorted(found, key=lambda e: (_dist_name(e), e.name))


def _dist_name(entry: Any) -> str:
    dist = getattr(entry, "dist", None)
    return getattr(dist, "name", None) or "?"


def entry_point_origin(entry: Any) -> str:
    return f"entry point {_dist_name(entry)}:{entry.name}"


def _load_entry_point(loaded: LoadedNodes, entry: Any) -> None:
    origin = entry_point_origin(entry)
    with _importing(loaded, origin):
        target = entry.load()
        if isinstance(target, types.ModuleType) and not hasattr(target, "NODES") \
                and hasattr(target, "NODE_CLASS_MAPPINGS"):
            _add_classic(loaded, target, origin, target.__name__)
            return
        nodes = getattr(target, "NODES", None) if isinstance(target, types.ModuleType) \
            else target
        if callable(nodes) and not isinstance(nodes, type):
            nodes = nodes()
        _add_nodes(loaded, nodes, origin)


def _add_nodes(loaded: LoadedNodes, nodes: Any, origin: str) -> None:
    if not isinstance(nodes, (list, tuple)):
        loaded.problems.append(PluginProblem(
            origin, f"expected a module exporting NODES (a list of Node classes) or a "
            f"callable returning them, got {type(nodes).__name__}"))
        return
    for node in nodes:
        schema = getattr(node, "schema", None)
        if not (isinstance(node, type) and issubclass(node, Node)
                and isinstance(schema, NodeSchema) and callable(getattr(node, "execute", None))):
            loaded.problems.append(PluginProblem(
                origin, f"{node!r} is not a Node class with a NodeSchema and an execute"))
            continue
        loaded.add(node, origin)


# -- custom_nodes packs ---------------------------------------------------------------------
@dataclass(frozen=True)
class _Pack:
    path: Path  # a .py file or a folder with __init__.py
    name: str  # the file's stem or the folder's name
    origin: str


def _packs(folder: Path, loaded: LoadedNodes) -> list[_Pack]:
    """The packs of one folder, as ComfyUI finds them: *.py files and folders with an
    __init__.py; `__pycache__`, hidden names and `*.disabled` are skipped."""
    packs = []
    for entry in sorted(folder.iterdir(), key=lambda p: p.name):
        name = entry.name
        if name.startswith((".", "__")) or name.endswith(".disabled"):
            continue
        origin = f"{CUSTOM_NODES_FOLDER}/{name}"
        if entry.is_dir():
            if not (entry / "__init__.py").is_file():
                loaded.problems.append(PluginProblem(origin, "skipped: a folder without "
                                                             "__init__.py is not a pack"))
                continue
            packs.append(_Pack(entry, name, origin))
        elif entry.suffix == ".py":
            packs.append(_Pack(entry, entry.stem, origin))
    return packs


def _load_pack(loaded: LoadedNodes, pack: _Pack) -> None:
    with _importing(loaded, pack.origin):
        module = _import_pack(pack)
        if not isinstance(getattr(module, "NODE_CLASS_MAPPINGS", None), Mapping):
            loaded.problems.append(PluginProblem(
                pack.origin, "no NODE_CLASS_MAPPINGS dict: nothing to load (ComfyUI V3 "
                "`comfy_entrypoint` packs need ComfyUI's comfy_api)"))
            return
        _add_classic(loaded, module, pack.origin, f"{CUSTOM_NODES_FOLDER}.{pack.name}")


def _import_pack(pack: _Pack) -> types.ModuleType:
    """Import a pack under a private name (re-run every time: the code on disk now)."""
    tag = hashlib.blake2b(str(pack.path).encode(), digest_size=4).hexdigest()
    name = f"{_PACKAGE}.{re.sub(r'[^0-9A-Za-z_]', '_', pack.name)}_{tag}"
    for stale in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
        del sys.modules[stale]
    if _PACKAGE not in sys.modules:  # a bare parent, so the packs' relative imports resolve
        parent = types.ModuleType(_PACKAGE)
        parent.__path__ = []
        sys.modules[_PACKAGE] = parent
    if pack.path.is_dir():
        spec = importlib.util.spec_from_file_location(
            name, pack.path / "__init__.py", submodule_search_locations=[str(pack.path)])
    else:
        spec = importlib.util.spec_from_file_location(name, pack.path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {pack.path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def _add_classic(loaded: LoadedNodes, module: Any, origin: str, label: str) -> None:
    mappings = getattr(module, "NODE_CLASS_MAPPINGS", {}) or {}
    names = getattr(module, "NODE_DISPLAY_NAME_MAPPINGS", {}) or {}
    for class_type, cls in mappings.items():
        try:
            node = adapt_classic(str(class_type), cls, display_name=names.get(class_type),
                                 module_label=label)
        except ClassicNodeError as exc:
            loaded.problems.append(PluginProblem(origin, f"node not loaded: {exc}"))
            continue
        loaded.add(node, origin)


# -- importing foreign code -----------------------------------------------------------------
class _ComfyUIModuleBlocker(importlib.abc.MetaPathFinder):
    """While packs import: ComfyUI's own modules are missing, even if something of that name
    (a `nodes.py`, a `server` package) happens to be importable here. When nothing of that
    name exists the import system's own "not found" stands (so `importlib.util.find_spec`
    probes in a pack still get None)."""

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: Any = None):
        if path is None and fullname in COMFYUI_MODULES and self._shadowed(fullname):
            raise ModuleNotFoundError(f"No module named {fullname!r} (a ComfyUI module; "
                                      f"the {fullname!r} importable here is not ComfyUI's)",
                                      name=fullname)
        return None

    def _shadowed(self, fullname: str) -> bool:
        """Would another finder find something called `fullname`?"""
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            if finder.find_spec(fullname, None) is not None:
                return True
        return False


@contextlib.contextmanager
def _importing(loaded: LoadedNodes, origin: str):
    """Run plugin code: its prints go to stderr, anything it raises becomes a problem."""
    blocker = _ComfyUIModuleBlocker()
    sys.meta_path.insert(0, blocker)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    except ModuleNotFoundError as exc:
        loaded.problems.append(_missing_module(origin, exc))
    except (Exception, SystemExit) as exc:  # the pack's own code failed; others still load
        loaded.problems.append(PluginProblem(
            origin, f"failed to load: {type(exc).__name__}: {exc}"))
    finally:
        sys.meta_path.remove(blocker)
        importlib.invalidate_caches()


def _missing_module(origin: str, exc: ModuleNotFoundError) -> PluginProblem:
    wanted = exc.name or ""
    if wanted.split(".")[0] in COMFYUI_MODULES:
        return PluginProblem(
            origin, f"needs ComfyUI's module {wanted!r}, which comfyless does not provide "
            f"(only packs whose code needs nothing of ComfyUI's internals load); "
            f"its nodes are not loaded", wanted_module=wanted)
    return PluginProblem(origin, f"failed to load: ModuleNotFoundError: {exc}",
                         wanted_module=wanted or None)
