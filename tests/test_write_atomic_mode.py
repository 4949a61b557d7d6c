"""write_atomic: files get the user's umask (0644 under 022), not mkstemp's private 0600."""

from __future__ import annotations

import os
import stat

import pytest

from comfyless.files import write_atomic


@pytest.fixture
def umask():
    """Set the process umask for one test; the previous one is restored after."""
    previous = os.umask(0o022)
    os.umask(previous)
    yield lambda mask: os.umask(mask)
    os.umask(previous)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize(("mask", "expected"), [(0o022, 0o644), (0o077, 0o600),
                                                 (0o002, 0o664)])
def test_new_file_follows_the_umask(tmp_path, umask, mask, expected):
    umask(mask)
    target = write_atomic(tmp_path / "out.txt", lambda tmp: tmp.write_text("x"))
    assert _mode(target) == expected


def test_writer_that_replaces_the_temp_file_still_gets_the_umask(tmp_path, umask):
    umask(0o022)

    def replace(tmp):  # e.g. a library that writes elsewhere and renames over `tmp`
        other = tmp.with_name("other")
        other.write_text("x")
        os.chmod(other, 0o600)
        os.replace(other, tmp)

    target = write_atomic(tmp_path / "out.bin", replace)
    assert _mode(target) == 0o644 and target.read_text() == "x"


def test_saved_lora_is_readable_by_others(tmp_path, umask):
    """The real output path: SaveLoRA's file under umask 022 is 0644."""
    import torch

    from comfyless.engine.context import RunContext
    from comfyless.nodes.train_outputs import SaveLoRA

    umask(0o022)
    ctx = RunContext.create(tmp_path).for_node("9", "SaveLoRA")
    lora = {"diffusion_model.out.2.lora_up.weight": torch.zeros(4, 2),
            "diffusion_model.out.2.lora_down.weight": torch.ones(2, 8)}
    SaveLoRA.execute(ctx, lora=lora, prefix="loras/m", steps=1)
    path = tmp_path / "output" / "loras" / "m_1_steps_00001_.safetensors"
    assert _mode(path) == 0o644
