"""RunContext: everything a node may touch besides its inputs.

Files (base dir folders), progress events and the interrupt flag all go through the context,
never module globals, so a test can hand a node a context over `tmp_path`. Randomness comes
from each node's own seed input (a torch.Generator it seeds), never the global RNG.

State: `paths` (folders), `listeners` (progress callbacks), `interrupt` (set by Ctrl-C; nodes
call `check_interrupt()` at step boundaries), `node_id`/`class_type` of the node now running,
`prompt`/`extra_pnginfo` (what SaveImage embeds in PNGs).
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..distributed import scratch_dir
from ..files import UnsafePath, check_write_target, ensure_inside, next_counter
from ..typesys.errors import Interrupted, InvalidValue
from .paths import BasePaths, invalid_value


@dataclass(frozen=True)
class ProgressEvent:
    """kind: 'started' | 'finished' | 'cached' | 'progress' | 'message'."""

    kind: str
    node_id: str | None
    class_type: str | None = None
    value: int | None = None
    max: int | None = None
    info: dict[str, Any] = field(default_factory=dict)


Listener = Callable[[ProgressEvent], None]


@dataclass
class RunContext:
    paths: BasePaths
    listeners: list[Listener] = field(default_factory=list)
    interrupt: threading.Event = field(default_factory=threading.Event)
    node_id: str | None = None
    class_type: str | None = None
    prompt: dict[str, Any] | None = None
    extra_pnginfo: dict[str, Any] | None = None
    device: str = field(default_factory=lambda: os.environ.get("COMFYLESS_DEVICE", "cpu"))
    # `run --save-every N`: TrainLoraNode writes what it has trained every N steps
    save_every: int | None = None

    @classmethod
    def create(cls, base_dir: str | os.PathLike | None = None, **kw: Any) -> RunContext:
        paths = BasePaths.resolve(base_dir)
        # torchrun ranks other than 0 write into a scratch folder (comfyless/distributed.py)
        paths.write_base = scratch_dir()
        return cls(paths, **kw)

    def for_node(self, node_id: str, class_type: str) -> RunContext:
        """A view of this context for one node (shares listeners and the interrupt flag)."""
        view = object.__new__(RunContext)  # dataclasses.replace costs 10x more per node
        view.__dict__.update(self.__dict__, node_id=node_id, class_type=class_type)
        return view

    # -- events ---------------------------------------------------------------------------
    def emit(self, event: ProgressEvent) -> None:
        for listener in list(self.listeners):
            listener(event)

    def message(self, **info: Any) -> None:
        """Tell the listeners something about the running node (a warning, a file it saved)."""
        self.emit(ProgressEvent("message", self.node_id, self.class_type, info=info))

    def progress(self, value: int, total: int, **info: Any) -> None:
        """Report step `value` of `total` (e.g. a training step with its loss); checks interrupt."""
        self.emit(ProgressEvent("progress", self.node_id, self.class_type, value, total, info))
        self.check_interrupt()

    def check_interrupt(self) -> None:
        if self.interrupt.is_set():
            raise Interrupted("interrupted by the user", node_id=self.node_id)

    # -- files ----------------------------------------------------------------------------
    def find(self, kind: str, name: str, input_name: str | None = None) -> Path:
        """An existing file of `kind` ('checkpoints', 'loras', 'input', ...) named by an input."""
        return self.paths.find(kind, name, node_id=self.node_id, input_name=input_name)

    def output_dir(self, name: str, *, folder: str = "output", input_name: str = "folder_name",
                   create: bool = True, within: Path | None = None) -> Path:
        """The sub-folder `name` of `folder` ("output", "temp", "datasets") new files go in.

        The one place a node's write location is checked: `name` is relative (no `..`, not
        absolute) and no existing part of it leads out of the folder through a link; with
        `create` it is made (and checked again, for a link swapped in meanwhile). `within`:
        a folder this returned before, `name` then being relative to (and kept inside) it."""
        where = {"node_id": self.node_id, "input_name": input_name}
        root = self.paths.folders(folder)[0] if within is None else within
        # Checked before mkdir: a sub-folder that is a link out of `root` is refused, never
        # followed (validation did the same for constant names; this covers linked ones).
        try:
            target = check_write_target(root, name, **where)
            if create:
                target.mkdir(parents=True, exist_ok=True)
                ensure_inside(target, root, **where)
        except UnsafePath as exc:
            raise invalid_value(exc) from None
        return target

    def save_path(self, prefix: str, ext: str, *, folder: str = "output",
                  input_name: str = "filename_prefix", gap: str = "_") -> Path:
        """A new, unused `<folder>/<sub>/<base>_<counter:05><gap><ext>` path for `prefix`.

        The counter is 1 + the highest counter already used by that exact name pattern, so an
        earlier file is never overwritten (ComfyUI's SaveLoRA can overwrite; we do not).
        `gap` is "_" for SaveImage's `_00001_.png`, "" for SaveImageAdvanced's `_00001.png`.
        """
        where = {"node_id": self.node_id, "input_name": input_name}
        root = self.paths.folders(folder)[0]
        try:
            target = check_write_target(root, prefix, **where)
        except UnsafePath as exc:
            raise invalid_value(exc) from None
        if not target.name:
            raise InvalidValue("empty file name prefix", **where)
        sub = target.parent.relative_to(root).as_posix()
        target_dir = self.output_dir(sub, folder=folder, input_name=input_name)
        counter = next_counter(target_dir, target.name, re.escape(ext), gap=gap)
        return target_dir / f"{target.name}_{counter:05}{gap}{ext}"
