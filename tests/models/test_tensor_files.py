"""The safetensors reader (models/tensor_files.py): plain reads, every dtype safetensors writes,
and clear errors for damaged headers; memory: a load does not keep the file's pages mapped."""

from __future__ import annotations

import json
import struct

import pytest
import torch
from safetensors.torch import load_file, save_file

from comfyless.models.tensor_files import FLOAT8_DTYPES, open_tensor_file
from comfyless.typesys.errors import ModelLoadError


def _tensors() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    out = {
        "f32": torch.randn(3, 5, generator=g),
        "f16": torch.randn(7, generator=g).half(),
        "bf16": torch.randn(2, 2, 2, generator=g).bfloat16(),
        "f64": torch.randn(4, generator=g).double(),
        "i64": torch.arange(77)[None],
        "i8": torch.tensor([-3, 0, 5], dtype=torch.int8),
        "u8": torch.tensor([0, 255], dtype=torch.uint8),
        "bool": torch.tensor([True, False, True]),
        "scalar": torch.tensor(2.5),
        "empty": torch.zeros(0, 4),
    }
    for dtype in FLOAT8_DTYPES:
        out[str(dtype)] = torch.randn(6, generator=g).to(dtype)
    return out


def test_every_dtype_reads_as_safetensors_writes_it(tmp_path):
    path = tmp_path / "all.safetensors"
    save_file(_tensors(), str(path), metadata={"format": "pt", "note": "x"})
    expected = load_file(str(path))
    with open_tensor_file(path) as tensors:
        assert tensors.metadata == {"format": "pt", "note": "x"}
        assert set(tensors) == set(expected)
        for key, want in expected.items():
            got = tensors[key]
            assert tensors.shapes[key] == tuple(want.shape)
            assert got.dtype == want.dtype and got.shape == want.shape
            assert torch.equal(got.reshape(-1).view(torch.uint8),
                               want.reshape(-1).view(torch.uint8)), key


def _write_raw(path, header: dict, data: bytes) -> None:
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)


@pytest.mark.parametrize("header, data, expected", [
    ({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 4, "do not match"),
    ({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, b"\0" * 8, "do not match"),
    ({"w": {"dtype": "Q4", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 8, "malformed"),
    ({"w": {"shape": [2]}}, b"", "malformed"),
])
def test_damaged_headers_are_clear_errors(tmp_path, header, data, expected):
    path = tmp_path / "bad.safetensors"
    _write_raw(path, header, data)
    with pytest.raises(ModelLoadError) as info, open_tensor_file(path, node_id="3",
                                                                 input_name="ckpt_name"):
        pass
    assert expected in str(info.value) and "bad.safetensors" in str(info.value)
    assert info.value.node_id == "3"


def test_a_header_length_past_the_end_is_a_clear_error(tmp_path):
    path = tmp_path / "cut.safetensors"
    path.write_bytes(struct.pack("<Q", 10_000) + b"{}")
    with pytest.raises(ModelLoadError, match="does not fit the file"), open_tensor_file(path):
        pass


def _status_kib(field: str) -> int:
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


@pytest.mark.skipif(not __import__("os").path.exists("/proc/self/status"), reason="Linux only")
def test_reading_does_not_keep_the_file_resident(tmp_path):
    """With a memory-mapped file (safetensors' safe_open) every page a tensor touched stays in
    the process' RSS until the file is closed, even after the tensor is dropped: a checkpoint
    load then peaked at the weights built plus the file read so far. Plain reads leave only
    the tensors kept. 64 MiB read one 4 MiB tensor at a time, none kept: RSS grows by far
    less than the file (the mapped reader grew by the whole 64 MiB)."""
    path = tmp_path / "big.safetensors"
    save_file({f"t{i}": torch.full((1024, 1024), float(i)) for i in range(16)}, str(path))
    before = _status_kib("VmRSS")
    with open_tensor_file(path) as tensors:
        total = sum(float(tensors[k].sum()) for k in tensors)
        during = _status_kib("VmRSS")
    assert total == 1024 * 1024 * sum(range(16))
    assert during - before < 32 * 1024, (before, during)
