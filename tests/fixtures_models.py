"""Session-scoped tiny checkpoints in the real single-file key layout (random weights).

Re-exported by tests/conftest.py. Each file is written once per test session; tests that need
it inside a base directory copy it with `install_model(ctx, path, kind)`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


def _write(tmp_path_factory, arch: str, **kw) -> Path:
    from comfyless.models.checkpoint_writer import write_checkpoint

    folder = tmp_path_factory.mktemp(f"ckpt_{arch}")
    return write_checkpoint(folder / f"tiny_{arch}.safetensors", arch, "tiny", seed=0, **kw)


@pytest.fixture(scope="session")
def tiny_sd15_checkpoint(tmp_path_factory) -> Path:
    """Tiny SD1.5 checkpoint (UNet 32 channels, 2 levels; VAE + CLIP-L keys), fp32."""
    return _write(tmp_path_factory, "sd15")


@pytest.fixture(scope="session")
def tiny_sd2_checkpoint(tmp_path_factory) -> Path:
    """Tiny SD2.x checkpoint (linear projections, 64-channel heads), detected as v-prediction."""
    return _write(tmp_path_factory, "sd2")


@pytest.fixture(scope="session")
def tiny_sdxl_checkpoint(tmp_path_factory) -> Path:
    """Tiny SDXL checkpoint (label embedding / adm vector, two text encoders)."""
    return _write(tmp_path_factory, "sdxl")


@pytest.fixture(scope="session")
def tiny_checkpoints(tiny_sd15_checkpoint, tiny_sd2_checkpoint, tiny_sdxl_checkpoint
                     ) -> dict[str, Path]:
    """{"sd15": path, "sd2": path, "sdxl": path}."""
    return {"sd15": tiny_sd15_checkpoint, "sd2": tiny_sd2_checkpoint,
            "sdxl": tiny_sdxl_checkpoint}


@pytest.fixture(scope="session")
def tiny_sd15_model(tiny_sd15_checkpoint):
    """A loaded tiny SD1.5 ModelPatcher (shared: call .clone() before adding patches)."""
    from comfyless.models.checkpoint import load_checkpoint

    model, _clip, _vae = load_checkpoint(tiny_sd15_checkpoint)
    return model


def install_model(ctx, path: Path, kind: str = "checkpoints", name: str | None = None) -> str:
    """Copy a model file into the context's base dir (symlinks would point outside)."""
    name = name or path.name
    target = ctx.paths.folders(kind)[0] / name
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, target)
    return name


def random_conds(model, seed=0):
    """(positive, negative) CONDITIONING of random context vectors sized for `model`."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    dim = model.config.context_dim
    return ([[torch.randn(1, 77, dim, generator=gen), {}]],
            [[torch.randn(1, 77, dim, generator=gen), {}]])
