"""More published templates run end to end on tiny files (issue 14 §3): the Qwen-Image edit
templates (one reference image, 2509 with TextEncodeQwenImageEditPlus, two LoRAs chained), the
Qwen-Image style-LoRA templates, SDXL base and the Z-Image switch demo with its LoRA.

As in test_templates.py: each file a template names is a tiny random-weight file of the right
family (a `make-checkpoint` output) under that name, each LoRA a small random one fitted to
the tiny network in a layout such files have, each LoadImage input a small image written
here; the run goes through `comfyless run` with overrides that make it fast.

Templates whose files comfyless does not read are run too, on tiny files in the files' own
layout, and must fail with an error naming the loader node and its input (no traceback):
the SDXL refiner (`sd_xl_refiner_1.0.safetensors`: a CLIP-G-only checkpoint whose UNet takes
a 2560-wide adm vector; no family of ours) and ComfyUI's int8 "convrot" diffusion models
(`*_int8_convrot.safetensors`: int8 Linear weights, a per-row `weight_scale` and a
`comfy_quant` config {"format": "int8_tensorwise", "convrot": true, ...}; the loader reads
fp8 quantisations only).
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from comfyless.cli import main as comfyless
from comfyless.engine.cache import DEFAULT_CACHE
from comfyless.engine.load import load_workflow
from comfyless.engine.paths import BasePaths
from comfyless.engine.validate import check_workflow
from comfyless.nodes import REGISTRY
from comfyless.nodes.impl import qwen_edit
from tests.workflows.test_templates import (
    ATTENTION,
    MLPS,
    SAVE_NAME_TAILS,
    LoraLayout,
    _is_missing_file,
    _link_or_copy,
    _run,
    _shapes,
    _write_scaled_fp8,
    template_files,
    template_path,
    tiny_lora,
)

QWEN_TE = {"qwen_2.5_vl_7b_fp8_scaled.safetensors": "text_encoders",
           "qwen_image_vae.safetensors": "vae"}
QWEN_EDIT_2509 = {**QWEN_TE, "qwen_image_edit_2509_fp8_e4m3fn.safetensors": "diffusion_models"}
Z_IMAGE = {"ae.safetensors": "vae", "qwen_3_4b.safetensors": "text_encoders"}
# {template: {file it names: folder kind}}, read from the 0.1.123 templates
EXPECTED_FILES = {
    "image_qwen_image_edit": {
        **QWEN_TE, "qwen_image_edit_fp8_e4m3fn.safetensors": "diffusion_models",
        "Qwen-Image-Edit-Lightning-4steps-V1.0-bf16.safetensors": "loras",
        "image_qwen_image_edit_input_image.png": "input"},
    "image_qwen_image_edit_2509": {
        **QWEN_EDIT_2509, "Qwen-Image-Edit-2509-Lightning-4steps-V1.0-bf16.safetensors": "loras",
        "image_qwen_image_edit_2509_input_image.png": "input"},
    "templates-image_to_real": {
        **QWEN_EDIT_2509, "Qwen-Image-Edit-2509-Anything2RealAlpha.safetensors": "loras",
        "Qwen-Image-Edit-2509-Lightning-8steps-V1.0-bf16.safetensors": "loras",
        "robot_office_worker_in_space.png": "input"},
    "templates-portrait_light_migration": {
        **QWEN_EDIT_2509, "Qwen-Image-Edit-2509-Lightning-4steps-V1.0-bf16.safetensors": "loras",
        "Qwen-Image-Edit-2509-Light-Migration.safetensors": "loras",
        "woman_with_sunbeam.jpg": "input", "women_with_blue_orb.jpg": "input"},
    "template_qwen_Image_2512_360_lora": {
        **QWEN_TE, "qwen_image_2512_fp8_e4m3fn.safetensors": "diffusion_models",
        "Qwen-Image-2512-Lightning-4steps-V1.0-fp32.safetensors": "loras",
        "qwen-360-diffusion-2512-int8-bf16-v2.safetensors": "loras"},
    "template_sugar_coated_gummy_style_qwen": {
        **QWEN_TE, "qwen_image_fp8_e4m3fn.safetensors": "diffusion_models",
        "gummycandy_qwen.safetensors": "loras"},
    "image_sdxl_simple": {"sd_xl_base_1.0.safetensors": "checkpoints"},
    "basic_switch_node": {
        **Z_IMAGE, "z_image_turbo_bf16.safetensors": "diffusion_models",
        "pixel_art_style_z_image_turbo.safetensors": "loras"},
    # not run by comfyless (the module docstring says why): the run must fail clearly
    "sdxl_simple_example": {"sd_xl_base_1.0.safetensors": "checkpoints",
                            "sd_xl_refiner_1.0.safetensors": "checkpoints"},
    "sdxl_refiner_prompt_example": {"sd_xl_base_1.0.safetensors": "checkpoints",
                                    "sd_xl_refiner_1.0.safetensors": "checkpoints"},
    "image_z_image_int8": {**Z_IMAGE, "z_image_int8_convrot.safetensors": "diffusion_models"},
    "image_z_image_turbo_int8": {
        "ae.safetensors": "vae", "qwen_3_4b_fp8_mixed.safetensors": "text_encoders",
        "z_image_turbo_int8_convrot.safetensors": "diffusion_models"},
}
KINDS = {f: kind for files in EXPECTED_FILES.values() for f, kind in files.items()}

# Each model file -> (make-checkpoint --arch, the file it writes in the same folder kind).
# Every Qwen-Image diffusion model (base, 2512, edit, edit 2509) is one network: the edit
# models differ only in what they are given (reference latents beside the image tokens).
QWEN_DIT = ("qwen-image", "qwen_image_fp8_e4m3fn.safetensors")
TINY_SOURCES = {
    "qwen_image_fp8_e4m3fn.safetensors": QWEN_DIT,
    "qwen_image_2512_fp8_e4m3fn.safetensors": QWEN_DIT,
    "qwen_image_edit_fp8_e4m3fn.safetensors": QWEN_DIT,
    "qwen_image_edit_2509_fp8_e4m3fn.safetensors": QWEN_DIT,
    "qwen_image_vae.safetensors": ("qwen-image", "qwen_image_vae.safetensors"),
    # written scaled-fp8 (see the writers below); the tiny file keeps the vision tower
    "qwen_2.5_vl_7b_fp8_scaled.safetensors": ("qwen-image", "qwen_2.5_vl_7b.safetensors"),
    "sd_xl_base_1.0.safetensors": ("sdxl", "sd_xl_base_1.0.safetensors"),
    "z_image_turbo_bf16.safetensors": ("zimage", "z_image_turbo_bf16.safetensors"),
    "qwen_3_4b.safetensors": ("zimage", "qwen_3_4b.safetensors"),
    "qwen_3_4b_fp8_mixed.safetensors": ("zimage", "qwen_3_4b.safetensors"),
    "ae.safetensors": ("zimage", "ae.safetensors"),
    # the files comfyless refuses, written in their own layout from the tiny networks
    "sd_xl_refiner_1.0.safetensors": ("sdxl", "sd_xl_base_1.0.safetensors"),
    "z_image_int8_convrot.safetensors": ("zimage", "z_image_turbo_bf16.safetensors"),
    "z_image_turbo_int8_convrot.safetensors": ("zimage", "z_image_turbo_bf16.safetensors"),
}

QWEN_LIGHTNING = ATTENTION + MLPS
# The LoRA files, each in a layout such files have (the public files' own dialect was not
# checked): lightx2v's Lightning distillations as bare diffusers paths with alpha (kohya
# suffixes for the edit ones, PEFT for 2512), community style LoRAs as ai-toolkit
# (`diffusion_model.` + PEFT, no alpha) or diffusers-trainer (`transformer.` + PEFT) files.
QWEN_LORAS = {
    "Qwen-Image-Edit-Lightning-4steps-V1.0-bf16.safetensors": LoraLayout(
        "", "lora_down.weight", "lora_up.weight", 0.5, torch.bfloat16, QWEN_LIGHTNING),
    "Qwen-Image-Edit-2509-Lightning-4steps-V1.0-bf16.safetensors": LoraLayout(
        "", "lora_down.weight", "lora_up.weight", 0.5, torch.bfloat16, QWEN_LIGHTNING),
    "Qwen-Image-Edit-2509-Lightning-8steps-V1.0-bf16.safetensors": LoraLayout(
        "", "lora_down.weight", "lora_up.weight", 0.5, torch.bfloat16, QWEN_LIGHTNING),
    "Qwen-Image-2512-Lightning-4steps-V1.0-fp32.safetensors": LoraLayout(
        "", "lora_A.weight", "lora_B.weight", 0.5, torch.float32, QWEN_LIGHTNING),
    "Qwen-Image-Edit-2509-Anything2RealAlpha.safetensors": LoraLayout(
        "diffusion_model.", "lora_A.weight", "lora_B.weight", None, torch.bfloat16,
        ATTENTION + MLPS + ("img_mod.1", "txt_mod.1")),
    "Qwen-Image-Edit-2509-Light-Migration.safetensors": LoraLayout(
        "transformer.", "lora_A.weight", "lora_B.weight", None, torch.bfloat16, ATTENTION),
    "qwen-360-diffusion-2512-int8-bf16-v2.safetensors": LoraLayout(
        "diffusion_model.", "lora_A.weight", "lora_B.weight", None, torch.bfloat16,
        QWEN_LIGHTNING),
    "gummycandy_qwen.safetensors": LoraLayout(
        "transformer.", "lora_A.weight", "lora_B.weight", None, torch.float32, ATTENTION),
}
# Z-Image: an ai-toolkit file in diffusers module names (to_q / to_k / to_v: row thirds of
# ComfyUI's fused qkv), every main and refiner block.
Z_IMAGE_LORA = "pixel_art_style_z_image_turbo.safetensors"
Z_LORA_LAYERS = ("attention.to_q", "attention.to_k", "attention.to_v", "attention.to_out.0",
                 "feed_forward.w1", "feed_forward.w2", "feed_forward.w3")
LORA_RANK = 4
INPUT_SIZES = {  # (width, height): not square, so a swapped axis shows
    "image_qwen_image_edit_input_image.png": (48, 32),
    "image_qwen_image_edit_2509_input_image.png": (48, 32),
    "robot_office_worker_in_space.png": (32, 48),
    "woman_with_sunbeam.jpg": (40, 40),
    "women_with_blue_orb.jpg": (48, 32),
}
# The edit templates' reference images (LoadImage id -> file), and another image of the same
# size to put in its place.
EDIT_REFERENCES = {
    "image_qwen_image_edit": ("78", "image_qwen_image_edit_input_image.png"),
    "image_qwen_image_edit_2509": ("78", "image_qwen_image_edit_2509_input_image.png"),
    "templates-image_to_real": ("14", "robot_office_worker_in_space.png"),
    "templates-portrait_light_migration": ("6", "woman_with_sunbeam.jpg"),  # image3 only
}
OTHER_INPUT = "other_{}x{}.png"

# How each template runs fast: its save node, the --set overrides (tiny sizes, 2 steps), the
# size of the saved image, the nodes that do not run (no output needs them, or they are on
# the branch a lazy ComfySwitchNode does not take) and the LoRA loaders that do. Templates
# with a boolean switch (Lightning LoRA, 4 or 8 steps, cfg 1 / base model, more steps, more
# cfg) run both ways: "<name>" as published, "<name>-switched" with the switch flipped.
@dataclass(frozen=True)
class Run:
    template: str
    save_id: str
    overrides: dict[str, dict]
    size: tuple[int, int]  # (width, height) of the saved image
    not_run: frozenset[str] = frozenset()
    loras: tuple[str, ...] = ()


SMALL = {"width": 64, "height": 48}
# the edit templates sample the VAE-encoded input image: the output has its size
RUNS = {run.template + ("-switched" if switched else ""): run for switched, run in [
    # ImageScaleToTotalPixels (93) feeds nothing; switch 102:111 off as published
    (False, Run("image_qwen_image_edit", "60", {"102:106": {"value": 2}}, (48, 32),
                frozenset({"93", "102:89", "102:103", "102:105"}))),
    (True, Run("image_qwen_image_edit", "60",
               {"102:111": {"value": True}, "102:103": {"value": 2}}, (48, 32),
               frozenset({"93", "102:106", "102:107"}), ("102:89",))),
    # switch 433:443 on as published
    (False, Run("image_qwen_image_edit_2509", "469", {"433:436": {"value": 2}}, (48, 32),
                frozenset({"433:438", "433:439"}), ("433:89",))),
    (True, Run("image_qwen_image_edit_2509", "469",
               {"433:443": {"value": False}, "433:438": {"value": 2}}, (48, 32),
               frozenset({"433:89", "433:436", "433:437"}))),
    (False, Run("templates-image_to_real", "18", {"17:11": {"steps": 2}}, (32, 48),
                loras=("17:3", "17:5"))),
    # switch 471:443 off as published
    (False, Run("templates-portrait_light_migration", "5", {"471:438": {"value": 2}}, (48, 32),
                frozenset({"471:119", "471:436", "471:437"}), ("471:472",))),
    (True, Run("templates-portrait_light_migration", "5",
               {"471:443": {"value": True}, "471:436": {"value": 2}}, (48, 32),
               frozenset({"471:438", "471:439"}), ("471:472", "471:119"))),
    # switch 238:229 off as published
    (False, Run("template_qwen_Image_2512_360_lora", "60",
                {"238:232": SMALL, "238:224": {"value": 2}}, (64, 48),
                frozenset({"238:221", "238:225", "238:218"}), ("238:264",))),
    (True, Run("template_qwen_Image_2512_360_lora", "60",
               {"238:229": {"value": True}, "238:232": SMALL, "238:225": {"value": 2}},
               (64, 48), frozenset({"238:224", "238:223"}), ("238:264", "238:221"))),
    (False, Run("template_sugar_coated_gummy_style_qwen", "60",
                {"76:58": SMALL, "76:3": {"steps": 2}}, (64, 48), loras=("76:78",))),
    (False, Run("image_sdxl_simple", "7", {"13": SMALL, "12": {"steps": 2}}, (64, 48))),
    # switch 66 on as published: the LoRA and the pixel-art prompt (not 67); the string
    # demo's switches (1 off, 5 on) leave 2 and 7 unrun
    (False, Run("basic_switch_node", "63", {"64:57": SMALL, "64:58": {"steps": 2}}, (64, 48),
                frozenset({"67", "2", "7"}), ("62",))),
]}
# FluxKontextImageScale always scales to a ~1 Mpx Kontext size (seconds on the tiny VAE):
# bypassed, the small input image goes straight on.
BYPASS = {"image_qwen_image_edit_2509": ("FluxKontextImageScale",),
          "templates-portrait_light_migration": ("FluxKontextImageScale",)}
# The templates comfyless cannot run: (loader node, its file input, overrides that keep the
# nodes before it fast, what the error must say). The two SDXL ones sample with the base
# first (KSamplerAdvanced steps 0-20 of 25, then the refiner 20-25).
SDXL_BASE_FIRST = {"5": SMALL, "10": {"steps": 2, "end_at_step": 1},
                   "11": {"steps": 2, "start_at_step": 1}}
REFUSED = {
    "sdxl_simple_example": ("12", "ckpt_name", SDXL_BASE_FIRST, "SDXL refiner UNet"),
    "sdxl_refiner_prompt_example": ("12", "ckpt_name", SDXL_BASE_FIRST, "SDXL refiner UNet"),
    "image_z_image_int8": ("76:66", "unet_name", {"94": {"megapixels": 0.1}},
                           "is quantised as 'int8_tensorwise'"),
    "image_z_image_turbo_int8": ("57:28", "unet_name", {"57:13": SMALL},
                                 "is quantised as 'int8_tensorwise'"),
}


# -- the tiny files ----------------------------------------------------------------------------

def _comfy_quant(config: dict) -> torch.Tensor:
    """A `<layer>.comfy_quant` tensor: the JSON config as uint8 bytes."""
    return torch.tensor(list(json.dumps(config).encode()), dtype=torch.uint8)


def _block_linear(key: str, t: torch.Tensor) -> bool:
    return t.ndim == 2 and key.endswith(".weight") and key.startswith(
        ("layers.", "noise_refiner.", "context_refiner."))


def _write_fp8_mixed(source: Path, target: Path) -> None:
    """`source` as ComfyUI's newer per-tensor fp8 "mixed" files: `<layer>.weight_scale` and a
    `<layer>.comfy_quant` {"format": "float8_e4m3fn"} per Linear layer."""
    from tests.models.test_scaled_fp8 import scale_fp8

    scaled, _ = scale_fp8(load_file(str(source)), "", marker=False)
    mixed = {}
    for key, t in scaled.items():
        if key.endswith(".scale_weight"):
            layer = key[: -len(".scale_weight")]
            mixed[f"{layer}.weight_scale"] = t
            mixed[f"{layer}.comfy_quant"] = _comfy_quant({"format": "float8_e4m3fn"})
        elif key.endswith(".scale_input"):
            mixed[key.replace(".scale_input", ".input_scale")] = t
        else:
            mixed[key] = t
    save_file(mixed, str(target))


def hadamard(size: int) -> torch.Tensor:
    """The normalised regular Hadamard matrix of a power-of-4 `size` (Kronecker powers of
    H4 = [[1,1,1,-1],[1,1,-1,1],[1,-1,1,1],[-1,1,1,1]] / 2): orthogonal and symmetric."""
    h4 = torch.tensor([[1., 1, 1, -1], [1, 1, -1, 1], [1, -1, 1, 1], [-1, 1, 1, 1]]) / 2
    out = torch.ones(1, 1)
    while out.shape[0] < size:
        out = torch.kron(out, h4)
    assert out.shape[0] == size, "convrot group sizes are powers of 4"
    return out


CONVROT_GROUP = 16


def _write_int8_convrot(source: Path, target: Path) -> None:
    """`source` as ComfyUI's int8 "convrot" files: each block Linear weight W rotated group by
    group along its input (W·R, R the block-diagonal Hadamard of CONVROT_GROUP), quantised to
    int8 with one scale per output row (max |W·R| / 127), `<layer>.weight_scale` [out, 1] and
    `<layer>.comfy_quant` {"format": "int8_tensorwise", "convrot": true, "convrot_groupsize"}."""
    sd = load_file(str(source))
    rotation = hadamard(CONVROT_GROUP)
    out = {}
    for key, t in sd.items():
        if not _block_linear(key, t) or t.shape[1] % CONVROT_GROUP:
            out[key] = t
            continue
        rows, cols = t.shape
        rotated = (t.float().reshape(rows, cols // CONVROT_GROUP, CONVROT_GROUP) @ rotation
                   ).reshape(rows, cols)
        scale = rotated.abs().amax(dim=1, keepdim=True) / 127
        layer = key[: -len(".weight")]
        out[key] = (rotated / scale).round().clamp(-127, 127).to(torch.int8)
        out[f"{layer}.weight_scale"] = scale
        out[f"{layer}.comfy_quant"] = _comfy_quant(
            {"format": "int8_tensorwise", "convrot": True, "convrot_groupsize": CONVROT_GROUP})
    save_file(out, str(target))


def _write_sdxl_refiner(source: Path, target: Path) -> None:
    """An SDXL-refiner checkpoint from the tiny SDXL base: its VAE, its OpenCLIP bigG alone as
    `conditioner.embedders.0` (the refiner has no CLIP-L), and a UNet whose context is bigG's
    width and whose adm vector is bigG's pooled projection + 5 x 256 (4 sizes and the
    aesthetic score; model-detection.md §2: the real one has adm 2560 = 1280 + 5 x 256)."""
    from comfyless.models.families.sd.writer import unet_config, unet_state_dict

    base = load_file(str(source))
    bigg = "conditioner.embedders.1.model."
    sd = {k: v for k, v in base.items() if k.startswith("first_stage_model.")}
    sd |= {"conditioner.embedders.0.model." + k[len(bigg):]: v for k, v in base.items()
           if k.startswith(bigg)}
    width = sd["conditioner.embedders.0.model.token_embedding.weight"].shape[1]
    pooled = sd["conditioner.embedders.0.model.text_projection"].shape[1]
    config = unet_config("sdxl", "tiny", width, pooled + 5 * 256)
    sd |= unet_state_dict(config, torch.Generator().manual_seed(3))
    save_file(sd, str(target))


WRITERS = {"qwen_2.5_vl_7b_fp8_scaled.safetensors": _write_scaled_fp8,
           "qwen_3_4b_fp8_mixed.safetensors": _write_fp8_mixed,
           "z_image_int8_convrot.safetensors": _write_int8_convrot,
           "z_image_turbo_int8_convrot.safetensors": _write_int8_convrot,
           "sd_xl_refiner_1.0.safetensors": _write_sdxl_refiner}


def tiny_z_image_lora(network: dict[str, list[int]], seed: int) -> dict[str, torch.Tensor]:
    """A rank-LORA_RANK ai-toolkit LoRA (`diffusion_model.<diffusers module>.lora_A/B`, no
    alpha, bf16) for every block of the Z-Image network whose {key: shape} is `network`."""
    gen = torch.Generator().manual_seed(seed)
    blocks = sorted({".".join(k.split(".")[:2]) for k in network
                     if k.startswith(("layers.", "noise_refiner.", "context_refiner."))})
    sd = {}
    for block in blocks:
        dim = network[f"{block}.attention.out.weight"][0]
        hidden = network[f"{block}.feed_forward.w1.weight"][0]
        shapes = {"attention.to_q": (dim, dim), "attention.to_k": (dim, dim),
                  "attention.to_v": (dim, dim), "attention.to_out.0": (dim, dim),
                  "feed_forward.w1": (hidden, dim), "feed_forward.w2": (dim, hidden),
                  "feed_forward.w3": (hidden, dim)}
        for layer in Z_LORA_LAYERS:
            out_features, in_features = shapes[layer]
            path = f"diffusion_model.{block}.{layer}"
            sd[f"{path}.lora_A.weight"] = 0.1 * torch.randn(LORA_RANK, in_features, generator=gen)
            sd[f"{path}.lora_B.weight"] = 0.1 * torch.randn(out_features, LORA_RANK,
                                                            generator=gen)
    return {key: t.to(torch.bfloat16) for key, t in sd.items()}


@pytest.fixture(scope="module")
def more_base(tmp_path_factory) -> Path:
    """A base directory with a tiny file under every file name these templates use."""
    from comfyless.models.checkpoint_writer import write_model_files

    made = tmp_path_factory.mktemp("more_template_files")
    for arch in sorted({arch for arch, _ in TINY_SOURCES.values()}):
        write_model_files(lambda kind, arch=arch: made / arch / kind, arch, "tiny")
    base = tmp_path_factory.mktemp("more_template_base")
    for name, (arch, source) in TINY_SOURCES.items():
        target = base / "models" / KINDS[name] / name
        target.parent.mkdir(parents=True, exist_ok=True)
        WRITERS.get(name, _link_or_copy)(made / arch / KINDS[name] / source, target)
    loras = base / "models" / "loras"
    loras.mkdir()
    qwen = _shapes(made / QWEN_DIT[0] / "diffusion_models" / QWEN_DIT[1])
    for seed, (name, layout) in enumerate(QWEN_LORAS.items()):
        save_file(tiny_lora(layout, qwen, seed), str(loras / name))
    z_image = _shapes(made / "zimage" / "diffusion_models" / "z_image_turbo_bf16.safetensors")
    save_file(tiny_z_image_lora(z_image, 99), str(loras / Z_IMAGE_LORA))
    (base / "input").mkdir()
    for n, (name, size) in enumerate(INPUT_SIZES.items()):
        pixels = np.random.default_rng(n).integers(0, 256, (size[1], size[0], 3), np.uint8)
        Image.fromarray(pixels).save(base / "input" / name)
    for width, height in set(INPUT_SIZES.values()):
        Image.new("RGB", (width, height), (30, 160, 90)).save(
            base / "input" / OTHER_INPUT.format(width, height))
    return base


@pytest.fixture(autouse=True)
def small_edit_totals(monkeypatch):
    """The edit nodes scale their reference image to 1024² pixels (the vision tower's copy to
    384² in the Plus node): 25-50 s a run on the tiny VAE and vision tower. Smaller totals
    (the same rules) keep each edit template near a second."""
    monkeypatch.setattr(qwen_edit, "EDIT_PIXELS", 48 * 32)
    monkeypatch.setattr(qwen_edit, "PLUS_VISION_PIXELS", 40 * 40)


# -- the file maps -----------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(EXPECTED_FILES))
def test_file_map_matches_the_template(name, tmp_path):
    assert template_files(name) == EXPECTED_FILES[name]
    checked = check_workflow(load_workflow(template_path(name), REGISTRY), REGISTRY,
                             BasePaths.resolve(tmp_path))
    assert [e for e in checked.errors if not _is_missing_file(e, checked)] == []


def test_every_file_has_a_tiny_stand_in():
    models = {f for f, kind in KINDS.items() if kind not in ("input", "loras")}
    assert models == set(TINY_SOURCES)
    assert {f for f, kind in KINDS.items() if kind == "loras"} == set(QWEN_LORAS) | {
        Z_IMAGE_LORA}
    assert {f for f, kind in KINDS.items() if kind == "input"} == set(INPUT_SIZES)


# -- runs --------------------------------------------------------------------------------------

def _fast_source(name: str, folder: Path) -> Path:
    """The template as published, or a copy with its BYPASS node types set to mode 4."""
    bypass = BYPASS.get(name)
    if not bypass:
        return template_path(name)
    data = json.loads(template_path(name).read_text())
    graphs = [data, *data.get("definitions", {}).get("subgraphs", [])]
    for node in (n for graph in graphs for n in graph["nodes"]):
        if node["type"] in bypass:
            node["mode"] = 4
    path = folder / f"{name}.json"
    path.write_text(json.dumps(data))
    return path


def _saved_image(base: Path, report: dict, save_id: str) -> Path:
    [entry] = report["outputs"][save_id]["images"]
    return base / "output" / entry["subfolder"] / entry["filename"]


@pytest.mark.parametrize("run_id", list(RUNS))
def test_template_runs_end_to_end(run_id, more_base, tmp_path, capsys, caplog):
    run = RUNS[run_id]
    source = _fast_source(run.template, tmp_path)
    sets = {run.save_id: {"filename_prefix": f"more/{run_id}"}, **run.overrides}
    caplog.set_level(logging.WARNING, logger="comfyless")
    report = _run(source, sets, more_base, capsys)

    planned = load_workflow(source, REGISTRY)
    assert run.not_run <= set(planned)
    assert set(report["executed"]) == set(planned) - run.not_run
    assert {n for n, node in planned.items() if node.class_type.startswith("LoraLoader")
            } - run.not_run == set(run.loras)
    # every LoRA key found its weight (else "... LoRA key(s) not loaded: ...")
    assert [r.getMessage() for r in caplog.records if "not loaded" in r.getMessage()] == []
    saved = _saved_image(more_base, report, run.save_id)
    assert saved.parent.name == "more"
    assert re.fullmatch(re.escape(run_id) + SAVE_NAME_TAILS[planned[run.save_id].class_type],
                        saved.name)
    with Image.open(saved) as png:
        assert png.size == run.size
        pixels = np.asarray(png.convert("RGB"), dtype=np.float32)
    assert pixels.std() > 0  # an image, not a constant


@pytest.mark.parametrize(("run_id", "loader"), [(r, lo) for r, run in RUNS.items()
                                                for lo in run.loras])
def test_each_lora_changes_the_image(run_id, loader, more_base, tmp_path, capsys):
    """Same seed and noise, the LoRA at strength 0 and 1: the images differ."""
    run = RUNS[run_id]
    source = _fast_source(run.template, tmp_path)
    images = []
    for strength in (0.0, 1.0):
        report = _run(source, {**run.overrides,
                               run.save_id: {"filename_prefix": f"lora/{run_id}"},
                               loader: {"strength_model": strength}}, more_base, capsys)
        with Image.open(_saved_image(more_base, report, run.save_id)) as png:
            images.append(np.asarray(png.convert("RGB"), dtype=np.float32))
    # Measured (levels of 255, mean): ~0.2 for the Lightning files (alpha/rank = 1/8),
    # 1.7-3.3 for the Qwen style LoRAs without alpha, ~20 for the Z-Image one.
    assert np.abs(images[1] - images[0]).mean() > 0.1


@pytest.mark.parametrize("name", list(REFUSED))
def test_unsupported_file_fails_naming_the_loader(name, more_base, capsys):
    """The run stops at the loader with an error naming node, class and file, in the JSON
    report (no traceback)."""
    node_id, input_name, overrides, says = REFUSED[name]
    args = ["run", str(template_path(name)), "--base-dir", str(more_base), "--json"]
    for nid, values in overrides.items():
        args += [a for key, value in values.items()
                 for a in ("--set", f"{nid}.{key}={json.dumps(value)}")]
    DEFAULT_CACHE.clear()
    assert comfyless(args) == 3
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    error = json.loads(out)["error"]
    assert error["type"] == "node_execution_failed"
    file_name = load_workflow(template_path(name), REGISTRY)[node_id].inputs[input_name]
    assert error["extra_info"]["node_id"] == node_id
    assert error["extra_info"]["exception_type"] == "ModelLoadError"
    assert says in error["message"] and file_name in error["message"]


def test_z_image_turbo_int8_runs_with_the_bf16_model_instead(more_base, tmp_path, capsys):
    """Everything but the int8 file is read: with the bf16 diffusion model in its place the
    template runs, its text encoder a per-tensor fp8 "mixed" file (qwen_3_4b_fp8_mixed)."""
    name = "image_z_image_turbo_int8"
    report = _run(template_path(name), {
        "9": {"filename_prefix": f"more/{name}"}, "57:13": SMALL, "57:3": {"steps": 2},
        "57:28": {"unet_name": "z_image_turbo_bf16.safetensors"}}, more_base, capsys)
    assert "57:30" in report["executed"]  # the fp8-mixed text encoder loaded
    with Image.open(_saved_image(more_base, report, "9")) as png:
        assert png.size == (64, 48)


@pytest.mark.parametrize("name", list(EDIT_REFERENCES))
def test_edit_output_follows_the_reference_image(name, more_base, tmp_path, capsys):
    """Another reference image, same seed: another result (at denoise 1 the sampled latent
    starts from pure noise, so the image reaches the output only as the edit conditioning:
    reference latents and vision tokens)."""
    run = RUNS[name]
    source = _fast_source(name, tmp_path)
    save_id, overrides = run.save_id, run.overrides
    load_id, published = EDIT_REFERENCES[name]
    other = OTHER_INPUT.format(*INPUT_SIZES[published])
    images = []
    for image in (published, other):
        report = _run(source, {**overrides, save_id: {"filename_prefix": f"ref/{name}"},
                               load_id: {"image": image}}, more_base, capsys)
        with Image.open(_saved_image(more_base, report, save_id)) as png:
            images.append(np.asarray(png.convert("RGB"), dtype=np.float32))
    assert np.abs(images[1] - images[0]).mean() > 0.1
