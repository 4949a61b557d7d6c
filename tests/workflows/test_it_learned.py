"""End to end: a LoRA trained by the shipped workflow pulls samples towards its training set.

The shipped `lora-train` workflow, with the settings of `comfyless demo`, trains on images of
one distinct pattern (the demo's set), then samples with the LoRA; `comfyless.demo.
learning_workflow` adds a branch that samples from the same base model, seed and prompt
without it. The models are tiny and random, so their VAE is not a real autoencoder and pixel
space says little; the measurement (`measure_learning`, the figure `comfyless demo` prints) is
made where the diffusion model works, in the VAE's latent space: the distance from each sampled
latent to the nearest training latent. Training must cut that distance by a clear margin.
"""

from __future__ import annotations

import pytest
import torch

from comfyless.demo import (
    LEARNED_MARGIN,
    LearningFigure,
    measure_learning,
    nearest_distance,
    prepare_base_dir,
)


def test_nearest_distance_is_the_mean_rms_to_the_closest_training_latent():
    training = torch.stack([torch.zeros(4, 2, 2), torch.full((4, 2, 2), 10.0)])
    samples = torch.stack([torch.full((4, 2, 2), 1.0), torch.full((4, 2, 2), 7.0)])
    assert nearest_distance(samples, training) == pytest.approx((1.0 + 3.0) / 2)


def test_the_line_says_learned_only_past_the_margin():
    learned = LearningFigure(with_lora=0.5, without=1.0, first_loss=0.9, last_loss=0.2)
    assert learned.closer == pytest.approx(0.5) and learned.learned
    assert learned.line().startswith("it learned: samples moved 50% closer")
    barely = LearningFigure(with_lora=1.0 - LEARNED_MARGIN / 2, without=1.0,
                            first_loss=0.9, last_loss=0.8)
    assert not barely.learned and barely.line().startswith("no clear sign of learning")


@pytest.mark.slow
def test_samples_with_the_trained_lora_are_closer_to_the_training_set(tmp_path):
    prepare_base_dir(tmp_path)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the shared CI machine: one thread is faster and repeatable
    try:
        figure, result = measure_learning(tmp_path)
    finally:
        torch.set_num_threads(threads)

    print(figure.line())
    assert figure.last_loss < 0.5 * figure.first_loss, figure
    assert figure.learned, figure  # with_lora < (1 - LEARNED_MARGIN) * without
    # The LoRA branch's images, decoded; nothing was written to output/ (previews only).
    assert result.outputs["13"][0][0].shape == (2, 64, 64, 3)
    assert not list((tmp_path / "output").glob("**/*.safetensors"))
