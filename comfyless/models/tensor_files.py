"""Opening model files as read-only {key: tensor} maps (safetensors read tensor by tensor,
pickles weights-only); shared by checkpoint.py, clip.py and the loader nodes.

Pickle files (.ckpt/.pt/.pth/.bin) load only through `torch.load(weights_only=True)`; anything
else is refused (DECISIONS.md).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..memory import return_freed_memory
from ..typesys.errors import ModelLoadError

# the float8 storage dtypes this torch knows (fp8 files keep them where the network allows)
FLOAT8_DTYPES = tuple(getattr(torch, n) for n in ("float8_e4m3fn", "float8_e5m2")
                      if hasattr(torch, n))

SAFETENSORS_EXTENSIONS = (".safetensors", ".sft")
PICKLE_EXTENSIONS = (".ckpt", ".pt", ".pth", ".bin")


class TensorFile(Mapping[str, Tensor]):
    """Read-only {key: tensor} view of a checkpoint file; tensors are read on access."""

    def __init__(self, shapes: dict[str, tuple[int, ...]], read, metadata: dict[str, str]):
        self.shapes = shapes
        self._read = read
        self.metadata = metadata

    def __getitem__(self, key: str) -> Tensor:
        if key not in self.shapes:
            raise KeyError(key)
        return self._read(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self.shapes)

    def __len__(self) -> int:
        return len(self.shapes)

    def under(self, prefix: str) -> TensorFile:
        """The tensors under `prefix`, the prefix stripped, still read on access: a loader
        that converts them one at a time holds one file tensor at a time."""
        shapes = {k[len(prefix):]: s for k, s in self.shapes.items() if k.startswith(prefix)}
        return TensorFile(shapes, lambda key: self[prefix + key], self.metadata)


def error_where(node_id: str | None, input_name: str | None) -> dict[str, Any]:
    """The `node_id=` / `input_name=` keywords a ModelLoadError names its cause with."""
    return {"node_id": node_id, "input_name": input_name}


@contextmanager
def open_tensor_file(path: str | os.PathLike, *, node_id: str | None = None,
                     input_name: str | None = None,
                     dequantize_dtype: torch.dtype = torch.float32) -> Iterator[TensorFile]:
    """Open a safetensors (read tensor by tensor) or weights-only pickle file as a TensorFile.

    Quantised files (ComfyUI's scaled fp8, per-tensor fp8 mixed precision; models/quant.py)
    read as plain ones: scaled weights come dequantised in `dequantize_dtype` (pass the
    compute dtype: float32 doubles a bf16 load's transient memory) and the scale/marker keys
    are hidden.
    """
    path = Path(path)
    where = error_where(node_id, input_name)
    try:
        with _opened(path, where) as tensors:
            yield _dequantized(tensors, dequantize_dtype, path, where)
    finally:
        return_freed_memory()


def _dequantized(tensors: TensorFile, dtype: torch.dtype, path: Path,
                 where: dict[str, Any]) -> TensorFile:
    """`tensors` with scaled weights dequantised to `dtype` and the quantisation keys hidden
    (the same object for a plain file); quant.py's refusals become ModelLoadErrors."""
    from .quant import QuantFormatError, dequantized_reader, plan_dequantization

    try:
        plan = plan_dequantization(tensors.shapes, tensors.metadata, tensors.__getitem__)
    except QuantFormatError as exc:
        raise ModelLoadError(f"{path.name}: {exc}", **where) from exc
    if plan is None:
        return tensors
    dequantized = dequantized_reader(plan, tensors.__getitem__, dtype)

    def read(key: str) -> Tensor:
        try:
            return dequantized(key)
        except QuantFormatError as exc:
            raise ModelLoadError(f"{path.name}: {exc}", **where) from exc

    shapes = {k: v for k, v in tensors.shapes.items() if k not in plan.hidden}
    return TensorFile(shapes, read, tensors.metadata)


@contextmanager
def _opened(path: Path, where: dict[str, Any]) -> Iterator[TensorFile]:
    if not path.is_file():
        listing = ", ".join(sorted(p.name for p in path.parent.glob("*"))[:20]) \
            if path.parent.is_dir() else "(folder missing)"
        raise ModelLoadError(f"model file {str(path)!r} not found; present: {listing or 'nothing'}",
                             **where)
    suffix = path.suffix.lower()
    if suffix in PICKLE_EXTENSIONS:
        yield _open_pickle(path, where)
        return
    if suffix not in SAFETENSORS_EXTENSIONS:
        raise ModelLoadError(
            f"{path.name}: unknown model file type {suffix!r}; expected one of "
            f"{', '.join(SAFETENSORS_EXTENSIONS + PICKLE_EXTENSIONS)}", **where)
    with open(path, "rb") as handle:
        try:
            shapes, read, metadata = _safetensors_reader(handle, path)
        except (ValueError, OSError) as exc:
            raise ModelLoadError(
                f"{path.name}: not a readable safetensors file (corrupt or truncated?): {exc}",
                **where) from exc

        def read_or_refuse(key: str) -> Tensor:
            try:
                return read(key)
            except (MemoryError, RuntimeError) as exc:  # the tensor does not fit in memory
                raise ModelLoadError(_too_big(path, exc), **where) from exc

        yield TensorFile(shapes, read_or_refuse, metadata)


# safetensors dtype names -> torch dtypes (the float8 ones where this torch has them)
_SAFETENSORS_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
    "U8": torch.uint8, "BOOL": torch.bool,
    **{name: getattr(torch, attr) for name, attr in (("F8_E4M3", "float8_e4m3fn"),
                                                     ("F8_E5M2", "float8_e5m2"))
       if hasattr(torch, attr)},
}
_MAX_HEADER = 100 * 2**20  # the format's own limit on the JSON header


def _safetensors_reader(handle, path: Path):
    """(shapes, read(key), metadata) of an open safetensors file.

    Tensors are read with plain file reads into fresh memory, never memory-mapped: a mapped
    file's touched pages count towards the process' resident memory until it is closed, which
    made loading a checkpoint peak at its size on top of the weights it builds. Each read
    costs one copy, as safetensors' own get_tensor does. Layout: an 8-byte little-endian
    header length, a JSON header {key: {dtype, shape, data_offsets}, "__metadata__": {...}},
    then the data.
    """
    import json

    size = path.stat().st_size
    head = handle.read(8)
    if len(head) != 8:
        raise ValueError("shorter than the 8-byte header length")
    n = int.from_bytes(head, "little")
    if n > min(_MAX_HEADER, size - 8):
        raise ValueError(f"header length {n} does not fit the file ({size} bytes)")
    header = json.loads(handle.read(n))
    if not isinstance(header, dict):
        raise ValueError("the header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    start = 8 + n
    entries = {key: _entry(key, value, size - start) for key, value in header.items()}
    fd = handle.fileno()

    def read(key: str) -> Tensor:
        dtype, shape, begin, end = entries[key]
        raw = torch.empty(end - begin, dtype=torch.uint8)
        view, done = memoryview(raw.numpy()), 0
        while done < len(view):  # os.preadv may return short counts
            got = os.preadv(fd, [view[done:]], start + begin + done)
            if got <= 0:
                raise OSError(f"{key}: the file ended while reading its data")
            done += got
        return raw.view(dtype).reshape(shape)

    shapes = {key: entry[1] for key, entry in entries.items()}
    return shapes, read, metadata


def _entry(key: str, value: Any, data_size: int) -> tuple[torch.dtype, tuple[int, ...], int, int]:
    """(dtype, shape, begin, end) of one header entry, checked against the data size."""
    try:
        dtype = _SAFETENSORS_DTYPES[value["dtype"]]
        shape = tuple(int(d) for d in value["shape"])
        begin, end = (int(o) for o in value["data_offsets"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"tensor {key!r}: malformed header entry {value!r}") from exc
    count = 1
    for dim in shape:
        count *= dim
    if not 0 <= begin <= end <= data_size or end - begin != count * dtype.itemsize:
        raise ValueError(f"tensor {key!r}: data offsets {begin}..{end} do not match its "
                         f"shape {list(shape)} or the file's {data_size} data bytes")
    return dtype, shape, begin, end


def _too_big(path: Path, exc: BaseException) -> str:
    """Why a tensor of `path` could not be read into memory, with the file's size against
    this machine's RAM."""
    size = path.stat().st_size
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") if hasattr(os, "sysconf") \
        else 0
    return (f"{path.name}: cannot read the file into memory ({size / 2**30:.1f} GiB; this "
            f"machine has {ram / 2**30:.1f} GiB of RAM and the allocation failed: "
            f"{exc}); use a smaller variant of the model (e.g. its fp8 file) or a machine with "
            f"more memory or swap")


def _open_pickle(path: Path, where: dict[str, Any]) -> TensorFile:
    """torch.load with weights_only=True (memory-mapped when the file is a zip archive)."""
    import pickle

    try:
        try:
            data = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError:  # legacy (non-zip) format cannot be memory-mapped
            data = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, TypeError) as exc:
        raise ModelLoadError(
            f"{path.name}: refused: this pickle file does not load with "
            f"torch.load(weights_only=True) (it may run arbitrary code); convert it to "
            f".safetensors. Reason: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
            **where) from exc
    if isinstance(data, dict) and isinstance(data.get("state_dict"), dict):
        data = data["state_dict"]
    if not isinstance(data, dict):
        raise ModelLoadError(f"{path.name}: expected a state dict, found {type(data).__name__}",
                             **where)
    tensors = {k: v for k, v in data.items() if isinstance(v, Tensor)}
    return TensorFile({k: tuple(v.shape) for k, v in tensors.items()}, tensors.__getitem__, {})
