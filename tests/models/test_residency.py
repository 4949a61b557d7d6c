"""Idle encoders leave memory and come back from their file (models/residency.py): the same
outputs after a release, clones share the release, the heavy nodes release, a changed file is a
clear error."""

from __future__ import annotations

import shutil

import pytest
import torch

from comfyless.models.checkpoint import load_checkpoint
from comfyless.models.residency import release_idle
from comfyless.nodes.impl.latent import vae_decode
from comfyless.nodes.impl.sampling import ksampler
from comfyless.typesys.errors import ModelLoadError


def _resident_bytes(module: torch.nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in [*module.parameters(), *module.buffers()])


@pytest.fixture
def loaded(tmp_path, tiny_sd15_checkpoint):
    path = tmp_path / "model.safetensors"
    shutil.copy(tiny_sd15_checkpoint, path)
    return (path, *load_checkpoint(path))


def test_released_encoders_give_the_same_outputs_after_reloading(loaded):
    _, model, clip, vae = loaded
    pixels = torch.rand(1, 64, 64, 3, generator=torch.Generator().manual_seed(0))
    cond, pooled = clip.encode("a red fox")
    latent = vae.encode(pixels)
    clip_bytes, vae_bytes = _resident_bytes(clip.stack), _resident_bytes(vae._model)

    freed = release_idle(keep=(model.diffusion_model,))

    assert freed >= clip_bytes + vae_bytes > 0
    assert _resident_bytes(clip.stack) == 0 and _resident_bytes(vae._model) == 0
    assert _resident_bytes(model.diffusion_model) > 0  # not an encoder: never released
    again, pooled_again = clip.clip_layer(-2).clip_layer(-1).encode("a red fox")  # a copy
    assert torch.equal(again, cond) and torch.equal(pooled_again, pooled)
    assert torch.equal(vae.encode(pixels), latent)
    assert clip.residency.reloads == 1 and vae.residency.reloads == 1
    assert _resident_bytes(clip.stack) == clip_bytes and _resident_bytes(vae._model) == vae_bytes


def test_kept_encoders_stay(loaded):
    _, _, clip, vae = loaded
    release_idle(keep=(vae.residency,))
    assert vae.residency.loaded and not clip.residency.loaded


def test_sampling_releases_the_encoders_and_decoding_brings_the_vae_back(loaded):
    _, model, clip, vae = loaded
    positive = [[clip.encode("a red fox")[0], {}]]
    latent = {"samples": torch.zeros(1, 4, 8, 8)}
    ctx = type("Ctx", (), {"node_id": "3", "class_type": "KSampler",
                           "progress": staticmethod(lambda *a, **k: None)})()

    (out,) = ksampler(ctx, model, 1, 1, 1.0, "euler", "normal", positive, positive, latent)

    assert not clip.residency.loaded and not vae.residency.loaded
    (image,) = vae_decode(ctx, out, vae)
    assert vae.residency.loaded and image.shape == (1, 64, 64, 3)


def test_a_file_changed_on_disk_before_the_reload_is_a_clear_error(loaded, tmp_path,
                                                                  tiny_sd2_checkpoint):
    path, _, clip, _ = loaded
    release_idle()
    shutil.copy(tiny_sd2_checkpoint, path)  # other text encoder shapes under the same name
    with pytest.raises(ModelLoadError, match="changed on disk|cannot load"):
        clip.encode("a red fox")
