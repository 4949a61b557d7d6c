"""`comfyless run WF --sweep ID.INPUT=VALUES`: grid parsing and expansion, one output folder per
variant, the summary (JSON + table), and usage errors before any work."""

from __future__ import annotations

import json
import math

import pytest

from comfyless import dispatch
from comfyless.cli import main as comfyless
from comfyless.engine.overrides import UsageError
from comfyless.engine.sweep import SweepAxis, expand_grid, parse_sweep

# The shipped LoRA training workflow, made quick (as the example regression suite does).
QUICK_TRAIN = ["--set", "5.steps=2", "--set", "5.training_dtype=fp32", "--set",
               "5.lora_dtype=fp32", "--set", "5.gradient_checkpointing=false", "--set",
               "11.width=64", "--set", "11.height=64", "--set", "12.steps=2"]


# -- parsing --------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "values"), [
    ("3.seed=1..4", (1, 2, 3, 4)),
    ("3.seed=-1..1", (-1, 0, 1)),
    ("3.seed=5..5", (5,)),
    ("5.learning_rate=1e-4,5e-4", (1e-4, 5e-4)),
    ("3.sampler_name=euler,dpmpp_2m", ("euler", "dpmpp_2m")),
    ('3.sampler_name="euler","a,b"', ("euler", "a,b")),
    ("4.size=[64,64],[96,96]", ([64, 64], [96, 96])),
    ("3.denoise=0.5", (0.5,)),
    ("6.prefix=runs..old", ("runs..old",)),
])
def test_parse_sweep_values(text, values):
    axis = parse_sweep(text)
    assert axis.values == values and axis.target == text.partition("=")[0]


@pytest.mark.parametrize(("text", "says"), [
    ("3seed=1..4", "expected ID.INPUT=A..B"),
    ("3.seed", "expected ID.INPUT=A..B"),
    ("3.seed=", "no values"),
    ("3.seed=4..1", "is empty"),
    ("3.seed=1.5..3", "whole numbers"),
    ("3.seed=1..x", "whole numbers"),
    ("3.seed=1,,2", "an empty value"),
])
def test_bad_sweep_syntax_names_the_flag_and_value(text, says):
    with pytest.raises(UsageError) as caught:
        parse_sweep(text)
    assert says in str(caught.value) and f"--sweep {text!r}" in str(caught.value)


def test_grid_is_every_combination_first_flag_slowest():
    variants = expand_grid([parse_sweep("3.seed=1..2"), parse_sweep("5.learning_rate=0.1,0.2,0.3")])
    assert [v.index for v in variants] == [1, 2, 3, 4, 5, 6]
    assert [tuple(x[2] for x in v.overrides) for v in variants] == [
        (1, 0.1), (1, 0.2), (1, 0.3), (2, 0.1), (2, 0.2), (2, 0.3)]
    folders = [v.folder(1) for v in variants]
    assert len(set(folders)) == 6 and folders[0] == "1_3.seed=1_5.learning_rate=0.1"
    assert all("/" not in f and " " not in f for f in folders)


def test_grid_rejects_a_target_twice_and_huge_grids():
    with pytest.raises(UsageError, match="given twice"):
        expand_grid([parse_sweep("3.seed=1..2"), parse_sweep("3.seed=5,6")])
    big = SweepAxis("3", "seed", tuple(range(200)))
    with pytest.raises(UsageError, match="at most"):
        expand_grid([big, SweepAxis("4", "x", tuple(range(200)))])


def test_folder_names_are_safe_for_strings():
    variant = expand_grid([parse_sweep('6.prefix="a/b c",x')])[0]
    assert variant.folder(2) == "01_6.prefix=a-b-c"


# -- running --------------------------------------------------------------------------------

def _sweep(base, *extra) -> int:
    return comfyless(["run", "lora-train-api", "--base-dir", str(base), "--threads", "1",
                      *QUICK_TRAIN, *extra])


def _sweep_folders(base):
    output = base / "output"
    return sorted(output.glob("sweep-*")) if output.is_dir() else []


def test_sweep_runs_each_variant_in_its_own_folder_and_summarises(shipped_base, capsys):
    before = _sweep_folders(shipped_base)
    assert _sweep(shipped_base, "--sweep", "5.seed=1..2", "--sweep",
                  "5.learning_rate=1e-4,5e-4") == 0
    out = capsys.readouterr().out
    (folder,) = sorted(set(_sweep_folders(shipped_base)) - set(before))
    summary = json.loads((folder / "sweep.json").read_text())
    assert summary["sweep"] == {"5.seed": [1, 2], "5.learning_rate": [1e-4, 5e-4]}
    variants = summary["variants"]
    assert [v["overrides"] for v in variants] == [
        {"5.seed": 1, "5.learning_rate": 1e-4}, {"5.seed": 1, "5.learning_rate": 5e-4},
        {"5.seed": 2, "5.learning_rate": 1e-4}, {"5.seed": 2, "5.learning_rate": 5e-4}]
    assert all(v["status"] == "succeeded" and v["exit_code"] == 0 for v in variants)
    for v in variants:  # a LoRA, a loss graph and a sample image each, in its own folder
        sub = v["folder"].split("/", 1)[1]
        assert all(o.startswith(sub + "/") for o in v["outputs"])
        assert any(o.endswith(".safetensors") for o in v["outputs"])
        assert all((folder / o).is_file() for o in v["outputs"])
        (loss,) = v["final_loss"].values()
        assert math.isfinite(loss) and loss > 0
    assert len({o for v in variants for o in v["outputs"]}) == sum(len(v["outputs"])
                                                                  for v in variants)
    # Another seed trains on other noise: another loss; the table shows every variant.
    assert variants[0]["final_loss"] != variants[2]["final_loss"]
    table = out[out.index("#  5.seed"):]
    assert len([line for line in table.splitlines() if "succeeded" in line]) == 4


def test_workers_produce_what_the_sequential_sweep_does(shipped_base, capsys):
    grid = ["--sweep", "5.seed=3,4", "--json"]
    assert _sweep(shipped_base, *grid) == 0
    sequential = json.loads(capsys.readouterr().out)
    assert _sweep(shipped_base, *grid, "--workers", "2") == 0
    parallel = json.loads(capsys.readouterr().out)
    assert parallel["ran_on"] == "2 local worker processes"
    for seq, par in zip(sequential["variants"], parallel["variants"], strict=True):
        assert (par["status"], par["overrides"]) == (seq["status"], seq["overrides"])
        assert par["final_loss"] == pytest.approx(seq["final_loss"], rel=1e-5)
        assert [o.split("/", 1)[1] for o in par["outputs"]] == \
            [o.split("/", 1)[1] for o in seq["outputs"]]
    assert parallel["folder"] != sequential["folder"]


@pytest.mark.parametrize(("extra", "says"), [
    (["--sweep", "5.seed=9..1"], "--sweep '5.seed=9..1': the range '9..1' is empty"),
    (["--sweep", "99.seed=1,2"], "no node '99'"),
    (["--sweep", "5.sed=1,2"], "did you mean seed"),
    (["--sweep", "5.steps=1,2"], "--set 5.steps both set it"),
    (["--workers", "2"], "add at least one --sweep"),
])
def test_sweep_mistakes_are_usage_errors_before_any_work(shipped_base, capsys, extra, says):
    before = _sweep_folders(shipped_base)
    assert _sweep(shipped_base, *extra) == 2
    assert says in capsys.readouterr().err
    assert _sweep_folders(shipped_base) == before


def test_an_invalid_variant_stops_the_sweep_before_it_runs(shipped_base, capsys):
    before = _sweep_folders(shipped_base)
    assert _sweep(shipped_base, "--sweep", "5.learning_rate=1e-4,-1") == 1
    err = capsys.readouterr().err
    assert "sweep variant 2 (5.learning_rate=-1) is invalid" in err
    assert _sweep_folders(shipped_base) == before


MAYBE_DIE_PACK = '''
import os


class MaybeDie:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"code": ("INT", {"default": 0})}}

    RETURN_TYPES = ()
    FUNCTION = "run"
    OUTPUT_NODE = True

    def run(self, code):
        if code:
            os._exit(code)  # the process ends: no exception, no result
        return ()


NODE_CLASS_MAPPINGS = {"MaybeDie": MaybeDie}
'''


def test_a_variant_whose_worker_dies_is_an_error_and_the_rest_complete(tmp_path, capsys):
    from comfyless.dispatch import DEAD_WORKER

    packs = tmp_path / "packs"
    packs.mkdir()
    (packs / "maybe_die.py").write_text(MAYBE_DIE_PACK)
    workflow = tmp_path / "maybe-die.json"
    workflow.write_text(json.dumps({"1": {"class_type": "MaybeDie", "inputs": {"code": 0}}}))
    code = comfyless(["run", str(workflow), "--base-dir", str(tmp_path / "base"),
                      "--custom-nodes", str(packs), "--sweep", "1.code=0,9", "--workers", "2",
                      "--json"])
    assert code == 3
    variants = json.loads(capsys.readouterr().out)["variants"]
    assert [(v["status"], v["error"]) for v in variants] == [("succeeded", None),
                                                              ("error", DEAD_WORKER)]


def test_ray_missing_says_how_to_install(shipped_base, monkeypatch, capsys):
    monkeypatch.setattr(dispatch, "ray_installed", lambda: False)
    assert _sweep(shipped_base, "--sweep", "5.seed=1,2", "--ray") == 2
    assert 'pip install "comfyless[ray]"' in capsys.readouterr().err


def test_ray_sweep_matches_the_sequential_one(shipped_base, capsys):
    ray = pytest.importorskip("ray")  # pip install "comfyless[ray]"; skipped without it
    grid = ["--sweep", "5.seed=5,6", "--json"]
    assert _sweep(shipped_base, *grid) == 0
    sequential = json.loads(capsys.readouterr().out)
    assert not ray.is_initialized()
    assert _sweep(shipped_base, *grid, "--ray", "--workers", "2") == 0  # a local cluster
    on_ray = json.loads(capsys.readouterr().out)  # Ray's own notes went to stderr
    assert not ray.is_initialized()  # the run shut down the cluster it started
    assert on_ray["ran_on"] == "Ray (a local Ray cluster)"
    for seq, par in zip(sequential["variants"], on_ray["variants"], strict=True):
        assert (par["status"], par["overrides"]) == (seq["status"], seq["overrides"])
        assert par["final_loss"] == pytest.approx(seq["final_loss"], rel=1e-5)
