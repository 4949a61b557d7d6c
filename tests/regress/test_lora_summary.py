"""A failing LoRA comparison is a summary: metadata first, the 5 largest tensor differences,
and a count of the rest - not one line per tensor."""

from __future__ import annotations

import torch
from safetensors import safe_open

from comfyless.lora.adapters import add_adapters
from comfyless.lora.weights import LoraWeights, save_safetensors_deterministic
from comfyless.models.checkpoint_writer import unet_config
from comfyless.models.unet import UNetModel
from comfyless.regress.compare import LORA_TENSORS_SHOWN, Artefact, Tolerance, compare


def _real_lora(seed: int) -> dict[str, torch.Tensor]:
    """The SaveLoRA-layout state dict of LoRA adapters on every layer of a tiny SD1.5 UNet."""
    torch.manual_seed(0)
    unet = UNetModel(unet_config("sd15", "tiny"))
    adapters = add_adapters(unet, "LoRA", 4, generator=torch.Generator().manual_seed(seed))
    return adapters.state_dict()


def _read(path) -> LoraWeights:
    with safe_open(str(path), framework="pt") as handle:
        lora = LoraWeights({k: handle.get_tensor(k) for k in handle.keys()})
        lora.metadata = dict(handle.metadata())
    return lora


def test_lora_mismatch_summarises(tmp_path):
    golden_sd = _real_lora(seed=0)
    # The second file: every tensor moved, by an amount that grows with its position, so the
    # largest differences are known; the seed metadata changed too.
    changed_sd = {key: value + 0.01 * (index + 1)
                  for index, (key, value) in enumerate(sorted(golden_sd.items()))}
    golden_dir = tmp_path / "golden"
    golden_dir.mkdir()
    save_safetensors_deterministic(golden_sd, golden_dir / "6.lora.safetensors",
                                   {"training.seed": "0", "training.steps": "4"})
    other = tmp_path / "other.safetensors"
    save_safetensors_deterministic(changed_sd, other, {"training.seed": "1",
                                                       "training.steps": "4"})

    problems = compare(Artefact("6.lora", "lora", _read(other)), golden_dir, Tolerance(),
                       tmp_path / "diffs")
    lines = [p.message for p in problems]
    total = len(golden_sd)
    assert total > 50  # a real LoRA: many tensors
    assert lines[0] == "metadata 'training.seed': '0' -> '1'"
    assert lines[1].startswith(f"{total} of {total} tensors differ")
    shown = [line.strip().split(":")[0] for line in lines[2:2 + LORA_TENSORS_SHOWN]]
    largest = [key for key in sorted(golden_sd)][::-1][:LORA_TENSORS_SHOWN]
    assert shown == largest
    assert lines[-1].strip() == f"and {total - LORA_TENSORS_SHOWN} more tensors differ"
    assert len(lines) == 1 + 1 + LORA_TENSORS_SHOWN + 1


def test_lora_within_tolerance_passes(tmp_path):
    lora = _real_lora(seed=0)
    save_safetensors_deterministic(lora, tmp_path / "6.lora.safetensors", {})
    nudged = LoraWeights({k: v * (1 + 1e-6) for k, v in lora.items()})
    assert compare(Artefact("6.lora", "lora", nudged), tmp_path, Tolerance(),
                   tmp_path / "diffs") == []
