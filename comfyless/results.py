"""What `Graph.run()` returns: `RunResults`, the run's outputs as Python objects.

`RunResults` is still the dict it always was — output node id -> that node's UI dict
(`results["9"]["images"]`, ComfyUI's shape) — and adds, per node, the objects behind it:

    results.node("9").images      # the IMAGE tensor SaveImage / PreviewImage got (B, H, W, C)
    results.node("9").pil()       # the same as PIL images
    results.node("9").files       # the files it saved, as Paths
    results.node(save_lora).lora  # the LoRA state dict SaveLoRA wrote; .path: the file
    results.node(train).loss      # TrainLoraNode's / LossGraphNode's loss values, a list
    results.node(preview).text    # PreviewAny's / SaveText's text values
    results.loss, results.lora, results.images, results.files, results.text   # shortcuts

`node()` takes a node id, a NodeHandle or an output handle (anything with `.id` or
`.node_id`) of any node that ran or came from the cache, output node or not. Torch is only
imported by `pil()` and when several image batches are joined.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .engine.workflow import link_of

__all__ = ["NodeResult", "RunResults"]


class NodeResult:
    """One node's part of a run: its UI dict, its outputs, and the objects behind them."""

    def __init__(self, node_id: str, class_type: str, schema: Any, ui: dict[str, list[Any]],
                 outputs: tuple[list[Any], ...], inputs: dict[str, list[Any]], paths: Any
                 ) -> None:
        self.id = node_id
        self.class_type = class_type
        self.schema = schema
        self.ui = ui
        self.outputs = outputs  # per output slot, the list of values (ComfyUI's lists)
        self.inputs = inputs  # per input name, the list of values it received
        self._paths = paths

    def __repr__(self) -> str:
        return f"<NodeResult {self.id} ({self.class_type}): {self.describe()}>"

    # -- typed views --------------------------------------------------------------------------
    def _typed(self, input_name: str, type_name: str) -> list[Any]:
        """Values of the input `input_name`, else of the outputs of IO type `type_name`."""
        if input_name in self.inputs:
            return [v for v in self.inputs[input_name] if v is not None]
        for out, values in zip(self.schema.outputs, self.outputs, strict=False):
            if out.type.name == type_name:
                return list(values)
        return []

    @property
    def images(self):
        """The IMAGE tensor (B, H, W, C) the node saved or showed (or produced), or None;
        several batches of one size are joined into one."""
        found = self._typed("images", "IMAGE")
        if not found:
            return None
        if len(found) == 1:
            return found[0]
        import torch

        if len({tuple(t.shape[1:]) for t in found}) == 1:
            return torch.cat(found)
        return found  # batches of different sizes stay a list

    def pil(self) -> list:
        """The images as 8-bit PIL images, one per sample: the pixels SaveImage writes."""
        from .nodes.impl.image_ops import samples, to_pil

        return [to_pil(sample) for batch in self._typed("images", "IMAGE")
                for sample in samples(batch)]

    @property
    def files(self) -> list[Path]:
        """The files the node saved (images, LoRA, loss graph and CSV, text), as Paths."""
        found = []
        for entries in self.ui.values():
            for entry in entries:
                if isinstance(entry, dict) and "filename" in entry:
                    found.append(self._file(entry))
        if self.class_type == "LossGraphNode":  # the CSV beside the PNG, same counter
            found += [p.with_suffix(".csv") for p in list(found)
                      if p.suffix == ".png" and p.with_suffix(".csv").is_file()]
        return found

    def _file(self, entry: dict[str, Any]) -> Path:
        root = self._paths.folders(entry.get("type") or "output")[0]
        sub = entry.get("subfolder") or ""
        return root / sub / entry["filename"] if sub else root / entry["filename"]

    @property
    def path(self) -> Path | None:
        """The first file the node saved, or None."""
        files = self.files
        return files[0] if files else None

    @property
    def lora(self) -> dict | None:
        """The LoRA state dict (key -> tensor) the node saved or trained, or None."""
        found = self._typed("lora", "LORA_MODEL")
        return found[0] if found else None

    @property
    def loss(self) -> list[float] | None:
        """The loss values, one per training step, or None."""
        found = self._typed("loss", "LOSS_MAP")
        if not found:
            return None
        value = found[0]
        values = value.get("loss") if isinstance(value, dict) else value
        return [float(v) for v in values]

    @property
    def text(self) -> list[str]:
        """Text values the node showed or saved (PreviewAny, SaveText)."""
        return [t for t in self.ui.get("text", []) if isinstance(t, str)]

    def describe(self) -> str:
        parts = []
        if (files := self.files):
            parts.append(", ".join(str(f) for f in files))
        if (loss := self.loss) is not None and loss:
            parts.append(f"loss {loss[0]:.4g} -> {loss[-1]:.4g} ({len(loss)} steps)")
        if self.text and not files:
            parts.append(" | ".join(t if len(t) < 60 else t[:57] + "..." for t in self.text))
        return "; ".join(parts) or "done"


class RunResults(dict):
    """Output node id -> its UI dict (as before), plus typed access to every node's results."""

    def __init__(self, run: Any, workflow: Mapping[str, Any], registry: Any, paths: Any) -> None:
        super().__init__(run.ui)
        self.raw = run  # engine.execute.RunResult: ui, outputs, executed, cached
        self.executed: list[str] = list(run.executed)
        self.cached: list[str] = list(run.cached)
        self._workflow = workflow
        self._registry = registry
        self._paths = paths
        self._nodes: dict[str, NodeResult] = {}

    def node(self, which: Any) -> NodeResult:
        """The results of one node that ran: by id, NodeHandle or output handle."""
        node_id = _node_id(which)
        if node_id not in self._nodes:
            if node_id not in self.raw.outputs:
                ran = ", ".join(self.raw.outputs) or "none"
                raise KeyError(f"node {node_id} did not run (nodes that ran: {ran})")
            self._nodes[node_id] = self._make(node_id)
        return self._nodes[node_id]

    def _make(self, node_id: str) -> NodeResult:
        node = self._workflow[node_id]
        schema = self._registry[node.class_type].schema
        inputs = {}
        for name, value in node.inputs.items():
            link = link_of(value)
            if link is None:
                inputs[name] = [value]
            else:
                produced = self.raw.outputs.get(link[0])
                inputs[name] = list(produced[link[1]]) if produced is not None else [None]
        return NodeResult(node_id, node.class_type, schema, self.raw.ui.get(node_id, {}),
                          self.raw.outputs[node_id], inputs, self._paths)

    @property
    def nodes(self) -> dict[str, NodeResult]:
        """Output node id -> NodeResult."""
        return {node_id: self.node(node_id) for node_id in self}

    def _first(self, attr: str) -> Any:
        """`attr` of the first node that ran (in run order) where it is not None, or None."""
        for node_id in self.raw.outputs:
            value = getattr(self.node(node_id), attr)
            if value is not None:
                return value
        return None

    # -- shortcuts over every node ----------------------------------------------------------
    @property
    def images(self) -> list:
        """The IMAGE tensors of the output nodes that saved or showed images."""
        return [images for n in self.nodes.values()
                if "images" in n.inputs and (images := n.images) is not None]

    def pil(self) -> list:
        """Every output node's images as PIL images."""
        return [image for n in self.nodes.values() if "images" in n.inputs for image in n.pil()]

    @property
    def files(self) -> list[Path]:
        """Every file the output nodes saved."""
        return [f for n in self.nodes.values() for f in n.files]

    @property
    def loss(self) -> list[float] | None:
        """The loss values of the run's (first) training, or None."""
        return self._first("loss")

    @property
    def lora(self) -> dict | None:
        """The (first) LoRA state dict the run trained or saved, or None."""
        return self._first("lora")

    @property
    def lora_path(self) -> Path | None:
        """The LoRA file SaveLoRA wrote, or None."""
        for result in self.nodes.values():
            if "lora" in result.inputs and result.path is not None:
                return result.path
        return None

    @property
    def text(self) -> list[str]:
        """Every text value the output nodes showed or saved."""
        return [t for n in self.nodes.values() for t in n.text]

    def __str__(self) -> str:
        lines = [f"{node_id} {r.class_type}: {r.describe()}" for node_id, r in self.nodes.items()]
        return "\n".join(lines) or "no output nodes ran"


def _node_id(which: Any) -> str:
    if isinstance(which, str):
        return which
    if isinstance(which, int) and not isinstance(which, bool):
        return str(which)
    for attr in ("node_id", "id"):
        value = getattr(which, attr, None)
        if isinstance(value, str):
            return value
    raise TypeError(f"a node is named by its id, a NodeHandle or an output handle, "
                    f"not {type(which).__name__}")
