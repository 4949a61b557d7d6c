"""Execute of the primitive value nodes (nodes/primitives.py)."""

from __future__ import annotations


def passthrough(ctx, value):
    return (value,)
