"""Schema and list helpers shared by the dataset node modules (torch-free, no NODES)."""

from __future__ import annotations

from typing import Any

from ...typesys.schema import Input
from ...typesys.types import COMBO, INT, SEED_MAX


def folder_input(tooltip: str = "a sub-folder of input/") -> Input:
    return Input("folder", COMBO, choices_from="input", choices_dirs_only=True, tooltip=tooltip)


def seed_input() -> Input:
    return Input("seed", INT, default=0, min=0, max=SEED_MAX, control_after_generate=True)



def single_value(values: list, name: str) -> Any:
    """The single value of a widget/socket input of an input-list node."""
    if not values:
        raise ValueError(f"input '{name}': no value")
    return values[0]

