"""Utility nodes: StringConcatenate, StringReplace, GetImageSize, PreviewAny, SaveText,
ComfyMathExpression (a safe evaluator: never eval) and ImageCompare, run through workflows."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from comfyless.engine.cache import OutputCache
from comfyless.engine.execute import run_workflow
from comfyless.nodes.impl.utility import evaluate_expression, preview_text
from comfyless.typesys import IMAGE, Node, NodeSchema, Output
from comfyless.typesys.errors import NodeExecutionError


@pytest.fixture
def reg(registry):
    return registry


def _image_source(images: torch.Tensor) -> type[Node]:
    class TestUtilImage(Node):
        schema = NodeSchema("TestUtilImage", outputs=(Output("IMAGE", IMAGE),))

        @staticmethod
        def execute(ctx):
            return (images,)

    return TestUtilImage


def _run(builder, ctx, reg):
    return run_workflow(builder.build(), ctx, reg, cache=OutputCache())


def _error_text(excinfo) -> str:
    exc = excinfo.value
    return f"{exc} {exc.__cause__ or ''}"


def _outputs(result, node) -> tuple:
    return tuple(slot[0] for slot in result.outputs[node.id])


# -- strings ---------------------------------------------------------------------------------

def test_string_concatenate_and_replace(reg, builder, ctx):
    cat = builder.add("StringConcatenate", string_a="a cat", string_b="a dog", delimiter=", ")
    rep = builder.add("StringReplace", string=cat.out(), find="a ", replace="the ")
    builder.add("PreviewAny", source=rep.out())
    result = _run(builder, ctx, reg)
    assert _outputs(result, cat) == ("a cat, a dog",)
    assert _outputs(result, rep) == ("the cat, the dog",)
    assert result.ui["3"] == {"text": ["the cat, the dog"]}


def test_string_nodes_schema(reg):
    cat = reg["StringConcatenate"].schema
    assert [i.name for i in cat.inputs] == ["string_a", "string_b", "delimiter"]
    assert cat.input("delimiter").default == "" and cat.category == "utils/string"
    assert [i.name for i in reg["StringReplace"].schema.inputs] == ["string", "find", "replace"]


# -- GetImageSize ----------------------------------------------------------------------------

def test_get_image_size(reg, builder, ctx):
    reg.register(_image_source(torch.rand(3, 24, 40, 3)))
    src = builder.add("TestUtilImage")
    size = builder.add("GetImageSize", image=src.out())
    builder.add("PreviewAny", source=size.out(0))
    result = _run(builder, ctx, reg)
    assert _outputs(result, size) == (40, 24, 3)  # width, height, batch_size
    assert [o.name for o in reg["GetImageSize"].schema.outputs] == ["width", "height",
                                                                   "batch_size"]


def test_get_image_size_refuses_a_non_image(ctx):
    from comfyless.nodes.impl.utility import image_size
    with pytest.raises(ValueError, match="GetImageSize input 'image'.*got \\(24, 40\\)"):
        image_size(ctx, torch.rand(24, 40))


# -- PreviewAny ------------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "text"), [
    ("plain", "plain"), (3, "3"), (0.5, "0.5"), (True, "True"), (None, "None"),
    ({"a": [1, 2]}, json.dumps({"a": [1, 2]}, indent=4)),
])
def test_preview_text_rules(value, text):
    assert preview_text(value) == text


def test_preview_any_shows_a_tensor(reg, builder, ctx):
    reg.register(_image_source(torch.zeros(1, 2, 2, 3)))
    src = builder.add("TestUtilImage")
    builder.add("PreviewAny", source=src.out())
    result = _run(builder, ctx, reg)
    shown = result.ui["2"]["text"][0]
    assert shown.startswith("tensor(") and "0." in shown
    assert result.outputs["2"] == ([shown],)


# -- SaveText --------------------------------------------------------------------------------

def test_save_text_never_overwrites(reg, builder, ctx):
    text = builder.add("PrimitiveString", value="héllo\nworld")
    builder.add("SaveText", text=text.out(), filename_prefix="notes/run", format="txt")
    first = _run(builder, ctx, reg)
    second = run_workflow(builder.build(), ctx, reg, cache=OutputCache())
    out = ctx.paths.folders("output")[0]
    names = sorted(p.name for p in (out / "notes").iterdir())
    assert names == ["run_00001.txt", "run_00002.txt"]  # no temp files left either
    assert (out / "notes" / "run_00001.txt").read_text(encoding="utf-8") == "héllo\nworld"
    assert first.ui["2"]["files"] == [{"filename": "run_00001.txt", "subfolder": "notes",
                                      "type": "output"}]
    assert second.ui["2"]["text"] == ["héllo\nworld"]
    assert first.outputs["2"] == (["héllo\nworld"],)


def test_save_text_json_is_reindented_when_it_parses(reg, builder, ctx):
    good = builder.add("PrimitiveString", value='{"b": [1, 2], "ü": 1}')
    bad = builder.add("PrimitiveString", value="{not json")
    builder.add("SaveText", text=good.out(), filename_prefix="j", format="json")
    builder.add("SaveText", text=bad.out(), filename_prefix="k", format="json")
    _run(builder, ctx, reg)
    out = ctx.paths.folders("output")[0]
    written = (out / "j_00001.json").read_text(encoding="utf-8")
    assert written == json.dumps({"b": [1, 2], "ü": 1}, indent=2, ensure_ascii=False)
    assert (out / "k_00001.json").read_text(encoding="utf-8") == "{not json"


def test_save_text_refuses_a_prefix_leaving_output(reg, builder, ctx):
    from comfyless.engine.validate import validate
    text = builder.add("PrimitiveString", value="x")
    builder.add("SaveText", text=text.out(), filename_prefix="../escape", format="txt")
    errors = validate(builder.build(), reg, ctx.paths)
    assert any("filename_prefix" in e.message for e in errors)


# -- ComfyMathExpression ---------------------------------------------------------------------

def _math(builder, expression, **values):
    """A ComfyMathExpression fed by primitives: a=2.5 (float) style keyword -> values.<k>."""
    kinds = {float: "PrimitiveFloat", int: "PrimitiveInt", bool: "PrimitiveBoolean"}
    links = {f"values.{k}": builder.add(kinds[type(v)], value=v).out() for k, v in values.items()}
    return builder.add("ComfyMathExpression", expression=expression, **links)


def test_math_expression_outputs(reg, builder, ctx):
    node = _math(builder, "(a + b) * c - a / 2", a=3.0, b=4, c=2)
    builder.add("PreviewAny", source=node.out(0))
    result = _run(builder, ctx, reg)
    assert _outputs(result, node) == (12.5, 12, True)  # FLOAT, INT (truncated), BOOL


def test_math_expression_takes_constant_values_as_a_promoted_widget_sends_them(reg, builder, ctx):
    """`values.b` is a FLOAT,INT,BOOLEAN socket: a constant number passes validation unchanged
    (ComfyUI's rule for a multi-type input; subgraphs send promoted widget values this way),
    a constant of no member type does not."""
    from comfyless.engine.validate import check_workflow

    node = builder.add("ComfyMathExpression", expression="a + b",
                       **{"values.a": builder.add("PrimitiveInt", value=1).out(), "values.b": 81})
    builder.add("PreviewAny", source=node.out(1))
    assert _outputs(_run(builder, ctx, reg), node) == (82.0, 82, True)
    builder.nodes[node.id].inputs["values.b"] = "81"
    errors = check_workflow(builder.build(), reg, ctx.paths).errors
    assert [(e.node_id, e.input_name) for e in errors] == [(node.id, "values.b")]


def test_math_expression_the_ltx_halving(reg, builder, ctx):
    node = _math(builder, "a/2", a=1080)
    builder.add("PreviewAny", source=node.out(1))
    result = _run(builder, ctx, reg)
    assert _outputs(result, node) == (540.0, 540, True)


@pytest.mark.parametrize(("expression", "values", "expected"), [
    ("a // b", {"a": 7, "b": 2}, 3),
    ("a % b", {"a": 7, "b": 3}, 1),
    ("a ** 2", {"a": 3}, 9),
    ("-a + +b", {"a": 1, "b": 5}, 4),
    ("sum(values)", {"a": 1, "b": 2, "c": 3.5}, 6.5),
    ("sum(a, b)", {"a": 1, "b": 2}, 3),
    ("max(a, b) + min(values)", {"a": 1, "b": 4}, 5),
    ("round(sqrt(a)) + floor(2.7) + ceil(0.2)", {"a": 10}, 6),
    ("abs(-a) + pow(2, 3) + int(2.9) + float(1)", {"a": 1}, 12.0),
    ("log2(8) + log10(100) + log(1)", {}, 5.0),
    ("a + 1", {"a": True}, 2),  # a boolean value counts as 1
])
def test_evaluate_expression(expression, values, expected):
    assert evaluate_expression(expression, values) == pytest.approx(expected)


@pytest.mark.parametrize(("expression", "message"), [
    ("__import__('os').system('true')", "not an allowed function"),
    ("a.__class__", "Attribute"),
    ("open('x')", "not an allowed function"),
    ("'text'", "only numbers"),
    ("a if a else b", "IfExp"),
    ("a < b", "Compare"),
    ("[a, b]", "List"),
    ("lambda: 1", "Lambda"),
    ("sum(x for x in values)", "GeneratorExp"),
    ("q + 1", "unknown name 'q'"),
    ("a +", "not a valid expression"),
    ("a / 0", "ZeroDivisionError"),
    ("2 ** 5000", "exceeds the maximum"),
    ("(9 ** 4000) ** 4000", "too large"),
    ("pow(a, 4001)", "exceeds the maximum"),
    ("a & 1", "BinOp"),
    ("round(a, ndigits=1)", "keyword arguments"),
    ("(" * 5000 + "1" + ")" * 5000, "nested"),
    ("-" * 5000 + "1", "nested too deeply"),
])
def test_math_expression_refusals(reg, builder, ctx, expression, message):
    node = _math(builder, expression, a=2.0, b=3.0)
    builder.add("PreviewAny", source=node.out(0))
    with pytest.raises(NodeExecutionError) as excinfo:
        _run(builder, ctx, reg)
    text = _error_text(excinfo)
    assert "input 'expression'" in text and message in text


@pytest.mark.parametrize(("expression", "message"), [
    ("   ", "the expression is empty"),
    ("10.0 ** 400", "OverflowError"),
    ("sum(values) * 0 + max(1e308, 1e308) * 10", "non-finite"),
])
def test_math_expression_bad_results(reg, builder, ctx, expression, message):
    node = _math(builder, expression, a=1.0)
    builder.add("PreviewAny", source=node.out(0))
    with pytest.raises(NodeExecutionError) as excinfo:
        _run(builder, ctx, reg)
    assert message in _error_text(excinfo)


def test_math_expression_schema(reg):
    schema = reg["ComfyMathExpression"].schema
    assert schema.input("expression").default == "a + b"
    names = [i.name for i in schema.inputs]
    assert names[1] == "values.a" and names[-1] == "values.z" and len(names) == 27
    assert schema.input("values.c").type.name == "FLOAT,INT,BOOLEAN"
    assert [o.name for o in schema.outputs] == ["FLOAT", "INT", "BOOL"]


# -- ImageCompare ----------------------------------------------------------------------------

def test_image_compare_previews_both_images(reg, builder, ctx):
    images = torch.zeros(2, 8, 6, 3)
    images[1, :, :, 0] = 1.0  # the second sample is red
    reg.register(_image_source(images))
    src = builder.add("TestUtilImage")
    builder.add("ImageCompare", image_a=src.out(), image_b=src.out())
    result = _run(builder, ctx, reg)
    ui = result.ui["2"]
    assert len(ui["a_images"]) == 2 and len(ui["b_images"]) == 2
    temp = ctx.paths.folders("temp")[0]
    entry = ui["b_images"][1]
    assert entry["type"] == "temp" and entry["filename"].startswith("comfy.compare.b_temp_")
    with Image.open(temp / entry["subfolder"] / entry["filename"]) as png:
        assert png.size == (6, 8) and png.getpixel((0, 0)) == (255, 0, 0)


def test_image_compare_with_one_image(reg, builder, ctx):
    reg.register(_image_source(torch.rand(1, 4, 4, 3)))
    src = builder.add("TestUtilImage")
    builder.add("ImageCompare", image_b=src.out())
    result = _run(builder, ctx, reg)
    assert result.ui["2"]["a_images"] == [] and len(result.ui["2"]["b_images"]) == 1
