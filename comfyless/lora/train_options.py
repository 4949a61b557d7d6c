"""TrainLoraNode's widget inputs, declared once: name, type, default, range, choices.

The node's schema builds its Inputs from this table and `TrainConfig` (training.py) its fields,
defaults and checks, so a choice or a range is written in one place. Torch-free (the node
module imports it at module level; `comfyless.lora` loads its torch modules lazily).
The dispatch dicts in training.py (OPTIMIZERS, ...) are keyed by these choices (tests check).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..typesys.types import SEED_MAX

NO_LORA = "[None]"


@dataclass(frozen=True)
class TrainOption:
    """One widget input. `config`: a TrainConfig field (False: node-only, e.g. GPU switches)."""

    name: str
    kind: type  # int | float | bool | str (str: a combo)
    default: Any
    min: float | None = None
    max: float | None = None
    step: float | None = None
    choices: tuple[str, ...] | None = None
    config: bool = True


class TrainInputError(ValueError):
    """A bad training input (out of range, not a choice, data that do not pair up, an
    existing LoRA that does not fit); `.input_name` names the node's input."""

    def __init__(self, message: str, *, input_name: str) -> None:
        super().__init__(message)
        self.input_name = input_name


# In the node's widget order (ComfyUI's current TrainLoraNode, train-nodes.md §4.1).
TRAIN_OPTIONS: tuple[TrainOption, ...] = (
    TrainOption("batch_size", int, 1, 1, 10000),
    TrainOption("grad_accumulation_steps", int, 1, 1, 1024),
    TrainOption("steps", int, 16, 1, 100000),
    TrainOption("learning_rate", float, 0.0005, 0.0000001, 1.0, step=0.0000001),
    TrainOption("rank", int, 8, 1, 128),
    TrainOption("optimizer", str, "AdamW", choices=("AdamW", "Adam", "SGD", "RMSprop")),
    TrainOption("loss_function", str, "MSE", choices=("MSE", "L1", "Huber", "SmoothL1")),
    TrainOption("seed", int, 0, 0, SEED_MAX),
    TrainOption("training_dtype", str, "bf16", choices=("bf16", "fp32", "none")),
    TrainOption("lora_dtype", str, "bf16", choices=("bf16", "fp32")),
    TrainOption("quantized_backward", bool, False, config=False),
    TrainOption("algorithm", str, "LoRA", choices=("LoRA", "LoHa", "LoKr", "OFT")),
    TrainOption("gradient_checkpointing", bool, True),
    TrainOption("checkpoint_depth", int, 1, 1, 5),
    TrainOption("offloading", bool, False, config=False),
    TrainOption("existing_lora", str, NO_LORA, config=False),  # choices: the loras folder
    TrainOption("bucket_mode", bool, False),
    TrainOption("bypass_mode", bool, False),
)
OPTIONS: dict[str, TrainOption] = {o.name: o for o in TRAIN_OPTIONS}
CONFIG_OPTIONS: tuple[TrainOption, ...] = tuple(o for o in TRAIN_OPTIONS if o.config)


def check_option(name: str, value: Any) -> None:
    """Raise TrainInputError if `value` is outside input `name`'s choices or range."""
    option = OPTIONS[name]
    if option.choices is not None:
        if value not in option.choices:
            raise TrainInputError(f"{name} must be one of {list(option.choices)}, got {value!r}",
                                   input_name=name)
        return
    if option.min is not None and value < option.min:
        raise TrainInputError(f"{name} must be at least {option.min}, got {value}",
                               input_name=name)
    if option.max is not None and value > option.max:
        raise TrainInputError(f"{name} must be at most {option.max}, got {value}",
                               input_name=name)
