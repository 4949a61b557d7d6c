"""Detection from key names and shapes: configs, families, prediction types, refusals."""

from __future__ import annotations

import pytest
import torch

from comfyless.models.checkpoint_writer import checkpoint_state_dict, unet_config
from comfyless.models.detect import (
    DetectionError,
    detect,
    detect_unet_config,
    unet_prefix,
)
from comfyless.models.unet import UNetModel


def _shapes(config, prefix="model.diffusion_model."):
    with torch.device("meta"):
        return {prefix + k: tuple(v.shape) for k, v in UNetModel(config).state_dict().items()}


def test_sd15_full_config_as_in_spec():
    cfg = detect_unet_config(_shapes(unet_config("sd15", "full")))
    assert cfg.model_channels == 320 and cfg.in_channels == 4 and cfg.out_channels == 4
    assert cfg.num_res_blocks == [2, 2, 2, 2]
    assert cfg.channel_mult == [1, 2, 4, 4]
    assert cfg.transformer_depth == [1, 1, 1, 1, 1, 1, 0, 0]
    assert cfg.transformer_depth_output == [1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0]
    assert cfg.transformer_depth_middle == 1
    assert cfg.context_dim == 768
    assert cfg.use_linear_in_transformer is False
    assert cfg.adm_in_channels is None
    assert (cfg.num_heads, cfg.num_head_channels) == (8, -1)


def test_sdxl_full_config_as_in_spec():
    cfg = detect_unet_config(_shapes(unet_config("sdxl", "full")))
    assert cfg.num_res_blocks == [2, 2, 2]
    assert cfg.channel_mult == [1, 2, 4]
    assert cfg.transformer_depth == [0, 0, 2, 2, 10, 10]
    assert cfg.transformer_depth_output == [0, 0, 0, 2, 2, 2, 10, 10, 10]
    assert cfg.transformer_depth_middle == 10
    assert cfg.context_dim == 2048 and cfg.adm_in_channels == 2816
    assert cfg.use_linear_in_transformer is True
    assert (cfg.num_heads, cfg.num_head_channels) == (-1, 64)


@pytest.mark.parametrize("arch", ["sd15", "sd2", "sdxl"])
@pytest.mark.parametrize("size", ["tiny", "small", "full"])
def test_detected_config_round_trips(arch, size):
    config = unet_config(arch, size)
    detected = detect(_shapes(config))
    assert detected.config == config
    assert detected.family == arch


def test_prefix_choice():
    assert unet_prefix(["model.diffusion_model.a"] * 6) == "model.diffusion_model."
    assert unet_prefix(["model.diffusion_model.a"] * 5 + ["x"]) == "model."


def test_prefix_free_detection():
    shapes = _shapes(unet_config("sd15", "tiny"), prefix="")
    assert detect(shapes, prefix="").family == "sd15"


@pytest.mark.parametrize(("arch", "prediction", "expected"), [
    ("sd2", None, "v"), ("sd2", "eps", "eps"), ("sd15", None, "eps"), ("sdxl", None, "eps"),
    ("sdxl", "v", "v"),
])
def test_prediction_type(arch, prediction, expected):
    sd = checkpoint_state_dict(arch, "tiny", prediction=prediction)
    detected = detect({k: tuple(v.shape) for k, v in sd.items()}, read=sd.__getitem__)
    assert detected.prediction == expected


def test_sd2_vpred_threshold_reads_the_norm_bias():
    sd = checkpoint_state_dict("sd2", "tiny", prediction="eps")
    shapes = {k: tuple(v.shape) for k, v in sd.items()}
    key = "model.diffusion_model.output_blocks.3.1.transformer_blocks.0.norm1.bias"
    assert key in sd
    sd[key] = torch.randn(sd[key].shape[0], generator=torch.Generator().manual_seed(0)) * 0.2
    assert detect(shapes, read=sd.__getitem__).prediction == "v"


def test_unknown_layout_names_what_was_found():
    with pytest.raises(DetectionError) as info:
        detect({"encoder.conv_in.weight": (128, 3, 3, 3)})
    assert "encoder.conv_in.weight" in str(info.value)
    assert "sd15" in str(info.value) and "sdxl" in str(info.value)


def test_unknown_input_channels_are_refused_with_description():
    # 9 (inpaint) and 8 (InstructPix2Pix) are SD variants (tests/nodes/test_inpaint.py)
    config = unet_config("sd15", "tiny")
    config.in_channels = 5
    with pytest.raises(DetectionError, match="in_channels=5"):
        detect(_shapes(config))


@pytest.mark.parametrize("key, name", [
    ("model.diffusion_model.head.modulation", "Wan"),
    ("clf.1.weight", "Stable Cascade"),
    ("model.diffusion_model.t5_yproj.weight", "Mochi"),
    ("adaln_single.emb.timestep_embedder.linear_1.bias", "LTX-Video"),
])
def test_known_unsupported_families_are_named(key, name):
    shapes = {key: (8, 8), **{f"model.diffusion_model.blocks.{i}.w": (2,) for i in range(8)}}
    with pytest.raises(DetectionError) as info:
        detect(shapes)
    message = str(info.value)
    assert name in message and key in message and "does not support" in message
    assert "sd15" in message  # and what is supported


def test_sdxl_refiner_is_refused_by_name():
    # model-detection.md §2: model_channels 384, context 1280 (bigG alone), adm 2560 (pooled
    # 1280 + 5 x 256), transformer_depth [0,0,4,4,4,4,0,0]; the base still detects as SDXL.
    config = unet_config("sdxl", "full", 1280, 2560)
    config.model_channels, config.channel_mult = 384, [1, 2, 4, 4]
    config.num_res_blocks = [2, 2, 2, 2]
    config.transformer_depth = [0, 0, 4, 4, 4, 4, 0, 0]
    config.transformer_depth_output = [0, 0, 0, 4, 4, 4, 4, 4, 4, 0, 0, 0]
    config.transformer_depth_middle = 4
    with pytest.raises(DetectionError, match=r"SDXL refiner UNet \(context 1280 .* adm 2560"):
        detect(_shapes(config))
    assert detect(_shapes(unet_config("sdxl", "full"))).family == "sdxl"
