"""ComfyUI's published workflow templates (package `comfyui-workflow-templates-json`, pinned in
the `test` extra) load, validate and run end to end on tiny files.

Without their files the only validation errors are the model / input files the base directory
lacks; `template_files(name)` maps each file a template names to its folder kind. The
`template_base` fixture writes tiny random-weight files of the right family (the
`make-checkpoint` outputs) under every one of those names, and each template then runs through
`comfyless run` with overrides that make it fast (64 px latents, 2 steps).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from PIL import Image

from comfyless.cli import main as comfyless
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
}
TEMPLATE_NAMES = list(EXPECTED_FILES)

# Each model file a template names -> (make-checkpoint --arch, the file that arch writes under
# the same folder kind). Krea and Kontext are FLUX.1 [dev] networks (Kontext adds only the
# reference-latent tokens); the fp8 / fp16 names hold fp32 tiny weights, as the loaders take
# any float dtype.
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
}
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
}
# Node types bypassed (mode 4, as the UI's Ctrl+B does; the Kontext template itself ships its
# second LoadImage bypassed). FluxKontextImageScale always scales to a ~1 Mpx Kontext size: on
# the tiny networks that run took ~13 s (mostly the VAE's mid-block attention over 16k
# positions); bypassed, the 64x48 input image goes straight to the VAE encoder.
BYPASS = {"flux_kontext_dev_basic": ("FluxKontextImageScale",)}
IMAGE_SIZES = {name: (64, 64) for name in TEMPLATE_NAMES} | {"flux_kontext_dev_basic": INPUT_SIZE}


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


@pytest.fixture(scope="session")
def template_base(tmp_path_factory) -> Path:
    """A base directory holding a tiny file of the right family under every file name the
    templates use, and the Kontext template's input image."""
    from comfyless.models.checkpoint_writer import write_model_files

    made = tmp_path_factory.mktemp("template_files")
    for arch in sorted({arch for arch, _ in TINY_SOURCES.values()}):
        write_model_files(lambda kind, arch=arch: made / arch / kind, arch, "tiny")
    base = tmp_path_factory.mktemp("template_base")
    kinds = {f: kind for files in EXPECTED_FILES.values() for f, kind in files.items()}
    for name, (arch, source) in TINY_SOURCES.items():
        _link_or_copy(made / arch / kinds[name] / source, base / "models" / kinds[name] / name)
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
    assert set(TINY_SOURCES) == names


@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_template_validates_with_its_files(name, template_base):
    checked = check_workflow(load_workflow(template_path(name), REGISTRY), REGISTRY,
                             BasePaths.resolve(template_base))
    assert [f"{e.code} {e.node_id} {e.input_name}: {e.message}" for e in checked.errors] == []


@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_template_runs_end_to_end_on_tiny_files(name, template_base, tmp_path, capsys):
    source = _fast_source(name, tmp_path)
    save_id, overrides = FAST_RUNS[name]
    # A prefix of its own: SaveImage reruns (never a cache hit) and its file is easy to find.
    sets = {save_id: {"filename_prefix": f"templates/{name}"}, **overrides}
    args = ["run", str(source), "--base-dir", str(template_base), "--json"]
    for node_id, values in sets.items():
        args += [a for key, value in values.items()
                 for a in ("--set", f"{node_id}.{key}={json.dumps(value)}")]
    assert comfyless(args) == 0, capsys.readouterr()
    report = json.loads(capsys.readouterr().out)

    planned = load_workflow(source, REGISTRY)  # bypassed nodes are not in it
    assert set(report["executed"]) | set(report["cached"]) == set(planned)
    assert save_id in report["executed"]
    [entry] = report["outputs"][save_id]["images"]
    assert entry["subfolder"] == "templates" and entry["filename"].startswith(name)
    with Image.open(template_base / "output" / "templates" / entry["filename"]) as png:
        assert png.size == IMAGE_SIZES[name]
        prompt = json.loads(png.text["prompt"])  # the run's API workflow, overrides applied
        workflow = json.loads(png.text["workflow"])  # the UI file itself, as ComfyUI embeds it
    assert {i: n["class_type"] for i, n in prompt.items()} == {
        i: n.class_type for i, n in planned.items()}
    for node_id, values in sets.items():
        assert {k: prompt[node_id]["inputs"][k] for k in values} == values
    assert workflow == json.loads(source.read_text())
