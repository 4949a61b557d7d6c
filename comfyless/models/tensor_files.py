"""Opening model files as read-only {key: tensor} maps (safetensors memory-mapped, pickles
weights-only); shared by checkpoint.py, clip.py and the loader nodes.

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


def error_where(node_id: str | None, input_name: str | None) -> dict[str, Any]:
    """The `node_id=` / `input_name=` keywords a ModelLoadError names its cause with."""
    return {"node_id": node_id, "input_name": input_name}


@contextmanager
def open_tensor_file(path: str | os.PathLike, *, node_id: str | None = None,
                     input_name: str | None = None,
                     dequantize_dtype: torch.dtype = torch.float32) -> Iterator[TensorFile]:
    """Open a safetensors (memory-mapped) or weights-only pickle file as a TensorFile.

    Quantised files (ComfyUI's scaled fp8, per-tensor fp8 mixed precision; models/quant.py)
    read as plain ones: scaled weights come dequantised in `dequantize_dtype` (pass the
    compute dtype: float32 doubles a bf16 load's transient memory) and the scale/marker keys
    are hidden.
    """
    path = Path(path)
    where = error_where(node_id, input_name)
    with _opened(path, where) as tensors:
        yield _dequantized(tensors, dequantize_dtype, path, where)


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
    from safetensors import SafetensorError, safe_open

    try:
        handle = safe_open(str(path), framework="pt", device="cpu")
    except (SafetensorError, OSError) as exc:
        raise ModelLoadError(
            f"{path.name}: not a readable safetensors file (corrupt or truncated?): {exc}",
            **where) from exc
    except RuntimeError as exc:  # the kernel refused to map it (a file bigger than memory)
        raise ModelLoadError(_map_refused(path, exc), **where) from exc
    with handle as f:
        shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
        yield TensorFile(shapes, f.get_tensor, f.metadata() or {})


def _map_refused(path: Path, exc: Exception) -> str:
    """Why a safetensors file could not be mapped, with its size against this machine's RAM."""
    size = path.stat().st_size
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") if hasattr(os, "sysconf") \
        else 0
    return (f"{path.name}: cannot map the file into memory ({size / 2**30:.1f} GiB; this "
            f"machine has {ram / 2**30:.1f} GiB of RAM and the kernel refused the mapping: "
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
