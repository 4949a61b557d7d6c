"""comfyless.files: the bottom file-helper module (imports nothing of ours)."""

import ast
from pathlib import Path

import pytest

import comfyless.files as files
from comfyless.files import write_atomic


def test_write_atomic_writes_and_leaves_no_temp(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    assert write_atomic(target, lambda tmp: tmp.write_text("hello")) == target
    assert target.read_text() == "hello"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.txt"]


def test_write_atomic_failure_keeps_old_file_and_removes_temp(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")

    def broken(tmp):
        tmp.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_atomic(target, broken)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_files_module_imports_nothing_of_ours():
    tree = ast.parse(Path(files.__file__).read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            assert node.level == 0 and not (node.module or "").startswith("comfyless")
        elif isinstance(node, ast.Import):
            assert all(not a.name.startswith("comfyless") for a in node.names)
