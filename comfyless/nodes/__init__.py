"""The node catalogue: every family module exports NODES; REGISTRY merges them.

Node modules never import torch at module level, so building the registry (and validating a
workflow) stays fast and torch-free.
"""

from __future__ import annotations

import importlib

from ..typesys.schema import NodeRegistry

# One module per family, each exporting NODES. A listed module that does not exist is an
# ImportError when the registry is built (at import), never a silently missing family.
FAMILIES = (
    "primitives",
    "loaders",
    "conditioning",
    "conditioning_ops",
    "latent",
    "latent_ops",
    "images",
    "sampling",
    "custom_sampling",
    "model_sampling",
    "datasets.folders",
    "datasets.transforms",
    "datasets.lists",
    "datasets.saving",
    "datasets.training_data",
    "train",
    "train_outputs",
    "lora_loaders",
    "logic",
    "resolution",
    "utility",
    "image_edit",
    "qwen_edit",
    "inpaint",
    "guidance_patches",
    "controlnet",
    "upscale",
    "model_merge",
    "image_batch",
    "text_generate",
)


def build_registry() -> NodeRegistry:
    """A fresh registry of every shipped node (duplicate class_type -> SchemaError)."""
    registry = NodeRegistry()
    for family in FAMILIES:
        module = importlib.import_module(f"{__name__}.{family}")  # missing -> an error
        for node in module.NODES:
            registry.register(node)
    return registry


REGISTRY = build_registry()
