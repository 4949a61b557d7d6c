"""cli.EXTERNAL: each command lives in a module of its own, and a missing one is an error."""

import importlib

import pytest

from comfyless import cli
from comfyless.models.checkpoint import load_checkpoint


@pytest.mark.parametrize("name", sorted(cli.EXTERNAL))
def test_every_external_command_imports_to_a_function(name):
    module, _, func = cli.EXTERNAL[name][0].partition(":")
    assert callable(getattr(importlib.import_module(module), func))
    assert name in cli.build_parser().format_help()


def test_missing_command_module_is_an_import_error(monkeypatch):
    monkeypatch.setitem(cli.EXTERNAL, "nope", ("comfyless.commands.no_such_command:cli_main", ""))
    with pytest.raises(ImportError, match="no_such_command"):
        cli._check_external()


def test_make_checkpoint_command_writes_a_loadable_checkpoint(tmp_path, capsys):
    out = tmp_path / "cli.safetensors"
    assert cli.main(["make-checkpoint", "--arch", "sdxl", "--size", "tiny", "--seed", "3",
                     str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    assert load_checkpoint(out, load_clip=False, load_vae=False)[0].family == "sdxl"


def test_make_checkpoint_base_dir_json_lists_the_files_written(tmp_path, capsys):
    import json

    assert cli.main(["make-checkpoint", "--arch", "sd15", "--base-dir", str(tmp_path),
                     "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed == {"checkpoints": ["v1-5-pruned-emaonly.safetensors"], "diffusion_models": [],
                      "text_encoders": [], "vae": []}
    path = tmp_path / "models" / "checkpoints" / "v1-5-pruned-emaonly.safetensors"
    model, clip, vae = load_checkpoint(path)
    assert model.family == "sd15" and clip is not None and vae is not None


@pytest.mark.parametrize("argv, message", [
    ([], "either OUT or --base-dir"),
    (["x.safetensors", "--base-dir", "d"], "either OUT or --base-dir"),
    (["x.safetensors", "--json"], "--json needs --base-dir"),
])
def test_make_checkpoint_refuses_unclear_targets(argv, message, capsys):
    with pytest.raises(SystemExit):
        cli.main(["make-checkpoint", *argv])
    assert message in capsys.readouterr().err


def test_models_package_owns_no_command():
    writer = importlib.import_module("comfyless.models.checkpoint_writer")
    assert not hasattr(writer, "cli_main")
