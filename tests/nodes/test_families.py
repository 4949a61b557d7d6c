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
