"""nodes/__init__.FAMILIES: a missing or misspelt family module is an error, not skipped."""

import pytest

import comfyless.nodes as nodes


def test_misspelt_family_is_an_import_error(monkeypatch):
    monkeypatch.setattr(nodes, "FAMILIES", (*nodes.FAMILIES, "datasets.foldrs"))
    with pytest.raises(ModuleNotFoundError, match="datasets.foldrs"):
        nodes.build_registry()


def test_every_family_contributes_nodes():
    registry = nodes.build_registry()
    assert len(registry) == len(nodes.REGISTRY) > 0
    for family in nodes.FAMILIES:
        module = __import__(f"comfyless.nodes.{family}", fromlist=["NODES"])
        assert module.NODES, family
        assert all(node.schema.class_type in registry for node in module.NODES)


def test_only_nodes_impl_may_import_torch_at_top_level():
    """Every node module outside nodes/impl/ imports without torch, PIL, numpy, safetensors."""
    import pkgutil
    import subprocess
    import sys
    from pathlib import Path

    names = [m.name for m in pkgutil.walk_packages(nodes.__path__, "comfyless.nodes.")
             if not m.name.startswith("comfyless.nodes.impl")]
    assert "comfyless.nodes.datasets.folders" in names and len(names) > 10
    code = ("import importlib, sys\n"
            f"for name in {names!r}: importlib.import_module(name)\n"
            "print(','.join(m for m in ('torch', 'PIL', 'numpy', 'safetensors') "
            "if m in sys.modules))")
    root = Path(nodes.__file__).parents[2]
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True,
                          text=True, timeout=60, check=True)
    assert done.stdout.strip() == ""
