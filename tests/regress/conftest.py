"""Fixtures shared by the `comfyless test` end-to-end tests."""

from __future__ import annotations

import shutil

import pytest

from comfyless.workflows import SHIPPED_DIR


@pytest.fixture(autouse=True)
def _restore_torch_settings():
    """--deterministic and --threads change process-wide torch settings; restore them."""
    import torch

    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    yield
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(deterministic)


@pytest.fixture
def suite_dir(tmp_path):
    """A copy of the shipped example suite (manifest + workflows), goldens written beside it."""
    target = tmp_path / "suite"
    shutil.copytree(SHIPPED_DIR / "regression", target)
    return target
