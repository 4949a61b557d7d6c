"""models/families: the registry, the SD records, detection through the records, a new family
as one record, and no family-name branches outside models/families/."""

from __future__ import annotations

import ast
import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from comfyless.models import families
from comfyless.models.families import Family, detect_family, family, resolve
from comfyless.models.families.base import DetectionError
from comfyless.models.tensor_files import open_tensor_file

PACKAGE = Path(__file__).resolve().parents[2] / "comfyless"
SD_NAMES = ("sd15", "sd2", "sdxl")


def test_registry_lists_the_sd_variants():
    assert families.names()[:3] == SD_NAMES
    assert [f.name for f in families.FAMILIES][:3] == list(SD_NAMES)
    assert all(family(n).folder == "sd" for n in SD_NAMES)
    assert family("sd1.5") is family("sd15") and family("sd21") is family("sd2")
    with pytest.raises(ValueError, match="no-such-family"):
        family("no-such-family")


def test_declarations_import_without_torch():
    code = ("import sys, comfyless.models.families as f; f.family('sdxl'); "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=PACKAGE.parent)


@pytest.mark.parametrize("name", SD_NAMES)
def test_detection_of_each_tiny_checkpoint(name, tiny_checkpoints):
    with open_tensor_file(tiny_checkpoints[name]) as tensors:
        detected = detect_family(tensors.shapes, read=tensors.__getitem__)
    assert detected.record is family(name)
    assert detected.family == name and detected.unet_prefix == "model.diffusion_model."
    assert detected.prediction == ("v" if name == "sd2" else "eps")  # the sd2 fixture is v


@pytest.mark.parametrize("name", SD_NAMES)
def test_record_declares_every_field(name):
    record = family(name)
    optional = {"text_encoder_fallbacks", "extra_conds", "aliases", "modelspec_architecture"}
    for f in dataclasses.fields(Family):
        value = getattr(record, f.name)
        if f.name not in optional:
            assert value not in (None, "", ()), f"{name}: {f.name} is not declared"
    for ref in (record.network, record.sampling, record.random_checkpoint,
                record.test_unet_config, record.extra_conds):
        if ref is not None:
            assert callable(resolve(ref)), ref
    assert record.latent_format.channels == 4
    assert {s.name for s in record.text_encoders} == set(record.text_encoder_prefixes)
    assert record.default_prediction in ("eps", "v")
    assert all(v % 64 == 0 for v in record.default_size)
    assert callable(record.lora_unet_key_map) and callable(record.lora_clip_key_map)
    sampling = record.make_sampling()
    assert sampling.prediction == record.default_prediction
    assert (record.extra_conds is not None) == (name == "sdxl")  # the adm vector


# -- a new family = one record -----------------------------------------------------------------

class FakeNet(nn.Module):
    """The network of the fake family: one bias-free Linear named `trigger`."""

    def __init__(self, config: dict):
        super().__init__()
        self.trigger = nn.Linear(config["in"], config["out"], bias=False)


def _fake_config(shapes, prefix):
    shape = shapes.get(f"{prefix}trigger.weight")
    return None if shape is None else {"in": int(shape[1]), "out": int(shape[0])}


def _fake_record() -> Family:
    sd15 = family("sd15")
    return Family(
        name="fake", folder="fake", description="a one-layer test family",
        trigger_key="trigger.weight", detect_config=_fake_config,
        matches=lambda cfg: cfg["in"] == 4, prediction=lambda *a: ("eps", False),
        describe_config=lambda cfg: f"fake net {cfg}",
        network=f"{__name__}:FakeNet", latent_format=sd15.latent_format,
        sampling="comfyless.models.sampling:ModelSampling", default_prediction="eps",
        default_size=(256, 256), unet_prefix="fake.", vae_prefix="fake_vae.",
        text_prefixes=(), text_encoders=(), text_encoder_prefixes={},
    )


@pytest.fixture
def fake_family(monkeypatch):
    monkeypatch.setattr(families, "FAMILIES", list(families.FAMILIES))
    return families.register(_fake_record())


def test_a_registered_family_is_detected_by_its_own_keys(fake_family, tmp_path):
    from safetensors.torch import save_file

    from comfyless.models.checkpoint import load_checkpoint
    from comfyless.models.detect import detect

    shapes = {"fake.trigger.weight": (3, 4), "fake.other": (2,)}
    for detector in (detect_family, detect):
        detected = detector(shapes, prefix="fake.")
        assert detected.record is fake_family and detected.config == {"in": 4, "out": 3}
    with pytest.raises(DetectionError, match="fake net"):
        detect_family({"fake.trigger.weight": (3, 5)}, prefix="fake.")
    # and the loaders take it through the record alone
    path = tmp_path / "fake.safetensors"
    save_file({"model.trigger.weight": torch.ones(3, 4)}, str(path))
    model, clip, vae = load_checkpoint(path)
    assert model.family == "fake" and model.family_record is fake_family
    assert isinstance(model.diffusion_model, FakeNet) and clip is None and vae is None
    assert torch.equal(model.diffusion_model.trigger.weight, torch.ones(3, 4))
    assert model.extra_conds({}, 64, 64) == {}


def test_the_registry_is_restored_after_the_fake_family():
    assert "fake" not in families.names()


# -- no family-name branches outside models/families -------------------------------------------

def _family_strings() -> set[str]:
    return {n for f in families.FAMILIES for n in (f.name, *f.aliases)}


def _branches(tree: ast.AST, names: set[str]) -> list[tuple[int, str]]:
    """(line, what) for family-name strings compared, used as dict keys or subscripts."""
    def consts(node):
        return [n.value for n in ast.walk(node)
                if isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value in names]

    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            hits = consts(node)
        elif isinstance(node, ast.Dict):
            hits = [v for k in node.keys if k is not None for v in consts(k)]
        elif isinstance(node, ast.Subscript):
            hits = consts(node.slice)
        elif isinstance(node, ast.match_case):
            hits = consts(node.pattern)
        else:
            continue
        found += [(node.lineno if hasattr(node, "lineno") else 0, h) for h in hits]
    return found


def test_the_branch_finder_finds_branches():
    code = ('if family == "sdxl": pass\nx = {"sd15": 1}\ny = t["sd2"]\n'
            'z = f in ("sd1.5", "other")\nok = load("sd15")\n')
    assert sorted(h for _, h in _branches(ast.parse(code), _family_strings())) == [
        "sd1.5", "sd15", "sd2", "sdxl"]


# Strings that equal a family name but name something else: FlowSampling's kind "flux" is
# ComfyUI's ModelSamplingFlux schedule (Qwen-Image uses it too), not the FLUX.1 family.
BRANCHES_ALLOWED = {("models/sampling.py", "flux")}


def test_no_module_outside_families_branches_on_family_names():
    names = _family_strings()
    bad = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel.startswith("models/families/"):
            continue
        bad += [f"{rel}:{line}: {name!r}" for line, name in
                _branches(ast.parse(path.read_text()), names)
                if (rel, name) not in BRANCHES_ALLOWED]
    assert not bad, "ask the family record instead:\n" + "\n".join(bad)


# Family names as plain values (defaults, ComfyUI's CLIP `type` choices): allowed, listed.
NAME_VALUES_ALLOWED = {
    "nodes/loaders.py",  # ComfyUI's DualCLIPLoader types ("sdxl", ...), not our records
    "nodes/impl/loaders.py",  # DualCLIPLoader's default type
    "demo.py",  # the demo writes an sd15 checkpoint
    "models/checkpoint_writer.py",  # write_checkpoint's default arch
    "commands/make_checkpoint.py",  # --arch default
    "models/text_sets.py",  # ComfyUI CLIP types "flux" / "sd3" (the text-encoder sets)
    "models/sampling.py",  # FlowSampling kind "flux" (ModelSamplingFlux), see BRANCHES_ALLOWED
}


def test_family_names_appear_only_in_known_places():
    names = _family_strings()
    where = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel.startswith("models/families/"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                    and node.value in names:
                where.add(rel)
    assert where <= NAME_VALUES_ALLOWED, sorted(where - NAME_VALUES_ALLOWED)
