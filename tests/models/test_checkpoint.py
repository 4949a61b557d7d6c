"""Checkpoint writer and loader: layout, round trip, dtypes, and every kind of bad file."""

from __future__ import annotations

import time

import pytest
import torch
from safetensors.torch import load_file, save_file

from comfyless.models.checkpoint import load_checkpoint, load_diffusion_model
from comfyless.models.checkpoint_writer import write_checkpoint
from comfyless.typesys.errors import ModelLoadError
from tests.floats import assert_close_scaled

UNET = "model.diffusion_model."


def test_loaded_weights_are_the_file_tensors(tiny_sd15_checkpoint):
    model, _, _ = load_checkpoint(tiny_sd15_checkpoint, load_clip=False, load_vae=False)
    file_sd = load_file(tiny_sd15_checkpoint)
    params = dict(model.diffusion_model.named_parameters())
    unet_keys = [k for k in file_sd if k.startswith(UNET)]
    assert sorted(params) == sorted(k[len(UNET):] for k in unet_keys)
    for key in unet_keys:
        p = params[key[len(UNET):]]
        assert p.device.type == "cpu" and p.dtype == torch.float32 and not p.requires_grad
        assert torch.equal(p, file_sd[key])  # a copy, no arithmetic: bitwise
    assert model.family == "sd15" and model.sampling.prediction == "eps"
    assert model.latent_format.scale_factor == 0.18215


def test_source_names_file_and_hashes_lazily(tiny_sd15_checkpoint):
    import hashlib

    model, _, _ = load_checkpoint(tiny_sd15_checkpoint, load_clip=False, load_vae=False)
    assert model.source["file"] == tiny_sd15_checkpoint.name
    digest = hashlib.sha256(tiny_sd15_checkpoint.read_bytes()).hexdigest()
    assert model.clone().source["sha256"] == digest


@pytest.mark.parametrize("arch", ["sd15", "sd2", "sdxl"])
def test_tiny_checkpoint_families(arch, tiny_checkpoints):
    model, _, _ = load_checkpoint(tiny_checkpoints[arch], load_clip=False, load_vae=False)
    assert model.family == arch
    assert model.sampling.prediction == ("v" if arch == "sd2" else "eps")
    assert model.latent_format.scale_factor == (0.13025 if arch == "sdxl" else 0.18215)


def test_prediction_override(tiny_sd2_checkpoint):
    model, _, _ = load_checkpoint(tiny_sd2_checkpoint, prediction="eps", load_clip=False,
                                  load_vae=False)
    assert model.sampling.prediction == "eps"


def _load_and_step(path) -> float:
    start = time.perf_counter()
    model, _, _ = load_checkpoint(path, load_clip=False, load_vae=False)
    x0 = torch.randn(1, 4, 8, 8)
    sigma = torch.tensor([model.sampling.percent_to_sigma(0.3)])
    xt = model.sampling.noise_scaling(sigma, torch.randn_like(x0), x0)
    weight = model.diffusion_model.out[2].weight
    weight.requires_grad_(True)
    loss = torch.nn.functional.mse_loss(
        model.apply_model(xt, sigma, torch.randn(1, 77, model.config.context_dim)), x0)
    loss.backward()
    assert weight.grad is not None and torch.isfinite(loss)
    return time.perf_counter() - start


def test_tiny_load_and_training_step_well_under_a_second(tiny_sd15_checkpoint):
    # one thread and the best of three: other test processes may share the CPU cores
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        best = min(_load_and_step(tiny_sd15_checkpoint) for _ in range(3))
    finally:
        torch.set_num_threads(threads)
    assert best < 1.0


def test_fp16_file_loads_as_fp32_on_cpu(tmp_path):
    path = write_checkpoint(tmp_path / "h.safetensors", "sd15", "tiny", dtype="fp16")
    assert load_file(path)[f"{UNET}out.2.weight"].dtype == torch.float16
    model, _, _ = load_checkpoint(path, load_clip=False, load_vae=False)
    assert model.dtype == torch.float32
    half, _, _ = load_checkpoint(path, dtype=torch.float16, load_clip=False, load_vae=False)
    assert half.dtype == torch.float16


def test_same_seed_same_file_other_seed_differs(tmp_path):
    a = load_file(write_checkpoint(tmp_path / "a.safetensors", "sd15", "tiny", seed=1))
    b = load_file(write_checkpoint(tmp_path / "b.safetensors", "sd15", "tiny", seed=1))
    c = load_file(write_checkpoint(tmp_path / "c.safetensors", "sd15", "tiny", seed=2))
    key = f"{UNET}input_blocks.0.0.weight"
    # the writer's determinism (one code path, one process): bitwise
    assert torch.equal(a[key], b[key]) and not torch.equal(a[key], c[key])


def test_diffusion_model_file_with_and_without_prefix(tmp_path, tiny_sd15_checkpoint):
    sd = {k[len(UNET):]: v for k, v in load_file(tiny_sd15_checkpoint).items()
          if k.startswith(UNET)}
    bare = tmp_path / "unet.safetensors"
    save_file(sd, bare)
    model = load_diffusion_model(bare)
    assert model.family == "sd15"
    full = load_diffusion_model(tiny_sd15_checkpoint)
    x, s = torch.randn(1, 4, 8, 8), torch.tensor([1.0])
    c = torch.randn(1, 3, model.config.context_dim)
    # two loads of the same weights lie at different alignments -> different kernels
    assert_close_scaled(model.apply_model(x, s, c), full.apply_model(x, s, c))


# -- bad input ---------------------------------------------------------------------------


def _fails(path, **kw) -> ModelLoadError:
    with pytest.raises(ModelLoadError) as info:
        load_checkpoint(path, node_id="4", input_name="ckpt_name", **kw)
    err = info.value
    assert err.node_id == "4" and err.input_name == "ckpt_name"
    assert err.code == "model_load_failed"
    return err


def test_missing_file_lists_folder(tmp_path):
    (tmp_path / "other.safetensors").write_bytes(b"")
    err = _fails(tmp_path / "nope.safetensors")
    assert "other.safetensors" in str(err)


def test_truncated_safetensors(tmp_path, tiny_sd15_checkpoint):
    data = tiny_sd15_checkpoint.read_bytes()
    bad = tmp_path / "cut.safetensors"
    bad.write_bytes(data[: len(data) // 2])
    assert "truncated" in str(_fails(bad))


def test_garbage_safetensors(tmp_path):
    bad = tmp_path / "junk.safetensors"
    bad.write_bytes(b"definitely not a model")
    _fails(bad)


def test_unknown_layout_says_what_and_which_families(tmp_path):
    path = tmp_path / "vae_only.safetensors"
    save_file({"first_stage_model.decoder.conv_in.weight": torch.zeros(8, 4, 3, 3)}, path)
    err = _fails(path)
    assert "first_stage_model.decoder.conv_in.weight" in str(err)
    assert "sd15" in str(err) and "sd2" in str(err) and "sdxl" in str(err)


def test_missing_unet_key_is_named(tmp_path, tiny_sd15_checkpoint):
    sd = load_file(tiny_sd15_checkpoint)
    del sd[f"{UNET}out.0.weight"]
    path = tmp_path / "holey.safetensors"
    save_file(sd, path)
    assert "out.0.weight" in str(_fails(path))


def test_weights_only_pickle_loads(tmp_path, tiny_sd15_checkpoint):
    path = tmp_path / "model.ckpt"
    torch.save({"state_dict": load_file(tiny_sd15_checkpoint)}, path)
    model, _, _ = load_checkpoint(path, load_clip=False, load_vae=False)
    assert model.family == "sd15"


class _Evil:
    def __reduce__(self):
        return (print, ("this would run on load",))


def test_code_running_pickle_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {"x": torch.zeros(1)}, "payload": _Evil()}, path)
    err = _fails(path)
    assert "weights_only" in str(err) and "safetensors" in str(err)


def test_unknown_extension_refused(tmp_path):
    path = tmp_path / "model.gguf"
    path.write_bytes(b"GGUF")
    assert ".safetensors" in str(_fails(path))


def test_a_tensor_that_does_not_fit_in_memory_is_a_clear_error(tmp_path, tiny_sd15_checkpoint,
                                                                monkeypatch):
    """A tensor whose buffer cannot be allocated (a file bigger than memory) fails inside
    torch.empty; the loader names the file, its size and the RAM."""
    from comfyless.models import tensor_files

    real_empty = torch.empty

    def refuse(*args, **kwargs):
        if kwargs.get("dtype") is torch.uint8:  # the reader's raw buffer
            raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to "
                               "allocate 40861031616 bytes")
        return real_empty(*args, **kwargs)

    monkeypatch.setattr(tensor_files.torch, "empty", refuse)
    with pytest.raises(ModelLoadError) as info:
        load_checkpoint(tiny_sd15_checkpoint, node_id="4", input_name="ckpt_name")
    monkeypatch.undo()
    message = str(info.value)
    assert "cannot read the file into memory" in message and "GiB of RAM" in message
    assert tiny_sd15_checkpoint.name in message and info.value.node_id == "4"


def test_the_vae_is_read_one_file_tensor_at_a_time(tiny_sd15_checkpoint):
    """load_vae converts each file tensor as it is read, so the file's copies (fp16 in real
    checkpoints) never all live beside the converted weights (issue 13: SD's VAE held 167 MB
    of fp16 tensors beside its 334 MB fp32 copy at the end of a checkpoint load)."""
    import weakref

    from comfyless.models import checkpoint
    from comfyless.models.tensor_files import TensorFile, open_tensor_file

    with open_tensor_file(tiny_sd15_checkpoint) as tensors:
        alive: list[weakref.ref] = []
        most = [0]

        def tracked_read(key):  # tensors go by reference count: no gc pass needed
            most[0] = max(most[0], sum(r() is not None for r in alive))
            t = tensors[key].to(torch.float16)  # a fresh tensor, as an fp16 file gives
            alive.append(weakref.ref(t))
            return t

        counting = TensorFile(tensors.shapes, tracked_read, tensors.metadata)
        vae = checkpoint._load_vae(counting, checkpoint.VAE_PREFIX, "cpu", torch.float32,
                                   "tiny.safetensors", {})
    reads = len(alive)
    assert vae is not None and reads >= len(vae.model.state_dict())
    assert most[0] <= 1, f"{most[0]} file tensors were alive at once"
