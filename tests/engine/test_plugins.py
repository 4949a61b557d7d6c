"""Nodes from outside: ComfyUI-style custom_nodes packs and `comfyless.nodes` entry points.

The packs below are written for the test in ComfyUI's classic style; they are loaded from a
tmp custom_nodes folder and run through API workflows, via the engine and via the CLI.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from comfyless import cli
from comfyless.engine.cache import OutputCache
from comfyless.engine.context import RunContext
from comfyless.engine.execute import run_workflow
from comfyless.engine.load import load_workflow
from comfyless.engine.plugins import BUILTIN, registry_with_plugins
from comfyless.engine.validate import validate
from comfyless.nodes import REGISTRY

ROOT = Path(__file__).resolve().parents[2]

MATH_PACK = '''
class ClassicAdd:
    """a + b (a math node)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"a": ("INT", {"default": 1, "min": 0, "max": 100, "step": 1}),
                             "b": ("FLOAT", {"default": 0.5, "min": -10.0, "max": 10.0,
                                             "step": 0.25, "round": False})},
                "optional": {"scale": ("FLOAT", {"default": 1.0})}}

    RETURN_TYPES = ("FLOAT", "INT")
    RETURN_NAMES = ("sum", "a")
    FUNCTION = "add"
    CATEGORY = "test/math"

    def add(self, a, b, scale=1.0):
        print("adding")  # packs print; it must not end up in --json stdout
        return ((a + b) * scale, a)


class ClassicShow:
    """An output node: shows any value, with the hidden node id."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("*", {})}, "hidden": {"uid": "UNIQUE_ID"}}

    RETURN_TYPES = ()
    FUNCTION = "show"
    OUTPUT_NODE = True

    def show(self, value, uid):
        return {"ui": {"text": [f"{uid}={value}"]}, "result": ()}


class ClassicSplit:
    """'a,b,c' -> a list output (OUTPUT_IS_LIST)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"text": ("STRING", {"default": "a,b"})}}

    RETURN_TYPES = ("STRING",)
    OUTPUT_IS_LIST = (True,)
    FUNCTION = "split"

    def split(self, text):
        return (text.split(","),)


class ClassicJoin:
    """All items of a list input joined (INPUT_IS_LIST)."""

    INPUT_IS_LIST = True

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"parts": ("STRING", {"forceInput": True}),
                             "sep": ("STRING", {"default": "+"})}}

    RETURN_TYPES = ("STRING",)
    FUNCTION = "join"

    def join(self, parts, sep):
        return (sep[0].join(p.upper() for p in parts),)


class ClassicPick:
    """Lazy inputs: only the branch chosen is computed (check_lazy_status)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"use_second": ("BOOLEAN", {"default": False}),
                             "first": ("*", {"lazy": True}),
                             "second": ("*", {"lazy": True})}}

    RETURN_TYPES = ("*",)
    FUNCTION = "pick"

    def check_lazy_status(self, use_second, first=None, second=None):
        return ["second"] if use_second else ["first"]

    def pick(self, use_second, first=None, second=None):
        return (second if use_second else first,)


class ShadowsBuiltin:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {}}

    RETURN_TYPES = ()
    FUNCTION = "f"

    def f(self):
        return ()


NODE_CLASS_MAPPINGS = {"ClassicAdd": ClassicAdd, "ClassicShow": ClassicShow,
                       "ClassicSplit": ClassicSplit, "ClassicJoin": ClassicJoin,
                       "ClassicPick": ClassicPick,
                       "PreviewAny": ShadowsBuiltin}
NODE_DISPLAY_NAME_MAPPINGS = {"ClassicAdd": "Add (classic)"}
'''

# A package pack (folder with __init__.py) with a relative import: a string node.
STRING_PACK_INIT = "from .string_nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS\n"
STRING_PACK_NODES = '''
class ClassicCase:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"text": ("STRING", {"multiline": True, "default": ""}),
                             "mode": (["upper", "lower"], {"default": "upper"}),
                             "reverse": ("BOOLEAN", {"default": False})}}

    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("text",)
    FUNCTION = "convert"
    CATEGORY = "test/string"

    def convert(self, text, mode, reverse):
        text = text.upper() if mode == "upper" else text.lower()
        return (text[::-1] if reverse else text,)


NODE_CLASS_MAPPINGS = {"ClassicCase": ClassicCase}
NODE_DISPLAY_NAME_MAPPINGS = {"ClassicCase": "Change case"}
'''

# An image filter on torch: IMAGE in, IMAGE out.
IMAGE_PACK = '''
import torch


class ClassicInvert:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",),
                             "amount": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0,
                                                  "step": 0.01})}}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "invert"
    CATEGORY = "test/image"

    def invert(self, image, amount):
        assert isinstance(image, torch.Tensor) and image.ndim == 4
        return (torch.lerp(image, 1.0 - image, amount),)


NODE_CLASS_MAPPINGS = {"ClassicInvert": ClassicInvert}
'''

NEEDS_COMFYUI = '''
import folder_paths

NODE_CLASS_MAPPINGS = {"NeverLoaded": object}
'''

NEEDS_COMFY_INTERNALS = '''
from comfy.model_management import get_torch_device

NODE_CLASS_MAPPINGS = {}
'''

RAISES = '''
raise RuntimeError("this pack is broken")
'''

# VALIDATE_INPUTS and IS_CHANGED: `n` must be even; the cache follows a file's content.
CHECKED_PACK = '''
from pathlib import Path

RUNS = []


class ClassicChecked:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"n": ("INT", {"default": 2, "min": 0, "max": 10}),
                             "stamp_file": ("STRING", {"default": ""})}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    @classmethod
    def VALIDATE_INPUTS(cls, n):
        if n % 2:
            return f"n must be even, got {n}"
        return True

    @classmethod
    def IS_CHANGED(cls, stamp_file, **kwargs):
        if stamp_file == "always":
            return float("NaN")
        return Path(stamp_file).read_text()

    def run(self, n, stamp_file):
        RUNS.append(n)
        return (n * 10,)


NODE_CLASS_MAPPINGS = {"ClassicChecked": ClassicChecked}
'''


def _write_packs(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "math_pack.py").write_text(textwrap.dedent(MATH_PACK))
    strings = folder / "string_pack"
    strings.mkdir()
    (strings / "__init__.py").write_text(STRING_PACK_INIT)
    (strings / "string_nodes.py").write_text(STRING_PACK_NODES)
    (folder / "image_pack.py").write_text(IMAGE_PACK)
    (folder / "needs_comfyui.py").write_text(NEEDS_COMFYUI)
    (folder / "needs_internals.py").write_text(NEEDS_COMFY_INTERNALS)
    (folder / "raises.py").write_text(RAISES)
    (folder / "checked_pack.py").write_text(CHECKED_PACK)
    (folder / "old_pack.py.disabled").write_text(RAISES)
    return folder


@pytest.fixture
def packs(tmp_path) -> Path:
    return _write_packs(tmp_path / "my_nodes")


@pytest.fixture
def loaded(packs, tmp_path):
    return registry_with_plugins([packs], base_dir=tmp_path / "base", entry_points=False)


def _run(loaded, api: dict, base: Path, cache: OutputCache | None = None):
    workflow = load_workflow(api, loaded.registry)
    return run_workflow(workflow, RunContext.create(base), loaded.registry,
                        cache=cache if cache is not None else OutputCache())


def _problems(loaded) -> dict[str, str]:
    return {p.source: p.message for p in loaded.problems}


# -- loading and reporting ------------------------------------------------------------------
def test_packs_load_with_origins_and_problems_reported(loaded):
    origins = loaded.origins
    assert origins["ClassicAdd"] == "custom_nodes/math_pack.py"
    assert origins["ClassicCase"] == "custom_nodes/string_pack"
    assert origins["ClassicInvert"] == "custom_nodes/image_pack.py"
    assert loaded.origin("KSampler") == BUILTIN
    problems = _problems(loaded)
    assert "'folder_paths'" in problems["custom_nodes/needs_comfyui.py"]
    assert [p.wanted_module for p in loaded.problems
            if p.source == "custom_nodes/needs_comfyui.py"] == ["folder_paths"]
    assert "'comfy'" in problems["custom_nodes/needs_internals.py"]
    assert "RuntimeError: this pack is broken" in problems["custom_nodes/raises.py"]
    assert "NeverLoaded" not in loaded.registry
    assert not any("old_pack" in source for source in problems)  # *.disabled is skipped
    # a class_type clash with a built-in: reported, the built-in kept
    assert "'PreviewAny' is already defined by built-in" in problems["custom_nodes/math_pack.py"]
    assert loaded.registry["PreviewAny"] is REGISTRY["PreviewAny"]
    assert "ClassicAdd" not in REGISTRY  # the default registry is unchanged


def test_classic_specs_map_to_our_schema(loaded):
    add = loaded.registry["ClassicAdd"].schema
    a, b, scale = add.inputs
    assert (a.type.name, a.default, a.min, a.max, a.step) == ("INT", 1, 0, 100, 1)
    assert (b.type.name, b.round, scale.optional) == ("FLOAT", None, True)
    assert [(o.name, o.type.name) for o in add.outputs] == [("sum", "FLOAT"), ("a", "INT")]
    assert (add.display_name, add.category, add.output_node) == ("Add (classic)", "test/math",
                                                                 False)
    case = loaded.registry["ClassicCase"].schema
    assert case.input("mode").type.name == "COMBO"
    assert case.input("mode").choices == ("upper", "lower")
    assert case.input("text").multiline and case.input("reverse").type.name == "BOOLEAN"
    show = loaded.registry["ClassicShow"].schema
    assert show.output_node and show.hidden == ("uid",) and show.input("value").type.name == "*"
    assert loaded.registry["ClassicJoin"].schema.is_input_list
    assert loaded.registry["ClassicSplit"].schema.outputs[0].is_list
    # VALIDATE_INPUTS names n: ComfyUI then skips the built-in min/max check of n
    assert loaded.registry["ClassicChecked"].schema.input("n").max is None


def test_nothing_loaded_without_folder_or_flag(tmp_path):
    plain = registry_with_plugins(base_dir=tmp_path / "empty", entry_points=False)
    assert len(plain.registry) == len(REGISTRY) and not plain.problems
    base = tmp_path / "base"
    _write_packs(base / "custom_nodes")  # the base dir's own custom_nodes/ is loaded
    found = registry_with_plugins(base_dir=base, entry_points=False)
    assert found.origin("ClassicAdd") == "custom_nodes/math_pack.py"


def test_missing_custom_nodes_folder_is_an_error(tmp_path):
    with pytest.raises(OSError, match="no such folder"):
        registry_with_plugins([tmp_path / "nope"], base_dir=tmp_path, entry_points=False)


# -- running through the engine -------------------------------------------------------------
def test_math_string_and_list_nodes_run(loaded, tmp_path):
    api = {
        "1": {"class_type": "ClassicAdd", "inputs": {"a": 3, "b": 0.25, "scale": 2.0}},
        "2": {"class_type": "ClassicShow", "inputs": {"value": ["1", 0]}},
        "3": {"class_type": "ClassicCase", "inputs": {"text": "Hello", "mode": "upper",
                                                      "reverse": True}},
        "4": {"class_type": "PreviewAny", "inputs": {"source": ["3", 0]}},
        "5": {"class_type": "ClassicSplit", "inputs": {"text": "x,y,z"}},
        "6": {"class_type": "ClassicJoin", "inputs": {"parts": ["5", 0], "sep": "-"}},
        "7": {"class_type": "PreviewAny", "inputs": {"source": ["6", 0]}},
    }
    result = _run(loaded, api, tmp_path / "base")
    assert result.ui["2"] == {"text": ["2=6.5"]}
    assert result.ui["4"]["text"] == ["OLLEH"]
    assert result.outputs["5"] == (["x", "y", "z"],)
    assert result.ui["7"]["text"] == ["X-Y-Z"]


def test_lazy_inputs_compute_only_what_check_lazy_status_asks_for(loaded, tmp_path):
    api = {
        "1": {"class_type": "ClassicAdd", "inputs": {"a": 1, "b": 0.0}},
        "2": {"class_type": "ClassicCase", "inputs": {"text": "b", "mode": "upper",
                                                      "reverse": False}},
        "3": {"class_type": "ClassicPick", "inputs": {"use_second": True, "first": ["1", 0],
                                                      "second": ["2", 0]}},
        "4": {"class_type": "ClassicShow", "inputs": {"value": ["3", 0]}},
    }
    result = _run(loaded, api, tmp_path / "base")
    assert result.ui["4"] == {"text": ["4=B"]}
    assert "1" not in result.executed and "2" in result.executed


def test_custom_nodes_are_type_checked_like_ours(loaded, tmp_path):
    api = {
        "1": {"class_type": "ClassicAdd", "inputs": {"a": 300, "b": 0.0}},
        "2": {"class_type": "ClassicCase", "inputs": {"text": ["1", 0], "mode": "title",
                                                      "reverse": False}},
        "3": {"class_type": "ClassicShow", "inputs": {"value": ["2", 0]}},
    }
    errors = validate(load_workflow(api, loaded.registry), loaded.registry,
                      RunContext.create(tmp_path / "base").paths)
    kinds = {(e.node_id, e.input_name): e.code for e in errors}
    assert kinds[("1", "a")] == "value_bigger_than_max"
    assert kinds[("2", "text")] == "return_type_mismatch"  # FLOAT into STRING
    assert kinds[("2", "mode")] == "value_not_in_list"


def test_image_filter_on_torch(loaded, tmp_path):
    import torch

    base = tmp_path / "base"
    (base / "input").mkdir(parents=True)
    pixels = np.array([[[0, 51, 255], [10, 200, 128]]], dtype=np.uint8)  # 1 x 2, RGB
    Image.fromarray(pixels).save(base / "input" / "px.png")
    api = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "px.png"}},
        "2": {"class_type": "ClassicInvert", "inputs": {"image": ["1", 0], "amount": 1.0}},
        "3": {"class_type": "ClassicInvert", "inputs": {"image": ["1", 0], "amount": 0.5}},
        "4": {"class_type": "SaveImage", "inputs": {"images": ["2", 0],
                                                    "filename_prefix": "inv"}},
        "5": {"class_type": "PreviewAny", "inputs": {"source": ["3", 0]}},
    }
    result = _run(loaded, api, base)
    inverted = result.outputs["2"][0][0]
    assert isinstance(inverted, torch.Tensor) and tuple(inverted.shape) == (1, 1, 2, 3)
    expected = 1.0 - torch.from_numpy(pixels).float()[None] / 255.0
    torch.testing.assert_close(inverted, expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(result.outputs["3"][0][0], torch.full((1, 1, 2, 3), 0.5),
                               rtol=0, atol=1e-6)
    saved = result.ui["4"]["images"][0]
    written = np.asarray(Image.open(base / "output" / saved["filename"]).convert("RGB"))
    assert np.abs(written.astype(int) - (255 - pixels.astype(int))).max() <= 1


def test_validate_inputs_message_names_the_node(loaded, tmp_path):
    stamp = tmp_path / "stamp.txt"
    stamp.write_text("v1")
    api = {"1": {"class_type": "ClassicChecked", "inputs": {"n": 3, "stamp_file": str(stamp)}},
           "2": {"class_type": "ClassicShow", "inputs": {"value": ["1", 0]}}}
    errors = validate(load_workflow(api, loaded.registry), loaded.registry,
                      RunContext.create(tmp_path / "base").paths)
    assert len(errors) == 1 and errors[0].code == "custom_validation_failed"
    assert errors[0].node_id == "1"
    assert "node 1 (ClassicChecked)" in str(errors[0]) and "n must be even, got 3" in str(
        errors[0])
    # n=12 is above the declared max, but VALIDATE_INPUTS names n (ComfyUI: no range check)
    api["1"]["inputs"]["n"] = 12
    assert validate(load_workflow(api, loaded.registry), loaded.registry,
                    RunContext.create(tmp_path / "base").paths) == []


def test_is_changed_feeds_the_cache_key(loaded, tmp_path):
    stamp = tmp_path / "stamp.txt"
    stamp.write_text("v1")
    api = {"1": {"class_type": "ClassicChecked", "inputs": {"n": 4, "stamp_file": str(stamp)}},
           "2": {"class_type": "ClassicShow", "inputs": {"value": ["1", 0]}}}
    cache = OutputCache()
    base = tmp_path / "base"
    first = _run(loaded, api, base, cache)
    assert first.executed == ["1", "2"] and first.ui["2"] == {"text": ["2=40"]}
    assert _run(loaded, api, base, cache).cached == ["1", "2"]  # same IS_CHANGED: cached
    stamp.write_text("v2")
    assert _run(loaded, api, base, cache).executed == ["1", "2"]  # changed: reruns
    api["1"]["inputs"]["stamp_file"] = "always"  # NaN: always changed, never cached
    _run(loaded, api, base, cache)
    assert _run(loaded, api, base, cache).executed == ["1", "2"]
    runs = loaded.registry["ClassicChecked"].classic.run.__globals__["RUNS"]
    assert runs == [4, 4, 4, 4]


def test_pack_failing_at_run_time_names_the_node(tmp_path):
    folder = tmp_path / "cn"
    folder.mkdir()
    (folder / "fails.py").write_text(textwrap.dedent('''
        class Fails:
            @classmethod
            def INPUT_TYPES(cls):
                return {"required": {}}
            RETURN_TYPES = ()
            FUNCTION = "go"
            OUTPUT_NODE = True
            def go(self):
                import folder_paths  # a lazy ComfyUI import, at run time
        NODE_CLASS_MAPPINGS = {"Fails": Fails, "NoFunction": type("X", (), {
            "INPUT_TYPES": classmethod(lambda cls: {"required": {}}), "FUNCTION": "nope"})}
    '''))
    loaded = registry_with_plugins([folder], base_dir=tmp_path, entry_points=False)
    assert "FUNCTION 'nope' does not name a method" in _problems(loaded)["custom_nodes/fails.py"]
    from comfyless.typesys.errors import NodeExecutionError

    with pytest.raises(NodeExecutionError, match=r"node 1 \(Fails\) failed: "
                                                 r"ModuleNotFoundError.*folder_paths"):
        _run(loaded, {"1": {"class_type": "Fails", "inputs": {}}}, tmp_path / "base")


# -- entry points ---------------------------------------------------------------------------
PLUGIN_MODULE = '''
from comfyless.typesys.schema import Input, Node, NodeSchema, Output
from comfyless.typesys.types import INT, STRING


class Twice(Node):
    """value * 2."""

    schema = NodeSchema("FakeTwice", category="fake", inputs=(Input("value", INT, default=1),),
                        outputs=(Output("INT", INT),))

    @staticmethod
    def execute(ctx, value):
        return (value * 2,)


class Clash(Node):
    schema = NodeSchema("StringConcatenate", inputs=(Input("s", STRING),),
                        outputs=(Output("STRING", STRING),))

    @staticmethod
    def execute(ctx, s):
        return (s,)


class Greeting(Node):
    schema = NodeSchema("FakeGreeting", outputs=(Output("STRING", STRING),))

    @staticmethod
    def execute(ctx):
        return ("hi",)


NODES = [Twice, Clash]


def more_nodes():
    return [Greeting]
'''


@pytest.fixture
def fake_distribution(tmp_path, monkeypatch):
    """An installed distribution `fakeplug` with three `comfyless.nodes` entry points."""
    site = tmp_path / "site"
    info = site / "fakeplug-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fakeplug\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[comfyless.nodes]\nbasic = fakeplug_nodes\nmore = fakeplug_nodes:more_nodes\n"
        "broken = fakeplug_missing\nclassic = fakeplug_classic\n")
    (site / "fakeplug_nodes.py").write_text(PLUGIN_MODULE)
    (site / "fakeplug_classic.py").write_text(STRING_PACK_NODES.replace("ClassicCase",
                                                                        "FakeCase"))
    monkeypatch.syspath_prepend(str(site))
    yield site
    sys.modules.pop("fakeplug_nodes", None)
    sys.modules.pop("fakeplug_classic", None)


def test_entry_point_plugin(fake_distribution, tmp_path):
    loaded = registry_with_plugins(base_dir=tmp_path / "base")
    assert loaded.origin("FakeTwice") == "entry point fakeplug:basic"
    assert loaded.origin("FakeGreeting") == "entry point fakeplug:more"
    assert loaded.origin("FakeCase") == "entry point fakeplug:classic"  # NODE_CLASS_MAPPINGS
    assert loaded.origin("StringConcatenate") == BUILTIN
    problems = _problems(loaded)
    assert "already defined by built-in" in problems["entry point fakeplug:basic"]
    assert "fakeplug_missing" in problems["entry point fakeplug:broken"]
    api = {"1": {"class_type": "FakeTwice", "inputs": {"value": 21}},
           "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}}
    assert _run(loaded, api, tmp_path / "base").ui["2"]["text"] == ["42"]


# -- the command line -----------------------------------------------------------------------
def test_cli_run_with_custom_nodes(packs, tmp_path, capsys):
    api = {"1": {"class_type": "ClassicAdd", "inputs": {"a": 2, "b": 0.5}},
           "2": {"class_type": "ClassicShow", "inputs": {"value": ["1", 0]}},
           "3": {"class_type": "ClassicCase", "inputs": {"text": "MiXed", "mode": "lower",
                                                         "reverse": False}},
           "4": {"class_type": "ClassicShow", "inputs": {"value": ["3", 0]}}}
    wf = tmp_path / "wf.json"
    wf.write_text(json.dumps(api))
    code = cli.main(["run", str(wf), "--json", "--base-dir", str(tmp_path / "base"),
                     "--custom-nodes", str(packs)])
    captured = capsys.readouterr()
    assert code == 0, captured
    out = json.loads(captured.out)  # the pack's print went to stderr
    assert out["outputs"] == {"2": {"text": ["2=2.5"]}, "4": {"text": ["4=mixed"]}}
    assert "adding" in captured.err
    assert "custom_nodes/needs_comfyui.py: needs ComfyUI's module 'folder_paths'" in captured.err
    assert "custom_nodes/raises.py: failed to load: RuntimeError" in captured.err


def test_cli_validate_and_nodes_show_origins(packs, fake_distribution, tmp_path, capsys):
    api = {"1": {"class_type": "ClassicChecked", "inputs": {"n": 5, "stamp_file": "x"}},
           "2": {"class_type": "ClassicShow", "inputs": {"value": ["1", 0]}}}
    wf = tmp_path / "wf.json"
    wf.write_text(json.dumps(api))
    base = ["--base-dir", str(tmp_path / "base"), "--custom-nodes", str(packs)]
    assert cli.main(["validate", str(wf), *base]) == 1
    assert "node 1 (ClassicChecked): VALIDATE_INPUTS: n must be even" in capsys.readouterr().out
    assert cli.main(["nodes", *base]) == 0
    lines = {line.split("(")[0]: line for line in capsys.readouterr().out.splitlines()}
    assert lines["ClassicAdd"].endswith("(custom_nodes/math_pack.py)")
    assert lines["ClassicCase"].endswith("(custom_nodes/string_pack)")
    assert lines["FakeTwice"].endswith("(entry point fakeplug:basic)")
    assert lines["KSampler"].endswith("(built-in)")
    assert cli.main(["nodes", "--json", *base]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["ClassicAdd"]["python_module"] == "custom_nodes.math_pack"
    assert info["ClassicAdd"]["display_name"] == "Add (classic)"
    assert info["ClassicAdd"]["input"]["required"]["a"] == [
        "INT", {"default": 1, "min": 0, "max": 100, "step": 1}]
    assert cli.main(["nodes", "--custom-nodes", str(tmp_path / "nope")]) == 2


def test_cli_validate_stays_torch_free(tmp_path):
    folder = tmp_path / "cn"
    folder.mkdir()
    (folder / "math_pack.py").write_text(textwrap.dedent(MATH_PACK))
    api = {"1": {"class_type": "ClassicAdd", "inputs": {"a": 2, "b": 0.5}},
           "2": {"class_type": "ClassicShow", "inputs": {"value": ["1", 0]}}}
    wf = tmp_path / "wf.json"
    wf.write_text(json.dumps(api))
    code = ("import sys; from comfyless.cli import main; "
            "rc = main(sys.argv[1:]); assert 'torch' not in sys.modules, 'torch imported'; "
            "sys.exit(rc)")
    done = subprocess.run([sys.executable, "-c", code, "validate", str(wf), "--base-dir",
                           str(tmp_path / "base"), "--custom-nodes", str(folder)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "1 valid, 0 invalid" in done.stdout


def test_cli_regression_suite_with_custom_nodes(packs, tmp_path, capsys):
    base = tmp_path / "base"
    (base / "input").mkdir(parents=True)
    pixels = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3) * 10
    Image.fromarray(pixels).save(base / "input" / "px.png")
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "invert.json").write_text(json.dumps({
        "1": {"class_type": "LoadImage", "inputs": {"image": "px.png"}},
        "2": {"class_type": "ClassicInvert", "inputs": {"image": ["1", 0], "amount": 1.0}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0],
                                                    "filename_prefix": "inv"}}}))
    args = ["test", str(suite), "--base-dir", str(base), "--report-dir",
            str(tmp_path / "report")]
    assert cli.main([*args, "--update", "--custom-nodes", str(packs)]) == 0
    assert cli.main([*args, "--custom-nodes", str(packs)]) == 0
    assert "1/1 case(s) passed" in capsys.readouterr().out
    assert cli.main(args) == 1  # without the pack: ClassicInvert is unknown
    assert "ClassicInvert" in capsys.readouterr().out


def test_cli_ui_workflow_with_custom_nodes(packs, tmp_path, capsys):
    """A UI-format workflow: the adapted schema maps widgets_values (required, then optional)."""
    ui = {"last_node_id": 2, "last_link_id": 1, "version": 0.4, "groups": [], "config": {},
          "extra": {}, "links": [[1, 1, 0, 2, 0, "FLOAT"]],
          "nodes": [{"id": 1, "type": "ClassicAdd", "mode": 0, "inputs": [],
                     "outputs": [{"name": "sum", "type": "FLOAT", "links": [1]},
                                 {"name": "a", "type": "INT", "links": None}],
                     "widgets_values": [3, 0.25, 2.0]},
                    {"id": 2, "type": "ClassicShow", "mode": 0,
                     "inputs": [{"name": "value", "type": "*", "link": 1}], "outputs": [],
                     "widgets_values": []}]}
    wf = tmp_path / "ui.json"
    wf.write_text(json.dumps(ui))
    assert cli.main(["convert", str(wf), "--custom-nodes", str(packs)]) == 0
    api = json.loads(capsys.readouterr().out)
    assert api["1"]["inputs"] == {"a": 3, "b": 0.25, "scale": 2.0}
    assert cli.main(["run", str(wf), "--json", "--base-dir", str(tmp_path / "base"),
                     "--custom-nodes", str(packs)]) == 0
    assert json.loads(capsys.readouterr().out)["outputs"] == {"2": {"text": ["2=6.5"]}}


def test_a_module_named_like_comfyuis_is_still_refused(tmp_path, monkeypatch):
    """A stray `server.py` on sys.path is not ComfyUI's server: the pack is still reported."""
    stray = tmp_path / "stray"
    stray.mkdir()
    (stray / "server.py").write_text("PromptServer = None\n")
    monkeypatch.syspath_prepend(str(stray))
    folder = tmp_path / "cn"
    folder.mkdir()
    (folder / "wants_server.py").write_text("from server import PromptServer\n"
                                            "NODE_CLASS_MAPPINGS = {}\n")
    (folder / "probes.py").write_text(textwrap.dedent('''
        import importlib.util
        HAVE_COMFY = importlib.util.find_spec("comfy") is not None
        NODE_CLASS_MAPPINGS = {}
    '''))
    loaded = registry_with_plugins([folder], base_dir=tmp_path, entry_points=False)
    assert [(p.source, p.wanted_module) for p in loaded.problems] == [
        ("custom_nodes/wants_server.py", "server")]
    assert "server" not in sys.modules
