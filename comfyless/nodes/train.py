"""TrainLoraNode ("Train LoRA"): trains LoRA/LoHa/LoKr/OFT adapters on a MODEL.

Inputs, defaults and ranges as ComfyUI's current node (train-nodes.md §4.1); every input arrives
as a list (is_input_list) and scalars take element 0. Outputs are the current layout
`(lora, loss_map, steps)`; workflows made for the legacy layout `(model, lora, loss_map,
steps)` are mapped by the engine through `legacy_outputs`. The loop is comfyless.lora.training.

On CPU `offloading` and `quantized_backward` have no effect (they manage GPU memory and FP8
matmuls); they are accepted so every ComfyUI workflow validates and runs.

Nothing lost: when the run is interrupted (Ctrl-C / SIGTERM, `ctx.interrupt`) the node writes
what was trained so far as `output/<prefix>_<steps>_steps_<counter:05>_.safetensors` (steps =
all steps, a resumed file's included), the name `existing_lora` resumes from, and raises
Interrupted naming it. With `ctx.save_every = N` it writes such a file every N steps and keeps
the newest SNAPSHOTS_KEPT of this run. `<prefix>` is the prefix of the SaveLoRA fed by this
trainer (moved under `loras/` if it is elsewhere, so the LoRA pickers list it), else
`loras/ComfyUI_trained_lora`. Files go through SaveLoRA's writer (impl.train_outputs.write_lora).
The code is in nodes/impl/train.py.
"""

from __future__ import annotations

# torch-free: the one table of the widget inputs (TrainConfig reads it too)
from ..lora.train_options import NO_LORA, TRAIN_OPTIONS, TrainOption
from ..typesys.schema import Input, Node, NodeSchema, Output, implemented_by
from ..typesys.types import (
    BOOLEAN,
    COMBO,
    CONDITIONING,
    FLOAT,
    INT,
    LATENT,
    LORA_MODEL,
    LOSS_MAP,
    MODEL,
)

# --save-every keeps the newest 2 files of a run: the latest state plus the one before it, in
# case the run went bad late (a loss spike), while a long run does not fill the disk. Only files
# this run wrote are ever deleted.
SNAPSHOTS_KEPT = 2

_WIDGET = {int: INT, float: FLOAT, bool: BOOLEAN, str: COMBO}
# What only the node knows about an input (the table has types, defaults, ranges, choices).
_NODE_ONLY: dict[str, dict] = {
    "grad_accumulation_steps": {"added_in": "2025-07-24"},
    "steps": {"tooltip": "number of optimizer steps"},
    "seed": {"control_after_generate": True,
             "tooltip": "noise, timesteps, batch order and adapter initialisation"},
    "training_dtype": {"tooltip": "compute dtype; on a CPU fp32 is much faster than bf16"},
    "quantized_backward": {"added_in": "2026-03-25",
                           "tooltip": "FP8 backward for quantized models (GPU only; no effect "
                                      "on CPU)"},
    "algorithm": {"added_in": "2025-07-24"},
    "gradient_checkpointing": {"added_in": "2025-07-24"},
    "checkpoint_depth": {"added_in": "2026-02-11"},
    "offloading": {"added_in": "2026-02-11",
                   "tooltip": "stream weights to the GPU (no effect on CPU)"},
    "existing_lora": {"choices_from": "loras", "extra_choices": (NO_LORA,),
                      "tooltip": "resume from this LoRA file"},
    "bucket_mode": {"added_in": "2025-12-18", "tooltip": "latents come from ResolutionBucket"},
    "bypass_mode": {"added_in": "2026-01-25",
                    "tooltip": "adapters as forward hooks instead of merged weights"},
}


def _input(option: TrainOption) -> Input:
    """The schema Input of one table row."""
    return Input(option.name, _WIDGET[option.kind], default=option.default, min=option.min,
                 max=option.max, step=option.step, choices=option.choices,
                 **_NODE_ONLY.get(option.name, {}))


class TrainLoraNode(Node):
    """Train a LoRA on latents + captions; returns the weights, the loss history, the steps."""

    schema = NodeSchema(
        "TrainLoraNode",
        display_name="Train LoRA",
        category="model/training",
        inputs=(
            Input("model", MODEL, tooltip="the model to train the LoRA on"),
            Input("latents", LATENT, tooltip="training latents (one batch or a list)"),
            Input("positive", CONDITIONING, tooltip="one caption per latent, or one for all"),
            *(_input(o) for o in TRAIN_OPTIONS),
        ),
        outputs=(
            Output("lora", LORA_MODEL),
            Output("loss_map", LOSS_MAP),
            Output("steps", INT),
        ),
        legacy_outputs=(
            Output("model", MODEL),
            Output("lora", LORA_MODEL),
            Output("loss_map", LOSS_MAP),
            Output("steps", INT),
        ),
        # Older versions' widgets_values / API inputs lack these (train-nodes.md §9): V1 from
        # 2025-07 (with `algorithm`), V1 before 2025-07. They take their defaults.
        older_widget_layouts=(
            ("quantized_backward", "checkpoint_depth", "offloading", "bucket_mode", "bypass_mode"),
            ("quantized_backward", "checkpoint_depth", "offloading", "bucket_mode", "bypass_mode",
             "algorithm"),
        ),
        is_input_list=True,
        # Not not_idempotent, as in ComfyUI: training is deterministic in its seed, so an
        # unchanged training (fixed seed) is a cache hit and its LoRA is reused.
        experimental=True,
    )

    execute = implemented_by("comfyless.nodes.impl.train:train_lora_node")


NODES = [TrainLoraNode]
