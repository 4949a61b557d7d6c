"""Shipped example workflows (JSON files beside this module); every one is tested."""

from __future__ import annotations

from pathlib import Path

SHIPPED_DIR = Path(__file__).resolve().parent


def shipped_workflows() -> list[str]:
    """Names of the shipped workflows (file stems), sorted."""
    return sorted(p.stem for p in SHIPPED_DIR.glob("*.json"))


def find_shipped(name: str) -> Path | None:
    """The shipped workflow called `name` (with or without `.json`), or None."""
    stem = name[:-5] if name.endswith(".json") else name
    if "/" in stem or "\\" in stem or stem.startswith("."):
        return None
    path = SHIPPED_DIR / f"{stem}.json"
    return path if path.is_file() else None
