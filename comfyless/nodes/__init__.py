"""The node catalogue: every family module exports NODES; REGISTRY merges them.

Node modules never import torch at module level, so building the registry (and validating a
workflow) stays fast and torch-free.
"""

from __future__ import annotations

import importlib

from ..typesys.schema import NodeRegistry

# One module per family. A module listed here that does not exist yet is skipped, so families
# can land one at a time.
FAMILIES = (
    "primitives",
    "loaders",
    "conditioning",
    "latent",
    "images",
    "sampling",
    "datasets.folders",
    "datasets.transforms",
    "datasets.lists",
    "datasets.saving",
    "datasets.training_data",
    "train",
    "train_outputs",
    "lora_loaders",
)


def build_registry() -> NodeRegistry:
    """A fresh registry of every shipped node (duplicate class_type -> SchemaError)."""
    registry = NodeRegistry()
    for family in FAMILIES:
        try:
            module = importlib.import_module(f"{__name__}.{family}")
        except ModuleNotFoundError as exc:
            if exc.name == f"{__name__}.{family}":
                continue
            raise
        for node in module.NODES:
            registry.register(node)
    return registry


REGISTRY = build_registry()
