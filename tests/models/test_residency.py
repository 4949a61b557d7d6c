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


@pytest.mark.parametrize("clip_type", ["lumina2", "qwen_image", "flux", "sd3"])
def test_every_text_encoder_loader_reads_released_weights_back(tmp_path, clip_type):
    """CLIPLoader / DualCLIPLoader / TripleCLIPLoader payloads of every encoder family (Qwen
    LLMs, T5 sets): the same conditioning after a release as before it."""
    from safetensors.torch import save_file

    from comfyless.engine.context import RunContext
    from comfyless.models.text_sets import text_encoder_files
    from comfyless.nodes.impl.loaders import _load_text_encoders

    ctx = RunContext.create(tmp_path)
    folder = tmp_path / "models" / "text_encoders"
    folder.mkdir(parents=True)
    files = text_encoder_files(clip_type, "tiny", torch.Generator().manual_seed(0))
    for name, sd in files.items():
        save_file({k: v.contiguous() for k, v in sd.items()}, str(folder / name))
    names = {f"clip_name{i + 1}": name for i, name in enumerate(files)}
    clip = _load_text_encoders(ctx, names, clip_type, "default")
    before = clip.encode_from_tokens(clip.tokenize("a red fox"))[0]

    assert release_idle() > 0 and not clip.residency.loaded
    after = clip.encode_from_tokens(clip.tokenize("a red fox"))[0]

    assert clip.residency.loaded and torch.equal(after, before)


def test_a_lora_loaded_after_a_release_still_finds_the_clip_keys(loaded):
    """LoraLoader places a file's keys by the CLIP's parameter shapes: a released CLIP is read
    back first, so the keys land as they did before the release."""
    from comfyless.lora.formats import read_lora

    _, _, clip, _ = loaded
    shapes = {n: tuple(p.shape) for n, p in clip.lora_module.named_parameters()}
    name = next(n for n, s in shapes.items() if n.endswith("q_proj.weight"))
    layer = name.removesuffix(".weight").split("transformer.", 1)[1]  # text_model.encoder...
    key = "lora_te_" + layer.replace(".", "_")  # kohya's name for it
    out_dim, in_dim = shapes[name]
    lora = {f"{key}.lora_up.weight": torch.zeros(out_dim, 2),
            f"{key}.lora_down.weight": torch.zeros(2, in_dim)}
    patches, unplaced = read_lora(lora, "clip", clip.lora_module)
    assert patches and not unplaced
    release_idle()
    patches, unplaced = read_lora(lora, "clip", clip.lora_module)
    assert patches and not unplaced


def _node_ctx(class_type: str):
    return type("Ctx", (), {"node_id": "3", "class_type": class_type,
                            "progress": staticmethod(lambda *a, **k: None)})()


def test_each_encoder_node_releases_the_other_and_alternating_gives_the_same_outputs(loaded):
    """VAEEncode keeps only its VAE, CLIPTextEncode only its CLIP: a workflow that alternates
    reads each back from the file and gets bitwise the same outputs (the same code path)."""
    from comfyless.nodes.impl.conditioning import clip_text_encode
    from comfyless.nodes.impl.latent import vae_encode

    _, _, clip, vae = loaded
    pixels = torch.rand(1, 64, 64, 3, generator=torch.Generator().manual_seed(0))
    text = _node_ctx("CLIPTextEncode")

    ((cond, options),), = clip_text_encode(text, "a red fox", clip)
    assert clip.residency.loaded and not vae.residency.loaded
    (latent,) = vae_encode(_node_ctx("VAEEncode"), pixels, vae)
    assert vae.residency.loaded and not clip.residency.loaded
    ((again, options_again),), = clip_text_encode(text, "a red fox", clip.clip_layer(-1))
    assert clip.residency.loaded and not vae.residency.loaded

    assert torch.equal(again, cond)
    assert torch.equal(options_again["pooled_output"], options["pooled_output"])
    assert torch.equal(vae_encode(_node_ctx("VAEEncode"), pixels, vae)[0]["samples"],
                       latent["samples"])
    assert clip.residency.reloads == 1 and vae.residency.reloads == 2


def test_a_node_running_both_encoders_holds_one_at_a_time(loaded):
    """MakeTrainingDataset runs the VAE, then the text encoder: each stage keeps its own."""
    from comfyless.nodes.impl.datasets.training_data import make_training_dataset

    _, _, clip, vae = loaded
    pixels = torch.rand(1, 64, 64, 3, generator=torch.Generator().manual_seed(1))
    expected = vae.encode(pixels)
    cond = clip.encode("a red fox")[0]

    latents, conditioning = make_training_dataset(_node_ctx("MakeTrainingDataset"), [pixels],
                                                  [vae], [clip], ["a red fox"])

    assert clip.residency.loaded and not vae.residency.loaded
    assert vae.residency.reloads == 0 and clip.residency.reloads == 1  # released by the VAE stage
    assert torch.equal(latents[0]["samples"], expected)
    assert torch.equal(conditioning[0][0][0], cond)


def test_payloads_in_keep_stay_and_none_is_skipped(loaded):
    _, _, clip, vae = loaded
    assert release_idle(keep=(clip, vae, None)) == 0
    assert clip.residency.loaded and vae.residency.loaded
    release_idle(keep=(vae,))
    assert vae.residency.loaded and not clip.residency.loaded
