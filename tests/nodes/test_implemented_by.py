"""`implemented_by`: a node's execute named by module path, imported on its first call."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from comfyless.typesys.errors import SchemaError
from comfyless.typesys.schema import Implementation, Input, Node, NodeSchema, Output, implemented_by
from comfyless.typesys.types import INT

ROOT = Path(__file__).resolve().parents[2]


def _write_package(tmp_path: Path) -> None:
    pkg = tmp_path / "lazypkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "nodes.py").write_text(textwrap.dedent('''
        from comfyless.typesys.schema import Input, Node, NodeSchema, Output, implemented_by
        from comfyless.typesys.types import INT

        class Double(Node):
            """Twice its input."""
            schema = NodeSchema("Double", inputs=(Input("x", INT, default=1),),
                                outputs=(Output("INT", INT),))
            execute = implemented_by(".impl:double", __package__)
    '''))
    (pkg / "impl.py").write_text(textwrap.dedent('''
        import json  # stands in for torch: must stay unloaded until the first call
        CALLS = []
        def double(ctx, x=1):
            CALLS.append(x)
            return (2 * x,)
    '''))


def test_target_loaded_on_first_call_only(tmp_path):
    _write_package(tmp_path)
    code = textwrap.dedent('''
        import sys
        from lazypkg.nodes import Double
        print("before", "lazypkg.impl" in sys.modules)
        print("result", Double.execute(None, x=21))
        print("after", "lazypkg.impl" in sys.modules)
        import inspect
        print("sig", list(inspect.signature(Double.execute).parameters))
    ''')
    env_path = f"{tmp_path}:{ROOT}"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=True, env={**os.environ, "PYTHONPATH": env_path})
    assert done.stdout.split("\n")[:4] == [
        "before False", "result (42,)", "after True", "sig ['ctx', 'x']"]


def test_resolves_once_and_runs_through_class():
    impl = implemented_by("os.path:join")
    assert impl.resolve() is impl.resolve()
    assert impl("a", "b") == "a/b" or impl("a", "b") == "a\\b"
    assert list(inspect.signature(impl).parameters) == ["a", "p"]

    class Node2(Node):
        schema = NodeSchema("Node2", inputs=(Input("a", INT),), outputs=(Output("INT", INT),))
        execute = implemented_by("builtins:abs")

    assert Node2.execute(-3) == 3  # no descriptor binding: called like a staticmethod
    assert isinstance(inspect.getattr_static(Node2, "execute"), Implementation)


def test_relative_target_needs_package():
    assert implemented_by(".latent:f", "comfyless.nodes.impl").target == \
        "comfyless.nodes.impl.latent:f"
    assert implemented_by("..impl.latent:f", "comfyless.nodes.x").target == \
        "comfyless.nodes.impl.latent:f"
    with pytest.raises(SchemaError, match="needs a package"):
        implemented_by(".latent:f")


@pytest.mark.parametrize("target", ["no_colon", "mod:", ":fn", "mod:not-an-identifier"])
def test_malformed_target_is_schema_error(target):
    with pytest.raises(SchemaError, match="package.module:function"):
        implemented_by(target)


def test_missing_function_named_on_first_call():
    impl = implemented_by("os.path:no_such_function")
    with pytest.raises(SchemaError, match="no_such_function"):
        impl()
    with pytest.raises(ModuleNotFoundError):
        implemented_by("comfyless.no_such_module:f")()
