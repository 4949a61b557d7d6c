"""A regression suite: a folder of workflows, or a TOML manifest listing cases.

Manifest (all keys optional except `case.workflow`):

    [suite]
    golden = "golden"              # folder for recorded outputs, relative to the manifest

    [tolerance]                    # suite-wide, see compare.Tolerance for the keys
    image_ssim = 0.99

    [[case]]
    name = "train-tiny"            # default: the workflow's file stem
    workflow = "lora-train.json"   # relative to the manifest; a shipped workflow name also works
    set = { "3.steps" = 4 }        # or ["3.steps=4"], like `comfyless run --set`
    [case.tolerance]
    lora_atol = 1e-3
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .compare import Tolerance

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

DEFAULT_GOLDEN = "golden"
_CASE_KEYS = {"name", "workflow", "set", "tolerance"}
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class SuiteError(Exception):
    """The suite itself is unusable (missing path, malformed manifest): exit code 2."""


@dataclass(frozen=True)
class Case:
    name: str
    workflow: Path
    overrides: tuple[tuple[str, str, Any], ...] = ()
    tolerance: Tolerance = field(default_factory=Tolerance)


@dataclass(frozen=True)
class Suite:
    root: Path
    golden: Path
    cases: tuple[Case, ...]

    def golden_dir(self, case: Case) -> Path:
        return self.golden / case.name


def load_suite(path: str | Path) -> Suite:
    """A Suite from a folder of *.json workflows or from a .toml manifest."""
    path = Path(path)
    if path.is_dir():
        return _folder_suite(path)
    if path.is_file() and path.suffix == ".toml":
        return _manifest_suite(path)
    if path.is_file():
        raise SuiteError(f"{path}: a suite is a folder of workflows or a .toml manifest")
    raise SuiteError(f"{path}: no such file or folder")


def _folder_suite(folder: Path) -> Suite:
    workflows = sorted(p for p in folder.glob("*.json") if p.is_file())
    if not workflows:
        raise SuiteError(f"{folder}: no *.json workflows in this folder")
    cases = tuple(Case(p.stem, p) for p in workflows)
    return Suite(folder, folder / DEFAULT_GOLDEN, cases)


def _manifest_suite(manifest: Path) -> Suite:
    try:
        data = tomllib.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise SuiteError(f"{manifest}: cannot read: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise SuiteError(f"{manifest}: not valid TOML: {exc}") from exc
    unknown = sorted(set(data) - {"suite", "tolerance", "case"})
    if unknown:
        raise SuiteError(f"{manifest}: unknown top-level key(s) {unknown}; "
                         "expected [suite], [tolerance], [[case]]")
    root = manifest.parent
    suite_conf = _table(data, "suite", manifest, "$")
    base_tol = _tolerance(_table(data, "tolerance", manifest, "$"), None, manifest, "[tolerance]")
    raw_cases = data.get("case", [])
    if not isinstance(raw_cases, list) or not raw_cases:
        raise SuiteError(f"{manifest}: needs at least one [[case]] table with a `workflow`")
    cases = tuple(_case(raw, i, root, base_tol, manifest) for i, raw in enumerate(raw_cases))
    names = [c.name for c in cases]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise SuiteError(f"{manifest}: duplicate case name(s) {duplicates}")
    golden = root / str(suite_conf.get("golden", DEFAULT_GOLDEN))
    return Suite(root, golden, cases)


def _table(data: dict, key: str, manifest: Path, where: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise SuiteError(f"{manifest}: {where}.{key} must be a table")
    return value


def _tolerance(table: dict, base: Tolerance | None, manifest: Path, where: str) -> Tolerance:
    try:
        return Tolerance.from_table(table, base)
    except ValueError as exc:
        raise SuiteError(f"{manifest}: {where}: {exc}") from exc


def _case(raw: Any, index: int, root: Path, base_tol: Tolerance, manifest: Path) -> Case:
    where = f"case #{index + 1}"
    if not isinstance(raw, dict):
        raise SuiteError(f"{manifest}: {where} must be a table")
    unknown = sorted(set(raw) - _CASE_KEYS)
    if unknown:
        raise SuiteError(f"{manifest}: {where}: unknown key(s) {unknown}; "
                         f"allowed {sorted(_CASE_KEYS)}")
    if not isinstance(raw.get("workflow"), str):
        raise SuiteError(f"{manifest}: {where}: `workflow` (a path) is required")
    workflow = resolve_workflow(raw["workflow"], root)
    if workflow is None:
        raise SuiteError(f"{manifest}: {where}: workflow {raw['workflow']!r} not found "
                         f"(relative to {root}, or a shipped workflow name)")
    name = raw.get("name", workflow.stem)
    if not isinstance(name, str) or not _SAFE_NAME.match(name):
        raise SuiteError(f"{manifest}: {where}: name {name!r} must be letters, digits, . _ -")
    overrides = _overrides(raw.get("set", {}), manifest, f"{where} ({name})")
    tolerance = _tolerance(raw.get("tolerance", {}), base_tol, manifest, f"{where} ({name})")
    return Case(name, workflow, overrides, tolerance)


def resolve_workflow(text: str, root: Path) -> Path | None:
    """A path relative to the manifest, else a shipped workflow by name."""
    from ..workflows import find_shipped

    candidate = root / text
    return candidate if candidate.is_file() else find_shipped(text)


def _overrides(raw: Any, manifest: Path, where: str) -> tuple[tuple[str, str, Any], ...]:
    """`set` as a table {"ID.INPUT": value} or a list of "ID.INPUT=VALUE" strings."""
    from ..engine.overrides import UsageError, parse_override

    if isinstance(raw, dict):
        # Parse only the key; the TOML value is already typed.
        pairs = [(f"{key}=0", value) for key, value in raw.items()]
    elif isinstance(raw, list) and all(isinstance(t, str) for t in raw):
        pairs = [(text, None) for text in raw]
    else:
        raise SuiteError(f"{manifest}: {where}: `set` must be a table or a list of strings")
    parsed = []
    for text, typed_value in pairs:
        try:
            node_id, name, value = parse_override(text)
        except UsageError as exc:
            raise SuiteError(f"{manifest}: {where}: {exc}") from exc
        parsed.append((node_id, name, value if isinstance(raw, list) else typed_value))
    return tuple(parsed)
