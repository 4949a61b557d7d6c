"""`comfyless test` on the example suite with tiny checkpoints: record, pass, then a changed
input makes the image case fail with a diff image, exit code 1 and a JUnit failure."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from PIL import Image

from comfyless.cli import main as comfyless


def _test(suite, base, *extra) -> int:
    return comfyless(["test", str(suite), "--base-dir", str(base), "--deterministic", *extra])


def test_record_pass_then_an_input_change_fails(suite_dir, shipped_base, tmp_path, capsys):
    manifest = suite_dir / "suite.toml"
    assert _test(manifest, shipped_base, "--update") == 0
    golden = suite_dir / "golden"
    assert (golden / "txt2img" / "9.images.0.png").is_file()
    assert (golden / "lora-train-quick" / "6.lora.safetensors").is_file()
    assert (golden / "lora-train-quick" / "7.loss.json").is_file()

    report = tmp_path / "pass.xml"
    assert _test(manifest, shipped_base, "--junit", str(report)) == 0
    assert "2/2 case(s) passed" in capsys.readouterr().out
    cases = ET.parse(report).getroot().findall("testcase")
    assert {c.get("name") for c in cases} == {"txt2img", "lora-train-quick"}
    assert not ET.parse(report).getroot().findall(".//failure")

    # A changed seed in the text-to-image case: the image changes, the LoRA case still passes.
    text = manifest.read_text().replace('"3.steps" = 4', '"3.steps" = 4, "3.seed" = 7')
    manifest.write_text(text)
    report = tmp_path / "fail.xml"
    diffs = tmp_path / "diffs"
    code = _test(manifest, shipped_base, "--junit", str(report), "--report-dir", str(diffs))
    assert code == 1
    root = ET.parse(report).getroot()
    assert root.get("failures") == "1"
    failed = [c for c in root.findall("testcase") if c.find("failure") is not None]
    assert [c.get("name") for c in failed] == ["txt2img"]
    failure_text = failed[0].find("failure").text
    assert "image differs" in failure_text and "diff image:" in failure_text
    seeds = {p.get("name"): p.get("value") for p in failed[0].iter("property")}
    assert seeds["seed 3.seed"] == "7"
    diff_files = list((diffs / "txt2img").glob("*.diff.png"))
    assert len(diff_files) == 1 and str(diff_files[0]) in failure_text
    with Image.open(diff_files[0]) as strip:
        assert strip.size == (3 * 64, 64)


def test_k_selects_cases_and_unknown_pattern_is_usage_error(suite_dir, shipped_base, capsys):
    manifest = suite_dir / "suite.toml"
    assert _test(manifest, shipped_base, "--update", "-k", "txt2") == 0
    assert (suite_dir / "golden" / "txt2img").is_dir()
    assert not (suite_dir / "golden" / "lora-train-quick").exists()
    assert _test(manifest, shipped_base, "-k", "nothing-matches") == 2


def test_missing_golden_fails_with_a_hint(suite_dir, shipped_base, capsys):
    assert _test(suite_dir / "suite.toml", shipped_base, "-k", "txt2img", "--json") == 1
    assert "--update" in capsys.readouterr().out


def test_override_of_a_missing_node_is_a_case_error(tmp_path, shipped_base, capsys):
    manifest = tmp_path / "suite.toml"
    manifest.write_text('[[case]]\nworkflow = "txt2img"\nset = { "99.seed" = 1 }\n')
    assert _test(manifest, shipped_base, "--update") == 2
    out = capsys.readouterr().out
    assert "ERROR" in out and "no node '99'" in out
