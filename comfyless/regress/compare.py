"""Golden artefacts of a workflow run and how two of them are compared.

An artefact is one value that reached an output node (an IMAGE batch, a LORA_MODEL, a LOSS_MAP, a
LATENT or any other tensor, or a plain value). `record` writes it under a case's golden folder;
`compare` checks a fresh value against that file with per-kind tolerances and returns the
problems found (an empty list means "same within tolerance").
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import save_file

from ..files import write_atomic

# Metadata that legitimately changes between runs of the same recipe.
VOLATILE_METADATA = ("comfyless.version",)


@dataclass(frozen=True)
class Tolerance:
    """Per-kind tolerances; the manifest's `[case.tolerance]` table overrides any of them.

    Images are compared as the 8-bit pixels a user would save: an exact hash match passes at
    once; otherwise at most `image_bad_fraction` of the channel values may differ by more than
    `image_pixel_tol` (0-255 units) and the structural similarity must be >= `image_ssim`.
    """

    image_pixel_tol: int = 8
    image_bad_fraction: float = 0.001
    image_ssim: float = 0.98
    lora_atol: float = 1e-4
    lora_rtol: float = 1e-3
    loss_atol: float = 1e-4
    loss_rtol: float = 1e-3
    tensor_atol: float = 1e-5
    tensor_rtol: float = 1e-4

    @classmethod
    def from_table(cls, table: dict[str, Any], base: Tolerance | None = None) -> Tolerance:
        """A Tolerance from a TOML table; unknown keys raise ValueError naming them."""
        base = base or cls()
        known = {f.name: f.type for f in fields(cls)}
        unknown = sorted(set(table) - set(known))
        if unknown:
            raise ValueError(f"unknown tolerance key(s) {unknown}; known: {sorted(known)}")
        values = {f.name: getattr(base, f.name) for f in fields(cls)}
        for key, value in table.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"tolerance {key!r} must be a non-negative number, got {value!r}")
            values[key] = type(values[key])(value)
        return cls(**values)


@dataclass
class Artefact:
    """One value that reached an output node; `kind` picks how it is stored and compared."""

    name: str  # "<node id>.<input name>", unique within a case
    kind: str  # "image" | "lora" | "loss" | "tensor" | "value"
    value: Any


@dataclass
class Mismatch:
    """Why an artefact differs from its golden file; `diff_image` when one was written."""

    artefact: str
    message: str
    diff_image: Path | None = None
    numbers: dict[str, float] = field(default_factory=dict)


def classify(value: Any, socket_type: str) -> str | None:
    """The artefact kind for a value arriving on a socket of `socket_type` (None: not kept)."""
    if socket_type == "IMAGE" and isinstance(value, torch.Tensor):
        return "image"
    if socket_type == "LORA_MODEL" and isinstance(value, dict):
        return "lora"
    if socket_type == "LOSS_MAP" and isinstance(value, dict):
        return "loss"
    if socket_type == "LATENT" and isinstance(value, dict) and "samples" in value:
        return "tensor"
    if isinstance(value, torch.Tensor):
        return "tensor"
    if isinstance(value, (int, float, str, bool)) or value is None:
        return "value"
    return None


# -- recording ------------------------------------------------------------------------------

def _to_uint8(images: torch.Tensor) -> np.ndarray:
    """IMAGE [B, H, W, C] in [0, 1] -> uint8 array, rounded as SaveImage rounds."""
    array = images.detach().float().cpu().clamp(0, 1).numpy()
    return np.clip(255.0 * array, 0, 255).astype(np.uint8)


def _image_files(folder: Path, name: str) -> list[Path]:
    return sorted(folder.glob(f"{name}.*.png"), key=lambda p: int(p.suffixes[-2][1:]))


def _tensor_of(artefact: Artefact) -> torch.Tensor:
    value = artefact.value
    return value["samples"] if isinstance(value, dict) else value


def record(artefact: Artefact, folder: Path) -> list[Path]:
    """Write `artefact` as golden file(s) in `folder`; returns the paths written."""
    folder.mkdir(parents=True, exist_ok=True)
    if artefact.kind == "image":
        for old in _image_files(folder, artefact.name):
            old.unlink()
        written = []
        for index, pixels in enumerate(_to_uint8(artefact.value)):
            path = folder / f"{artefact.name}.{index}.png"
            write_atomic(path, lambda tmp, px=pixels: Image.fromarray(px).save(tmp, format="PNG"))
            written.append(path)
        return written
    if artefact.kind == "lora":
        path = folder / f"{artefact.name}.safetensors"
        tensors = {k: v.detach().cpu().contiguous() for k, v in artefact.value.items()}
        metadata = dict(getattr(artefact.value, "metadata", {}) or {})
        write_atomic(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))
        return [path]
    if artefact.kind == "tensor":
        path = folder / f"{artefact.name}.safetensors"
        tensor = _tensor_of(artefact).detach().cpu().contiguous()
        write_atomic(path, lambda tmp: save_file({"value": tensor}, str(tmp)))
        return [path]
    path = folder / f"{artefact.name}.json"
    payload = artefact.value if artefact.kind == "value" else {"loss": list(artefact.value["loss"])}
    write_atomic(path, lambda tmp: tmp.write_text(json.dumps(payload, indent=1)))
    return [path]


# -- comparing ------------------------------------------------------------------------------

def compare(artefact: Artefact, folder: Path, tol: Tolerance, diff_dir: Path) -> list[Mismatch]:
    """Compare `artefact` with its golden file(s) in `folder`."""
    compare_kind = {"image": _compare_images, "lora": _compare_lora, "loss": _compare_loss,
                    "tensor": _compare_tensor, "value": _compare_value}[artefact.kind]
    return compare_kind(artefact, folder, tol, diff_dir)


def _missing(artefact: Artefact, what: str) -> list[Mismatch]:
    return [Mismatch(artefact.name, f"no golden {what}; run with --update to record one")]


def _compare_images(art: Artefact, folder: Path, tol: Tolerance, diff_dir: Path):
    expected_files = _image_files(folder, art.name)
    if not expected_files:
        return _missing(art, "image")
    actual = _to_uint8(art.value)
    if len(expected_files) != len(actual):
        return [Mismatch(art.name, f"batch size changed: expected {len(expected_files)} "
                                   f"image(s), got {len(actual)}")]
    problems = []
    for index, (path, got) in enumerate(zip(expected_files, actual, strict=True)):
        want = np.asarray(Image.open(path).convert("RGB"))
        label = f"{art.name}[{index}]"
        if want.shape != got.shape:
            problems.append(Mismatch(label, f"size changed: expected {want.shape[1]}x"
                                            f"{want.shape[0]}, got {got.shape[1]}x{got.shape[0]}"))
            continue
        if np.array_equal(want, got):
            continue
        numbers = image_difference(want, got, tol.image_pixel_tol)
        if numbers["bad_fraction"] > tol.image_bad_fraction or numbers["ssim"] < tol.image_ssim:
            diff = write_diff_image(want, got, diff_dir / f"{label}.diff.png")
            problems.append(Mismatch(
                label,
                f"image differs: {numbers['bad_fraction']:.4%} of values off by more than "
                f"{tol.image_pixel_tol} (allowed {tol.image_bad_fraction:.4%}), max diff "
                f"{numbers['max_abs']:.0f}, SSIM {numbers['ssim']:.4f} (min {tol.image_ssim})",
                diff_image=diff, numbers=numbers,
            ))
    return problems


def image_difference(want: np.ndarray, got: np.ndarray, pixel_tol: int) -> dict[str, float]:
    """Max/mean absolute difference, share of values beyond `pixel_tol`, and SSIM (uint8 HWC)."""
    delta = np.abs(want.astype(np.int16) - got.astype(np.int16))
    return {
        "max_abs": float(delta.max()),
        "mean_abs": float(delta.mean()),
        "bad_fraction": float((delta > pixel_tol).mean()),
        "ssim": structural_similarity(want, got),
    }


def structural_similarity(want: np.ndarray, got: np.ndarray) -> float:
    """SSIM of two uint8 HWC images (pytorch-msssim; window shrunk for small images)."""
    from pytorch_msssim import ssim

    def as_batch(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(a.astype(np.float32)).permute(2, 0, 1)[None]

    window = min(11, *want.shape[:2])
    window -= 1 - window % 2  # the Gaussian window must be odd
    if window < 3:
        return 1.0 if np.array_equal(want, got) else 0.0
    return float(ssim(as_batch(want), as_batch(got), data_range=255, win_size=window))


def write_diff_image(want: np.ndarray, got: np.ndarray, path: Path) -> Path:
    """expected | actual | difference (amplified so small changes are visible), side by side."""
    delta = np.abs(want.astype(np.int16) - got.astype(np.int16))
    amplified = np.clip(delta * (255.0 / max(int(delta.max()), 1)), 0, 255).astype(np.uint8)
    strip = np.concatenate([want, got, amplified], axis=1)
    write_atomic(path, lambda tmp: Image.fromarray(strip).save(tmp, format="PNG"))
    return path


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    with safe_open(str(path), framework="pt") as handle:
        return {k: handle.get_tensor(k) for k in handle.keys()}, dict(handle.metadata() or {})


def _close(got: torch.Tensor, want: torch.Tensor, atol: float, rtol: float) -> dict[str, float]:
    """Max abs and max relative difference, and whether allclose(atol, rtol) holds."""
    got, want = got.double(), want.double()
    delta = (got - want).abs()
    max_abs = float(delta.max()) if delta.numel() else 0.0
    rel = delta / want.abs().clamp_min(1e-12)
    ok = bool(torch.allclose(got, want, atol=atol, rtol=rtol, equal_nan=True))
    return {"max_abs": max_abs, "max_rel": float(rel.max()) if rel.numel() else 0.0,
            "ok": float(ok)}


# A failing LoRA comparison shows this many tensors, the largest differences first.
LORA_TENSORS_SHOWN = 5


def _compare_lora(art: Artefact, folder: Path, tol: Tolerance, diff_dir: Path):
    """Metadata changes first, then key/shape changes, then the largest tensor differences
    (at most LORA_TENSORS_SHOWN, and a count of the rest): one line per tensor of a LoRA with
    hundreds of them would bury the cause."""
    path = folder / f"{art.name}.safetensors"
    if not path.is_file():
        return _missing(art, "LoRA file")
    want, want_meta = _read_safetensors(path)
    got = art.value
    problems = _metadata_changes(art.name, want_meta, dict(getattr(got, "metadata", {}) or {}))
    missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
    if missing or extra:
        problems.append(Mismatch(art.name, f"key set changed: {len(missing)} missing "
                                           f"{_first(missing)}, {len(extra)} new {_first(extra)}"))
    reshaped, differing = [], []
    common = sorted(set(want) & set(got))
    for key in common:
        if tuple(want[key].shape) != tuple(got[key].shape):
            reshaped.append(f"{key}: shape {tuple(want[key].shape)} -> {tuple(got[key].shape)}")
            continue
        numbers = _close(got[key].detach().cpu(), want[key], tol.lora_atol, tol.lora_rtol)
        if not numbers["ok"]:
            differing.append((key, numbers))
    if reshaped:
        problems.append(Mismatch(art.name, f"{len(reshaped)} tensor(s) changed shape: "
                                           + "; ".join(reshaped[:LORA_TENSORS_SHOWN])
                                           + ("; …" if len(reshaped) > LORA_TENSORS_SHOWN else "")))
    differing.sort(key=lambda item: item[1]["max_abs"], reverse=True)
    if differing:
        problems.append(Mismatch(art.name, f"{len(differing)} of {len(common)} tensors differ "
                                           f"beyond atol {tol.lora_atol:g} + rtol "
                                           f"{tol.lora_rtol:g}; largest:"))
    for key, numbers in differing[:LORA_TENSORS_SHOWN]:
        problems.append(Mismatch(art.name, f"  {key}: max abs diff {numbers['max_abs']:.3g}, "
                                           f"max rel diff {numbers['max_rel']:.3g}",
                                 numbers=numbers))
    rest = len(differing) - LORA_TENSORS_SHOWN
    if rest > 0:
        problems.append(Mismatch(art.name, f"  and {rest} more tensor{'s' if rest > 1 else ''} "
                                           "differ"))
    return problems


def _metadata_changes(name: str, want: dict[str, str], got: dict[str, str]) -> list[Mismatch]:
    keys = sorted((set(want) | set(got)) - set(VOLATILE_METADATA))
    return [Mismatch(name, f"metadata {key!r}: {want.get(key)!r} -> {got.get(key)!r}")
            for key in keys if want.get(key) != got.get(key)]


def _first(keys: list[str]) -> str:
    return f"{keys[:3]}{'…' if len(keys) > 3 else ''}" if keys else ""


def _compare_loss(art: Artefact, folder: Path, tol: Tolerance, diff_dir: Path):
    path = folder / f"{art.name}.json"
    if not path.is_file():
        return _missing(art, "loss map")
    want = json.loads(path.read_text())["loss"]
    got = list(art.value["loss"])
    if len(want) != len(got):
        return [Mismatch(art.name, f"loss curve length changed: {len(want)} -> {len(got)}")]
    pairs = zip(got, want, strict=True)
    worst = max((abs(a - b) - tol.loss_rtol * abs(b) for a, b in pairs), default=0.0)
    if worst > tol.loss_atol or any(math.isnan(v) for v in got):
        step = max(range(len(got)), key=lambda i: abs(got[i] - want[i]))
        return [Mismatch(art.name, f"loss curve differs: step {step + 1} expected "
                                   f"{want[step]:.6g}, got {got[step]:.6g}")]
    return []


def _compare_tensor(art: Artefact, folder: Path, tol: Tolerance, diff_dir: Path):
    path = folder / f"{art.name}.safetensors"
    if not path.is_file():
        return _missing(art, "tensor")
    want = _read_safetensors(path)[0]["value"]
    got = _tensor_of(art).detach().cpu()
    if tuple(want.shape) != tuple(got.shape):
        return [Mismatch(art.name, f"shape changed: {tuple(want.shape)} -> {tuple(got.shape)}")]
    numbers = _close(got, want, tol.tensor_atol, tol.tensor_rtol)
    if numbers["ok"]:
        return []
    return [Mismatch(art.name, f"tensor differs: max abs diff {numbers['max_abs']:.3g}, "
                               f"max rel diff {numbers['max_rel']:.3g}", numbers=numbers)]


def _compare_value(art: Artefact, folder: Path, tol: Tolerance, diff_dir: Path):
    path = folder / f"{art.name}.json"
    if not path.is_file():
        return _missing(art, "value")
    want = json.loads(path.read_text())
    if want != art.value:
        return [Mismatch(art.name, f"value changed: {want!r} -> {art.value!r}")]
    return []
