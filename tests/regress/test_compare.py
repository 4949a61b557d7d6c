"""Golden record/compare per artefact kind, on real tensors and files."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from comfyless.lora.weights import LoraWeights
from comfyless.regress.compare import Artefact, Tolerance, compare, record


def _image(seed: int = 0, size: int = 32) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(2, size, size, 3, generator=gen)


def test_identical_image_passes(tmp_path):
    art = Artefact("9.images", "image", _image())
    record(art, tmp_path / "golden")
    assert compare(art, tmp_path / "golden", Tolerance(), tmp_path / "diff") == []
    assert not (tmp_path / "diff").exists()


def test_tiny_pixel_noise_is_within_tolerance(tmp_path):
    record(Artefact("9.images", "image", _image()), tmp_path / "golden")
    nudged = (_image() + 1.0 / 255).clamp(0, 1)  # every value off by about one level
    assert compare(Artefact("9.images", "image", nudged), tmp_path / "golden", Tolerance(),
                   tmp_path / "diff") == []


def test_changed_image_fails_with_side_by_side_diff(tmp_path):
    record(Artefact("9.images", "image", _image(0)), tmp_path / "golden")
    problems = compare(Artefact("9.images", "image", _image(1)), tmp_path / "golden",
                       Tolerance(), tmp_path / "diff")
    assert len(problems) == 2  # both batch items differ
    diff = problems[0].diff_image
    assert diff is not None and diff.is_file()
    with Image.open(diff) as strip:
        assert strip.size == (3 * 32, 32)  # expected | actual | difference
    assert problems[0].numbers["ssim"] < 0.5


def test_image_batch_size_change_is_reported(tmp_path):
    record(Artefact("9.images", "image", _image()), tmp_path / "g")
    problems = compare(Artefact("9.images", "image", _image()[:1]), tmp_path / "g", Tolerance(),
                       tmp_path / "d")
    assert "batch size changed" in problems[0].message


def _lora(scale: float = 1.0, extra: bool = False) -> LoraWeights:
    gen = torch.Generator().manual_seed(3)
    tensors = {"diffusion_model.a.lora_up.weight": torch.randn(8, 4, generator=gen) * scale,
               "diffusion_model.a.lora_down.weight": torch.randn(4, 8, generator=gen),
               "diffusion_model.a.alpha": torch.tensor(1.0)}
    if extra:
        tensors["diffusion_model.b.diff"] = torch.zeros(3)
    return LoraWeights(tensors, {"training.steps": "4", "comfyless.version": "x"})


def test_lora_same_passes_and_changes_are_named(tmp_path):
    record(Artefact("7.lora", "lora", _lora()), tmp_path / "g")
    assert compare(Artefact("7.lora", "lora", _lora()), tmp_path / "g", Tolerance(),
                   tmp_path / "d") == []
    changed = compare(Artefact("7.lora", "lora", _lora(scale=1.1, extra=True)), tmp_path / "g",
                      Tolerance(), tmp_path / "d")
    text = " | ".join(p.message for p in changed)
    assert "key set changed" in text and "diffusion_model.b.diff" in text
    assert "diffusion_model.a.lora_up.weight: max abs diff" in text


def test_lora_metadata_change_fails_but_version_is_ignored(tmp_path):
    record(Artefact("7.lora", "lora", _lora()), tmp_path / "g")
    other = _lora()
    other.metadata = {"training.steps": "5", "comfyless.version": "y"}
    problems = compare(Artefact("7.lora", "lora", other), tmp_path / "g", Tolerance(),
                       tmp_path / "d")
    assert [p.message for p in problems] == ["metadata 'training.steps': '4' -> '5'"]


def test_loss_curve_tolerance(tmp_path):
    record(Artefact("8.loss", "loss", {"loss": [1.0, 0.5, 0.25]}), tmp_path / "g")
    close = {"loss": [1.0, 0.5 + 1e-6, 0.25]}
    far = {"loss": [1.0, 0.6, 0.25]}
    assert compare(Artefact("8.loss", "loss", close), tmp_path / "g", Tolerance(), tmp_path) == []
    problems = compare(Artefact("8.loss", "loss", far), tmp_path / "g", Tolerance(), tmp_path)
    assert "step 2" in problems[0].message


def test_latent_tensor_allclose(tmp_path):
    latent = {"samples": torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(1))}
    record(Artefact("5.samples", "tensor", latent), tmp_path / "g")
    same = {"samples": latent["samples"] + 1e-7}
    moved = {"samples": latent["samples"] + 1e-2}
    tol = Tolerance()
    assert compare(Artefact("5.samples", "tensor", same), tmp_path / "g", tol, tmp_path) == []
    assert compare(Artefact("5.samples", "tensor", moved), tmp_path / "g", tol, tmp_path)
    loose = Tolerance.from_table({"tensor_atol": 0.1})
    assert compare(Artefact("5.samples", "tensor", moved), tmp_path / "g", loose, tmp_path) == []


def test_missing_golden_says_how_to_record(tmp_path):
    problems = compare(Artefact("9.images", "image", _image()), tmp_path, Tolerance(), tmp_path)
    assert "--update" in problems[0].message


def test_tolerance_table_rejects_unknown_and_negative_keys():
    with pytest.raises(ValueError, match="unknown tolerance"):
        Tolerance.from_table({"image_fuzz": 1})
    with pytest.raises(ValueError, match="non-negative"):
        Tolerance.from_table({"image_ssim": -1})
    assert Tolerance.from_table({"image_pixel_tol": 3}).image_pixel_tol == 3


def test_recorded_png_holds_the_saved_pixels(tmp_path):
    images = _image()
    record(Artefact("9.images", "image", images), tmp_path)
    saved = np.asarray(Image.open(tmp_path / "9.images.1.png"))
    expected = np.clip(255.0 * images[1].numpy(), 0, 255).astype(np.uint8)
    assert np.array_equal(saved, expected)
