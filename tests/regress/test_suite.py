"""Suite discovery and manifest errors: a malformed suite is a clear error, exit code 2."""

from __future__ import annotations

import pytest

from comfyless.regress.cli import cli_main
from comfyless.regress.suite import SuiteError, load_suite


def _write(path, text):
    path.write_text(text)
    return path


@pytest.fixture
def workflow(tmp_path):
    return _write(tmp_path / "wf.json", '{"1": {"class_type": "PrimitiveInt", "inputs": {}}}')


def test_folder_suite_lists_json_files_sorted(tmp_path, workflow):
    _write(tmp_path / "a.json", "{}")
    suite = load_suite(tmp_path)
    assert [c.name for c in suite.cases] == ["a", "wf"]
    assert suite.golden == tmp_path / "golden"


def test_manifest_with_overrides_and_tolerances(tmp_path, workflow):
    manifest = _write(tmp_path / "suite.toml", """
[suite]
golden = "expected"
[tolerance]
image_ssim = 0.9
[[case]]
name = "one"
workflow = "wf.json"
set = { "1.value" = 5 }
[case.tolerance]
lora_atol = 0.5
[[case]]
workflow = "wf.json"
name = "two"
set = ["1.value=7"]
""")
    suite = load_suite(manifest)
    one, two = suite.cases
    assert one.overrides == (("1", "value", 5),) and two.overrides == (("1", "value", 7),)
    assert one.tolerance.image_ssim == 0.9 and one.tolerance.lora_atol == 0.5
    assert two.tolerance.lora_atol == 1e-4
    assert suite.golden_dir(one) == tmp_path / "expected" / "one"


@pytest.mark.parametrize(("text", "message"), [
    ("[[case]\nworkflow = 1", "not valid TOML"),
    ("[[case]]\nname = 'x'", "`workflow` (a path) is required"),
    ("[[case]]\nworkflow = 'nope.json'", "not found"),
    ("[[case]]\nworkflow = 'wf.json'\ncolour = 1", "unknown key(s) ['colour']"),
    ("[[case]]\nworkflow = 'wf.json'\nset = ['1value=3']", "expected ID.INPUT=VALUE"),
    ("[[case]]\nworkflow = 'wf.json'\n[case.tolerance]\nimage_fuzz = 1", "unknown tolerance"),
    ("[[case]]\nworkflow = 'wf.json'\n[[case]]\nworkflow = 'wf.json'", "duplicate case name"),
    ("[[case]]\nworkflow = 'wf.json'\nname = '../up'", "must be letters"),
    ("cases = 1", "unknown top-level key"),
    ("[suite]", "at least one [[case]]"),
])
def test_malformed_manifest_is_a_clear_error(tmp_path, workflow, text, message):
    manifest = _write(tmp_path / "bad.toml", text)
    with pytest.raises(SuiteError) as info:
        load_suite(manifest)
    assert message in str(info.value) and "bad.toml" in str(info.value)


def test_cli_exit_code_2_for_malformed_manifest(tmp_path, workflow, capsys):
    manifest = _write(tmp_path / "bad.toml", "[[case]]\nname = 'x'")
    assert cli_main([str(manifest)]) == 2
    assert "workflow" in capsys.readouterr().err


def test_cli_exit_code_2_for_missing_suite(tmp_path):
    assert cli_main([str(tmp_path / "missing")]) == 2
