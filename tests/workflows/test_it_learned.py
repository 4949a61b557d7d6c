"""End to end: a LoRA trained by the shipped workflow pulls samples towards its training set.

The shipped `lora-train` workflow, with the settings of `comfyless demo`, trains on images of
one distinct pattern (the demo's set), then samples with the LoRA; a second KSampler branch
added here samples from the same base model, seed and prompt without it. The models are tiny
and random, so their VAE is not a real autoencoder and pixel space says little; the
measurement is made where the diffusion model works, in the VAE's latent space: the distance
from each sampled latent to the nearest training latent. Training must cut that distance by a
clear margin.
"""

from __future__ import annotations

import pytest
import torch

from comfyless.demo import DEMO_OVERRIDES, prepare_base_dir
from comfyless.engine.context import RunContext
from comfyless.engine.execute import run_workflow
from comfyless.engine.load import ApiNode, Link, load_workflow
from comfyless.nodes import REGISTRY
from comfyless.workflows import find_shipped


def _nearest_distance(samples: torch.Tensor, training: torch.Tensor) -> float:
    """Mean over samples of the RMS distance to the closest training latent."""
    diff = samples[:, None] - training[None]  # (S, T, C, h, w)
    rms = diff.pow(2).mean(dim=(2, 3, 4)).sqrt()
    return float(rms.min(dim=1).values.mean())


@pytest.mark.slow
def test_samples_with_the_trained_lora_are_closer_to_the_training_set(tmp_path):
    prepare_base_dir(tmp_path)
    workflow = load_workflow(find_shipped("lora-train"), REGISTRY)
    for key, value in DEMO_OVERRIDES.items():
        node_id, name = key.split(".")
        workflow[node_id].inputs[name] = value
    # The same sampler settings on the base model (node 1) instead of the LoRA model (node 8).
    baseline = dict(workflow["12"].inputs, model=Link("1", 0))
    workflow["30"] = ApiNode(class_type="KSampler", inputs=baseline, title="without LoRA")
    workflow["31"] = ApiNode(class_type="VAEDecode", title=None,
                             inputs={"samples": Link("30", 0), "vae": Link("1", 2)})
    workflow["32"] = ApiNode(class_type="PreviewImage", title=None,
                             inputs={"images": Link("31", 0)})

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the shared CI machine: one thread is faster and repeatable
    try:
        result = run_workflow(workflow, RunContext.create(tmp_path), REGISTRY)
    finally:
        torch.set_num_threads(threads)

    training = torch.cat([latent["samples"] for latent in result.outputs["3"][0]])
    with_lora = _nearest_distance(result.outputs["12"][0][0]["samples"], training)
    without = _nearest_distance(result.outputs["30"][0][0]["samples"], training)
    losses = result.outputs["5"][1][0]["loss"]
    assert sum(losses[-10:]) < 0.5 * sum(losses[:10])
    print(f"nearest training latent: with LoRA {with_lora:.3f}, without {without:.3f}")
    assert with_lora < 0.8 * without, (with_lora, without)
    # The images saved by the workflow are the LoRA branch's, decoded.
    assert result.outputs["13"][0][0].shape == (2, 64, 64, 3)
