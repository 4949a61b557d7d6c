"""The progress display of `comfyless run` and `Graph.run(progress=True)`, torch-free.

One listener for the engine's progress events (engine/context.py ProgressEvent): a line per
node that starts or comes from the cache, a bar for each node that reports steps (sampling,
training, with its loss as the bar's postfix), and a line for every file a node saves along
the way. The bar is tqdm's in a terminal; elsewhere (Jupyter, a log file, a pipe) a plain text
bar: in Jupyter one line redrawn in place with `\\r`, in a file or pipe a new line every 10 %
of the steps, so logs stay short.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

__all__ = ["ProgressDisplay", "TextBar", "in_jupyter"]


def in_jupyter() -> bool:
    """True inside an IPython kernel (Jupyter, VS Code notebooks)."""
    shell = sys.modules.get("IPython")
    get = getattr(shell, "get_ipython", None)
    return get is not None and type(get()).__name__ == "ZMQInteractiveShell"


class TextBar:
    """A plain text progress bar: `5 TrainLoraNode [#####     ] 8/16 loss=0.12`."""

    WIDTH = 24

    def __init__(self, total: int | None, desc: str, file: TextIO, *, in_place: bool) -> None:
        self.total, self.desc, self.file, self.in_place = total, desc, file, in_place
        self.n = 0
        self.postfix: dict[str, Any] = {}
        self._last_decile = -1

    def set_postfix(self, info: dict[str, Any], refresh: bool = False) -> None:
        self.postfix = dict(info)

    def update(self, steps: int) -> None:
        self.n += steps
        if self.in_place:
            self.file.write("\r" + self.line())
            self.file.flush()
            return
        decile = 10 * self.n // self.total if self.total else self.n
        if decile != self._last_decile:  # a log gets a line per 10 % (or per step if unknown)
            self._last_decile = decile
            print(self.line(), file=self.file)

    def line(self) -> str:
        info = " ".join(f"{k}={_short(v)}" for k, v in self.postfix.items())
        if self.total:
            filled = min(self.WIDTH, self.WIDTH * self.n // self.total)
            bar = f"[{'#' * filled}{' ' * (self.WIDTH - filled)}] {self.n}/{self.total}"
        else:
            bar = f"{self.n}"
        return f"{self.desc} {bar} {info}".rstrip()

    def write(self, text: str, file: TextIO | None = None) -> None:
        if self.in_place:
            self.file.write("\n")
        print(text, file=file or self.file)

    def close(self) -> None:
        if self.in_place:
            self.file.write("\n")
            self.file.flush()


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


class ProgressDisplay:
    """Listener drawing one bar per node that reports steps; node lines otherwise.

    `quiet`: only files saved along the way are shown (`run --json`); `saved` collects them.
    `bar`: "auto" (tqdm on a terminal, the text bar elsewhere), "tqdm" or "text".
    """

    def __init__(self, quiet: bool = False, stream: TextIO | None = None, bar: str = "auto"
                 ) -> None:
        self.quiet = quiet
        self._stream = stream
        self.style = bar
        self.bar = None
        self.saved: list[str] = []  # files a node wrote along the way (training snapshots)

    @property
    def stream(self) -> TextIO:
        return self._stream if self._stream is not None else sys.stderr  # as it is now

    def __call__(self, event) -> None:
        if event.kind == "message" and "saved" in event.info:
            self._saved(event)  # shown with --json too: a file appeared in output/
        if self.quiet:
            return
        if event.kind == "progress":
            self._step(event)
        elif event.kind in ("started", "cached"):
            verb = "cached " if event.kind == "cached" else "running"
            print(f"{verb} node {event.node_id} ({event.class_type})", file=self.stream)
        elif event.kind == "finished" and self.bar is not None:
            self.close()

    def _uses_tqdm(self) -> bool:
        if self.style != "auto":
            return self.style == "tqdm"
        isatty = getattr(self.stream, "isatty", None)
        return bool(isatty and isatty()) and not in_jupyter()

    def _new_bar(self, event):
        desc = f"{event.node_id} {event.class_type}"
        if not self._uses_tqdm():
            return TextBar(event.max, desc, self.stream, in_place=in_jupyter())
        from tqdm import tqdm

        return tqdm(total=event.max, desc=desc, file=self.stream, dynamic_ncols=True,
                    mininterval=0.1)

    def _step(self, event) -> None:
        if self.bar is None:
            self.bar = self._new_bar(event)
        if event.info:
            self.bar.set_postfix(event.info, refresh=False)
        self.bar.update((event.value or 0) - self.bar.n)  # tqdm rate-limits the redraws

    def _saved(self, event) -> None:
        self.saved.append(event.info["saved"])
        line = f"node {event.node_id} saved {event.info['saved']}"
        if self.bar is not None:
            self.bar.write(line, file=self.stream)
        else:
            print(line, file=self.stream)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
