"""ComfyUI's published workflow templates (package `comfyui-workflow-templates-json`, pinned in
the `test` extra) load and validate: the only errors are the model / input files this base
directory lacks. `template_files(name)` maps each file a template names to its folder kind, so
tiny files can be written under those names to run a template end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from comfyless.engine.load import load_workflow
from comfyless.engine.paths import BasePaths
from comfyless.engine.validate import check_workflow
from comfyless.engine.workflow import link_of
from comfyless.nodes import REGISTRY

templates_pkg = pytest.importorskip("comfyui_workflow_templates_json")
TEMPLATES = Path(templates_pkg.__file__).parent / "templates"

# Node types each template uses that this branch may lack (other work adds them); the template
# is an expected failure only while one of them is unknown.
NEEDS = {
    "flux_dev_full_text_to_image": (),
    "flux_schnell_full_text_to_image": ("CLIPTextEncodeFlux",),
    "flux_schnell": (),
    "flux_dev_checkpoint_example": (),
    "flux1_krea_dev": (),
    "flux_kontext_dev_basic": ("FluxGuidance",),
    "sd3.5_simple_example": (),
    "sdxlturbo_example": (),
}

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


def _missing_types(name: str) -> list[str]:
    return [n for n in NEEDS[name] if n not in REGISTRY]


def _param(name: str):
    missing = _missing_types(name)
    marks = [pytest.mark.xfail(strict=False, reason=f"needs {', '.join(missing)}")]
    return pytest.param(name, marks=marks if missing else [], id=name)


def _is_missing_file(err, checked) -> bool:
    if err.code != "value_not_in_list" or err.input_name is None:
        return False
    node = REGISTRY.get(checked.class_types.get(err.node_id, ""))
    return node is not None and node.schema.input(err.input_name).choices_from is not None


@pytest.mark.parametrize("name", [_param(n) for n in NEEDS])
def test_template_validates_except_for_missing_files(name, tmp_path):
    checked = check_workflow(load_workflow(template_path(name), REGISTRY), REGISTRY,
                             BasePaths.resolve(tmp_path))
    others = [f"{e.code} {e.node_id} {e.input_name}: {e.message}" for e in checked.errors
              if not _is_missing_file(e, checked)]
    assert others == []
    missing = {e.extra["received_value"] for e in checked.errors}
    assert missing == set(EXPECTED_FILES[name])  # every named file, and only those, is missing


@pytest.mark.parametrize("name", list(NEEDS))
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


def test_missing_node_list_is_exact(tmp_path):
    """Every node type the templates use is known here except the ones NEEDS lists."""
    for name, needs in NEEDS.items():
        checked = check_workflow(load_workflow(template_path(name), REGISTRY), REGISTRY,
                                 BasePaths.resolve(tmp_path))
        unknown = {e.extra["class_type"] for e in checked.errors if e.code == "missing_node_type"}
        assert unknown == set(_missing_types(name)), name
        assert unknown <= set(needs), name
