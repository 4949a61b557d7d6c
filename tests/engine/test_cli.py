"""Command line: exit codes, JSON output, overrides, JUnit, catalogue, laziness."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from comfyless import cli
from comfyless.engine import overrides
from tests.testnodes import test_registry

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def with_test_nodes(monkeypatch):
    """Make the CLI see the test nodes (it uses comfyless.nodes.REGISTRY)."""
    import comfyless.nodes

    monkeypatch.setattr(comfyless.nodes, "REGISTRY", test_registry())


def _write(tmp_path, name, api) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(api))
    return str(path)


def _good(seed=5):
    return {"1": {"class_type": "TestNumber", "inputs": {"seed": seed}},
            "2": {"class_type": "TestIntSink", "inputs": {"value": ["1", 0]}}}


def test_run_ok_json(tmp_path, capsys, with_test_nodes):
    wf = _write(tmp_path, "wf.json", _good())
    assert cli.main(["run", wf, "--json", "--base-dir", str(tmp_path)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == "success" and out["outputs"] == {"2": {"value": [5]}}


def test_run_set_override(tmp_path, capsys, with_test_nodes):
    wf = _write(tmp_path, "wf.json", _good())
    code = cli.main(["run", wf, "--json", "--set", "1.seed=9", "--base-dir", str(tmp_path)])
    assert code == 0
    assert json.loads(capsys.readouterr().out)["outputs"] == {"2": {"value": [9]}}


def test_run_invalid_exit_1(tmp_path, capsys, with_test_nodes):
    wf = _write(tmp_path, "wf.json", _good(seed=-1))
    assert cli.main(["run", wf, "--json", "--base-dir", str(tmp_path)]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["error"]["type"] == "prompt_outputs_failed_validation"
    assert out["node_errors"]["1"]["errors"][0]["type"] == "value_smaller_than_min"


def test_run_node_failure_exit_3(tmp_path, capsys, with_test_nodes):
    api = {"1": {"class_type": "TestNumber", "inputs": {"seed": 1}},
           "2": {"class_type": "TestFail", "inputs": {"value": ["1", 0]}},
           "3": {"class_type": "TestIntSink", "inputs": {"value": ["2", 0]}}}
    wf = _write(tmp_path, "wf.json", api)
    assert cli.main(["run", wf, "--json", "--base-dir", str(tmp_path)]) == 3
    error = json.loads(capsys.readouterr().out)["error"]
    assert error["type"] == "node_execution_failed" and error["extra_info"]["node_id"] == "2"


def test_run_interrupted_exit_130(tmp_path, with_test_nodes, monkeypatch):
    from comfyless.engine import execute

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(execute, "run_node", interrupt)
    wf = _write(tmp_path, "wf.json", _good(seed=11))
    assert cli.main(["run", wf, "--base-dir", str(tmp_path)]) == 130


@pytest.mark.parametrize("argv", [
    ["run", "/nonexistent/wf.json"],
    ["run", "WF", "--set", "nodot=1"],
    ["run", "WF", "--set", "99.seed=1"],
    ["bogus"],
    [],
])
def test_usage_and_io_errors_exit_2(tmp_path, argv, with_test_nodes):
    argv = [_write(tmp_path, "wf.json", _good()) if a == "WF" else a for a in argv]
    assert cli.main(argv) == 2


def test_validate_many_with_junit(tmp_path, capsys, with_test_nodes):
    good = _write(tmp_path, "good.json", _good())
    bad = _write(tmp_path, "bad.json", {"1": {"class_type": "TestNumbr", "inputs": {}}})
    junit = tmp_path / "report.xml"
    code = cli.main(["validate", good, bad, "--json", "--junit", str(junit),
                     "--base-dir", str(tmp_path)])
    assert code == 1
    out = json.loads(capsys.readouterr().out)
    assert out[good]["valid"] is True and out[bad]["valid"] is False
    assert out[bad]["node_errors"]["1"]["errors"][0]["type"] == "missing_node_type"
    suite = ET.parse(junit).getroot()
    assert suite.get("tests") == "2" and suite.get("failures") == "1"


def test_validate_malformed_json_exit_1(tmp_path, with_test_nodes):
    path = tmp_path / "broken.json"
    path.write_text("{not json")
    assert cli.main(["validate", str(path)]) == 1


def test_validate_missing_file_exit_2(tmp_path, with_test_nodes):
    assert cli.main(["validate", str(tmp_path / "nope.json")]) == 2


def test_convert_prints_api(tmp_path, capsys, with_test_nodes):
    wf = _write(tmp_path, "wf.json", _good())
    assert cli.main(["convert", wf]) == 0
    assert json.loads(capsys.readouterr().out) == _good()


def test_nodes_json_object_info_shape(capsys):
    assert cli.main(["nodes", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    entry = info["PrimitiveInt"]
    assert entry["input"]["required"]["value"][0] == "INT"
    assert entry["input"]["required"]["value"][1]["default"] == 0
    assert entry["input_order"] == {"required": ["value"], "optional": []}
    assert entry["output"] == ["INT"] and entry["output_is_list"] == [False]
    for key in ("name", "display_name", "description", "category", "output_node",
                "python_module", "output_name"):
        assert key in entry
    assert "hidden" not in entry["input"]
    assert info["SaveImage"]["input"]["hidden"] == {"prompt": "PROMPT",
                                                    "extra_pnginfo": "EXTRA_PNGINFO"}


def test_parse_override_values():
    assert overrides.parse_override("3.seed=42") == ("3", "seed", 42)
    assert overrides.parse_override("3.text=a cat") == ("3", "text", "a cat")
    assert overrides.parse_override('3.text="42"') == ("3", "text", "42")
    assert overrides.parse_override("5:2.cfg=7.5") == ("5:2", "cfg", 7.5)


def test_validate_subprocess_never_imports_torch(tmp_path):
    wf = _write(tmp_path, "wf.json", {"1": {"class_type": "PrimitiveInt",
                                            "inputs": {"value": 1}}})
    code = ("import sys; from comfyless.cli import main; rc = main(sys.argv[1:]); "
            "print('TORCH' if 'torch' in sys.modules else 'NO_TORCH'); sys.exit(rc)")
    done = subprocess.run([sys.executable, "-c", code, "validate", wf], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1  # no output node
    assert done.stdout.strip().endswith("NO_TORCH")


def test_ctrl_c_stops_at_next_step_exit_130(tmp_path, with_test_nodes, monkeypatch):
    import os
    import signal

    from tests.testnodes import TestSlow

    steps_done = []

    def execute(ctx, steps):
        for step in range(1, steps + 1):
            steps_done.append(step)
            if step == 2:
                os.kill(os.getpid(), signal.SIGINT)  # the user presses Ctrl-C once
            ctx.progress(step, steps)
        return (steps,)

    monkeypatch.setattr(TestSlow, "execute", staticmethod(execute))
    api = {"1": {"class_type": "TestSlow", "inputs": {"steps": 50}},
           "2": {"class_type": "TestIntSink", "inputs": {"value": ["1", 0]}}}
    wf = _write(tmp_path, "wf.json", api)
    # The handler in place before (a background CI job may start with SIGINT ignored) must be
    # the one in place after.
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        assert cli.main(["run", wf, "--base-dir", str(tmp_path)]) == 130
        assert steps_done == [1, 2]  # stopped at the step boundary, not killed mid-step
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, before)


def test_run_gives_nodes_the_prompt(tmp_path, with_test_nodes, monkeypatch):
    from comfyless.typesys import Result
    from tests.testnodes import TestIntSink

    seen = []

    def execute(ctx, value):
        seen.append(ctx.prompt)
        return Result((), ui={"value": [value]})

    monkeypatch.setattr(TestIntSink, "execute", staticmethod(execute))
    wf = _write(tmp_path, "wf.json", _good(seed=3))
    assert cli.main(["run", wf, "--set", "1.seed=4", "--base-dir", str(tmp_path)]) == 0
    assert seen == [{"1": {"class_type": "TestNumber", "inputs": {"seed": 4}},
                     "2": {"class_type": "TestIntSink", "inputs": {"value": ["1", 0]}}}]
