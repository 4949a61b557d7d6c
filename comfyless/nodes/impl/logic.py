"""Execute of the logic nodes (nodes/logic.py)."""

from __future__ import annotations


def switch(ctx, switch, on_false=None, on_true=None):
    return (on_true if switch else on_false,)
