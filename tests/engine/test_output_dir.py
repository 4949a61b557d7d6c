"""RunContext.output_dir (the one checked "sub-folder new files go in") and files.next_counter."""

from __future__ import annotations

import pytest

from comfyless.engine.context import RunContext
from comfyless.files import next_counter
from comfyless.typesys.errors import InvalidValue


def test_output_dir_creates_the_subfolder_and_names_the_node(tmp_path):
    ctx = RunContext.create(tmp_path).for_node("7", "SaveImageDataSetToFolder")
    made = ctx.output_dir("sets/cats")
    assert made == tmp_path / "output" / "sets" / "cats" and made.is_dir()
    # other folder kinds, and create=False only checks
    shards = ctx.output_dir("shards", folder="datasets", create=False)
    assert shards == tmp_path / "datasets" / "shards"
    assert not (tmp_path / "datasets").exists()
    for bad in ("../escape", "/abs", ""):
        with pytest.raises(InvalidValue) as err:
            ctx.output_dir(bad, input_name="folder_name")
        assert (err.value.node_id, err.value.input_name) == ("7", "folder_name")
    assert not (tmp_path / "escape").exists()
    # within: relative to (and kept inside) a folder it returned before
    assert ctx.output_dir("a/b", within=made, create=False) == made / "a" / "b"
    with pytest.raises(InvalidValue):
        ctx.output_dir("../x", within=made, input_name="filename_prefix")


def test_output_dir_refuses_a_link_out_before_creating_anything(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    ctx = RunContext.create(tmp_path / "base")
    ctx.paths.output_dir.mkdir(parents=True)
    (ctx.paths.output_dir / "out").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(InvalidValue, match="outside"):
        ctx.output_dir("out/deeper")
    assert list(elsewhere.iterdir()) == []


def test_next_counter_counts_only_its_own_pattern(tmp_path):
    for name in ("img_00003_.png", "img_00007_.webp", "img_x_.png", "imgs_00009_.png",
                 "run_00002_00000.png", "run_00004_00011.png", "run_00005_.png"):
        (tmp_path / name).write_bytes(b"")
    assert next_counter(tmp_path, "img", r"\.png") == 4  # .webp and imgs_ not counted
    assert next_counter(tmp_path, "run", r"\d+\.png") == 5  # a series: any index counts
    assert next_counter(tmp_path, "new", r"\.png") == 1


def test_save_path_and_dataset_images_keep_their_names(tmp_path):
    """The counters moved into files.next_counter: names are what they were."""
    torch = pytest.importorskip("torch")
    from comfyless.nodes.impl.datasets.saving import _save_dataset_images

    ctx = RunContext.create(tmp_path).for_node("3", "SaveImageDataSetToFolder")
    first = ctx.save_path("loras/x", ".safetensors")
    first.write_bytes(b"")
    assert ctx.save_path("loras/x", ".safetensors").name == "x_00002_.safetensors"
    images = [torch.rand(2, 8, 8, 3)]
    for _ in range(2):
        _save_dataset_images(ctx, images, ["a", "b"], "set", "img", "increment")
    _save_dataset_images(ctx, images, None, "set", "img", "overwrite")
    names = sorted(p.name for p in (tmp_path / "output" / "set").iterdir())
    assert names == ["img_00000.png", "img_00001.png",
                     "img_00001_00000.png", "img_00001_00000.txt",
                     "img_00001_00001.png", "img_00001_00001.txt",
                     "img_00002_00000.png", "img_00002_00000.txt",
                     "img_00002_00001.png", "img_00002_00001.txt"]
    assert (tmp_path / "output" / "set" / "img_00002_00001.txt").read_text() == "b"
