"""Links in the base dir, old workflows, and save prefixes checked before anything runs
(issue 9 §3, §4, §5; DECISIONS.md "Files, links and older workflows").

Reading follows links the user made in a model/input folder (a shared store, a linked folder);
a workflow name with `..`, an absolute path or a name not in the listing is value_not_in_list.
Writing never goes through a link out of output/ (or temp/, datasets/), and a save prefix that
would is refused at validation, before any model loads.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors import safe_open

from comfyless.cli import main as comfyless
from comfyless.demo import write_demo_dataset
from comfyless.engine.cache import OutputCache
from comfyless.engine.context import RunContext
from comfyless.engine.execute import run_workflow
from comfyless.engine.load import load_workflow
from comfyless.engine.paths import BasePaths
from comfyless.engine.validate import check_workflow
from comfyless.files import check_write_target
from comfyless.nodes import REGISTRY
from comfyless.typesys.errors import InvalidValue, SchemaError, WorkflowInvalid
from comfyless.typesys.schema import Input, NodeSchema
from comfyless.typesys.types import BOOLEAN, INT, STRING

CKPT = "CheckpointLoaderSimple"


def _codes(errors):
    return [(e.code, e.node_id, e.input_name) for e in errors]


def _check(api: dict, base: Path):
    return check_workflow(load_workflow(api, REGISTRY), REGISTRY, BasePaths.resolve(base))


def _loader_only(ckpt_name: str) -> dict:
    """A checkpoint loader feeding a SaveImage through VAEDecode (validation only)."""
    return {
        "1": {"class_type": CKPT, "inputs": {"ckpt_name": ckpt_name}},
        "2": {"class_type": "EmptyLatentImage",
              "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "3": {"class_type": "VAEDecode", "inputs": {"samples": ["2", 0], "vae": ["1", 2]}},
        "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0],
                                                     "filename_prefix": "out"}},
    }


@pytest.fixture
def store(tmp_path, tiny_sd15_checkpoint) -> Path:
    """A model store outside the base dir: store/single.safetensors, store/ckpts/tiny.…"""
    store = tmp_path / "store"
    (store / "ckpts").mkdir(parents=True)
    data = tiny_sd15_checkpoint.read_bytes()
    (store / "single.safetensors").write_bytes(data)
    (store / "ckpts" / "tiny.safetensors").write_bytes(data)
    return store


@pytest.fixture
def linked_base(tmp_path, store) -> Path:
    """models/checkpoints with a linked file and a linked folder, both pointing at the store."""
    base = tmp_path / "base"
    ckpts = base / "models" / "checkpoints"
    ckpts.mkdir(parents=True)
    (ckpts / "linked.safetensors").symlink_to(store / "single.safetensors")
    (ckpts / "shared").symlink_to(store / "ckpts", target_is_directory=True)
    return base


# -- reading through links ---------------------------------------------------------------------
def test_linked_file_and_folder_are_listed_found_and_valid(linked_base, store):
    paths = BasePaths.resolve(linked_base)
    assert paths.list_files("checkpoints") == ["linked.safetensors", "shared/tiny.safetensors"]
    assert paths.list_dirs("checkpoints") == ["shared"]
    found = paths.find("checkpoints", "shared/tiny.safetensors")
    assert found.resolve() == (store / "ckpts" / "tiny.safetensors").resolve()
    for name in ("linked.safetensors", "shared/tiny.safetensors"):
        assert _check(_loader_only(name), linked_base).errors == []


def test_nodes_json_lists_what_run_accepts(linked_base, capsys):
    assert comfyless(["nodes", "--json", "--base-dir", str(linked_base)]) == 0
    info = json.loads(capsys.readouterr().out)
    choices = info[CKPT]["input"]["required"]["ckpt_name"][1]["options"]
    assert "shared/tiny.safetensors" in choices and "linked.safetensors" in choices


def test_dangling_link_is_not_a_choice(linked_base, tmp_path):
    ckpts = linked_base / "models" / "checkpoints"
    (ckpts / "gone.safetensors").symlink_to(tmp_path / "deleted.safetensors")
    paths = BasePaths.resolve(linked_base)
    assert "gone.safetensors" not in paths.list_files("checkpoints")
    errors = _check(_loader_only("gone.safetensors"), linked_base).errors
    assert _codes(errors) == [("value_not_in_list", "1", "ckpt_name")]


def test_link_loop_is_listed_once_and_ends(linked_base):
    ckpts = linked_base / "models" / "checkpoints"
    (ckpts / "sub").mkdir()
    (ckpts / "sub" / "a.safetensors").write_bytes(b"x")
    (ckpts / "sub" / "up").symlink_to("..", target_is_directory=True)  # loop to the root
    (ckpts / "self").symlink_to("self")  # a link to itself: ELOOP
    paths = BasePaths.resolve(linked_base)
    assert paths.list_files("checkpoints") == [
        "linked.safetensors", "shared/tiny.safetensors", "sub/a.safetensors"]
    assert paths.list_dirs("checkpoints") == ["shared", "sub"]


@pytest.mark.parametrize("name", ["../store/single.safetensors", "shared/../linked.safetensors",
                                  "/etc/passwd", "shared/../../store/ckpts/tiny.safetensors"])
def test_escaping_names_are_value_not_in_list_with_nearest(linked_base, store, name):
    if name.startswith("/etc"):
        name = str(store / "single.safetensors")  # an absolute path to a real model file
    errors = _check(_loader_only(name), linked_base).errors
    assert _codes(errors) == [("value_not_in_list", "1", "ckpt_name")]
    message = errors[0].message
    assert "no '..', not absolute" in message
    assert "linked.safetensors" in message or "shared/tiny.safetensors" in message


def test_input_folder_link_reads(tmp_path):
    images = tmp_path / "elsewhere" / "photos"
    write_demo_dataset(images, count=2, size=16)
    base = tmp_path / "base"
    (base / "input").mkdir(parents=True)
    (base / "input" / "photos").symlink_to(images, target_is_directory=True)
    paths = BasePaths.resolve(base)
    assert "photos" in paths.list_dirs("input")
    assert [n for n in paths.list_files("input") if n.startswith("photos/")]


def _txt2img(ckpt_name: str) -> dict:
    return {
        "1": {"class_type": CKPT, "inputs": {"ckpt_name": ckpt_name}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat", "clip": ["1", 1]}},
        "3": {"class_type": "EmptyLatentImage",
              "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "4": {"class_type": "KSampler", "inputs": {
            "seed": 3, "steps": 1, "cfg": 1.0, "sampler_name": "euler", "scheduler": "normal",
            "denoise": 1.0, "model": ["1", 0], "positive": ["2", 0], "negative": ["2", 0],
            "latent_image": ["3", 0]}},
        "5": {"class_type": "VAEDecode", "inputs": {"samples": ["4", 0], "vae": ["1", 2]}},
        "6": {"class_type": "SaveImage", "inputs": {"images": ["5", 0],
                                                     "filename_prefix": "linked"}},
    }


def test_run_loads_a_checkpoint_through_a_linked_folder(linked_base, tmp_path, capsys):
    wf = tmp_path / "wf.json"
    wf.write_text(json.dumps(_txt2img("shared/tiny.safetensors")))
    code = comfyless(["run", str(wf), "--base-dir", str(linked_base), "--json"])
    assert code == 0, capsys.readouterr().err
    saved = list((linked_base / "output").glob("linked_*.png"))
    assert len(saved) == 1 and saved[0].stat().st_size > 0


def test_run_workflow_loads_a_linked_checkpoint_file(linked_base):
    ctx = RunContext.create(linked_base)
    workflow = load_workflow(_txt2img("linked.safetensors"), REGISTRY)
    result = run_workflow(workflow, ctx, REGISTRY, cache=OutputCache())
    assert "1" in result.executed
    entry = result.ui["6"]["images"][0]
    assert (linked_base / "output" / entry["filename"]).is_file()


# -- writing never through a link out --------------------------------------------------------
def test_save_path_refuses_a_linked_output_subfolder(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    ctx = RunContext.create(tmp_path / "base")
    ctx.paths.output_dir.mkdir(parents=True)
    (ctx.paths.output_dir / "loras").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(InvalidValue, match="outside"):
        ctx.save_path("loras/run", ".safetensors", input_name="prefix")
    with pytest.raises(InvalidValue, match="outside"):  # deeper: nothing is created there
        ctx.save_path("loras/deep/run", ".safetensors", input_name="prefix")
    assert list(elsewhere.iterdir()) == []


def test_save_path_refuses_a_dangling_link_out(tmp_path):
    ctx = RunContext.create(tmp_path / "base")
    ctx.paths.output_dir.mkdir(parents=True)
    (ctx.paths.output_dir / "gone").symlink_to(tmp_path / "missing", target_is_directory=True)
    with pytest.raises(InvalidValue, match="outside"):
        ctx.save_path("gone/x", ".png")
    assert not (tmp_path / "missing").exists()


def test_links_inside_output_and_a_linked_output_root_are_fine(tmp_path):
    real_out = tmp_path / "big_disk" / "out"
    real_out.mkdir(parents=True)
    base = tmp_path / "base"
    base.mkdir()
    (base / "output").symlink_to(real_out, target_is_directory=True)  # output/ kept elsewhere
    (real_out / "real").mkdir()
    (real_out / "alias").symlink_to(real_out / "real", target_is_directory=True)
    ctx = RunContext.create(base)
    path = ctx.save_path("alias/run", ".png")
    assert path.name == "run_00001_.png"
    target = check_write_target(ctx.paths.output_dir, "new/sub/x")
    assert target == ctx.paths.output_dir / "new/sub/x"

# -- save prefixes checked at validation -------------------------------------------------------
def _training(prefix: str = "loras/ComfyUI_trained_lora", *, ckpt: str = "tiny.safetensors",
              loss_prefix: str = "loss_graph") -> dict:
    """The classic training graph (current ComfyUI), steps small."""
    return {
        "1": {"class_type": CKPT, "inputs": {"ckpt_name": ckpt}},
        "2": {"class_type": "LoadImageDataSetFromFolder", "inputs": {"folder": "train"}},
        "3": {"class_type": "VAEEncode", "inputs": {"pixels": ["2", 0], "vae": ["1", 2]}},
        "4": {"class_type": "CLIPTextEncode", "inputs": {"text": "style", "clip": ["1", 1]}},
        "5": {"class_type": "TrainLoraNode", "inputs": {
            "model": ["1", 0], "latents": ["3", 0], "positive": ["4", 0], "batch_size": 1,
            "grad_accumulation_steps": 1, "steps": 2, "learning_rate": 0.0005, "rank": 2,
            "optimizer": "AdamW", "loss_function": "MSE", "seed": 7, "training_dtype": "fp32",
            "lora_dtype": "fp32", "quantized_backward": False, "algorithm": "LoRA",
            "gradient_checkpointing": False, "checkpoint_depth": 1, "offloading": False,
            "existing_lora": "[None]", "bucket_mode": False, "bypass_mode": False}},
        "6": {"class_type": "SaveLoRA", "inputs": {"lora": ["5", 0], "prefix": prefix,
                                                    "steps": ["5", 2]}},
        "7": {"class_type": "LossGraphNode", "inputs": {"loss": ["5", 1],
                                                         "filename_prefix": loss_prefix}},
    }


@pytest.fixture
def train_base(tmp_path, tiny_sd15_checkpoint) -> Path:
    base = tmp_path / "train_base"
    (base / "models" / "checkpoints").mkdir(parents=True)
    (base / "models" / "checkpoints" / "tiny.safetensors").symlink_to(tiny_sd15_checkpoint)
    write_demo_dataset(base / "input" / "train", count=2, size=32)
    return base


@pytest.mark.parametrize("prefix", ["../../x", "/tmp/x", "loras/../../x"])
def test_bad_save_prefix_fails_validation_before_any_model_loads(train_base, prefix):
    ctx = RunContext.create(train_base)
    started: list[str] = []
    ctx.listeners.append(lambda e: started.append(e.node_id) if e.kind == "started" else None)
    with pytest.raises(WorkflowInvalid) as err:
        run_workflow(load_workflow(_training(prefix), REGISTRY), ctx, REGISTRY,
                     cache=OutputCache())
    assert _codes(err.value.errors) == [("invalid_input_type", "6", "prefix")]
    assert "node 6 (SaveLoRA)" in err.value.errors[0].message
    assert started == []  # the checkpoint loader never ran, nothing trained
    assert not (train_base / "output").exists()


def test_save_prefix_through_a_link_out_fails_validation(train_base, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (train_base / "output").mkdir()
    (train_base / "output" / "loras").symlink_to(elsewhere, target_is_directory=True)
    errors = _check(_training("loras/mine", loss_prefix="../plot"), train_base).errors
    assert _codes(errors) == [("invalid_input_type", "6", "prefix"),
                              ("invalid_input_type", "7", "filename_prefix")]
    assert "outside" in errors[0].message and "node 6 (SaveLoRA)" in errors[0].message


def test_validate_with_a_bad_prefix_never_imports_torch(train_base, tmp_path):
    wf = tmp_path / "bad.json"
    wf.write_text(json.dumps(_training("../../x")))
    code = (
        "import sys, json\n"
        "from comfyless.cli import main\n"
        f"rc = main(['validate', {str(wf)!r}, '--base-dir', {str(train_base)!r}, '--json'])\n"
        "print(json.dumps({'rc': rc, 'torch': 'torch' in sys.modules}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=Path(__file__).parents[2])
    last = json.loads(done.stdout.strip().splitlines()[-1])
    assert last["rc"] != 0 and last["torch"] is False, done.stderr
    assert "invalid_input_type" in done.stdout and "prefix" in done.stdout


@pytest.mark.parametrize("node, name, value", [
    ("SaveImageDataSetToFolder", "folder_name", "../../x"),
    ("SaveImageDataSetToFolder", "filename_prefix", "/abs/img"),
    ("SaveImageDataSetToFolder", "folder_name", "out_link/set"),
])
def test_dataset_save_folders_checked_at_validation(train_base, tmp_path, node, name, value):
    (train_base / "output").mkdir()
    (train_base / "output" / "out_link").symlink_to(tmp_path, target_is_directory=True)
    inputs = {"images": ["1", 0], "folder_name": "dataset", "filename_prefix": "image",
              "mode": "overwrite", name: value}
    api = {"1": {"class_type": "LoadImageDataSetFromFolder", "inputs": {"folder": "train"}},
           "2": {"class_type": node, "inputs": inputs}}
    assert _codes(_check(api, train_base).errors) == [("invalid_input_type", "2", name)]


def test_training_dataset_folder_checked_at_validation(train_base):
    api = _training()
    api["8"] = {"class_type": "SaveTrainingDataset", "inputs": {
        "latents": ["3", 0], "conditioning": ["4", 0], "folder_name": "../../stolen",
        "shard_size": 10}}
    assert _codes(_check(api, train_base).errors) == [
        ("invalid_input_type", "8", "folder_name")]


# -- old workflows keep running ----------------------------------------------------------------
def _comfyui_0_3_64_workflow() -> dict:
    """What ComfyUI 0.3.64 (2025-10-11) saved for a training graph: the V1 TrainLoraNode
    (no quantized_backward / checkpoint_depth / offloading / bucket_mode / bypass_mode; the
    legacy outputs model, lora, loss, steps), SaveLoRANode, LoraModelLoader without bypass."""
    return {
        "1": {"class_type": CKPT, "inputs": {"ckpt_name": "tiny.safetensors"}},
        "2": {"class_type": "LoadImageSetFromFolderNode",
              "inputs": {"folder": "train", "resize_method": "None"}},
        "3": {"class_type": "VAEEncode", "inputs": {"pixels": ["2", 0], "vae": ["1", 2]}},
        "4": {"class_type": "CLIPTextEncode", "inputs": {"text": "style", "clip": ["1", 1]}},
        "5": {"class_type": "TrainLoraNode", "inputs": {
            "model": ["1", 0], "latents": ["3", 0], "positive": ["4", 0], "batch_size": 1,
            "grad_accumulation_steps": 1, "steps": 2, "learning_rate": 0.0005, "rank": 2,
            "optimizer": "AdamW", "loss_function": "MSE", "seed": 11, "training_dtype": "fp32",
            "lora_dtype": "fp32", "algorithm": "LoRA", "gradient_checkpointing": False,
            "existing_lora": "[None]"}},
        "6": {"class_type": "SaveLoRANode", "inputs": {
            "lora": ["5", 1], "prefix": "loras/old_run", "steps": ["5", 3]}},
        "7": {"class_type": "LoraModelLoader", "inputs": {
            "model": ["1", 0], "lora": ["5", 1], "strength_model": 1.0}},
        "8": {"class_type": "EmptyLatentImage",
              "inputs": {"width": 32, "height": 32, "batch_size": 1}},
        "9": {"class_type": "KSampler", "inputs": {
            "seed": 1, "steps": 1, "cfg": 1.0, "sampler_name": "euler", "scheduler": "normal",
            "denoise": 1.0, "model": ["7", 0], "positive": ["4", 0], "negative": ["4", 0],
            "latent_image": ["8", 0]}},
        "10": {"class_type": "VAEDecode", "inputs": {"samples": ["9", 0], "vae": ["1", 2]}},
        "11": {"class_type": "SaveImage", "inputs": {"images": ["10", 0],
                                                      "filename_prefix": "old_sample"}},
    }


LATER_TRAINER_INPUTS = {"quantized_backward": False, "checkpoint_depth": 1,
                        "offloading": False, "bucket_mode": False, "bypass_mode": False}


def test_comfyui_0_3_64_workflow_validates_with_defaults(train_base, caplog):
    with caplog.at_level(logging.INFO, logger="comfyless.engine.validate"):
        checked = _check(_comfyui_0_3_64_workflow(), train_base)
    assert checked.errors == []
    assert checked.nodes["7"].constants["bypass"] is False
    trainer = checked.nodes["5"].constants
    assert {k: trainer[k] for k in LATER_TRAINER_INPUTS} == LATER_TRAINER_INPUTS
    lines = [r.getMessage() for r in caplog.records if "input 'bypass' missing" in r.getMessage()]
    assert len(lines) == 1
    assert lines[0].startswith("node 7 (LoraModelLoader): input 'bypass' missing (added in "
                               "ComfyUI on 2026-01-25")
    assert lines[0].endswith("using default False")


def test_comfyui_0_3_64_workflow_runs(train_base, caplog):
    ctx = RunContext.create(train_base)
    workflow = load_workflow(_comfyui_0_3_64_workflow(), REGISTRY)
    with caplog.at_level(logging.INFO, logger="comfyless.engine.validate"):
        result = run_workflow(workflow, ctx, REGISTRY, cache=OutputCache())
    assert [r for r in caplog.records if "'bypass' missing" in r.getMessage()].__len__() == 1
    assert {"5", "6", "7", "11"} <= set(result.executed)
    loras = list((train_base / "output" / "loras").glob("old_run_2_steps_*_.safetensors"))
    assert len(loras) == 1
    with safe_open(str(loras[0]), framework="pt") as f:
        assert f.metadata()["training.steps"] == "2"
    assert list((train_base / "output").glob("old_sample_*_.png"))


@pytest.mark.parametrize("node, name", [("7", "strength_model"), ("5", "steps"),
                                        ("6", "prefix")])
def test_inputs_that_were_always_there_stay_required(train_base, node, name):
    api = _comfyui_0_3_64_workflow()
    del api[node]["inputs"][name]
    assert _codes(_check(api, train_base).errors) == [("required_input_missing", node, name)]


def test_every_added_in_input_has_a_default_and_a_date():
    marked = {(n, i.name): i for n in REGISTRY for i in REGISTRY[n].schema.inputs if i.added_in}
    assert ("LoraModelLoader", "bypass") in marked
    assert {name for (node, name) in marked if node == "TrainLoraNode"} >= set(
        LATER_TRAINER_INPUTS)
    assert ("TrainLoraNode", "steps") not in marked and ("TrainLoraNode", "model") not in marked
    saves = {(n, i.name) for n in REGISTRY for i in REGISTRY[n].schema.inputs if i.save_to}
    assert {("SaveLoRA", "prefix"), ("SaveLoRANode", "prefix"), ("SaveImage", "filename_prefix"),
            ("LossGraphNode", "filename_prefix")} <= saves


@pytest.mark.parametrize("bad", [
    Input("x", BOOLEAN, added_in="2026-01-25"),  # no default: an old workflow gets what?
    Input("x", BOOLEAN, default=False, added_in="0.3.64"),  # not a date
    Input("x", INT, default=1, save_to="output"),  # a prefix is a STRING
    Input("x", STRING, default="a", save_to="models"),  # never written to
])
def test_schema_self_checks_the_new_fields(bad):
    with pytest.raises(SchemaError, match="input x"):
        NodeSchema("Bad", inputs=(bad,))
