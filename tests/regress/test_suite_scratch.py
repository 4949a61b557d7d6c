"""`comfyless test` writes outputs to a scratch folder (never the base dir's output/), and a
golden records the thread count and torch version it was made with; a failure under another
thread count says so."""

from __future__ import annotations

import json

import pytest
import torch

from comfyless.cli import main as comfyless
from comfyless.regress.runner import environment, environment_note


@pytest.fixture
def manifest(suite_dir):
    return suite_dir / "suite.toml"


def _files(folder):
    return sorted(p.relative_to(folder) for p in folder.rglob("*") if p.is_file()) \
        if folder.exists() else []


def test_suite_run_leaves_base_output_untouched(manifest, shipped_base):
    before = _files(shipped_base / "output"), _files(shipped_base / "temp")
    # Both cases: the LoRA case saves a LoRA, a loss graph and images, the other an image.
    assert comfyless(["test", str(manifest), "--base-dir", str(shipped_base),
                      "--update", "--threads", "1"]) == 0
    assert (_files(shipped_base / "output"), _files(shipped_base / "temp")) == before
    golden = manifest.parent / "golden" / "lora-train-quick"
    assert (golden / "6.lora.safetensors").is_file()  # the outputs were still captured


def test_golden_records_threads_and_a_failure_names_the_difference(manifest, shipped_base,
                                                                   capsys):
    base = ["test", str(manifest), "--base-dir", str(shipped_base), "-k", "txt2img"]
    assert comfyless([*base, "--update", "--threads", "2"]) == 0
    recorded = json.loads((manifest.parent / "golden" / "txt2img" / "case.json").read_text())
    assert recorded["environment"] == {"threads": 2, "torch": torch.__version__}
    # Another seed makes the image differ; the run uses 1 thread instead of the golden's 2.
    manifest.write_text(manifest.read_text().replace('"3.steps" = 4', '"3.steps" = 4, '
                                                                      '"3.seed" = 7'))
    capsys.readouterr()
    assert comfyless([*base, "--threads", "1"]) == 1
    out = capsys.readouterr().out
    assert "golden recorded with 2 threads" in out and "this run uses 1 thread," in out


def test_environment_note():
    here = environment()
    assert environment_note(here, here) is None
    other = {**here, "torch": "2.0.0"}
    assert "torch 2.0.0" in environment_note(other, here)
    assert "does not record" in environment_note(None, here)
