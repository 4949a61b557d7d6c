"""Overrides that make the shipped training workflows fast on tiny models (the base directory
they run in is the `shipped_base` fixture of tests/conftest.py)."""

from __future__ import annotations

# Small and fast: every shipped workflow runs end to end on tiny models in a few seconds.
FAST = {"5.steps": 2, "5.training_dtype": "fp32", "5.lora_dtype": "fp32",
        "5.gradient_checkpointing": False, "11.width": 64, "11.height": 64, "12.steps": 2}
