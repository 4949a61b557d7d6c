"""Test-only nodes for exercising the engine without models (registered by tests, not shipped).

Append-only: several test modules use these; add new nodes at the end.
"""

from __future__ import annotations

from comfyless.nodes import build_registry
from comfyless.typesys import (
    BOOLEAN,
    CONDITIONING,
    FLOAT,
    IMAGE,
    INT,
    LATENT,
    MODEL,
    STRING,
    Input,
    Node,
    NodeRegistry,
    NodeSchema,
    Output,
    Result,
)
from comfyless.typesys.types import ANY, COMBO

CALLS: list[str] = []  # class_types in execution order, for cache/order tests


class TestNumber(Node):
    """An INT source with a seed-style widget (the UI stores a control value after it)."""

    schema = NodeSchema("TestNumber", inputs=(Input("seed", INT, default=0, min=0, max=2**64 - 1),),
                        outputs=(Output("INT", INT),))

    @staticmethod
    def execute(ctx, seed):
        CALLS.append("TestNumber")
        return (seed,)


class TestAdd(Node):
    """a + b, both linkable ints; b is optional."""

    schema = NodeSchema(
        "TestAdd",
        inputs=(Input("a", INT, default=0, min=-1000, max=1000),
                Input("b", INT, default=0, min=-1000, max=1000, optional=True)),
        outputs=(Output("INT", INT),),
    )

    @staticmethod
    def execute(ctx, a, b=0):
        CALLS.append("TestAdd")
        return (a + b,)


class TestFormat(Node):
    """Formats a number with a COMBO style and a FLOAT scale; outputs a STRING."""

    schema = NodeSchema(
        "TestFormat",
        inputs=(Input("value", INT, force_input=True),
                Input("style", COMBO, default="plain", choices=("plain", "hex")),
                Input("scale", FLOAT, default=1.0, min=0.0, max=10.0, step=0.1),
                Input("upper", BOOLEAN, default=False)),
        outputs=(Output("STRING", STRING),),
    )

    @staticmethod
    def execute(ctx, value, style, scale, upper):
        CALLS.append("TestFormat")
        text = hex(int(value * scale)) if style == "hex" else str(value * scale)
        return (text.upper() if upper else text,)


class TestSink(Node):
    """An output node that records what it received."""

    schema = NodeSchema("TestSink", inputs=(Input("value", STRING, force_input=True),),
                        outputs=(), output_node=True)

    @staticmethod
    def execute(ctx, value):
        CALLS.append("TestSink")
        return Result((), ui={"text": [value]})


class TestIntSink(Node):
    """An output node for INT values."""

    schema = NodeSchema("TestIntSink", inputs=(Input("value", INT, force_input=True),),
                        outputs=(), output_node=True)

    @staticmethod
    def execute(ctx, value):
        CALLS.append("TestIntSink")
        return Result((), ui={"value": [value]})


class TestRandom(Node):
    """Not idempotent: reruns every time (like a training node)."""

    schema = NodeSchema("TestRandom", inputs=(Input("value", INT, default=0, min=0, max=10),),
                        outputs=(Output("INT", INT),), not_idempotent=True)

    @staticmethod
    def execute(ctx, value):
        CALLS.append("TestRandom")
        return (value,)


class TestFail(Node):
    """Raises inside execute."""

    schema = NodeSchema("TestFail", inputs=(Input("value", INT, force_input=True),),
                        outputs=(Output("INT", INT),))

    @staticmethod
    def execute(ctx, value):
        raise RuntimeError(f"boom on {value}")


class TestRange(Node):
    """Emits a list output: 0..count-1 (consumers run once per item)."""

    schema = NodeSchema("TestRange", inputs=(Input("count", INT, default=3, min=0, max=100),),
                        outputs=(Output("INT", INT, is_list=True),))

    @staticmethod
    def execute(ctx, count):
        return (list(range(count)),)


class TestSum(Node):
    """An input-list node: receives every input as a list, sums `values`."""

    schema = NodeSchema("TestSum", inputs=(Input("values", INT, force_input=True),),
                        outputs=(Output("INT", INT),), is_input_list=True)

    @staticmethod
    def execute(ctx, values):
        return (sum(values),)


class TestModelish(Node):
    """Produces fake MODEL/LATENT/CONDITIONING/IMAGE sockets for type-mismatch tests."""

    schema = NodeSchema("TestModelish", inputs=(),
                        outputs=(Output("MODEL", MODEL), Output("LATENT", LATENT),
                                 Output("CONDITIONING", CONDITIONING), Output("IMAGE", IMAGE)))

    @staticmethod
    def execute(ctx):
        return ("model", {"samples": None}, [], None)


class TestLatentSink(Node):
    """Output node taking a LATENT (to wire against TestModelish)."""

    schema = NodeSchema("TestLatentSink", inputs=(Input("samples", LATENT),), outputs=(),
                        output_node=True)

    @staticmethod
    def execute(ctx, samples):
        return ()


TEST_NODES = [TestNumber, TestAdd, TestFormat, TestSink, TestIntSink, TestRandom, TestFail,
              TestRange, TestSum, TestModelish, TestLatentSink]


def test_registry() -> NodeRegistry:
    """Every shipped node plus the test nodes."""
    registry = build_registry()
    for node in TEST_NODES:
        registry.register(node)
    return registry


test_registry.__test__ = False  # not a pytest test


# --- engine-core tests (validation, legacy layouts, file choices, caching) ------------------


class TestLegacyOut(Node):
    """Two output layouts like TrainLoraNode: legacy (MODEL, LATENT, INT), now (LATENT, INT)."""

    schema = NodeSchema(
        "TestLegacyOut", inputs=(Input("value", INT, default=1, min=0, max=10),),
        outputs=(Output("latent", LATENT), Output("steps", INT)),
        legacy_outputs=(Output("model", MODEL), Output("latent", LATENT), Output("steps", INT)),
    )

    @staticmethod
    def execute(ctx, value):
        CALLS.append("TestLegacyOut")
        return ({"samples": value}, value)


class TestChecked(Node):
    """Cross-input check hook: low must not exceed high."""

    schema = NodeSchema(
        "TestChecked",
        inputs=(Input("low", INT, default=0, min=-100, max=100),
                Input("high", INT, default=1, min=-100, max=100)),
        outputs=(Output("INT", INT),),
    )

    @classmethod
    def check(cls, low=None, high=None):
        if low is not None and high is not None and low > high:
            return {"low": f"low ({low}) must not exceed high ({high})"}
        return {}

    @staticmethod
    def execute(ctx, low, high):
        return (high - low,)


class TestFile(Node):
    """Picks a checkpoint file; its mtime is part of the cache key (fingerprint hook)."""

    schema = NodeSchema(
        "TestFile",
        inputs=(Input("ckpt_name", COMBO, choices_from="checkpoints"),),
        outputs=(Output("STRING", STRING),),
        output_node=True,
    )

    @staticmethod
    def execute(ctx, ckpt_name):
        CALLS.append("TestFile")
        return Result((ctx.find("checkpoints", ckpt_name, "ckpt_name").read_text(),),
                      ui={"text": [ckpt_name]})


class TestSlow(Node):
    """Reports `steps` progress events; stops at a step boundary when interrupted."""

    schema = NodeSchema("TestSlow", inputs=(Input("steps", INT, default=3, min=1, max=1000),),
                        outputs=(Output("INT", INT),))

    @staticmethod
    def execute(ctx, steps):
        CALLS.append("TestSlow")
        for step in range(1, steps + 1):
            ctx.progress(step, steps, loss=1.0 / step)
        return (steps,)


class TestLatentInt(Node):
    """Output node taking an INT and a LATENT (legacy slot tests)."""

    schema = NodeSchema("TestLatentInt",
                        inputs=(Input("samples", LATENT, optional=True),
                                Input("steps", INT, force_input=True, optional=True),
                                Input("anything", ANY, optional=True)),
                        outputs=(), output_node=True)

    @staticmethod
    def execute(ctx, samples=None, steps=None, anything=None):
        return Result((), ui={"samples": [samples], "steps": [steps]})


TEST_NODES += [TestLegacyOut, TestChecked, TestFile, TestSlow, TestLatentInt]


# --- UI-format conversion tests (widgets_values layouts) --------------------------------------


class TestUiWidgets(Node):
    """Every widget layout: COMBO with control+filter, INT with control, plain FLOAT, optional."""

    schema = NodeSchema(
        "TestUiWidgets",
        inputs=(Input("pick", COMBO, default="a", choices=("a", "b", "c"),
                      control_after_generate=True),
                Input("count", INT, default=1, min=0, max=100, control_after_generate=True),
                Input("model", MODEL, optional=True),
                Input("scale", FLOAT, default=1.0, min=0.0, max=10.0),
                Input("note", STRING, default="", optional=True)),
        outputs=(Output("STRING", STRING),),
    )

    @staticmethod
    def execute(ctx, pick, count, scale, model=None, note=""):
        return (f"{pick}{count}{scale}{note}",)


TEST_NODES += [TestUiWidgets]
