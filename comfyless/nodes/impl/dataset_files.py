"""Training-dataset shards as safetensors (never pickle): LATENT / CONDITIONING lists on disk.

A shard `shard_0000.safetensors` holds the tensors of its samples under generated names
(`t<n>`), and its header metadata holds `comfyless.dataset`: JSON of
`{"latents": [...], "conditioning": [...]}` in which each tensor is `{"__tensor__": "t<n>"}`.
Plain JSON values (ints, strings, lists, dicts: e.g. SDXL size hints) are kept inline.
`metadata.json` beside the shards: num_samples, num_shards, shard_size, format.
Runtime helper (nodes/impl/): imported only inside `execute`, it imports torch at the top.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from ...files import write_atomic

META_KEY = "comfyless.dataset"
TENSOR = "__tensor__"


def _encode(value: Any, tensors: dict[str, torch.Tensor], where: str) -> Any:
    """JSON-able structure with tensors moved into `tensors` (contiguous CPU copies)."""
    if isinstance(value, torch.Tensor):
        name = f"t{len(tensors)}"
        tensors[name] = value.detach().to("cpu").contiguous().clone()
        return {TENSOR: name}
    if isinstance(value, dict):
        if TENSOR in value:
            raise ValueError(f"{where}: the key {TENSOR!r} is reserved")
        return {str(k): _encode(v, tensors, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode(v, tensors, f"{where}[{i}]") for i, v in enumerate(value)]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise TypeError(f"{where}: cannot store a {type(value).__name__} in a dataset shard "
                    "(tensors, numbers, strings, lists and dicts only)")


def _decode(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(value, dict):
        if set(value) == {TENSOR}:
            return tensors[value[TENSOR]]
        return {k: _decode(v, tensors) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v, tensors) for v in value]
    return value


def write_shard(path: Path, latents: list, conditioning: list) -> None:
    """One shard file, written via temp file + rename."""
    tensors: dict[str, torch.Tensor] = {}
    structure = {
        "latents": [_encode(x, tensors, f"latents[{i}]") for i, x in enumerate(latents)],
        "conditioning": [_encode(c, tensors, f"conditioning[{i}]")
                         for i, c in enumerate(conditioning)],
    }
    meta = {META_KEY: json.dumps(structure)}
    write_atomic(path, lambda tmp: save_file(tensors, str(tmp), metadata=meta))


def read_shard(path: Path) -> tuple[list, list]:
    """(latents, conditioning) of one safetensors shard."""
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        meta = f.metadata() or {}
    if META_KEY not in meta:
        raise ValueError(f"{str(path)!r} is not a comfyless dataset shard (no {META_KEY!r})")
    structure = _decode(json.loads(meta[META_KEY]), load_file(str(path)))
    return structure["latents"], structure["conditioning"]


def read_pickle_shard(path: Path) -> tuple[list, list]:
    """A ComfyUI `.pkl` shard, loaded with weights_only=True (never a full unpickle)."""
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means: refuse
        raise ValueError(f"refusing {str(path)!r}: it does not load with weights_only=True "
                         f"({type(exc).__name__}: {exc})") from exc
    return list(data["latents"]), list(data["conditioning"])


def save_dataset(folder: Path, latents: list, conditioning: list, shard_size: int) -> int:
    """Write shards and metadata.json; stale shards of an earlier save are removed."""
    folder.mkdir(parents=True, exist_ok=True)
    count = len(latents)
    shards = max(1, -(-count // shard_size))
    for s in range(shards):
        part = slice(s * shard_size, (s + 1) * shard_size)
        write_shard(folder / f"shard_{s:04d}.safetensors", latents[part], conditioning[part])
    for old in folder.glob("shard_*.safetensors"):
        if old.stem[len("shard_"):].isdigit() and int(old.stem[len("shard_"):]) >= shards:
            old.unlink()
    meta = {"num_samples": count, "num_shards": shards, "shard_size": shard_size,
            "format": "safetensors"}
    text = json.dumps(meta, indent=2)
    write_atomic(folder / "metadata.json", lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return shards


def load_dataset(folder: Path) -> tuple[list, list]:
    """Every shard in sorted order (safetensors; ComfyUI .pkl only with weights_only=True)."""
    files = sorted(folder.glob("shard_*.safetensors")) or sorted(folder.glob("shard_*.pkl"))
    if not files:
        raise ValueError(f"no shard_*.safetensors (or shard_*.pkl) files in {str(folder)!r}")
    latents: list = []
    conditioning: list = []
    for path in files:
        lat, cond = read_shard(path) if path.suffix == ".safetensors" else read_pickle_shard(path)
        latents += lat
        conditioning += cond
    return latents, conditioning
