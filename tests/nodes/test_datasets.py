"""Dataset nodes, both eras, on real image folders written with Pillow in tmp_path."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from comfyless.engine.context import RunContext
from comfyless.nodes import datasets as ds
from comfyless.typesys.errors import InvalidValue
from tests.floats import assert_close_scaled


class FakeVAE:
    """VAE.encode contract: [B, H, W, 3] in [0, 1] -> [B, 4, H/8, W/8]."""

    def __init__(self):
        self.calls = 0

    def encode(self, pixels):
        self.calls += 1
        assert pixels.ndim == 4 and pixels.shape[-1] == 3
        pooled = torch.nn.functional.avg_pool2d(pixels.movedim(-1, 1), 8)
        return torch.cat([pooled, pooled.mean(1, keepdim=True)], dim=1)


class FakeClip:
    """CLIP contract: tokenize(text) and encode_from_tokens(tokens, return_pooled=True)."""

    def __init__(self):
        self.encoded: list[str] = []

    def tokenize(self, text):
        return {"l": [[len(text), *map(ord, text[:3])]], "text": text}

    def encode_from_tokens(self, tokens, return_pooled=False):
        self.encoded.append(tokens["text"])
        cond = torch.full((1, 77, 8), float(len(tokens["text"])))
        return cond, torch.full((1, 8), float(len(tokens["text"])))


@pytest.fixture
def base(tmp_path):
    (tmp_path / "input").mkdir()
    return tmp_path


@pytest.fixture
def ctx(base):
    return RunContext.create(base).for_node("3", "Dataset")


def _img(path, w=16, h=8, value=0, mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode == "RGB":
        Image.new("RGB", (w, h), (value, value // 2, 255 - value)).save(path)
    elif mode == "RGBA":
        Image.new("RGBA", (w, h), (value, 0, 0, 128)).save(path)
    elif mode == "L":
        Image.new("L", (w, h), value).save(path)
    elif mode == "I;16":
        Image.fromarray(np.full((h, w), value * 257, np.uint16)).save(path)
    elif mode == "P":
        Image.new("RGB", (w, h), (value, 0, 0)).convert("P").save(path)
    return path


def _value(image):
    return round(float(image[0, 0, 0, 0]) * 255)


def test_folder_sorted_and_filtered(base, ctx):
    folder = base / "input" / "set"
    for name, value in [("c.png", 30), ("a.jpg", 10), ("B.PNG", 20), ("d.webp", 40)]:
        _img(folder / name, value=value)
    (folder / "notes.txt").write_text("x")
    (folder / "sub").mkdir()
    _img(folder / "sub" / "z.png", value=99)
    (images,) = ds.LoadImageDataSetFromFolder.execute(ctx, folder="set")
    assert len(images) == 4
    assert [tuple(i.shape) for i in images] == [(1, 8, 16, 3)] * 4
    assert [_value(i) for i in images] == [20, 10, 30, 40]  # B.PNG a.jpg c.png d.webp


def test_modes_become_rgb_float(base, ctx):
    folder = base / "input" / "modes"
    for i, mode in enumerate(["RGB", "RGBA", "L", "I;16", "P"]):
        _img(folder / f"{i}.png", value=200, mode=mode)
    (images,) = ds.LoadImageDataSetFromFolder.execute(ctx, folder="modes")
    for image in images:
        assert image.shape == (1, 8, 16, 3) and image.dtype == torch.float32
        assert 0.0 <= image.min() and image.max() <= 1.0
    assert torch.allclose(images[2][0, 0, 0], torch.full((3,), 200 / 255))  # L
    assert torch.allclose(images[3][0, 0, 0], torch.full((3,), 200 / 255))  # I;16
    assert abs(float(images[4][0, 0, 0, 0]) - 200 / 255) < 0.02  # P (palette-quantised)


def test_exif_orientation_applied(base, ctx):
    exif = Image.Exif()
    exif[0x0112] = 8
    path = base / "input" / "rot" / "a.jpg"
    path.parent.mkdir()
    Image.new("RGB", (20, 10)).save(path, exif=exif)
    (images,) = ds.LoadImageDataSetFromFolder.execute(ctx, folder="rot")
    assert images[0].shape == (1, 20, 10, 3)


def test_errors_name_folder_and_file(base, ctx):
    (base / "input" / "empty").mkdir()
    with pytest.raises(ValueError, match="empty"):
        ds.LoadImageDataSetFromFolder.execute(ctx, folder="empty")
    with pytest.raises(InvalidValue) as err:
        ds.LoadImageDataSetFromFolder.execute(ctx, folder="missing")
    assert err.value.input_name == "folder" and err.value.node_id == "3"
    with pytest.raises(InvalidValue):
        ds.LoadImageDataSetFromFolder.execute(ctx, folder="../..")
    bad = base / "input" / "bad"
    _img(bad / "ok.png")
    (bad / "zz.jpg").write_bytes(b"\xff\xd8 truncated")
    with pytest.raises(ValueError, match="zz.jpg"):
        ds.LoadImageDataSetFromFolder.execute(ctx, folder="bad")


def test_image_text_captions_and_repeats(base, ctx):
    folder = base / "input" / "kohya"
    _img(folder / "top.png", value=1)
    (folder / "top.txt").write_text("  a top image \n")
    _img(folder / "3_person" / "p1.png", value=2)
    (folder / "3_person" / "p1.txt").write_text("person one")
    _img(folder / "3_person" / "p2.png", value=3)  # no caption -> ""
    _img(folder / "misc" / "m.png", value=4)
    (folder / "misc" / "m.txt").write_text("misc")
    images, texts = ds.LoadImageTextDataSetFromFolder.execute(ctx, folder="kohya")
    assert [_value(i) for i in images] == [2, 3, 2, 3, 2, 3, 4, 1]
    assert texts == ["person one", "", "person one", "", "person one", "", "misc",
                     "a top image"]


def test_resize_and_crop_nodes():
    image = torch.rand(2, 40, 100, 3)
    (short,) = ds.ResizeImagesByShorterEdge.execute(None, images=image, shorter_edge=20)
    assert short.shape == (2, 20, 50, 3)
    (long_,) = ds.ResizeImagesByLongerEdge.execute(None, images=image, longer_edge=30)
    assert long_.shape == (2, 12, 30, 3)
    (center,) = ds.CenterCropImages.execute(None, images=image, width=20, height=200)
    assert center.shape == (2, 40, 20, 3)
    assert torch.equal(center[0], image[0, :, 40:60])
    (r1,) = ds.RandomCropImages.execute(None, images=image, width=10, height=10, seed=5)
    (r2,) = ds.RandomCropImages.execute(None, images=image, width=10, height=10, seed=5)
    assert r1.shape == (2, 10, 10, 3) and torch.equal(r1, r2)
    found = [(t, left) for t in range(31) for left in range(91)
             if torch.equal(image[0, t:t + 10, left:left + 10], r1[0])]
    assert len(found) == 1
    t, left = found[0]
    assert torch.equal(image[1, t:t + 10, left:left + 10], r1[1])  # same offsets per image


def test_resize_is_lanczos_on_a_flat_image():
    flat = torch.full((1, 16, 16, 3), 0.25)
    (out,) = ds.ResizeImagesByShorterEdge.execute(None, images=flat, shorter_edge=8)
    assert torch.allclose(out, torch.full((1, 8, 8, 3), 0.25), atol=1e-5)


def test_text_and_adjust_nodes():
    assert ds.TextToLowercase.execute(None, texts="AbC") == ("abc",)
    assert ds.AddTextPrefix.execute(None, texts="cat", prefix="sks ") == ("sks cat",)
    assert ds.AddTextSuffix.execute(None, texts="cat", suffix=", photo") == ("cat, photo",)
    assert ds.ReplaceText.execute(None, texts="a cat", find="cat", replace="dog") == ("a dog",)
    assert ds.TruncateText.execute(None, texts="x" * 100, max_length=77) == ("x" * 77,)
    assert ds.StripWhitespace.execute(None, texts="  x \n") == ("x",)
    image = torch.full((1, 2, 2, 3), 0.75)
    assert torch.allclose(ds.AdjustBrightness.execute(None, images=image, factor=2.0)[0],
                          torch.ones(1, 2, 2, 3))
    assert torch.allclose(ds.AdjustContrast.execute(None, images=image, factor=2.0)[0],
                          torch.ones(1, 2, 2, 3))
    assert torch.allclose(ds.NormalizeImages.execute(None, images=image, mean=0.5, std=0.5)[0],
                          torch.full((1, 2, 2, 3), 0.5))


def test_shuffle_is_seeded_and_keeps_pairs():
    images = [torch.full((1, 2, 2, 3), float(i)) for i in range(8)]
    texts = [f"t{i}" for i in range(8)]
    (a,) = ds.ShuffleDataset.execute(None, images=images, seed=[3])
    (b,) = ds.ShuffleDataset.execute(None, images=images, seed=[3])
    assert [int(x[0, 0, 0, 0]) for x in a] == [int(x[0, 0, 0, 0]) for x in b]
    assert sorted(int(x[0, 0, 0, 0]) for x in a) == list(range(8))
    assert [int(x[0, 0, 0, 0]) for x in a] != list(range(8))
    si, st = ds.ShuffleImageTextDataset.execute(None, images=images, texts=texts, seed=[3])
    assert [int(x[0, 0, 0, 0]) for x in si] == [int(t[1]) for t in st]
    assert st != texts
    with pytest.raises(ValueError, match="texts"):
        ds.ShuffleImageTextDataset.execute(None, images=images, texts=texts[:3], seed=[0])


def test_dedup_and_grid():
    a = torch.zeros(1, 16, 16, 3)
    a[:, :8] = 1.0
    b = torch.zeros(1, 16, 16, 3)
    b[:, :, :8] = 1.0
    (kept,) = ds.ImageDeduplication.execute(None, images=[a, b, a.clone()],
                                            similarity_threshold=[0.95])
    assert len(kept) == 2 and torch.equal(kept[0], a) and torch.equal(kept[1], b)
    (grid,) = ds.ImageGrid.execute(None, images=[a, b, a], columns=[2], cell_width=[32],
                                   cell_height=[32], padding=[4])
    assert grid.shape == (1, 68, 68, 3)
    assert grid[0, 36:, 36:].abs().sum() == 0  # empty last cell stays black


def test_make_training_dataset_pairs_and_encodes():
    vae, clip = FakeVAE(), FakeClip()
    images = [torch.rand(1, 16, 16, 3), torch.rand(2, 8, 16, 3)]  # a batch is split
    latents, conds = ds.MakeTrainingDataset.execute(
        RunContext.create("/nonexistent"), images=images, vae=[vae], clip=[clip],
        texts=["one", "two", "one"])
    assert [tuple(lat["samples"].shape) for lat in latents] == [(1, 4, 2, 2), (1, 4, 1, 2),
                                                                 (1, 4, 1, 2)]
    assert_close_scaled(latents[1]["samples"], vae.encode(images[1][:1]))
    assert clip.encoded == ["one", "two"]  # repeats encoded once
    assert [float(c[0][0][0, 0, 0]) for c in conds] == [3.0, 3.0, 3.0]
    assert conds[0][0][1]["pooled_output"].shape == (1, 8)
    assert not latents[0]["samples"].requires_grad


def test_make_training_dataset_text_rules():
    images = [torch.rand(1, 8, 8, 3) for _ in range(3)]
    clip = FakeClip()
    _, conds = ds.MakeTrainingDataset.execute(RunContext.create("/x"), images=images,
                                              vae=[FakeVAE()], clip=[clip])
    assert len(conds) == 3 and clip.encoded == [""]
    clip = FakeClip()
    ds.MakeTrainingDataset.execute(RunContext.create("/x"), images=images, vae=[FakeVAE()],
                                   clip=[clip], texts=["all"])
    assert clip.encoded == ["all"]
    with pytest.raises(ValueError, match="3 images but 2 texts"):
        ds.MakeTrainingDataset.execute(RunContext.create("/x"), images=images, vae=[FakeVAE()],
                                       clip=[FakeClip()], texts=["a", "b"])


def test_resolution_bucket_groups_in_first_seen_order():
    def lat(h, w, b=1, v=0.0):
        return {"samples": torch.full((b, 4, h, w), v)}

    def cond(name):
        return [[torch.zeros(1, 77, 8), {"pooled_output": None, "name": name}]]

    latents = [lat(8, 8, v=1), lat(4, 8, v=2), lat(8, 8, b=2, v=3)]
    conds = [cond("a"), cond("b"), cond("c") + cond("d")]
    out_l, out_c = ds.ResolutionBucket.execute(None, latents=latents, conditioning=conds)
    assert [tuple(x["samples"].shape) for x in out_l] == [(3, 4, 8, 8), (1, 4, 4, 8)]
    assert out_l[0]["samples"][:, 0, 0, 0].tolist() == [1, 3, 3]
    assert [[e[1]["name"] for e in c] for c in out_c] == [["a", "c", "d"], ["b"]]
    with pytest.raises(ValueError, match="conditioning"):
        ds.ResolutionBucket.execute(None, latents=latents, conditioning=conds[:2])


def test_legacy_folder_batch_resize_methods(base, ctx):
    folder = base / "input" / "legacy"
    _img(folder / "a.png", w=16, h=8, value=100)
    _img(folder / "b.png", w=8, h=8, value=200)
    with pytest.raises(ValueError, match="b.png"):
        ds.LoadImageSetFromFolderNode.execute(ctx, folder="legacy")
    for method in ("Stretch", "Crop", "Pad"):
        (batch,) = ds.LoadImageSetFromFolderNode.execute(ctx, folder="legacy",
                                                         resize_method=method)
        assert batch.shape == (2, 8, 16, 3)
    (crop,) = ds.LoadImageSetFromFolderNode.execute(ctx, folder="legacy", resize_method="Crop")
    assert crop[1, :, 8:].abs().sum() == 0 and _value(crop[1:]) == 200
    (pad,) = ds.LoadImageSetFromFolderNode.execute(ctx, folder="legacy", resize_method="Pad")
    assert pad[1, :, :4].abs().sum() == 0 and pad[1, :, 12:].abs().sum() == 0
    assert torch.allclose(pad[1, :, 4:12, 0], torch.full((8, 8), 200 / 255), atol=1e-4)


def test_legacy_image_set_node(base, ctx):
    _img(base / "input" / "x.png", value=10)
    _img(base / "input" / "y.png", value=20)
    (batch,) = ds.LoadImageSetNode.execute(ctx, images=["y.png", "x.png"],
                                           resize_method=["None"])
    assert batch.shape == (2, 8, 16, 3) and [_value(batch[i:i + 1]) for i in (0, 1)] == [20, 10]


def test_legacy_image_text_set(base, ctx):
    folder = base / "input" / "lt"
    _img(folder / "a.png", w=16, h=16, value=50)
    (folder / "a.txt").write_text("alpha")
    _img(folder / "b.png", w=32, h=32, value=60)  # no caption: still exactly one entry
    clip = FakeClip()
    batch, cond = ds.LoadImageTextSetFromFolderNode.execute(
        ctx, folder="lt", clip=clip, resize_method="Stretch", width=8, height=12)
    assert batch.shape == (2, 12, 8, 3)
    assert len(cond) == 2 and clip.encoded == ["alpha", ""]
    with pytest.raises(ValueError, match="'width'"):
        ds.LoadImageTextSetFromFolderNode.execute(ctx, folder="lt", clip=clip, width=0)


def test_schemas_match_spec():
    folder = ds.LoadImageTextDataSetFromFolder.schema.input("folder")
    assert folder.choices_from == "input" and folder.choices_dirs_only
    assert [o.is_list for o in ds.LoadImageTextDataSetFromFolder.schema.outputs] == [True, True]
    assert ds.MakeTrainingDataset.schema.is_input_list
    assert ds.MakeTrainingDataset.schema.input("texts").force_input
    assert ds.ResolutionBucket.schema.is_input_list
    crop = ds.RandomCropImages.schema
    assert [i.name for i in crop.inputs] == ["images", "width", "height", "seed"]
    assert crop.input("seed").ui_extra_values == 1
    legacy = ds.LoadImageTextSetFromFolderNode.schema
    assert [i.name for i in legacy.inputs] == ["folder", "clip", "resize_method", "width",
                                               "height"]
    assert legacy.input("width").default == -1 and legacy.input("width").min == -1
    assert legacy.input("resize_method").choices == ("None", "Stretch", "Crop", "Pad")


def test_dataset_graph_runs_through_the_engine(base, builder):
    from comfyless.engine.execute import run_workflow

    for i in range(3):
        _img(base / "input" / "set" / "2_x" / f"{i}.png", value=i * 50)
        (base / "input" / "set" / "2_x" / f"{i}.txt").write_text(f"Cap {i}")
    load = builder.add("LoadImageTextDataSetFromFolder", folder="set")
    lower = builder.add("TextToLowercase", texts=load.out(1))
    shuffle = builder.add("ShuffleImageTextDataset", images=load.out(0), texts=lower.out(0),
                          seed=1)
    small = builder.add("ResizeImagesByShorterEdge", images=shuffle.out(0), shorter_edge=4)
    save = builder.add("SaveImage", images=small.out(0), filename_prefix="ds/img")
    result = run_workflow(builder.build(), RunContext.create(base))
    assert len(result.ui[save.id]["images"]) == 6  # 3 images x 2 repeats, one call each
    texts = result.outputs[shuffle.id][1]
    assert sorted(texts) == sorted(["cap 0", "cap 1", "cap 2"] * 2)
    assert all(img.shape == (1, 4, 8, 3) for img in result.outputs[small.id][0])
    assert len(list((base / "output" / "ds").glob("img_*_.png"))) == 6


def test_training_dataset_round_trip_safetensors(base, ctx):
    latents = [{"samples": torch.randn(1, 4, 2, 2, dtype=torch.float16)} for _ in range(5)]
    conds = [[[torch.randn(1, 77, 8), {"pooled_output": torch.randn(1, 8), "width": 64}]]
             for _ in range(5)]
    conds[2][0][1]["pooled_output"] = None
    assert ds.SaveTrainingDataset.execute(ctx, latents=latents, conditioning=conds,
                                          folder_name=["sets/mine"], shard_size=[2]) == ()
    folder = base / "datasets" / "sets" / "mine"
    assert sorted(p.name for p in folder.iterdir()) == [
        "metadata.json", "shard_0000.safetensors", "shard_0001.safetensors",
        "shard_0002.safetensors"]
    assert "sets/mine" in ctx.paths.list_dirs("datasets")
    out_l, out_c = ds.LoadTrainingDataset.execute(ctx, folder_name="sets/mine")
    assert len(out_l) == 5 and len(out_c) == 5
    for a, b in zip(latents, out_l, strict=True):
        assert b["samples"].dtype == torch.float16 and torch.equal(a["samples"], b["samples"])
    for a, b in zip(conds, out_c, strict=True):
        assert torch.equal(a[0][0], b[0][0]) and b[0][1]["width"] == 64
    assert out_c[2][0][1]["pooled_output"] is None
    # a smaller re-save leaves no stale shard behind
    ds.SaveTrainingDataset.execute(ctx, latents=latents[:1], conditioning=conds[:1],
                                   folder_name=["sets/mine"], shard_size=[2])
    assert len(list(folder.glob("shard_*"))) == 1
    assert len(ds.LoadTrainingDataset.execute(ctx, folder_name="sets/mine")[0]) == 1


def test_training_dataset_refuses_root_escape_and_pickles(base, ctx):
    with pytest.raises(ValueError, match="folder_name"):
        ds.SaveTrainingDataset.execute(ctx, latents=[], conditioning=[], folder_name=["."],
                                       shard_size=[1])
    with pytest.raises(InvalidValue):
        ds.SaveTrainingDataset.execute(ctx, latents=[], conditioning=[],
                                       folder_name=["../out"], shard_size=[1])
    folder = base / "datasets" / "old"
    folder.mkdir(parents=True)
    torch.save({"latents": [{"samples": torch.ones(1, 4, 1, 1)}], "conditioning": [[]]},
               folder / "shard_0000.pkl")
    out_l, _ = ds.LoadTrainingDataset.execute(ctx, folder_name="old")
    assert torch.equal(out_l[0]["samples"], torch.ones(1, 4, 1, 1))
    evil = base / "datasets" / "evil"
    evil.mkdir()
    torch.save({"latents": [object()], "conditioning": []}, evil / "shard_0000.pkl")
    with pytest.raises(ValueError, match="weights_only"):
        ds.LoadTrainingDataset.execute(ctx, folder_name="evil")


def test_save_image_text_dataset_to_folder(base, ctx):
    images = [torch.rand(1, 4, 6, 3), torch.rand(2, 4, 6, 3)]
    texts = ["a", "b", "c"]
    result = ds.SaveImageTextDataSetToFolder.execute(
        ctx, images=images, texts=texts, folder_name=["sets/out"], filename_prefix=["img"],
        mode=["overwrite"])
    folder = base / "output" / "sets" / "out"
    assert [e["filename"] for e in result.ui["images"]] == [
        "img_00000.png", "img_00001.png", "img_00002.png"]
    assert (folder / "img_00002.txt").read_text() == "c"
    ds.SaveImageTextDataSetToFolder.execute(
        ctx, images=images, texts=texts, folder_name=["sets/out"], filename_prefix=["img"],
        mode=["increment"])
    ds.SaveImageDataSetToFolder.execute(
        ctx, images=images, folder_name=["sets/out"], filename_prefix=["img"], mode=["increment"])
    names = sorted(p.name for p in folder.glob("img_0000?_0000?.png"))
    assert names == [f"img_0000{r}_0000{i}.png" for r in (1, 2) for i in range(3)]
    # what was saved loads back as a dataset with the same captions
    shutil.copytree(folder, base / "input" / "again")
    loaded, captions = ds.LoadImageTextDataSetFromFolder.execute(ctx, folder="again")
    assert sorted(captions) == sorted(["a", "b", "c"] * 2 + [""] * 3) and len(loaded) == 9
    with pytest.raises(ValueError, match="3 images but 2 texts"):
        ds.SaveImageTextDataSetToFolder.execute(
            ctx, images=images, texts=texts[:2], folder_name=["x"], filename_prefix=["i"],
            mode=["overwrite"])


def test_real_models_dataset_pipeline(base, builder, request):
    """Folder -> MakeTrainingDataset (tiny real VAE + CLIP) -> buckets -> safetensors shards."""
    pytest.importorskip("comfyless.models.vae")
    pytest.importorskip("comfyless.models.clip")
    tiny_sd15_checkpoint = request.getfixturevalue("tiny_sd15_checkpoint")
    from comfyless.engine.execute import run_workflow
    from tests.fixtures_models import install_model

    ctx = RunContext.create(base)
    name = install_model(ctx, tiny_sd15_checkpoint)
    for i, (w, h) in enumerate([(16, 16), (24, 16), (16, 16)]):
        _img(base / "input" / "data" / f"{i}.png", w=w, h=h, value=60 * i)
        (base / "input" / "data" / f"{i}.txt").write_text(f"photo number {i}")
    ckpt = builder.add("CheckpointLoaderSimple", ckpt_name=name)
    load = builder.add("LoadImageTextDataSetFromFolder", folder="data")
    make = builder.add("MakeTrainingDataset", images=load.out(0), vae=ckpt.out(2),
                       clip=ckpt.out(1), texts=load.out(1))
    bucket = builder.add("ResolutionBucket", latents=make.out(0), conditioning=make.out(1))
    builder.add("SaveTrainingDataset", latents=bucket.out(0), conditioning=bucket.out(1),
                folder_name="tiny", shard_size=1)
    result = run_workflow(builder.build(), ctx)
    latents = result.outputs[make.id][0]
    assert [tuple(x["samples"].shape[-2:]) for x in latents] == [(2, 2), (2, 3), (2, 2)]
    buckets = result.outputs[bucket.id][0]
    assert [x["samples"].shape[0] for x in buckets] == [2, 1]
    loaded, conds = ds.LoadTrainingDataset.execute(ctx, folder_name="tiny")
    assert torch.equal(loaded[0]["samples"], buckets[0]["samples"])
    assert len(conds[0]) == 2 and conds[0][0][0].shape[-2] == 77


def test_hidden_files_skipped_and_bom_captions(base, ctx):
    folder = base / "input" / "mac"
    _img(folder / "a.png", value=5)
    (folder / "a.txt").write_bytes("\ufeffcafé au lait\r\n".encode())
    (folder / "._a.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    images, texts = ds.LoadImageTextDataSetFromFolder.execute(ctx, folder="mac")
    assert len(images) == 1 and texts == ["café au lait"]


def test_repeats_are_read_and_encoded_once(base, ctx):
    folder = base / "input" / "rep"
    _img(folder / "5_x" / "a.png", value=7)
    _img(folder / "5_x" / "b.png", value=9)
    images, texts = ds.LoadImageTextDataSetFromFolder.execute(ctx, folder="rep")
    assert len(images) == 10 and images[0] is images[2]
    vae = FakeVAE()
    latents, _ = ds.MakeTrainingDataset.execute(ctx, images=images, vae=[vae], clip=[FakeClip()],
                                                texts=texts)
    assert len(latents) == 10 and vae.calls == 2
    assert torch.equal(latents[4]["samples"], latents[0]["samples"])
