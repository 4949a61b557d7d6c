"""comfyless: run ComfyUI workflows headlessly, and train LoRAs, without ComfyUI."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["Graph", "__version__"]


def __getattr__(name: str):
    # Lazy: `import comfyless` must stay cheap (validate never imports torch).
    if name == "Graph":
        from .api import Graph

        return Graph
    raise AttributeError(name)
