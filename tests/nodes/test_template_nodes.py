"""The nodes the Z-Image / Qwen-Image templates need: ComfySwitchNode (lazy: the branch not
chosen never runs), ResolutionSelector (its table) and SaveImageAdvanced (PNG 8/16-bit, EXR)."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from comfyless.engine.cache import OutputCache
from comfyless.engine.context import RunContext
from comfyless.engine.execute import run_workflow
from comfyless.engine.legacy import widget_layout
from comfyless.engine.ui_format import widget_values
from comfyless.engine.validate import validate
from comfyless.engine.workflow import Link
from comfyless.nodes.images import SaveImageAdvanced
from comfyless.nodes.impl.resolution import resolution_sides
from comfyless.typesys import IMAGE, INT, STRING, Input, Node, NodeSchema, Output, Result
from comfyless.typesys.errors import NodeExecutionError

RAN: list[str] = []  # tags of the Tagged nodes, in the order they ran


class Tagged(Node):
    """Test node: passes `value` on and records its `tag` (which nodes ran, in what order)."""

    schema = NodeSchema("TestTagged", inputs=(Input("tag", STRING, default=""),
                                              Input("value", INT, default=0, min=-99, max=99)),
                        outputs=(Output("INT", INT),))

    @staticmethod
    def execute(ctx, tag, value):
        RAN.append(tag)
        return (value,)


class Seen(Node):
    """Test output node: records what reached it."""

    schema = NodeSchema("TestSeen", inputs=(Input("value", INT, force_input=True),),
                        outputs=(), output_node=True)

    @staticmethod
    def execute(ctx, value):
        RAN.append(f"seen {value}")
        return Result((), {"value": [value]})


@pytest.fixture
def reg(registry):
    registry.register(Tagged)
    registry.register(Seen)
    RAN.clear()
    return registry


def _switch_graph(builder, switch) -> dict:
    """on_false <- f2 <- f1 (value 1 -> 2); on_true <- t1 (value 7); output -> TestSeen."""
    f1 = builder.add("TestTagged", tag="f1", value=1)
    f2 = builder.add("TestTagged", tag="f2", value=f1.out())
    t1 = builder.add("TestTagged", tag="t1", value=7)
    sw = builder.add("ComfySwitchNode", switch=switch, on_false=f2.out(), on_true=t1.out())
    builder.add("TestSeen", value=sw.out())
    return builder.build()


# -- ComfySwitchNode ---------------------------------------------------------------------------

@pytest.mark.parametrize(("switch", "ran"), [(True, ["t1", "seen 7"]),
                                             (False, ["f1", "f2", "seen 1"])])
def test_switch_runs_only_the_chosen_branch(reg, builder, ctx, switch, ran):
    result = run_workflow(_switch_graph(builder, switch), ctx, reg, cache=OutputCache())
    assert RAN == ran  # the other branch's nodes (and their producers) never ran
    seen = next(v for v in result.ui.values() if "value" in v)
    assert seen["value"] == [7 if switch else 1]


def test_switch_value_computed_at_run_time(reg, builder, ctx):
    flag = builder.add("PrimitiveBoolean", value=True)
    graph = _switch_graph(builder, flag.out())
    result = run_workflow(graph, ctx, reg, cache=OutputCache())
    assert RAN == ["t1", "seen 7"]
    assert "1" in result.executed and "2" not in result.executed  # flag ran, f1 did not


def test_branch_needed_elsewhere_still_runs(reg, builder, ctx):
    _switch_graph(builder, True)
    builder.add("TestSeen", value=Link("2", 0))  # f2 also feeds an output node directly
    run_workflow(builder.build(), ctx, reg, cache=OutputCache())
    assert sorted(RAN) == sorted(["f1", "f2", "t1", "seen 7", "seen 1"])


def test_cached_switch_reruns_only_when_its_recipe_changes(reg, builder, ctx):
    cache = OutputCache()
    run_workflow(_switch_graph(builder, False), ctx, reg, cache=cache)
    RAN.clear()
    run_workflow(_switch_graph(builder, False), ctx, reg, cache=cache)
    assert RAN == []  # every node a cache hit
    run_workflow(_switch_graph(builder, True), ctx, reg, cache=cache)
    assert RAN == ["t1", "seen 7"]  # flipped: the other branch runs for the first time


def test_nested_switches(reg, builder, ctx):
    a = builder.add("TestTagged", tag="a", value=1)
    b = builder.add("TestTagged", tag="b", value=2)
    c = builder.add("TestTagged", tag="c", value=3)
    inner = builder.add("ComfySwitchNode", switch=False, on_false=a.out(), on_true=b.out())
    outer = builder.add("ComfySwitchNode", switch=True, on_false=c.out(), on_true=inner.out())
    builder.add("TestSeen", value=outer.out())
    run_workflow(builder.build(), ctx, reg, cache=OutputCache())
    assert RAN == ["a", "seen 1"]


def test_unchosen_branch_is_still_validated(reg, builder):
    graph = _switch_graph(builder, True)
    graph["1"].inputs["value"] = 1000  # f1, on the branch not chosen, is out of range
    errors = validate(graph, reg)
    assert [(e.code, e.node_id, e.input_name) for e in errors] == \
        [("value_bigger_than_max", "1", "value")]


def test_switch_inputs_are_required_and_lazy(reg, builder):
    only = builder.add("TestTagged", tag="t", value=1)
    sw = builder.add("ComfySwitchNode", switch=True, on_true=only.out())
    builder.add("TestSeen", value=sw.out())
    errors = validate(builder.build(), reg)
    assert [(e.code, e.input_name) for e in errors] == [("required_input_missing", "on_false")]
    schema = reg["ComfySwitchNode"].schema
    assert [i.name for i in schema.inputs if i.lazy] == ["on_false", "on_true"]


class _BadLazy(Node):
    schema = NodeSchema("TestBadLazy", inputs=(Input("x", INT, force_input=True, lazy=True),),
                        outputs=(Output("INT", INT),))

    @staticmethod
    def check_lazy_status(x=None):
        raise RuntimeError("hook broke")

    @staticmethod
    def execute(ctx, x=None):
        return (x,)


def test_failing_lazy_hook_is_a_node_error(reg, builder, ctx):
    reg.register(_BadLazy)
    bad = builder.add("TestBadLazy", x=builder.add("TestTagged", tag="t", value=1).out())
    builder.add("TestSeen", value=bad.out())
    with pytest.raises(NodeExecutionError) as info:
        run_workflow(builder.build(), ctx, reg, cache=OutputCache())
    assert info.value.node_id == "2" and "check_lazy_status" in info.value.message


# -- ResolutionSelector ------------------------------------------------------------------------

@pytest.mark.parametrize(("aspect", "megapixels", "multiple", "sides"), [
    ("1:1 (Square)", 1.0, 8, (1024, 1024)),
    ("16:9 (Widescreen)", 1.0, 8, (1368, 768)),
    ("9:16 (Portrait Widescreen)", 1.0, 8, (768, 1368)),
    ("3:2 (Photo)", 1.0, 8, (1256, 840)),
    ("4:3 (Standard)", 1.0, 8, (1184, 888)),
    ("21:9 (Ultrawide)", 1.0, 8, (1568, 672)),
    ("16:9 (Widescreen)", 0.9, 32, (1280, 736)),  # the LTX template's row
    ("16:9 (Widescreen)", 0.4, 32, (864, 480)),
    ("1:1 (Square)", 0.4, 32, (640, 640)),
    ("1:1 (Square)", 2.0, 8, (1448, 1448)),
])
def test_resolution_table(aspect, megapixels, multiple, sides):
    assert resolution_sides(aspect, megapixels, multiple) == sides


def test_resolution_selector_node(reg, builder, ctx):
    res = builder.add("ResolutionSelector", aspect_ratio="3:4 (Portrait Standard)",
                      megapixels=1.0, multiple=16)
    builder.add("TestSeen", value=res.out(0))
    builder.add("TestSeen", value=res.out(1))
    run_workflow(builder.build(), ctx, reg, cache=OutputCache())
    assert RAN == ["seen 880", "seen 1184"]  # width (node 2), then height (node 3)


def test_resolution_selector_widget_layouts(reg):
    schema = reg["ResolutionSelector"].schema
    assert widget_layout(schema)[1] == 3
    now = widget_values(schema, ["16:9 (Widescreen)", 0.9, 32], "7", "$")
    assert now == {"aspect_ratio": "16:9 (Widescreen)", "megapixels": 0.9, "multiple": 32}
    older = widget_values(schema, ["1:1 (Square)", 2], "7", "$")  # saved before `multiple`
    assert older == {"aspect_ratio": "1:1 (Square)", "megapixels": 2, "multiple": 8}


# -- SaveImageAdvanced -------------------------------------------------------------------------

PROMPT = {"3": {"class_type": "KSampler", "inputs": {"text": "ünïcode 中文"}}}
WORKFLOW = {"nodes": [], "links": []}


@pytest.fixture
def sctx(tmp_path):
    return RunContext.create(tmp_path, prompt=PROMPT, extra_pnginfo={"workflow": WORKFLOW})


def _save(sctx, reg, builder, images, **inputs) -> list[dict]:
    src = builder.add("TestImage")
    builder.add("SaveImageAdvanced", images=src.out(), filename_prefix="adv/pic", **inputs)
    reg.register(_image_source(images))
    result = run_workflow(builder.build(), sctx, reg, cache=OutputCache())
    return result.ui["2"]["images"]


def _image_source(images: torch.Tensor) -> type[Node]:
    class TestImage(Node):
        schema = NodeSchema("TestImage", outputs=(Output("IMAGE", IMAGE),))

        @staticmethod
        def execute(ctx):
            return (images,)

    return TestImage


def _png_inputs(bit_depth="8-bit"):
    return {"format": "png", "format.bit_depth": bit_depth, "format.input_color_space": "sRGB"}


def _pixels(channels: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(2, 3, 5, channels, generator=gen)  # 2 images of 3 x 5


def _png_samples(path: Path) -> np.ndarray:
    """Decode a filter-0 PNG by hand (PIL reduces 16-bit colour to 8 bits): [H, W, C]."""
    data = path.read_bytes()
    pos, idat, header = 8, b"", None
    while pos < len(data):
        size, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + size]
        header = body if kind == b"IHDR" else header
        idat += body if kind == b"IDAT" else b""
        pos += 12 + size
    width, height, depth, color = struct.unpack(">IIBB", header[:10])
    channels = {0: 1, 2: 3, 6: 4}[color]
    rows = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(height, -1)
    assert (rows[:, 0] == 0).all()
    return np.frombuffer(rows[:, 1:].tobytes(), f">u{depth // 8}").reshape(height, width, channels)


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_png_8bit_values_names_and_metadata(sctx, reg, builder, channels):
    images = _pixels(channels)
    entries = _save(sctx, reg, builder, images, **_png_inputs())
    assert entries == [{"filename": f"pic_0000{i}.png", "subfolder": "adv", "type": "output"}
                       for i in (1, 2)]
    for i, entry in enumerate(entries):
        path = sctx.paths.folders("output")[0] / "adv" / entry["filename"]
        with Image.open(path) as png:
            png.load()
            got = np.asarray(png)
            assert png.mode == {1: "L", 3: "RGB", 4: "RGBA"}[channels]
            assert json.loads(png.text["prompt"]) == PROMPT  # non-ASCII survives as \u escapes
            assert json.loads(png.text["workflow"]) == WORKFLOW
        expected = np.clip(images[i].numpy() * np.float32(255), 0, 255).astype(np.uint8)
        assert np.array_equal(got.reshape(expected.shape), expected)  # scaled, truncated


def test_png_16bit(sctx, reg, builder):
    images = _pixels(3, seed=1)
    images[0, 0, 0] = torch.tensor([-0.5, 1.5, 1.0])  # clipped to the range
    entries = _save(sctx, reg, builder, images, **_png_inputs("16-bit"))
    path = sctx.paths.folders("output")[0] / "adv" / entries[0]["filename"]
    expected = np.clip(images[0].numpy() * np.float32(65535), 0, 65535).astype(np.uint16)
    got = _png_samples(path)
    assert np.array_equal(got, expected)
    assert got[0, 0].tolist() == [0, 65535, 65535]
    with Image.open(path) as png:  # a valid PNG to Pillow too (which keeps the high bytes)
        png.load()
        assert np.array_equal(np.asarray(png), (expected >> 8).astype(np.uint8))


def test_never_overwrites(sctx, reg, builder):
    folder = sctx.paths.folders("output")[0] / "adv"
    folder.mkdir(parents=True)
    (folder / "pic_00007.png").write_bytes(b"keep")
    entries = _save(sctx, reg, builder, _pixels(3), **_png_inputs())
    assert [e["filename"] for e in entries] == ["pic_00008.png", "pic_00009.png"]
    assert (folder / "pic_00007.png").read_bytes() == b"keep"


def _read_exr(path: Path) -> tuple[dict[str, tuple[str, bytes]], dict[str, np.ndarray]]:
    """Minimal reader for uncompressed scanline EXR: (attributes, channel name -> [H, W])."""
    data = path.read_bytes()
    assert data[:4] == b"\x76\x2f\x31\x01"
    pos, attrs = 8, {}
    while data[pos] != 0:
        name_end = data.index(b"\x00", pos)
        kind_end = data.index(b"\x00", name_end + 1)
        size = struct.unpack("<i", data[kind_end + 1:kind_end + 5])[0]
        attrs[data[pos:name_end].decode()] = (data[name_end + 1:kind_end].decode(),
                                             data[kind_end + 5:kind_end + 5 + size])
        pos = kind_end + 5 + size
    x0, y0, x1, y1 = struct.unpack("<4i", attrs["dataWindow"][1])
    width, height = x1 - x0 + 1, y1 - y0 + 1
    chlist, at, names = attrs["channels"][1], 0, []
    while chlist[at] != 0:  # name NUL, then type, pLinear + 3 reserved, x/y sampling
        end = chlist.index(b"\x00", at)
        assert struct.unpack("<iB3xii", chlist[end + 1:end + 17]) == (2, 0, 1, 1)  # FLOAT
        names.append(chlist[at:end].decode())
        at = end + 17
    offsets = struct.unpack(f"<{height}Q", data[pos + 1:pos + 1 + 8 * height])
    planes = {n: np.empty((height, width), np.float32) for n in names}
    for offset in offsets:
        y, size = struct.unpack("<ii", data[offset:offset + 8])
        row = np.frombuffer(data[offset + 8:offset + 8 + size], "<f4").reshape(len(names), width)
        for k, n in enumerate(names):
            planes[n][y] = row[k]
    return attrs, planes


def _srgb_to_linear(x):
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def _hlg_to_linear(x):
    a, b, c = 0.17883277, 0.28466892, 0.55991072928
    return np.where(x <= 0.5, x * x / 3, (np.exp((x - c) / a) + b) / 12)


@pytest.mark.parametrize(("space", "curve", "primaries"), [
    ("sRGB", _srgb_to_linear, (0.64, 0.33, 0.30, 0.60, 0.15, 0.06, 0.3127, 0.3290)),
    ("HDR", _hlg_to_linear, (0.708, 0.292, 0.170, 0.797, 0.131, 0.046, 0.3127, 0.3290)),
    ("linear", lambda x: x, (0.64, 0.33, 0.30, 0.60, 0.15, 0.06, 0.3127, 0.3290)),
])
def test_exr_is_scene_linear_float(sctx, reg, builder, space, curve, primaries):
    images = _pixels(4, seed=2).double()
    entries = _save(sctx, reg, builder, images.float(), **{
        "format": "exr", "format.bit_depth": "32-bit float", "format.input_color_space": space})
    assert [e["filename"] for e in entries] == ["pic_00001.exr", "pic_00002.exr"]
    path = sctx.paths.folders("output")[0] / "adv" / entries[1]["filename"]
    attrs, planes = _read_exr(path)
    assert sorted(planes) == ["A", "B", "G", "R"]
    expected = images[1].numpy()
    for k, name in enumerate("RGB"):
        np.testing.assert_allclose(planes[name], curve(expected[:, :, k]), rtol=2e-6, atol=1e-7)
    np.testing.assert_array_equal(planes["A"], expected[:, :, 3].astype(np.float32))  # as is
    assert json.loads(attrs["prompt"][1]) == PROMPT
    assert json.loads(attrs["workflow"][1]) == WORKFLOW
    assert attrs["chromaticities"][0] == "chromaticities"
    np.testing.assert_allclose(struct.unpack("<8f", attrs["chromaticities"][1]), primaries,
                               rtol=1e-6)


def test_exr_read_by_openexr(sctx, reg, builder):
    exr = pytest.importorskip("OpenEXR")  # the reference library, when installed
    images = _pixels(3, seed=3)
    entries = _save(sctx, reg, builder, images, **{
        "format": "exr", "format.bit_depth": "32-bit float", "format.input_color_space": "linear"})
    path = sctx.paths.folders("output")[0] / "adv" / entries[0]["filename"]
    with exr.File(str(path)) as f:
        assert np.array_equal(f.channels()["RGB"].pixels, images[0].numpy())
        assert json.loads(f.header()["prompt"]) == PROMPT


@pytest.mark.parametrize(("inputs", "bad"), [
    ({"format": "png", "format.bit_depth": "32-bit float", "format.input_color_space": "sRGB"},
     "format.bit_depth"),
    ({"format": "png", "format.bit_depth": "8-bit", "format.input_color_space": "HDR"},
     "format.input_color_space"),
    ({"format": "exr", "format.bit_depth": "16-bit", "format.input_color_space": "linear"},
     "format.bit_depth"),
])
def test_sub_inputs_must_belong_to_the_format(reg, builder, inputs, bad):
    reg.register(_image_source(torch.zeros(1, 2, 2, 3)))
    builder.add("SaveImageAdvanced", images=builder.add("TestImage").out(),
                filename_prefix="x", **inputs)
    errors = validate(builder.build(), reg)
    assert [(e.code, e.input_name) for e in errors] == [("custom_validation_failed", bad)]


def test_widgets_values_map_to_the_wire_names():
    values = widget_values(SaveImageAdvanced.schema, ["Z_image_base", "png", "8-bit", "sRGB"],
                           "95", "$")
    assert values == {"filename_prefix": "Z_image_base", "format": "png",
                      "format.bit_depth": "8-bit", "format.input_color_space": "sRGB"}
