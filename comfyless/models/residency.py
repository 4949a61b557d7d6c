"""Idle encoders leave memory while a diffusion model works, and come back from their file.

A LoRA training run needs its text encoder and VAE only before (to cache latents and prompts)
and after (to sample with the new LoRA); on the CPU they otherwise hold their float32 weights
through every training step (SD1.5: 0.8 GB of CLIP-L and VAE; FLUX: a 9 GB T5-XXL). ComfyUI
keeps them in RAM. Here the loaders wrap each encoder module in a `Reloadable` that knows how to
read it again, and every node that runs a model calls `release_idle(keep)` before it starts:
training and sampling keep no encoder, VAE nodes keep their VAE, text-encode nodes their CLIP.
Every reloadable module the node does not use drops its tensors, and the next user reads them
back (`ensure`) - from the page cache when memory allows, so a reload of SD1.5's encoders costs
well under a second.

The module object, its parameters and buffers stay the same Python objects (clones of a CLIP
share them), only their storage is swapped: released tensors hold no memory.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable

import torch
from torch import nn

from ..memory import return_freed_memory
from ..typesys.errors import ModelLoadError


class Reloadable:
    """`module`, whose tensors `release` drops and `ensure` reads back with `reload()` (which
    builds an equal fresh module from the file)."""

    def __init__(self, module: nn.Module, reload: Callable[[], nn.Module], what: str):
        self.module = module
        self._reload = reload
        self._shapes = {key: t.shape for key, t in _tensors(module)}
        self.what = what  # for messages: "CLIP of v1-5.safetensors"
        self.loaded = True
        self.reloads = 0
        self._lock = threading.Lock()
        _REGISTRY.add(self)

    def release(self) -> int:
        """Drop the module's tensors; returns the bytes freed (0 if already released)."""
        with self._lock:
            if not self.loaded:
                return 0
            freed = 0
            for _, tensor in _tensors(self.module):
                freed += tensor.numel() * tensor.element_size()
                # same device and dtype: `.data` may not change a tensor's device type
                tensor.data = torch.empty(0, dtype=tensor.dtype, device=tensor.device)
            self.loaded = False
            return freed

    def ensure(self) -> None:
        """Read the tensors back if they were released (a no-op otherwise)."""
        with self._lock:
            if self.loaded:
                return
            fresh = dict(_tensors(self._reload()))
            for key, tensor in _tensors(self.module):
                new = fresh.get(key)
                if new is None or new.shape != self._shapes[key]:
                    raise ModelLoadError(
                        f"{self.what}: the file changed on disk since it was loaded ("
                        f"{'.'.join(filter(None, key))}: now "
                        f"{'missing' if new is None else tuple(new.shape)}); run again")
                tensor.data = new.data
            self.loaded = True
            self.reloads += 1


def _tensors(module: nn.Module):
    """((submodule path, name), tensor) of every parameter and buffer (persistent or not), tied
    ones once: two modules built alike yield the same keys in the same order."""
    seen: set[int] = set()
    for path, sub in module.named_modules(remove_duplicate=False):
        for name, tensor in [*sub._parameters.items(), *sub._buffers.items()]:
            if tensor is None or id(tensor) in seen:
                continue
            seen.add(id(tensor))
            yield (path, name), tensor


_REGISTRY: weakref.WeakSet[Reloadable] = weakref.WeakSet()


def release_idle(keep: Iterable[object] = ()) -> int:
    """Release every reloadable module except those wrapped around an object in `keep`
    (payloads such as a CLIP or VAE - their `residency` -, Reloadables or modules; None is
    skipped); returns the bytes freed.

    The one policy, called by every node that runs a model: a node about to run a diffusion
    model (training, sampling) keeps nothing; a node about to run a VAE keeps that VAE and a
    node about to run a text encoder keeps that CLIP (a node running both keeps both), so at
    most the encoders in use hold memory. The others come back from their file when next used.
    """
    kept = {id(k) for k in keep if k is not None}
    kept |= {id(k.residency) for k in keep if getattr(k, "residency", None) is not None}
    freed = 0
    for entry in list(_REGISTRY):
        if id(entry) not in kept and id(entry.module) not in kept:
            freed += entry.release()
    if freed:
        return_freed_memory()
    return freed
