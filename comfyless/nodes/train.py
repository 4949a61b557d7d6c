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
`loras/ComfyUI_trained_lora`. Files go through SaveLoRA's writer (train_outputs.write_lora).
"""

from __future__ import annotations

import logging
from typing import Any

from ..typesys.schema import Input, Node, NodeSchema, Output
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

log = logging.getLogger(__name__)

# The combos' choices. The node module must stay torch-free, so these are the keys of the
# dispatch dicts in comfyless.lora.training (OPTIMIZERS, LOSSES, TRAINING_DTYPES, LORA_DTYPES)
# and comfyless.lora.ALGORITHMS; tests/nodes/test_train.py checks they are equal, in order.
OPTIMIZER_CHOICES = ("AdamW", "Adam", "SGD", "RMSprop")
LOSS_CHOICES = ("MSE", "L1", "Huber", "SmoothL1")
TRAINING_DTYPE_CHOICES = ("bf16", "fp32", "none")
LORA_DTYPE_CHOICES = ("bf16", "fp32")
ALGORITHM_CHOICES = ("LoRA", "LoHa", "LoKr", "OFT")
NO_LORA = "[None]"
DEFAULT_PREFIX = "loras/ComfyUI_trained_lora"  # SaveLoRA's default prefix
# --save-every keeps the newest 2 files of a run: the latest state plus the one before it, in
# case the run went bad late (a loss spike), while a long run does not fill the disk. Only files
# this run wrote are ever deleted.
SNAPSHOTS_KEPT = 2

_SCALARS = ("batch_size", "grad_accumulation_steps", "steps", "learning_rate", "rank",
            "optimizer", "loss_function", "seed", "training_dtype", "lora_dtype", "algorithm",
            "gradient_checkpointing", "checkpoint_depth", "bucket_mode", "bypass_mode")


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
            Input("batch_size", INT, default=1, min=1, max=10000),
            Input("grad_accumulation_steps", INT, default=1, min=1, max=1024,
                  added_in="2025-07-24"),
            Input("steps", INT, default=16, min=1, max=100000,
                  tooltip="number of optimizer steps"),
            Input("learning_rate", FLOAT, default=0.0005, min=0.0000001, max=1.0,
                  step=0.0000001),
            Input("rank", INT, default=8, min=1, max=128),
            Input("optimizer", COMBO, default="AdamW", choices=OPTIMIZER_CHOICES),
            Input("loss_function", COMBO, default="MSE", choices=LOSS_CHOICES),
            Input("seed", INT, default=0, min=0, max=0xFFFF_FFFF_FFFF_FFFF,
                  control_after_generate=True,
                  tooltip="noise, timesteps, batch order and adapter initialisation"),
            Input("training_dtype", COMBO, default="bf16", choices=TRAINING_DTYPE_CHOICES,
                  tooltip="compute dtype; on a CPU fp32 is much faster than bf16"),
            Input("lora_dtype", COMBO, default="bf16", choices=LORA_DTYPE_CHOICES),
            Input("quantized_backward", BOOLEAN, default=False, added_in="2026-03-25",
                  tooltip="FP8 backward for quantized models (GPU only; no effect on CPU)"),
            Input("algorithm", COMBO, default="LoRA", choices=ALGORITHM_CHOICES,
                  added_in="2025-07-24"),
            Input("gradient_checkpointing", BOOLEAN, default=True, added_in="2025-07-24"),
            Input("checkpoint_depth", INT, default=1, min=1, max=5, added_in="2026-02-11"),
            Input("offloading", BOOLEAN, default=False, added_in="2026-02-11",
                  tooltip="stream weights to the GPU (no effect on CPU)"),
            Input("existing_lora", COMBO, default=NO_LORA, choices_from="loras",
                  extra_choices=(NO_LORA,), tooltip="resume from this LoRA file"),
            Input("bucket_mode", BOOLEAN, default=False, added_in="2025-12-18",
                  tooltip="latents come from ResolutionBucket"),
            Input("bypass_mode", BOOLEAN, default=False, added_in="2026-01-25",
                  tooltip="adapters as forward hooks instead of merged weights"),
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
        is_input_list=True,
        # Not not_idempotent, as in ComfyUI: training is deterministic in its seed, so an
        # unchanged training (fixed seed) is a cache hit and its LoRA is reused.
        experimental=True,
    )

    @staticmethod
    def execute(ctx, model: list, latents: list, positive: list, batch_size=(1,),
                grad_accumulation_steps=(1,), steps=(16,), learning_rate=(0.0005,), rank=(8,),
                optimizer=("AdamW",), loss_function=("MSE",), seed=(0,),
                training_dtype=("bf16",), lora_dtype=("bf16",), quantized_backward=(False,),
                algorithm=("LoRA",), gradient_checkpointing=(True,), checkpoint_depth=(1,),
                offloading=(False,), existing_lora=(NO_LORA,), bucket_mode=(False,),
                bypass_mode=(False,)) -> tuple:
        # every input is a list (is_input_list); offloading / quantized_backward: GPU only
        args = dict(locals())
        from ..lora.training import TrainingStopped, train_lora
        from ..lora.weights import LoraWeights

        node = ctx.node_id
        values = {k: _unwrap_list(v) for k, v in args.items() if k in _SCALARS}
        values["existing_lora"] = _unwrap_list(existing_lora)
        cfg = _config(values, node)
        existing, prior = _existing(ctx, values.get("existing_lora", NO_LORA))
        model = _unwrap_list(model)

        def progress(step: int, total: int, loss: float) -> None:
            ctx.progress(step, total, loss=loss)  # raises Interrupted when asked to stop

        keeper = _Keeper(ctx, model, cfg, prior)
        try:
            result = train_lora(model, latents, positive, cfg, existing=existing,
                                progress=progress, snapshot_every=ctx.save_every,
                                on_snapshot=keeper.snapshot)
        except TrainingStopped as stop:
            raise keeper.stopped(stop) from stop.__cause__
        except ValueError as exc:
            raise _with_input(exc, node) from exc
        steps = cfg.steps + prior
        lora = LoraWeights(result.lora, _metadata(model, cfg, steps))
        return lora, {"loss": result.losses}, steps


class _Keeper:
    """Writes the adapters trained so far as LoRA files named as SaveLoRA names them."""

    def __init__(self, ctx, model: Any, cfg, prior: int) -> None:
        self.ctx, self.model, self.cfg, self.prior = ctx, model, cfg, prior
        self.prefix = lora_prefix(ctx.prompt, ctx.node_id)
        self.written: list[tuple[int, Any]] = []  # (steps, Path) of this run's snapshots

    def snapshot(self, partial) -> None:
        """--save-every: one more file; this run's older ones beyond SNAPSHOTS_KEPT go."""
        steps = self.prior + partial.steps
        self.written.append((steps, self._write(partial.lora, steps)))
        while len(self.written) > SNAPSHOTS_KEPT:
            self.written.pop(0)[1].unlink(missing_ok=True)

    def stopped(self, stop) -> Exception:
        """The exception to raise for a stopped loop: Interrupted naming the file kept."""
        from ..typesys.errors import Interrupted

        cause = stop.__cause__
        if not isinstance(cause, Interrupted):
            return cause if isinstance(cause, Exception) else stop
        done = stop.partial.steps
        if done == 0:  # nothing new since existing_lora (or since the start)
            return Interrupted(f"interrupted before the first of {self.cfg.steps} training "
                               "steps finished; nothing to save", node_id=self.ctx.node_id)
        steps = self.prior + done
        if self.written and self.written[-1][0] == steps:
            path = self.written[-1][1]  # a snapshot of this very state exists already
        else:
            path = self._write(stop.partial.lora, steps)
        loras = self.ctx.paths.folders("output")[0] / "loras"
        name = path.relative_to(loras).as_posix()
        remaining = self.cfg.steps - done
        return Interrupted(
            f"interrupted after {done} of {self.cfg.steps} training steps; the LoRA trained "
            f"so far ({steps} steps in all) is saved as output/loras/{name}; to resume: "
            f"--set {self.ctx.node_id}.existing_lora={name} "
            f"--set {self.ctx.node_id}.steps={remaining}",
            node_id=self.ctx.node_id, saved_lora=f"loras/{name}", existing_lora=name,
            steps=steps, steps_remaining=remaining)

    def _write(self, tensors: dict, steps: int):
        from ..engine.context import ProgressEvent
        from ..lora.weights import LoraWeights
        from .train_outputs import write_lora

        lora = LoraWeights(tensors, _metadata(self.model, self.cfg, steps))
        path = write_lora(self.ctx, lora, self.prefix, steps)
        rel = path.relative_to(self.ctx.paths.folders("output")[0]).as_posix()
        self.ctx.emit(ProgressEvent("message", self.ctx.node_id, self.ctx.class_type,
                                    info={"saved": f"output/{rel}", "steps": steps}))
        return path


def lora_prefix(prompt: dict | None, node_id: str | None) -> str:
    """Prefix for files the trainer writes itself: that of the first SaveLoRA (or legacy
    SaveLoRANode) whose `lora` comes from this trainer, kept under `loras/` so that
    `existing_lora` lists the file; else SaveLoRA's default. `prompt` is the API JSON."""
    from .impl.image_files import expand_prefix

    for nid in sorted(prompt or {}, key=_id_order):
        node = prompt[nid]
        inputs = node.get("inputs", {}) if isinstance(node, dict) else {}
        link = inputs.get("lora")
        if node.get("class_type") not in ("SaveLoRA", "SaveLoRANode") or not (
                isinstance(link, list) and len(link) == 2 and str(link[0]) == str(node_id)):
            continue
        prefix = inputs.get("prefix", DEFAULT_PREFIX)
        if not isinstance(prefix, str) or not prefix.strip("/"):
            return DEFAULT_PREFIX  # linked from another node, or empty
        parts = expand_prefix(prefix).strip("/").split("/")
        if any(p in ("", ".", "..") for p in parts):
            return DEFAULT_PREFIX  # not a plain relative name (validation reports it)
        return "/".join(parts) if parts[0] == "loras" and len(parts) > 1 else "loras/" + parts[-1]
    return DEFAULT_PREFIX


def _id_order(node_id: str) -> tuple:
    return (0, int(node_id), "") if node_id.isdigit() else (1, 0, node_id)


def _unwrap_list(value: Any) -> Any:
    return value[0] if isinstance(value, list | tuple) else value


def _config(values: dict[str, Any], node_id: str | None):
    from ..lora.training import TrainConfig
    from ..typesys.errors import InvalidValue

    kwargs = {k: values[k] for k in _SCALARS if k in values}
    try:
        return TrainConfig(**kwargs)
    except ValueError as exc:
        name = str(exc).split(" ", 1)[0]
        raise InvalidValue(f"TrainLoraNode input '{name}': {exc}", node_id=node_id,
                           input_name=name) from exc


def _existing(ctx, name: str) -> tuple[dict | None, int]:
    """(tensors of the file, prior steps parsed from its name); (None, 0) for "[None]"."""
    if name in (None, "", NO_LORA):
        return None, 0
    from safetensors.torch import load_file

    from ..lora.training import steps_from_name

    path = ctx.find("loras", name, input_name="existing_lora")
    prior = steps_from_name(name)
    if prior is None:
        log.warning("TrainLoraNode input 'existing_lora': %r has no '_<steps>_steps_' part in "
                    "its name; counting 0 prior steps", name)
        prior = 0
    return load_file(str(path)), prior


def _with_input(exc: ValueError, node_id: str | None) -> Exception:
    """A ValueError from the loop as an error naming the node and, where known, the input."""
    from ..typesys.errors import InvalidValue

    text = str(exc)
    name = None
    for candidate in ("positive", "latents", "rank", "existing_lora"):
        if f"'{candidate}'" in text:
            name = candidate
    if name is None and "rank" in text:
        name = "rank"
    if name is None and "existing LoRA" in text:
        name = "existing_lora"
    if name is None:
        return exc
    prefix = "" if text.startswith("input '") else f"input '{name}': "
    return InvalidValue(f"TrainLoraNode {prefix}{text}", node_id=node_id, input_name=name)


def _metadata(model: Any, cfg, steps: int) -> dict[str, str]:
    source = getattr(model, "source", {}) or {}
    return {
        "training.base_model": str(source.get("file", "")),
        "training.base_model_sha256": str(source.get("sha256", "") if "path" in source
                                          or "sha256" in source else ""),
        "training.steps": str(steps),
        "training.rank": str(cfg.rank),
        "training.alpha": "1.0",
        "training.algorithm": cfg.algorithm,
        "training.optimizer": cfg.optimizer,
        "training.learning_rate": repr(float(cfg.learning_rate)),
        "training.seed": str(cfg.seed),
        "training.dtype": cfg.training_dtype,
        "training.lora_dtype": cfg.lora_dtype,
        "training.loss_function": cfg.loss_function,
    }


NODES = [TrainLoraNode]
