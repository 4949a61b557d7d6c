"""A base directory holding what the shipped workflows name: tiny checkpoints under the real
file names, and a small training image set (with captions) in input/training_images."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from comfyless.demo import write_demo_dataset

CHECKPOINT_NAMES = {"sd15": "v1-5-pruned-emaonly.safetensors",
                    "sdxl": "sd_xl_base_1.0.safetensors"}

# Small and fast: every shipped workflow runs end to end on tiny models in a few seconds.
FAST = {"5.steps": 2, "5.training_dtype": "fp32", "5.lora_dtype": "fp32",
        "5.gradient_checkpointing": False, "11.width": 64, "11.height": 64, "12.steps": 2}


@pytest.fixture(scope="module")
def shipped_base(tmp_path_factory, tiny_sd15_checkpoint, tiny_sdxl_checkpoint) -> Path:
    base = tmp_path_factory.mktemp("shipped_base")
    checkpoints = base / "models" / "checkpoints"
    checkpoints.mkdir(parents=True)
    shutil.copyfile(tiny_sd15_checkpoint, checkpoints / CHECKPOINT_NAMES["sd15"])
    shutil.copyfile(tiny_sdxl_checkpoint, checkpoints / CHECKPOINT_NAMES["sdxl"])
    write_demo_dataset(base / "input" / "training_images", count=3, size=64)
    return base
