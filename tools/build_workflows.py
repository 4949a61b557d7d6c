"""Regenerate the shipped example workflows in comfyless/workflows/.

Each workflow is described once below (nodes, widget values, links) and written twice: in
ComfyUI's UI format (litegraph 0.4, what "Save" writes, with positions, sizes and the
`control_after_generate` values after seed widgets) and, for the main one, as its API-format
twin. Widget order and socket lists come from our node schemas, which mirror ComfyUI's.

    python tools/build_workflows.py   (with comfyless installed, e.g. `pip install -e .`)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from comfyless.engine.load import load_workflow, to_api_json
from comfyless.nodes import REGISTRY
from comfyless.typesys.schema import NO_DEFAULT

ROOT = Path(__file__).resolve().parent.parent

OUT = ROOT / "comfyless" / "workflows"


@dataclass
class N:
    """One node: id, class_type, widget values by input name, links by input name, position."""

    id: int
    type: str
    widgets: dict[str, Any] = field(default_factory=dict)
    links: dict[str, tuple[int, int]] = field(default_factory=dict)
    pos: tuple[int, int] = (0, 0)
    title: str | None = None


def _frontend_values(inp) -> list[str]:
    """The frontend-only values saved after a widget (workflow-formats.md §3)."""
    if inp.ui_extra_values == 0:
        return []
    if inp.image_upload:
        return ["image"]
    # Seeds are "fixed" so the shipped workflows give the same result on every run.
    return ["fixed", ""][: inp.ui_extra_values]


def build_ui(nodes: list[N]) -> dict[str, Any]:
    """A litegraph 0.4 workflow as the ComfyUI frontend saves it."""
    by_id = {n.id: n for n in nodes}
    links: list[list[Any]] = []
    out_links: dict[tuple[int, int], list[int]] = {}
    ui_nodes = []
    for order, node in enumerate(nodes):
        schema = REGISTRY[node.type].schema
        inputs, values = [], []
        for inp in schema.inputs:
            linked = node.links.get(inp.name)
            if inp.is_widget:
                if inp.name in node.widgets:
                    value = node.widgets[inp.name]
                elif inp.default is not NO_DEFAULT:
                    value = inp.default
                elif inp.optional and inp.type.name == "INT":
                    value = 0  # the frontend's INT widget default when the schema has none
                else:
                    raise ValueError(f"node {node.id} ({node.type}): no value for {inp.name}")
                values += [value, *_frontend_values(inp)]
            if linked is None:
                if not inp.is_widget and not inp.optional:
                    raise ValueError(f"node {node.id} ({node.type}): {inp.name} needs a link")
                continue
            source, slot = linked
            link_id = len(links) + 1
            source_schema = REGISTRY[by_id[source].type].schema
            link_type = source_schema.outputs[slot].type.name
            links.append([link_id, source, slot, node.id, len(inputs), link_type])
            out_links.setdefault((source, slot), []).append(link_id)
            entry = {"name": inp.name, "type": inp.type.name, "link": link_id}
            if inp.is_widget:
                entry["widget"] = {"name": inp.name}
            inputs.append(entry)
        ui_nodes.append({
            "id": node.id, "type": node.type, "pos": list(node.pos), "size": [320, 110],
            "flags": {}, "order": order, "mode": 0, "inputs": inputs, "outputs": [],
            "properties": {"Node name for S&R": node.type}, "widgets_values": values,
            **({"title": node.title} if node.title else {}),
        })
    for ui_node, node in zip(ui_nodes, nodes, strict=True):
        schema = REGISTRY[node.type].schema
        ui_node["outputs"] = [
            {"name": out.name, "type": out.type.name,
             "links": out_links.get((node.id, slot)) or None,
             **({"shape": 6} if out.is_list else {})}
            for slot, out in enumerate(schema.outputs)
        ]
    return {
        "id": "00000000-0000-4000-8000-0000000000" + f"{len(nodes):02}",
        "revision": 0, "last_node_id": max(by_id), "last_link_id": len(links),
        "nodes": ui_nodes, "links": links, "groups": [], "config": {},
        "extra": {"ds": {"scale": 1.0, "offset": [0, 0]}, "frontendVersion": "1.28.0"},
        "version": 0.4,
    }


def lora_train(checkpoint: str = "v1-5-pruned-emaonly.safetensors", captioned: bool = False,
               width: int = 512) -> list[N]:
    """Load Checkpoint → images → VAE Encode; CLIP Text Encode; Train LoRA → Save LoRA and
    Plot Loss Graph; Load LoRA Model → KSampler → VAE Decode → Save Image."""
    prompt = "a photo in the trained style"
    nodes = [N(1, "CheckpointLoaderSimple", {"ckpt_name": checkpoint}, pos=(0, 0))]
    if captioned:
        nodes += [
            N(2, "LoadImageTextDataSetFromFolder", {"folder": "training_images"}, pos=(0, 200)),
            N(3, "MakeTrainingDataset", {}, {"images": (2, 0), "vae": (1, 2), "clip": (1, 1),
                                            "texts": (2, 1)}, pos=(360, 200)),
        ]
        latents, positive = (3, 0), (3, 1)
    else:
        nodes += [
            N(2, "LoadImageDataSetFromFolder", {"folder": "training_images"}, pos=(0, 200)),
            N(3, "VAEEncode", {}, {"pixels": (2, 0), "vae": (1, 2)}, pos=(360, 200)),
            N(4, "CLIPTextEncode", {"text": prompt}, {"clip": (1, 1)}, pos=(360, 350)),
        ]
        latents, positive = (3, 0), (4, 0)
    nodes += [
        N(5, "TrainLoraNode", {"seed": 0}, {"model": (1, 0), "latents": latents,
                                            "positive": positive}, pos=(720, 0)),
        N(6, "SaveLoRA", {"prefix": "loras/ComfyUI_trained_lora"},
          {"lora": (5, 0), "steps": (5, 2)}, pos=(1080, 0)),
        N(7, "LossGraphNode", {"filename_prefix": "loss_graph"}, {"loss": (5, 1)},
          pos=(1080, 200)),
        N(8, "LoraModelLoader", {"strength_model": 1.0}, {"model": (1, 0), "lora": (5, 0)},
          pos=(1080, 400)),
        N(9, "CLIPTextEncode", {"text": prompt}, {"clip": (1, 1)}, pos=(720, 600)),
        N(10, "CLIPTextEncode", {"text": "blurry, low quality"}, {"clip": (1, 1)},
          pos=(720, 800)),
        N(11, "EmptyLatentImage", {"width": width, "height": width, "batch_size": 1},
          pos=(720, 1000)),
        N(12, "KSampler", {"seed": 42, "steps": 20, "cfg": 7.0, "sampler_name": "euler",
                           "scheduler": "normal", "denoise": 1.0},
          {"model": (8, 0), "positive": (9, 0), "negative": (10, 0), "latent_image": (11, 0)},
          pos=(1440, 400)),
        N(13, "VAEDecode", {}, {"samples": (12, 0), "vae": (1, 2)}, pos=(1800, 400)),
        N(14, "SaveImage", {"filename_prefix": "lora_sample"}, {"images": (13, 0)},
          pos=(2160, 400)),
    ]
    return nodes


def txt2img(checkpoint: str = "v1-5-pruned-emaonly.safetensors") -> list[N]:
    """ComfyUI's default text-to-image graph (the ids of workflow-formats.md §7)."""
    return [
        N(4, "CheckpointLoaderSimple", {"ckpt_name": checkpoint}, pos=(0, 0)),
        N(6, "CLIPTextEncode", {"text": "a red fox in snow"}, {"clip": (4, 1)}, pos=(400, 0)),
        N(7, "CLIPTextEncode", {"text": "blurry"}, {"clip": (4, 1)}, pos=(400, 250)),
        N(5, "EmptyLatentImage", {"width": 512, "height": 512, "batch_size": 1}, pos=(400, 500)),
        N(3, "KSampler", {"seed": 42, "steps": 20, "cfg": 8.0, "sampler_name": "euler",
                          "scheduler": "normal", "denoise": 1.0},
          {"model": (4, 0), "positive": (6, 0), "negative": (7, 0), "latent_image": (5, 0)},
          pos=(800, 0)),
        N(8, "VAEDecode", {}, {"samples": (3, 0), "vae": (4, 2)}, pos=(1200, 0)),
        N(9, "SaveImage", {"filename_prefix": "ComfyUI"}, {"images": (8, 0)}, pos=(1500, 0)),
    ]


WORKFLOWS = {
    "txt2img": lambda: txt2img(),
    "lora-train": lambda: lora_train(),
    "lora-train-sdxl": lambda: lora_train("sd_xl_base_1.0.safetensors", width=1024),
    "lora-train-captioned": lambda: lora_train(captioned=True),
}
API_TWINS = {"lora-train": "lora-train-api"}


def main() -> None:
    for name, make in WORKFLOWS.items():
        ui = build_ui(make())
        path = OUT / f"{name}.json"
        path.write_text(json.dumps(ui, indent=1) + "\n")
        api = to_api_json(load_workflow(path, REGISTRY))
        if name in API_TWINS:
            (OUT / f"{API_TWINS[name]}.json").write_text(json.dumps(api, indent=1) + "\n")
        print(f"wrote {path.name} ({len(ui['nodes'])} nodes)")


if __name__ == "__main__":
    main()
