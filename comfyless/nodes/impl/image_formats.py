"""PNG (8/16-bit) and OpenEXR (32-bit float, uncompressed scanlines) encoders, and the colour
curves SaveImageAdvanced applies before writing EXR.

Written from the file format specifications (PNG: ISO/IEC 15948; OpenEXR: "OpenEXR File Layout")
with numpy and zlib, because PIL writes neither 16-bit colour PNGs nor EXR. Pixels arrive as
arrays `[H, W, C]`, C = 1 (grey), 3 (RGB) or 4 (RGBA).
"""

from __future__ import annotations

import json
import struct
import zlib

import numpy as np

# -- PNG ---------------------------------------------------------------------------------------

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_COLOR_TYPES = {1: 0, 3: 2, 4: 6}  # channels -> colour type: grey, RGB, RGBA
_IDAT_SIZE = 1 << 20  # bytes of compressed data per IDAT chunk


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    """length | type | data | CRC-32 of type + data."""
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def png_text_chunk(keyword: str, text: str) -> bytes:
    """A tEXt chunk (Latin-1; JSON text is ASCII, non-Latin-1 characters would become '?')."""
    return _png_chunk(b"tEXt", keyword.encode("latin-1") + b"\x00"
                      + text.encode("latin-1", errors="replace"))


def encode_png(pixels: np.ndarray, texts: dict[str, str] | None = None,
               level: int = 6) -> bytes:
    """uint8 or uint16 `[H, W, C]` -> PNG bytes; `texts` become tEXt chunks right after IHDR."""
    height, width, channels = pixels.shape
    color_type = _PNG_COLOR_TYPES.get(channels)
    if color_type is None or pixels.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"PNG needs uint8/uint16 pixels with 1, 3 or 4 channels, got "
                         f"{pixels.dtype} with {channels}")
    depth = 8 * pixels.dtype.itemsize
    header = struct.pack(">IIBBBBB", width, height, depth, color_type, 0, 0, 0)
    rows = np.ascontiguousarray(pixels, dtype=pixels.dtype.newbyteorder(">"))  # PNG: big-endian
    raw = np.concatenate([np.zeros((height, 1), np.uint8),  # filter type 0 (None) per row
                          rows.view(np.uint8).reshape(height, -1)], axis=1)
    data = zlib.compress(raw.tobytes(), level)
    chunks = [_png_chunk(b"IHDR", header)]
    chunks += [png_text_chunk(k, v) for k, v in (texts or {}).items()]
    chunks += [_png_chunk(b"IDAT", data[i:i + _IDAT_SIZE])
               for i in range(0, max(len(data), 1), _IDAT_SIZE)]
    chunks.append(_png_chunk(b"IEND", b""))
    return PNG_SIGNATURE + b"".join(chunks)


# -- OpenEXR -------------------------------------------------------------------------------------

EXR_MAGIC = b"\x76\x2f\x31\x01"
_EXR_FLOAT = 2  # pixel type FLOAT (32-bit)
_EXR_LONG_NAMES = 0x400  # version flag: attribute names/types longer than 31 bytes
_EXR_CHANNELS = {1: "Y", 3: "RGB", 4: "RGBA"}

# CIE 1931 xy of the red, green, blue primaries and the (D65) white point.
REC709_CHROMATICITIES = (0.6400, 0.3300, 0.3000, 0.6000, 0.1500, 0.0600, 0.3127, 0.3290)
REC2020_CHROMATICITIES = (0.7080, 0.2920, 0.1700, 0.7970, 0.1310, 0.0460, 0.3127, 0.3290)


# An EXR header attribute: (name, type name, value bytes).
ExrAttribute = tuple[str, str, bytes]


def exr_string(name: str, text: str) -> ExrAttribute:
    return (name, "string", text.encode("utf-8"))


def exr_chromaticities(primaries: tuple[float, ...]) -> ExrAttribute:
    return ("chromaticities", "chromaticities", struct.pack("<8f", *primaries))


def _attribute_bytes(name: str, kind: str, value: bytes) -> bytes:
    """name NUL type NUL size(int32) value."""
    return (name.encode() + b"\x00" + kind.encode() + b"\x00"
            + struct.pack("<i", len(value)) + value)


def _channel_list(names: list[str]) -> ExrAttribute:
    entries = b"".join(name.encode() + b"\x00" + struct.pack("<iB3xii", _EXR_FLOAT, 0, 1, 1)
                       for name in names)
    return ("channels", "chlist", entries + b"\x00")


def encode_exr(pixels: np.ndarray, extra_attributes: list[ExrAttribute] = ()) -> bytes:
    """float32 `[H, W, C]` -> single-part scanline EXR, FLOAT channels, no compression.

    Channels are stored in name order (A, B, G, R; or Y for grey), as the format requires;
    `extra_attributes` are added to the header after the required ones.
    """
    height, width, channels = pixels.shape
    letters = _EXR_CHANNELS.get(channels)
    if letters is None:
        raise ValueError(f"EXR needs 1, 3 or 4 channels, got {channels}")
    order = sorted(range(channels), key=lambda i: letters[i])
    window = struct.pack("<iiii", 0, 0, width - 1, height - 1)
    attributes = [
        _channel_list([letters[i] for i in order]),
        ("compression", "compression", b"\x00"),  # NO_COMPRESSION: one scanline per block
        ("dataWindow", "box2i", window),
        ("displayWindow", "box2i", window),
        ("lineOrder", "lineOrder", b"\x00"),  # INCREASING_Y
        ("pixelAspectRatio", "float", struct.pack("<f", 1.0)),
        ("screenWindowCenter", "v2f", struct.pack("<ff", 0.0, 0.0)),
        ("screenWindowWidth", "float", struct.pack("<f", 1.0)),
        *extra_attributes,
    ]
    long_names = any(len(name.encode()) > 31 or len(kind) > 31 for name, kind, _ in attributes)
    head = (EXR_MAGIC + struct.pack("<I", 2 | (_EXR_LONG_NAMES if long_names else 0))
            + b"".join(_attribute_bytes(*a) for a in attributes) + b"\x00")
    # Blocks: y (int32), data size (int32), then each channel's row of float32.
    planes = np.ascontiguousarray(pixels[:, :, order].transpose(0, 2, 1), dtype="<f4")
    line_size = channels * width * 4
    first = len(head) + 8 * height  # the offset table holds one uint64 per block
    offsets = first + np.arange(height, dtype=np.uint64) * np.uint64(8 + line_size)
    blocks = np.empty((height, 8 + line_size), np.uint8)
    blocks[:, :8] = np.stack([np.arange(height, dtype="<i4"),
                              np.full(height, line_size, dtype="<i4")], 1).view(np.uint8)
    blocks[:, 8:] = planes.reshape(height, -1).view(np.uint8)
    return head + offsets.astype("<u8").tobytes() + blocks.tobytes()


# -- colour curves (EXR is scene-linear by convention) ---------------------------------------

# BT.2100 HLG constants a, b, c.
HLG_A, HLG_B, HLG_C = 0.17883277, 0.28466892, 0.55991072928


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    """Inverse sRGB curve (IEC 61966-2-1): linear toe up to 0.04045, then a 2.4 power."""
    return np.where(x <= 0.04045, x / 12.92, ((np.maximum(x, 0.0) + 0.055) / 1.055) ** 2.4)


def hlg_to_linear(x: np.ndarray) -> np.ndarray:
    """Inverse HLG OETF (BT.2100) to scene light: x^2/3 up to 0.5, then the log branch."""
    high = (np.exp((np.maximum(x, 0.5) - HLG_C) / HLG_A) + HLG_B) / 12.0
    return np.where(x <= 0.5, x * x / 3.0, high)


def json_texts(prompt: dict | None, extra_pnginfo: dict | None) -> dict[str, str]:
    """ComfyUI's metadata: `prompt` and one entry per extra_pnginfo key, each as JSON."""
    texts = {} if prompt is None else {"prompt": json.dumps(prompt)}
    texts.update({key: json.dumps(value) for key, value in (extra_pnginfo or {}).items()})
    return texts
