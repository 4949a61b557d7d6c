"""Type stubs for comfyless.nodes.api: the shipped file is current, a type checker catches a
LATENT passed as `model` (and nothing else in a correct script), custom nodes get stubs."""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from comfyless import cli
from comfyless.api import Workflow, positional_inputs
from comfyless.engine.plugins import registry_with_plugins
from comfyless.nodes import REGISTRY
from comfyless.nodes import api as nodes
from comfyless.nodes.stubgen import SHIPPED, generate
from comfyless.typesys.errors import TypeMismatch

ROOT = Path(__file__).resolve().parents[1]

SAMPLE = '''
from comfyless.api import Workflow
from comfyless.nodes.api import (LATENT, CheckpointLoaderSimple, CLIPTextEncode,
                                 EmptyLatentImage, KSampler, SamplerName, SaveImage, VAEDecode)

with Workflow() as wf:
    model, clip, vae = CheckpointLoaderSimple("sd15.safetensors")
    positive = CLIPTextEncode(text="a cat", clip=clip)
    negative = CLIPTextEncode(text="blurry", clip=clip)
    empty: LATENT = EmptyLatentImage(width=512, height=512, batch_size=1)
    latent = KSampler(model={model}, seed=1, steps=20, cfg=7.0, sampler_name=SamplerName.euler,
                      scheduler="karras", positive=positive, negative=negative,
                      latent_image=empty, denoise=1.0)
    SaveImage(images=VAEDecode(samples=latent, vae=vae), filename_prefix="cat", _id="9")
'''

CUSTOM_PACK = '''
class StubbyScale:
    """Scales a number (a custom node for the stub test)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("FLOAT", {"default": 1.5, "min": 0.0, "max": 10.0}),
                             "mode": (["up", "down"],),
                             "latent": ("LATENT", {"tooltip": "the latent to scale"})}}

    RETURN_TYPES = ("LATENT", "FLOAT")
    RETURN_NAMES = ("scaled", "factor")
    FUNCTION = "scale"

    def scale(self, value, mode, latent):
        return (latent, value)


NODE_CLASS_MAPPINGS = {"StubbyScale": StubbyScale}
'''


def test_shipped_stubs_are_current():
    assert SHIPPED.read_text(encoding="utf-8") == generate(REGISTRY), (
        "comfyless/nodes/api.pyi is stale: run `python -m comfyless.nodes.stubgen`")
    assert (ROOT / "comfyless" / "py.typed").exists()


def _mypy(tmp_path: Path, source: str) -> tuple[int, list[str]]:
    script = tmp_path / "sample.py"
    script.write_text(source, encoding="utf-8")
    cmd = [sys.executable, "-m", "mypy", "--follow-imports=silent", "--no-incremental",
           "--cache-dir", str(tmp_path / "cache"), "--no-error-summary",
           "--hide-error-context", str(script)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    return done.returncode, [line for line in done.stdout.splitlines() if ": error:" in line]


@pytest.mark.skipif(importlib.util.find_spec("mypy") is None,
                    reason="mypy (the `test` extra) is not installed")
def test_type_checker_flags_exactly_the_latent_passed_as_model(tmp_path):
    code, errors = _mypy(tmp_path, SAMPLE.format(model="empty"))
    assert code == 1
    assert len(errors) == 1, errors
    assert errors[0].split(":", 1)[1] == (
        '11: error: Argument "model" to "KSampler" has incompatible type "LATENT"; '
        'expected "MODEL"  [arg-type]')
    # the same mistake is refused at run time, at the call
    with pytest.raises(TypeMismatch, match="expected MODEL, got LATENT"):
        exec(compile(SAMPLE.format(model="empty"), "sample", "exec"), {})
    # and the correct script passes the checker and builds
    code, errors = _mypy(tmp_path, SAMPLE.format(model="model"))
    assert (code, errors) == (0, [])
    scope: dict = {}
    exec(compile(SAMPLE.format(model="model"), "sample", "exec"), scope)
    assert isinstance(scope["wf"], Workflow) and len(scope["wf"].nodes) == 7


def _functions(text: str) -> dict[str, ast.FunctionDef]:
    tree = ast.parse(text)
    return {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}


def test_stub_signatures_follow_the_runtime():
    functions = _functions(generate(REGISTRY))
    for class_type in REGISTRY:
        schema = REGISTRY[class_type].schema
        stub = functions[class_type]
        runtime = nodes.node_signature(schema).parameters
        assert [a.arg for a in stub.args.args] == positional_inputs(schema), class_type
        named = [a.arg for a in stub.args.args + stub.args.kwonlyargs]
        assert named == list(runtime), class_type
    enums = {n.name for n in ast.parse(generate(REGISTRY)).body if isinstance(n, ast.ClassDef)}
    assert {"SamplerName", "Scheduler", "Optimizer", "MODEL", "LATENT",
            "CheckpointLoaderSimpleOutputs"} <= enums
    stub = ast.get_source_segment(generate(REGISTRY), functions["KSampler"])
    assert "model: MODEL" in stub and "latent_image: LATENT" in stub
    assert "steps: int | INT = 20" in stub and "-> LATENT" in stub
    assert "sampler_name: _t.Literal['euler'," in stub and "| SamplerName | COMBO = 'euler'" in stub


def _pack(tmp_path: Path) -> Path:
    pack = tmp_path / "custom_nodes" / "stubby"
    pack.mkdir(parents=True)
    (pack / "__init__.py").write_text(textwrap.dedent(CUSTOM_PACK), encoding="utf-8")
    return tmp_path / "custom_nodes"


def test_custom_node_stubs_include_the_pack(tmp_path, capsys):
    folder = _pack(tmp_path)
    out = tmp_path / "typings"
    code = cli.main(["stubs", "--out", str(out), "--custom-nodes", str(folder),
                     "--base-dir", str(tmp_path / "base")])
    assert code == 0 and "api.pyi" in capsys.readouterr().out
    text = (out / "comfyless" / "nodes" / "api.pyi").read_text(encoding="utf-8")
    stub = ast.get_source_segment(text, _functions(text)["StubbyScale"])
    assert "value: float | FLOAT = 1.5" in stub
    # `mode` has other choices on built-in nodes: the pack's enum is named after its node
    assert "mode: _t.Literal['up', 'down'] | StubbyScaleMode | COMBO" in stub
    assert generate(REGISTRY).split("class Mode(ChoiceEnum):")[1].split("\n\n")[0] \
        == text.split("class Mode(ChoiceEnum):")[1].split("\n\n")[0]  # not renamed
    assert "latent: LATENT" in stub and "-> StubbyScaleOutputs" in stub
    assert "class StubbyScaleOutputs(_t.NamedTuple):" in text
    assert "def KSampler(" in text  # the built-ins too
    assert (out / "comfyless" / "__init__.pyi").exists()
    # at run time the same node function, through the registry holding the pack
    loaded = registry_with_plugins([folder], base_dir=tmp_path / "base", entry_points=False)
    with Workflow(loaded.registry):
        scaled, factor = nodes.StubbyScale(2.0, mode="down", latent=nodes.EmptyLatentImage())
    assert isinstance(scaled, nodes.LATENT) and factor.io_type == "FLOAT"
