"""Socket types. Each is one line: the wire name and what travels on it.

The wire name is what ComfyUI writes in workflow JSON and /object_info; compatibility between
two sockets is decided on these names alone (see check.compatible).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class IOType:
    """A socket type: `name` as on the wire; `widget` if a constant can stand in for a link."""

    name: str
    payload: str = ""
    widget: bool = False

    def __str__(self) -> str:
        return self.name


def io_type(name: str, payload: str = "", *, widget: bool = False) -> IOType:
    """Declare a socket type."""
    return IOType(name, payload, widget)


# Widget (constant-capable) types.
INT = io_type("INT", "int", widget=True)
FLOAT = io_type("FLOAT", "float", widget=True)
STRING = io_type("STRING", "str", widget=True)
BOOLEAN = io_type("BOOLEAN", "bool", widget=True)
COMBO = io_type("COMBO", "str, one of the input's choices", widget=True)

# Socket-only types (payloads are documented where the objects are defined).
MODEL = io_type("MODEL", "comfyless.models.patcher.ModelPatcher: diffusion model + sampling")
CLIP = io_type("CLIP", "comfyless.models.clip.ClipModel: tokenizer + text encoder(s)")
VAE = io_type("VAE", "comfyless.models.vae.VAE")
LATENT = io_type("LATENT", "dict: 'samples' Tensor[B, C, H/8, W/8], optional 'batch_index'")
IMAGE = io_type("IMAGE", "Tensor[B, H, W, C] float32 in [0, 1], C = 3")
MASK = io_type("MASK", "Tensor[B, H, W] float32 in [0, 1]")
CONDITIONING = io_type(
    "CONDITIONING", "list of [Tensor[1, T, D] cross-attention context, dict(pooled_output=...)]"
)
LORA_MODEL = io_type("LORA_MODEL", "dict[str, Tensor]: safetensors-ready LoRA state dict")
LOSS_MAP = io_type("LOSS_MAP", "dict: 'loss' list[float], one per training iteration")
# Custom sampling (ComfyUI's comfy_extras custom-sampler nodes); objects in models/guidance.py.
SAMPLER = io_type("SAMPLER", "comfyless.models.guidance.SamplerChoice: .name + sampler function")
SIGMAS = io_type("SIGMAS", "Tensor[steps + 1] float32 on the CPU, high noise to low (may be empty)")
NOISE = io_type("NOISE", "comfyless.models.guidance.RandomNoise | EmptyNoise: .seed, "
                         ".generate(latent dict) -> Tensor")
GUIDER = io_type("GUIDER", "comfyless.models.guidance.Guider: model + conds + cfg, .sample(...)")
CONTROL_NET = io_type("CONTROL_NET", "comfyless.models.controlnet.ControlNet: network (+ hint, "
                                     "strength, start/end percent, previous once applied)")
AUDIO = io_type("AUDIO", "dict: 'waveform' Tensor[B, channels, samples], 'sample_rate' int")
ANY = io_type("*", "anything")
# ComfyUI V3 MatchType: every socket of one template (e.g. a switch's two inputs and its output)
# carries the same type, whichever it is; the frontend enforces that, the backend accepts any.
COMFY_MATCHTYPE_V3 = io_type("COMFY_MATCHTYPE_V3", "any one type, the same on every socket "
                                                   "of the node's match-type template")

# The one seed range: ComfyUI's seed widgets go up to 0xffffffffffffffff, and generators are
# seeded with the seed masked to 64 bits (`seed & SEED_MAX`).
SEED_MAX = 2**64 - 1

ALL_TYPES: dict[str, IOType] = {
    t.name: t
    for t in (INT, FLOAT, STRING, BOOLEAN, COMBO, MODEL, CLIP, VAE, LATENT, IMAGE, MASK,
              CONDITIONING, LORA_MODEL, LOSS_MAP, SAMPLER, SIGMAS, NOISE, GUIDER, ANY,
              COMFY_MATCHTYPE_V3, CONTROL_NET, AUDIO)
}


def union(*types: IOType) -> IOType:
    """A multi-type socket, written as ComfyUI writes it: comma-joined names."""
    return io_type(",".join(t.name for t in types), " | ".join(t.payload for t in types))
