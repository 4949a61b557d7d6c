"""CLI mistakes caught early and said plainly (issue 9 §5, §6): --set checks the input name and
reaches PrimitiveNode targets, `run --json` answers JSON for every failure, `validate DIR`,
a closed pipe, files that are not workflows, and `convert` warnings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from comfyless import cli
from comfyless.engine import overrides
from tests.testnodes import test_registry

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def with_test_nodes(monkeypatch):
    import comfyless.nodes

    monkeypatch.setattr(comfyless.nodes, "REGISTRY", test_registry())


def _write(tmp_path, name, doc) -> str:
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return str(path)


def _good(seed=5):
    return {"1": {"class_type": "TestNumber", "inputs": {"seed": seed}},
            "2": {"class_type": "TestIntSink", "inputs": {"value": ["1", 0]}}}


def _ui_with_primitive() -> dict:
    """PrimitiveNode 10 (value 3) feeds input `a` of TestAdd 1 and TestAdd 2; each goes to a
    TestIntSink (3 and 4)."""
    def add(node_id, link_in, link_out):
        return {"id": node_id, "type": "TestAdd", "mode": 0, "widgets_values": [1, 0],
                "inputs": [{"name": "a", "type": "INT", "link": link_in,
                            "widget": {"name": "a"}}],
                "outputs": [{"name": "INT", "type": "INT", "links": [link_out]}]}

    def sink(node_id, link_in):
        return {"id": node_id, "type": "TestIntSink", "mode": 0, "widgets_values": [],
                "inputs": [{"name": "value", "type": "INT", "link": link_in}], "outputs": []}

    primitive = {"id": 10, "type": "PrimitiveNode", "mode": 0, "widgets_values": [3, "fixed"],
                 "outputs": [{"name": "INT", "type": "INT", "links": [1, 2],
                              "widget": {"name": "a"}}]}
    return {"version": 0.4, "nodes": [primitive, add(1, 1, 3), add(2, 2, 4), sink(3, 3),
                                      sink(4, 4)],
            "links": [[1, 10, 0, 1, 0, "INT"], [2, 10, 0, 2, 0, "INT"],
                      [3, 1, 0, 3, 0, "INT"], [4, 2, 0, 4, 0, "INT"]]}


# -- --set ---------------------------------------------------------------------------------------
def test_set_unknown_input_is_an_error_with_nearest_names(tmp_path, capsys, with_test_nodes):
    wf = _write(tmp_path, "wf.json", _good())
    code = cli.main(["run", wf, "--set", "1.sede=1", "--base-dir", str(tmp_path)])
    assert code == 2
    err = capsys.readouterr().err
    assert "node 1 (TestNumber)" in err and "'sede'" in err and "did you mean seed" in err


def test_set_unknown_input_json(tmp_path, capsys, with_test_nodes):
    wf = _write(tmp_path, "wf.json", _good())
    code = cli.main(["run", wf, "--json", "--set", "1.sede=1", "--base-dir", str(tmp_path)])
    assert code == 2
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == "error" and out["error"]["type"] == "usage_error"
    assert out["error"]["extra_info"] == {"node_id": "1", "input_name": "sede",
                                          "suggestions": ["seed"]}


def test_set_input_used_by_suite_manifests_checks_the_name():
    from comfyless.engine.load import load_workflow

    registry = test_registry()
    workflow = load_workflow(_good(), registry)
    with pytest.raises(overrides.UsageError, match=r"case c: .*no input 'sede'.*did you mean seed"):
        overrides.set_input(workflow, "1", "sede", 1, source="case c", registry=registry)
    with pytest.raises(overrides.UsageError, match=r"no node '7'"):
        overrides.set_input(workflow, "7", "seed", 1, source="case c", registry=registry)
    overrides.set_input(workflow, "1", "seed", 9, source="case c", registry=registry)
    assert workflow["1"].inputs["seed"] == 9


def test_suite_case_with_bad_set_fails_naming_the_input(tmp_path, with_test_nodes):
    from comfyless.regress.runner import _run_and_collect
    from comfyless.regress.suite import Case

    wf = Path(_write(tmp_path, "wf.json", _good()))
    case = Case("c", wf, overrides=(("1", "sede", 3),))
    with pytest.raises(ValueError, match=r"no input 'sede'.*did you mean seed"):
        _run_and_collect(case, str(tmp_path), test_registry())


def test_set_on_primitive_node_sets_every_input_it_feeds(tmp_path, capsys, with_test_nodes):
    wf = _write(tmp_path, "ui.json", _ui_with_primitive())
    assert cli.main(["run", wf, "--json", "--base-dir", str(tmp_path)]) == 0
    assert json.loads(capsys.readouterr().out)["outputs"] == {"3": {"value": [3]},
                                                              "4": {"value": [3]}}
    code = cli.main(["run", wf, "--json", "--set", "10.value=7", "--base-dir", str(tmp_path)])
    assert code == 0
    assert json.loads(capsys.readouterr().out)["outputs"] == {"3": {"value": [7]},
                                                              "4": {"value": [7]}}


def test_primitive_targets_recorded_by_the_loader():
    from comfyless.engine.load import load_workflow_full, load_workflow_info

    loaded = load_workflow_info(_ui_with_primitive(), test_registry())
    assert loaded.notes.primitives == {"10": [("1", "a"), ("2", "a")]}
    api, ui = load_workflow_full(_ui_with_primitive(), test_registry())  # unchanged shape
    assert sorted(api) == ["1", "2", "3", "4"] and ui["nodes"][0]["id"] == 10


# -- run --json answers JSON for every failure ----------------------------------------------------
@pytest.mark.parametrize(("make", "extra", "code", "kind"), [
    (lambda t: str(t / "missing.json"), [], 2, "io_error"),
    (lambda t: str(t), [], 2, "io_error"),  # a directory
    (lambda t: _write(t, "e.json", ""), [], 1, "invalid_workflow"),
    (lambda t: _write(t, "l.json", "[1, 2]"), [], 1, "invalid_workflow"),
    (lambda t: _write(t, "wf.json", _good()), ["--set", "1.sede=1"], 2, "usage_error"),
    (lambda t: _write(t, "wf.json", _good()), ["--set", "99.seed=1"], 2, "usage_error"),
    (lambda t: _write(t, "wf.json", _good()), ["--set", "nodot"], 2, "usage_error"),
    (lambda t: _write(t, "wf.json", _good(seed=-1)), [], 1, "prompt_outputs_failed_validation"),
])
def test_run_json_every_failure_is_json(tmp_path, capsys, with_test_nodes, make, extra, code,
                                        kind):
    wf = make(tmp_path)
    assert cli.main(["run", wf, "--json", "--base-dir", str(tmp_path), *extra]) == code
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == "error" and out["error"]["type"] == kind


def test_run_json_interrupt_is_json(tmp_path, capsys, with_test_nodes, monkeypatch):
    from comfyless.engine import execute

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(execute, "run_node", interrupt)
    wf = _write(tmp_path, "wf.json", _good())
    assert cli.main(["run", wf, "--json", "--base-dir", str(tmp_path)]) == 130
    assert json.loads(capsys.readouterr().out)["error"]["type"] == "execution_interrupted"


# -- files that are not workflows: each its own plain message, naming the file -------------------
@pytest.mark.parametrize(("content", "words"), [
    (None, "is a directory"),
    ("", "the file is empty"),
    ("  \n", "the file is empty"),
    ("[1, 2]", "not a ComfyUI workflow: found a JSON list"),
    ('{"foo": 1}', "not a ComfyUI workflow: found a JSON object with the keys foo"),
    ('{"name": "x", "version": "1.0.0", "dependencies": {"a": "^1"}}',
     "not a ComfyUI workflow: found a JSON object with the keys name, version, dependencies"),
])
def test_not_a_workflow_message_names_the_file(tmp_path, capsys, with_test_nodes, content,
                                               words):
    if content is None:
        target = tmp_path / "folder.json"
        target.mkdir()
    else:
        target = Path(_write(tmp_path, "package.json", content))
    code = cli.main(["run", str(target), "--base-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code in (1, 2)
    assert str(target) in err and words in err, err
    assert "Traceback" not in err


# -- validate DIR ---------------------------------------------------------------------------------
def test_validate_directory_every_workflow_and_summary(tmp_path, capsys, with_test_nodes):
    folder = tmp_path / "workflows"
    folder.mkdir()
    _write(folder, "a_good.json", _good())
    _write(folder, "b_bad.json", _good(seed=-1))
    _write(folder, "c_package.json", {"name": "x", "version": "1"})
    _write(folder, "notes.txt", "not json")  # not *.json: skipped
    code = cli.main(["validate", str(folder), "--base-dir", str(tmp_path)])
    lines = capsys.readouterr().out.splitlines()
    assert code == 1
    assert lines[0] == f"ok  {folder / 'a_good.json'}"
    assert any(line == f"FAIL  {folder / 'b_bad.json'}" for line in lines)
    assert any(line == f"FAIL  {folder / 'c_package.json'}" for line in lines)
    assert lines[-1] == "1 valid, 2 invalid"


def test_validate_several_files_summary(tmp_path, capsys, with_test_nodes):
    good = _write(tmp_path, "g.json", _good())
    also = _write(tmp_path, "h.json", _good(seed=2))
    assert cli.main(["validate", good, also, "--base-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "2 valid, 0 invalid"


def test_validate_empty_directory_is_usage_error(tmp_path, capsys, with_test_nodes):
    assert cli.main(["validate", str(tmp_path)]) == 2
    assert "no *.json" in capsys.readouterr().err


# -- closed pipe ----------------------------------------------------------------------------------
def test_closed_pipe_ends_quietly():
    code = "import sys; from comfyless.cli import main; sys.exit(main(sys.argv[1:]))"
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader (`| head -1`) is gone before the first line is written
    try:
        done = subprocess.run([sys.executable, "-c", code, "nodes"], cwd=ROOT,
                              stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write_end)
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr, done.stderr
    assert done.returncode in (0, 141)


# -- convert warns about node types it cannot map ------------------------------------------------
def _ui_with_unknown() -> dict:
    doc = _ui_with_primitive()
    doc["nodes"].append({"id": 20, "type": "LoraSave", "mode": 0,
                         "widgets_values": ["loras/x", 5], "inputs": [], "outputs": []})
    doc["nodes"].append({"id": 21, "type": "LoraSave", "mode": 0,
                         "widgets_values": ["loras/y", 6], "inputs": [], "outputs": []})
    return doc


def test_convert_warns_on_stderr_for_unknown_node_types(tmp_path, capsys, with_test_nodes):
    wf = _write(tmp_path, "ui.json", _ui_with_unknown())
    assert cli.main(["convert", wf]) == 0
    captured = capsys.readouterr()
    api = json.loads(captured.out)
    assert api["20"] == {"class_type": "LoraSave", "inputs": {}, "_meta": {"title": "LoraSave"}}
    warnings = [line for line in captured.err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1  # one per node type
    assert "'LoraSave'" in warnings[0] and "20, 21" in warnings[0] and "dropped" in warnings[0]


def test_convert_json_carries_warnings(tmp_path, capsys, with_test_nodes):
    wf = _write(tmp_path, "ui.json", _ui_with_unknown())
    assert cli.main(["convert", wf, "--json"]) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert out["status"] == "success" and "LoraSave" in out["warnings"][0]
    assert out["prompt"]["1"]["inputs"] == {"a": 3, "b": 0}
    assert captured.err == ""


def test_convert_known_nodes_no_warning(tmp_path, capsys, with_test_nodes):
    wf = _write(tmp_path, "ui.json", _ui_with_primitive())
    assert cli.main(["convert", wf, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["warnings"] == []


def test_run_json_bad_argument_is_json(tmp_path, capsys, with_test_nodes):
    wf = _write(tmp_path, "wf.json", _good())
    assert cli.main(["run", wf, "--json", "--no-such-flag"]) == 2
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == "error" and out["error"]["type"] == "usage_error"
    assert "--no-such-flag" in out["error"]["message"]
