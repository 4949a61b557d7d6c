"""ComfyUI's published workflow templates (package `comfyui-workflow-templates-json`, pinned in
the `test` extra) load, validate and run end to end on tiny files.

Without their files the only validation errors are the model / input files the base directory
lacks; `template_files(name)` maps each file a template names to its folder kind. The
`template_base` fixture writes tiny random-weight files of the right family (the
`make-checkpoint` outputs) under every one of those names, and each template then runs through
`comfyless run` with overrides that make it fast (64 px latents, 2 steps). The Qwen-Image
templates' LoRA files are written here, fitted to the tiny network, in the key layouts such
files have; the two templates whose boolean switch picks the Lightning LoRA path run both ways.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import save_file

from comfyless.cli import main as comfyless
from comfyless.engine.cache import DEFAULT_CACHE
from comfyless.engine.load import load_workflow
from comfyless.engine.paths import BasePaths
from comfyless.engine.validate import check_workflow
from comfyless.engine.workflow import link_of
from comfyless.nodes import REGISTRY

templates_pkg = pytest.importorskip("comfyui_workflow_templates_json")
TEMPLATES = Path(templates_pkg.__file__).parent / "templates"

# The files each template names, by folder kind (checkpoints / diffusion_models /
# text_encoders / vae / input), as read from the 0.1.123 templates.
FLUX_DEV_FILES = {"ae.safetensors": "vae", "flux1-dev.safetensors": "diffusion_models",
                  "clip_l.safetensors": "text_encoders", "t5xxl_fp16.safetensors": "text_encoders"}
QWEN_FILES = {"qwen_image_vae.safetensors": "vae",
              "qwen_2.5_vl_7b_fp8_scaled.safetensors": "text_encoders"}
EXPECTED_FILES = {
    "flux_dev_full_text_to_image": FLUX_DEV_FILES,
    "flux_schnell_full_text_to_image": {
        "ae.safetensors": "vae", "flux1-schnell.safetensors": "diffusion_models",
        "clip_l.safetensors": "text_encoders", "t5xxl_fp16.safetensors": "text_encoders"},
    "flux_schnell": {"flux1-schnell-fp8.safetensors": "checkpoints"},
    "flux_dev_checkpoint_example": FLUX_DEV_FILES,
    "flux1_krea_dev": {
        "ae.safetensors": "vae", "flux1-krea-dev_fp8_scaled.safetensors": "diffusion_models",
        "clip_l.safetensors": "text_encoders", "t5xxl_fp16.safetensors": "text_encoders"},
    "flux_kontext_dev_basic": {
        "ae.safetensors": "vae", "flux1-dev-kontext_fp8_scaled.safetensors": "diffusion_models",
        "clip_l.safetensors": "text_encoders",
        "t5xxl_fp8_e4m3fn_scaled.safetensors": "text_encoders",
        "flux_kontext_dev_basic_input_image.jpg": "input"},
    "sd3.5_simple_example": {"sd3.5_large_fp8_scaled.safetensors": "checkpoints"},
    "sdxlturbo_example": {"sd_xl_turbo_1.0_fp16.safetensors": "checkpoints"},
    "image_z_image": {
        "ae.safetensors": "vae", "qwen_3_4b.safetensors": "text_encoders",
        "z_image_bf16.safetensors": "diffusion_models"},
    "image_z_image_turbo": {
        "ae.safetensors": "vae", "qwen_3_4b.safetensors": "text_encoders",
        "z_image_turbo_bf16.safetensors": "diffusion_models"},
    "image_qwen_image": {
        **QWEN_FILES, "qwen_image_fp8_e4m3fn.safetensors": "diffusion_models",
        "Qwen-Image-Lightning-8steps-V1.0.safetensors": "loras"},
    "image_qwen_Image_2512": {
        **QWEN_FILES, "qwen_image_2512_fp8_e4m3fn.safetensors": "diffusion_models",
        "Qwen-Image-2512-Lightning-4steps-V1.0-fp32.safetensors": "loras"},
    "image_qwen_image_2512_with_2steps_lora": {
        **QWEN_FILES, "qwen_image_2512_fp8_e4m3fn.safetensors": "diffusion_models",
        "Wuli-Qwen-Image-2512-Turbo-LoRA-2steps-V1.0-bf16.safetensors": "loras"},
    "template_qwen_image_illustration_lora": {
        **QWEN_FILES, "qwen_image_fp8_e4m3fn.safetensors": "diffusion_models",
        "illustration-1.0-qwen-image.safetensors": "loras"},
}
TEMPLATE_NAMES = list(EXPECTED_FILES)
EXPECTED_FILES_KINDS = {f: kind for files in EXPECTED_FILES.values() for f, kind in files.items()}

# Each model file a template names -> (make-checkpoint --arch, the file that arch writes under
# the same folder kind). Krea and Kontext are FLUX.1 [dev] networks (Kontext adds only the
# reference-latent tokens); the fp8 / fp16 / bf16 names hold fp32 tiny weights, as the loaders
# take any float dtype (the Qwen-Image diffusion model is written fp8, as its name says). Z-Image
# Base and Turbo share one network; so do Qwen-Image and Qwen-Image-2512. Z-Image decodes with
# the FLUX.1 VAE (`ae.safetensors`).
TINY_SOURCES = {
    "ae.safetensors": ("flux", "ae.safetensors"),
    "flux1-dev.safetensors": ("flux", "flux1-dev.safetensors"),
    "flux1-krea-dev_fp8_scaled.safetensors": ("flux", "flux1-dev.safetensors"),
    "flux1-dev-kontext_fp8_scaled.safetensors": ("flux", "flux1-dev.safetensors"),
    "flux1-schnell.safetensors": ("flux-schnell", "flux1-schnell.safetensors"),
    "flux1-schnell-fp8.safetensors": ("flux-schnell", "flux1-schnell-fp8.safetensors"),
    "clip_l.safetensors": ("flux", "clip_l.safetensors"),
    "t5xxl_fp16.safetensors": ("flux", "t5xxl_fp16.safetensors"),
    "t5xxl_fp8_e4m3fn_scaled.safetensors": ("flux", "t5xxl_fp16.safetensors"),
    "sd3.5_large_fp8_scaled.safetensors": ("sd35", "sd3.5_large_fp8_scaled.safetensors"),
    "sd_xl_turbo_1.0_fp16.safetensors": ("sdxl", "sd_xl_base_1.0.safetensors"),
    "z_image_bf16.safetensors": ("zimage", "z_image_turbo_bf16.safetensors"),
    "z_image_turbo_bf16.safetensors": ("zimage", "z_image_turbo_bf16.safetensors"),
    "qwen_3_4b.safetensors": ("zimage", "qwen_3_4b.safetensors"),
    "qwen_image_fp8_e4m3fn.safetensors": ("qwen-image", "qwen_image_fp8_e4m3fn.safetensors"),
    "qwen_image_2512_fp8_e4m3fn.safetensors": ("qwen-image", "qwen_image_fp8_e4m3fn.safetensors"),
    "qwen_image_vae.safetensors": ("qwen-image", "qwen_image_vae.safetensors"),
    "qwen_2.5_vl_7b_fp8_scaled.safetensors": ("qwen-image", "qwen_2.5_vl_7b.safetensors"),
}
# Written as ComfyUI's scaled-fp8 files (fp8 Linear weights + `scale_weight`, a `scaled_fp8`
# marker), not linked: the loader dequantises them.
SCALED_FP8 = {"qwen_2.5_vl_7b_fp8_scaled.safetensors"}


@dataclass(frozen=True)
class LoraLayout:
    """How a Qwen-Image LoRA file spells its keys: `<prefix><block layer>.<down>` / `.<up>`
    (+ `.alpha`), for the given Linear layers of every transformer block."""

    prefix: str  # before `transformer_blocks.N.`
    down: str
    up: str
    alpha: float | None  # None: no alpha keys (scale 1)
    dtype: torch.dtype
    layers: tuple[str, ...]


ATTENTION = ("attn.to_q", "attn.to_k", "attn.to_v", "attn.add_q_proj", "attn.add_k_proj",
             "attn.add_v_proj", "attn.to_out.0", "attn.to_add_out")
MLPS = ("img_mlp.net.0.proj", "img_mlp.net.2", "txt_mlp.net.0.proj", "txt_mlp.net.2")
# The templates' LoRA files, each in a layout such files have (model-families.md §4.6): the
# Lightning distillations (lightx2v) as bare diffusers paths with an alpha (rank 64, alpha 8
# there; the suffix dialect of the public files was not checked here, so one file of each:
# kohya `lora_down/up`, PEFT `lora_A/B`); an ai-toolkit file
# (`diffusion_model.` + PEFT suffixes, no alpha, every block Linear incl. the modulations);
# a diffusers-trainer file (`transformer.` + PEFT suffixes, attention only).
TINY_LORAS = {
    "Qwen-Image-Lightning-8steps-V1.0.safetensors": LoraLayout(
        "", "lora_down.weight", "lora_up.weight", 0.5, torch.bfloat16, ATTENTION + MLPS),
    "Qwen-Image-2512-Lightning-4steps-V1.0-fp32.safetensors": LoraLayout(
        "", "lora_A.weight", "lora_B.weight", 0.5, torch.float32, ATTENTION + MLPS),
    "Wuli-Qwen-Image-2512-Turbo-LoRA-2steps-V1.0-bf16.safetensors": LoraLayout(
        "diffusion_model.", "lora_A.weight", "lora_B.weight", None, torch.bfloat16,
        ATTENTION + MLPS + ("img_mod.1", "txt_mod.1")),
    "illustration-1.0-qwen-image.safetensors": LoraLayout(
        "transformer.", "lora_A.weight", "lora_B.weight", None, torch.float32, ATTENTION),
}
LORA_RANK = 4
INPUT_IMAGE = "flux_kontext_dev_basic_input_image.jpg"
INPUT_SIZE = (64, 48)  # (width, height): not square, so a swapped axis shows

# Per template: its SaveImage id, and the overrides that make it fast on tiny models (ids inside
# a subgraph instance are "<instance>:<inner id>"). Tiny SD3 has a 16x16 position table, so its
# latents must stay <= 32x32: 64 px gives 8x8.
SMALL = {"width": 64, "height": 64}
FAST_RUNS = {
    "flux_dev_full_text_to_image": ("9", {"194:48": SMALL, "194:50": {"steps": 2}}),
    "flux_schnell_full_text_to_image": ("9", {"27": SMALL, "31": {"steps": 2}}),
    "flux_schnell": ("9", {"27": SMALL, "31": {"steps": 2}}),
    "flux_dev_checkpoint_example": ("9", {"56:50": SMALL, "56:52": {"steps": 2}}),
    "flux1_krea_dev": ("9", {"200:196": SMALL, "200:197": {"steps": 2}}),
    "flux_kontext_dev_basic": ("136", {"192:31": {"steps": 2}}),
    "sd3.5_simple_example": ("9", {"53": SMALL, "3": {"steps": 2}}),
    "sdxlturbo_example": ("27", {"5": SMALL, "22": {"steps": 2}}),
    # Z-Image Base takes its size from a ResolutionSelector: 0.1 Mpx (its minimum) is 320x320.
    "image_z_image": ("95", {"94": {"megapixels": 0.1}, "76:69": {"steps": 2}}),
    "image_z_image_turbo": ("9", {"57:13": SMALL, "57:3": {"steps": 2}}),
    # Qwen-Image and 2512: the switch picks the steps from one of two PrimitiveInts.
    "image_qwen_image": ("60", {"76:58": SMALL, "76:84": {"value": 2}, "76:79": {"value": 2}}),
    "image_qwen_Image_2512": ("60", {"238:232": SMALL, "238:224": {"value": 2},
                                     "238:225": {"value": 2}}),
    "image_qwen_image_2512_with_2steps_lora": ("123", {"107": SMALL}),  # 2 steps as published
    "template_qwen_image_illustration_lora": ("60", {"76:58": SMALL, "76:3": {"steps": 2}}),
}
# The boolean switch of the Qwen-Image templates (published off): its PrimitiveBoolean, and per
# value the nodes only the other branch needs, which the lazy ComfySwitchNodes never run (on:
# the Lightning LoRA, 8 or 4 steps, cfg 1; off: the base model, more steps, cfg 4).
SWITCHES = {
    "image_qwen_image": ("76:86", {False: {"76:73", "76:79", "76:81"}, True: {"76:84", "76:85"}}),
    "image_qwen_Image_2512": ("238:229", {False: {"238:221", "238:225", "238:218"},
                                          True: {"238:224", "238:223"}}),
}
LORA_LOADERS = {"image_qwen_image": "76:73", "image_qwen_Image_2512": "238:221",
                "image_qwen_image_2512_with_2steps_lora": "114",
                "template_qwen_image_illustration_lora": "76:73"}
RUNS = [pytest.param(name, None, id=name) for name in FAST_RUNS] + [
    pytest.param(name, True, id=f"{name}-switch_on") for name in SWITCHES]
# Node types bypassed (mode 4, as the UI's Ctrl+B does; the Kontext template itself ships its
# second LoadImage bypassed). FluxKontextImageScale always scales to a ~1 Mpx Kontext size: on
# the tiny networks that run took ~13 s (mostly the VAE's mid-block attention over 16k
# positions); bypassed, the 64x48 input image goes straight to the VAE encoder.
BYPASS = {"flux_kontext_dev_basic": ("FluxKontextImageScale",)}
IMAGE_SIZES = {name: (64, 64) for name in TEMPLATE_NAMES} | {
    "flux_kontext_dev_basic": INPUT_SIZE, "image_z_image": (320, 320)}
# The file name each save node writes: SaveImage `<prefix>_<counter:05>_.png`,
# SaveImageAdvanced `<prefix>_<counter:05>.png`.
SAVE_NAME_TAILS = {"SaveImage": r"_\d{5}_\.png", "SaveImageAdvanced": r"_\d{5}\.png"}


def template_path(name: str) -> Path:
    """The UI JSON of a published template."""
    return TEMPLATES / f"{name}.json"


def template_files(name: str) -> dict[str, str]:
    """{file name: folder kind} for every file input of the template (subgraphs included),
    the kind being the input's `choices_from` ("checkpoints", "vae", "input", ...)."""
    files: dict[str, str] = {}
    for node in load_workflow(template_path(name), REGISTRY).values():
        known = REGISTRY.get(node.class_type)
        if known is None:
            continue
        for inp in known.schema.inputs:
            value = node.inputs.get(inp.name)
            if inp.choices_from is not None and isinstance(value, str) and link_of(value) is None:
                files[value] = inp.choices_from
    return files


def _link_or_copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:  # another file system
        shutil.copyfile(source, target)


def _write_scaled_fp8(source: Path, target: Path) -> None:
    """`source` as a scaled-fp8 file, as ComfyUI ships `*_fp8_scaled` text encoders."""
    from safetensors.torch import load_file

    from tests.models.test_scaled_fp8 import scale_fp8

    scaled, _ = scale_fp8(load_file(str(source)), "")
    target.parent.mkdir(parents=True, exist_ok=True)
    save_file(scaled, str(target))


def tiny_lora(layout: LoraLayout, network: dict[str, list[int]], seed: int) -> dict:
    """A rank-LORA_RANK LoRA in `layout` for every transformer block of the Qwen-Image network
    whose {key: shape} is `network`: small random down/up weights (so it changes the model)."""
    gen = torch.Generator().manual_seed(seed)
    blocks = sorted({int(k.split(".")[1]) for k in network if k.startswith("transformer_blocks.")})
    sd = {}
    for n in blocks:
        for layer in layout.layers:
            out_features, in_features = network[f"transformer_blocks.{n}.{layer}.weight"]
            path = f"{layout.prefix}transformer_blocks.{n}.{layer}"
            sd[f"{path}.{layout.down}"] = 0.1 * torch.randn(LORA_RANK, in_features, generator=gen)
            sd[f"{path}.{layout.up}"] = 0.1 * torch.randn(out_features, LORA_RANK, generator=gen)
            if layout.alpha is not None:
                sd[f"{path}.alpha"] = torch.tensor(layout.alpha)
    return {key: t.to(layout.dtype) for key, t in sd.items()}


def _shapes(path: Path) -> dict[str, list[int]]:
    with safe_open(str(path), "pt") as f:
        return {k: f.get_slice(k).get_shape() for k in f.keys()}


@pytest.fixture(scope="session")
def template_base(tmp_path_factory) -> Path:
    """A base directory holding a tiny file of the right family under every file name the
    templates use, LoRA files fitted to the tiny Qwen-Image network, and the Kontext
    template's input image."""
    from comfyless.models.checkpoint_writer import write_model_files

    made = tmp_path_factory.mktemp("template_files")
    for arch in sorted({arch for arch, _ in TINY_SOURCES.values()}):
        write_model_files(lambda kind, arch=arch: made / arch / kind, arch, "tiny")
    base = tmp_path_factory.mktemp("template_base")
    kinds = EXPECTED_FILES_KINDS
    for name, (arch, source) in TINY_SOURCES.items():
        write = _write_scaled_fp8 if name in SCALED_FP8 else _link_or_copy
        write(made / arch / kinds[name] / source, base / "models" / kinds[name] / name)
    qwen = _shapes(made / "qwen-image" / "diffusion_models" / "qwen_image_fp8_e4m3fn.safetensors")
    (base / "models" / "loras").mkdir()
    for seed, (name, layout) in enumerate(TINY_LORAS.items()):
        save_file(tiny_lora(layout, qwen, seed), str(base / "models" / "loras" / name))
    (base / "input").mkdir()
    Image.new("RGB", INPUT_SIZE, (200, 120, 40)).save(base / "input" / INPUT_IMAGE)
    return base


def _fast_source(name: str, folder: Path) -> Path:
    """The template as published, or a copy with the BYPASS node types set to mode 4."""
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


def _is_missing_file(err, checked) -> bool:
    if err.code != "value_not_in_list" or err.input_name is None:
        return False
    node = REGISTRY.get(checked.class_types.get(err.node_id, ""))
    return node is not None and node.schema.input(err.input_name).choices_from is not None


@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_template_validates_except_for_missing_files(name, tmp_path):
    checked = check_workflow(load_workflow(template_path(name), REGISTRY), REGISTRY,
                             BasePaths.resolve(tmp_path))
    others = [f"{e.code} {e.node_id} {e.input_name}: {e.message}" for e in checked.errors
              if not _is_missing_file(e, checked)]
    assert others == []  # every node type and value is known; only files are missing
    missing = {e.extra["received_value"] for e in checked.errors}
    assert missing == set(EXPECTED_FILES[name])  # every named file, and only those, is missing


@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_file_map_matches_the_templates_own_model_list(name):
    files = template_files(name)
    assert files == EXPECTED_FILES[name]
    # the frontend's download list (`properties.models`) names the same folders
    data = json.loads(template_path(name).read_text())
    nodes = list(data["nodes"])
    for subgraph in data.get("definitions", {}).get("subgraphs", []):
        nodes += subgraph["nodes"]
    declared = {m["name"]: m["directory"] for n in nodes
                for m in n.get("properties", {}).get("models", [])}
    assert declared == {f: kind for f, kind in files.items() if kind != "input"}


def test_every_model_file_has_a_tiny_source():
    names = {f for files in EXPECTED_FILES.values() for f, kind in files.items() if kind != "input"}
    assert set(TINY_SOURCES) | set(TINY_LORAS) == names
    assert {f for f in names if EXPECTED_FILES_KINDS[f] == "loras"} == set(TINY_LORAS)


@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_template_validates_with_its_files(name, template_base):
    checked = check_workflow(load_workflow(template_path(name), REGISTRY), REGISTRY,
                             BasePaths.resolve(template_base))
    assert [f"{e.code} {e.node_id} {e.input_name}: {e.message}" for e in checked.errors] == []


def _run(source: Path, sets: dict[str, dict], base: Path, capsys) -> dict:
    """`comfyless run --json` of `source` with `sets` as --set overrides, from scratch (as a
    new process: an earlier test's cached ComfySwitchNode of the same recipe would otherwise
    leave its lazy producers unrun and unlisted); the JSON report."""
    args = ["run", str(source), "--base-dir", str(base), "--json"]
    for node_id, values in sets.items():
        args += [a for key, value in values.items()
                 for a in ("--set", f"{node_id}.{key}={json.dumps(value)}")]
    DEFAULT_CACHE.clear()
    assert comfyless(args) == 0, capsys.readouterr()
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize(("name", "switch_on"), RUNS)
def test_template_runs_end_to_end_on_tiny_files(name, switch_on, template_base, tmp_path, capsys,
                                                caplog):
    source = _fast_source(name, tmp_path)
    save_id, overrides = FAST_RUNS[name]
    # A prefix of its own: SaveImage reruns (never a cache hit) and its file is easy to find.
    sets = {save_id: {"filename_prefix": f"templates/{name}"}, **overrides}
    if switch_on is not None:
        sets[SWITCHES[name][0]] = {"value": switch_on}
    caplog.set_level(logging.WARNING, logger="comfyless")
    report = _run(source, sets, template_base, capsys)

    planned = load_workflow(source, REGISTRY)  # bypassed nodes are not in it
    # a switch's other branch never runs (the switch value as published is off)
    skipped = SWITCHES[name][1][bool(switch_on)] if name in SWITCHES else set()
    assert skipped <= set(planned)
    assert set(report["executed"]) | set(report["cached"]) == set(planned) - skipped
    assert save_id in report["executed"]
    loader = LORA_LOADERS.get(name)
    if loader is not None and loader not in skipped:  # it ran, and every key found its weight
        assert loader in report["executed"]  # (else it warns "... LoRA key(s) not loaded: ...")
    assert [r.getMessage() for r in caplog.records if "not loaded" in r.getMessage()] == []
    [entry] = report["outputs"][save_id]["images"]
    assert entry["subfolder"] == "templates"
    assert re.fullmatch(re.escape(name) + SAVE_NAME_TAILS[planned[save_id].class_type],
                        entry["filename"])
    with Image.open(template_base / "output" / "templates" / entry["filename"]) as png:
        assert png.size == IMAGE_SIZES[name]
        prompt = json.loads(png.text["prompt"])  # the run's API workflow, overrides applied
        workflow = json.loads(png.text["workflow"])  # the UI file itself, as ComfyUI embeds it
    assert {i: n["class_type"] for i, n in prompt.items()} == {
        i: n.class_type for i, n in planned.items()}
    for node_id, values in sets.items():
        assert {k: prompt[node_id]["inputs"][k] for k in values} == values
    assert workflow == json.loads(source.read_text())


@pytest.mark.parametrize("name", list(LORA_LOADERS))
def test_each_lora_layout_changes_the_image(name, template_base, capsys):
    """The LoRA merges into the tiny network (stored fp8): the image at strength 1 is not the
    one at strength 0 (same seed; the switch, where there is one, on)."""
    save_id, overrides = FAST_RUNS[name]
    switch = {SWITCHES[name][0]: {"value": True}} if name in SWITCHES else {}
    images = []
    for strength in (0.0, 1.0):
        report = _run(template_path(name), {
            **overrides, **switch, save_id: {"filename_prefix": f"lora_strength/{name}"},
            LORA_LOADERS[name]: {"strength_model": strength}}, template_base, capsys)
        [entry] = report["outputs"][save_id]["images"]
        with Image.open(template_base / "output" / entry["subfolder"] / entry["filename"]) as png:
            images.append(torch.from_numpy(np.asarray(png, dtype=np.float32)))
    # Same seed and noise, so the difference is the LoRA's. Measured: ~2 levels (of 255) on
    # average without alpha, ~0.25 with the Lightning files' alpha/rank = 1/8.
    assert (images[1] - images[0]).abs().mean() > 0.1
