"""Torch-free node modules by construction (issue 10 item 6).

Node family modules declare schemas; their execute code lives in `comfyless/nodes/impl/`,
named by `implemented_by(...)` and imported at execute time. These tests read the source
(ast), so an import hidden inside a function fails as surely as one at the top.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

from comfyless.nodes import REGISTRY
from comfyless.typesys.schema import Implementation

NODES_DIR = Path(__file__).resolve().parents[2] / "comfyless" / "nodes"
FORBIDDEN = ("torch", "numpy", "PIL", "safetensors", "comfyless.models", "comfyless.lora",
             "comfyless.nodes.impl")
# Modules of a forbidden package that are declared torch-free (tables read at validation).
ALLOWED = ("comfyless.lora.train_options",)

SCHEMA_MODULES = sorted(
    str(p.relative_to(NODES_DIR)) for p in NODES_DIR.rglob("*.py")
    if "impl" not in p.relative_to(NODES_DIR).parts)


def _module_name(rel: str) -> str:
    parts = ["comfyless", "nodes", *Path(rel).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(tree: ast.AST, module: str, is_package: bool) -> list[tuple[int, str]]:
    """Every (line, absolute dotted name) imported anywhere in the module."""
    package = module if is_package else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            # `from pkg import name`: pkg.name is a submodule or an attribute; either way it
            # starts with pkg, so a forbidden pkg is caught and an allowed submodule passes.
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


def _bad(name: str) -> bool:
    if any(name == ok or name.startswith(ok + ".") for ok in ALLOWED):
        return False
    return any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN)


def _problems_in(source: str, module: str, is_package: bool = False) -> list[str]:
    tree = ast.parse(source)
    problems = [f"line {line}: imports {name}"
                for line, name in _imported(tree, module, is_package) if _bad(name)]
    problems += [f"line {node.lineno}: defines execute (use implemented_by)"
                 for node in ast.walk(tree)
                 if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
                 and node.name == "execute"]
    return problems


def _problems(rel: str) -> list[str]:
    path = NODES_DIR / rel
    return _problems_in(path.read_text(), _module_name(rel), path.name == "__init__.py")


@pytest.mark.parametrize("rel", SCHEMA_MODULES)
def test_schema_module_imports_nothing_heavy(rel):
    problems = _problems(rel)
    assert not problems, f"comfyless/nodes/{rel}: " + "; ".join(problems)


def test_guard_catches_hidden_imports():
    """The scanner sees function-local and relative imports and nested execute defs."""
    source = (
        "from ..impl import image_ops\n"
        "def f():\n"
        "    import torch.nn\n"
        "    from ...models.vae import VAE\n"
        "    from ...lora import train_options\n"
        "    from ... import lora\n"
        "class N:\n"
        "    @staticmethod\n"
        "    def execute(ctx):\n"
        "        from numpy import zeros\n"
        "import PIL.Image as I, json\n"
    )
    text = "; ".join(_problems_in(source, "comfyless.nodes.datasets.probe"))
    for expected in ("line 1: imports comfyless.nodes.impl", "line 3: imports torch.nn",
                     "line 4: imports comfyless.models.vae", "line 6: imports comfyless.lora",
                     "line 9: defines execute", "line 10: imports numpy",
                     "line 11: imports PIL.Image"):
        assert expected in text
    assert "train_options" not in text  # the declared torch-free module is allowed
    assert _problems_in("from ..lora.train_options import X\nfrom ...lora import train_options\n",
                        "comfyless.nodes.datasets.x") == []
    assert "json" not in text
    assert _problems_in("from .common import seed_input\n", "comfyless.nodes.datasets.x") == []


@pytest.mark.parametrize("class_type", list(REGISTRY))
def test_shipped_implementation_resolves(class_type):
    node = REGISTRY[class_type]
    execute = inspect.getattr_static(node, "execute")
    assert isinstance(execute, Implementation), f"{class_type}: execute = implemented_by(...)"
    assert execute.target.startswith("comfyless.nodes.impl."), execute.target
    function = execute.resolve()
    params = inspect.signature(function).parameters
    assert list(params)[0] == "ctx"
    named = {n for n, p in params.items() if p.kind is not p.VAR_KEYWORD} - {"ctx"}
    # Names that are no identifiers (DynamicCombo sub-inputs) arrive through **kwargs.
    assert named == {i.name for i in node.schema.inputs if i.name.isidentifier()}, class_type


@pytest.mark.parametrize("rel", sorted(str(p.relative_to(NODES_DIR))
                                       for p in NODES_DIR.rglob("*.py")))
def test_nodes_never_import_the_engine(rel):
    # Layering: the engine calls nodes through the registry; a node talks back only through
    # the `ctx` it is handed (ctx.progress, ctx.message, ctx.output_dir, ...).
    path = NODES_DIR / rel
    tree = ast.parse(path.read_text())
    found = [f"line {line}: imports {name}"
             for line, name in _imported(tree, _module_name(rel), path.name == "__init__.py")
             if name == "comfyless.engine" or name.startswith("comfyless.engine.")]
    assert not found, f"comfyless/nodes/{rel}: " + "; ".join(found)
