"""`comfyless demo`: train a LoRA and generate with it, end to end, from nothing but the install.

Writes a tiny random-weight SD1.5 checkpoint and a small synthetic image set into the base
directory, runs the shipped train-then-generate workflow (`lora-train`) on the CPU with progress
bars, and prints where the LoRA, the loss graph and the images are. The demo trains in fp32
because on a CPU fp32 is much faster than bf16 (ComfyUI's default stays bf16 in the workflow).
The model's weights are random, so the images are noise; the demo ends with the figure that
shows the learning, measured in the VAE's latent space (`measure_learning`: how much closer to
the training latents the LoRA's samples are than the base model's).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEMO_CHECKPOINT = "comfyless-demo-sd15-tiny.safetensors"
DEMO_DATASET = "comfyless_demo"
DEMO_WORKFLOW = "lora-train"
DEMO_IMAGE_SIZE = 64
DEMO_IMAGES = 6

# Node ids of the shipped lora-train workflow that the demo adjusts
# (see comfyless/workflows/README.md).
DEMO_OVERRIDES = {
    "1.ckpt_name": DEMO_CHECKPOINT,
    "2.folder": DEMO_DATASET,
    "4.text": "a comfyless demo pattern",
    # Enough training for the samples to move measurably towards the training set
    # (tests/workflows/test_it_learned.py measures it with these settings).
    "5.steps": 150,
    "5.batch_size": DEMO_IMAGES,
    "5.learning_rate": 0.01,
    "5.rank": 8,
    "5.seed": 0,
    "5.training_dtype": "fp32",
    "5.lora_dtype": "fp32",
    "5.gradient_checkpointing": False,
    "6.prefix": "loras/comfyless_demo_lora",
    "7.filename_prefix": "comfyless_demo_loss",
    "9.text": "a comfyless demo pattern",
    "11.width": DEMO_IMAGE_SIZE,
    "11.height": DEMO_IMAGE_SIZE,
    "11.batch_size": 2,
    "12.seed": 0,
    "12.steps": 12,
    "12.cfg": 1.0,  # the LoRA learned the positive prompt only; no negative to steer from
    "14.filename_prefix": "comfyless_demo",
}


def write_demo_dataset(folder: Path, count: int = DEMO_IMAGES, size: int = DEMO_IMAGE_SIZE,
                       seed: int = 0) -> list[Path]:
    """`count` PNGs of one distinct pattern (orange stripes on teal) with small variations."""
    import numpy as np
    from PIL import Image

    from .files import write_atomic

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:size, 0:size]
    written = []
    for index in range(count):
        phase = rng.uniform(0, 2 * np.pi)
        stripes = (np.sin((xx + yy) * 0.35 + phase) > 0)[..., None]
        teal, orange = np.array([20, 140, 150]), np.array([245, 140, 30])
        pixels = np.where(stripes, orange, teal) + rng.normal(0, 6, (size, size, 3))
        image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
        path = folder / f"pattern_{index:02}.png"
        write_atomic(path, lambda tmp, im=image: im.save(tmp, format="PNG"))
        (folder / f"pattern_{index:02}.txt").write_text("a comfyless demo pattern\n")
        written.append(path)
    return written


def prepare_base_dir(base: Path) -> None:
    """The tiny checkpoint and the image set, written once (kept if already there)."""
    from .models.checkpoint_writer import write_checkpoint

    checkpoint = base / "models" / "checkpoints" / DEMO_CHECKPOINT
    if not checkpoint.is_file():
        write_checkpoint(checkpoint, "sd15", "tiny", seed=0)
    dataset = base / "input" / DEMO_DATASET
    if not any(dataset.glob("*.png")):
        write_demo_dataset(dataset)


def cli_main(argv: list[str] | None = None) -> int:
    """`comfyless demo [--base-dir D] [--steps N] [--threads N]`."""
    parser = argparse.ArgumentParser(
        prog="comfyless demo",
        description="Train a small LoRA on a synthetic image set and sample with it (CPU).")
    parser.add_argument("--base-dir", default=None,
                        help="where models/, input/, output/ go (default: $COMFYLESS_BASE_DIR "
                             "or ./comfyless-data)")
    parser.add_argument("--steps", type=int, default=DEMO_OVERRIDES["5.steps"],
                        help="training steps (default: %(default)s)")
    from .threads import argparse_threads

    parser.add_argument("--threads", type=argparse_threads, default=None, metavar="N|auto",
                        help="CPU threads for torch (default: $COMFYLESS_THREADS, else 1)")
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error("--steps must be at least 1")
    from .cli import UsageError, apply_threads

    try:  # before prepare_base_dir imports torch
        apply_threads(args.threads)
    except UsageError as exc:
        print(f"comfyless demo: {exc}", file=sys.stderr)
        return 2

    from .cli import main as comfyless_main
    from .engine.paths import BasePaths

    base = BasePaths.resolve(args.base_dir).base
    started = time.perf_counter()
    print(f"comfyless demo: base directory {base}")
    prepare_base_dir(base)
    overrides = {**DEMO_OVERRIDES, "5.steps": args.steps}
    run_args = ["run", DEMO_WORKFLOW, "--base-dir", str(base)]
    if args.threads is not None:
        run_args += ["--threads", str(args.threads)]
    for key, value in overrides.items():
        run_args += ["--set", f"{key}={_as_json(value)}"]
    code = comfyless_main(run_args)
    if code != 0:
        print(f"comfyless demo: the workflow failed (exit code {code})", file=sys.stderr)
        return code
    _print_results(base / "output", time.perf_counter() - started)
    _print_learning(base, overrides)
    return 0


def _as_json(value) -> str:
    import json

    return json.dumps(value)


def _print_results(output: Path, seconds: float) -> None:
    def newest(pattern: str) -> list[Path]:
        return sorted(output.glob(pattern), key=lambda p: p.stat().st_mtime)

    print(f"\ncomfyless demo finished in {seconds:.1f} s")
    for label, pattern in (("LoRA", "loras/comfyless_demo_lora_*.safetensors"),
                           ("loss graph", "comfyless_demo_loss_*.png"),
                           ("loss values", "comfyless_demo_loss_*.csv")):
        found = newest(pattern)
        if found:
            print(f"  {label:12} {found[-1]}")
    images = newest("comfyless_demo_0*_.png")
    for image in images[-2:]:
        print(f"  {'image':12} {image}")


# -- "it learned": the figure the demo prints and tests/workflows/test_it_learned.py asserts --
# The demo's models are random, so its images are noise; learning shows in the loss graph and in
# the VAE's latent space, where the diffusion model works: a LoRA that learned the training set
# pulls samples towards the training latents, compared with the base model sampling the same
# seed and prompt.

LEARNED_MARGIN = 0.2  # "it learned" when LoRA samples are at least 20 % closer than the base's
BASELINE_SAMPLER, BASELINE_DECODE, BASELINE_PREVIEW, LORA_PREVIEW = "30", "31", "32", "33"


@dataclass(frozen=True)
class LearningFigure:
    """Mean RMS distance from a sample to its nearest training latent, with and without the
    LoRA, and the mean training loss over the first and the last 10 steps."""

    with_lora: float
    without: float
    first_loss: float
    last_loss: float

    @property
    def closer(self) -> float:
        """How much closer the LoRA's samples are (0.35: 35 % closer)."""
        return 1.0 - self.with_lora / self.without

    @property
    def learned(self) -> bool:
        return self.closer >= LEARNED_MARGIN

    def line(self) -> str:
        verdict = "it learned" if self.learned else "no clear sign of learning"
        return (f"{verdict}: samples moved {100 * self.closer:.0f}% closer to the training "
                f"latents (distance to the nearest one {self.with_lora:.3f} with the LoRA, "
                f"{self.without:.3f} without; loss {self.first_loss:.3f} -> "
                f"{self.last_loss:.3f})")


def nearest_distance(samples, training) -> float:
    """Mean over `samples` (S, C, h, w) of the RMS distance to the closest of `training`."""
    diff = samples[:, None] - training[None]  # (S, T, C, h, w)
    rms = diff.pow(2).mean(dim=(2, 3, 4)).sqrt()
    return float(rms.min(dim=1).values.mean())


def learning_workflow(overrides: Mapping[str, Any] = DEMO_OVERRIDES) -> dict:
    """The shipped `lora-train` workflow with `overrides`, plus a KSampler on the base model
    (node 1) with the LoRA branch's settings, and previews of both branches' images."""
    from .engine.load import ApiNode, Link, load_workflow
    from .nodes import REGISTRY
    from .workflows import find_shipped

    workflow = load_workflow(find_shipped(DEMO_WORKFLOW), REGISTRY)
    for key, value in overrides.items():
        node_id, name = key.split(".")
        workflow[node_id].inputs[name] = value
    baseline = dict(workflow["12"].inputs, model=Link("1", 0))
    workflow[BASELINE_SAMPLER] = ApiNode(class_type="KSampler", inputs=baseline,
                                         title="without LoRA")
    workflow[BASELINE_DECODE] = ApiNode(class_type="VAEDecode", title=None, inputs={
        "samples": Link(BASELINE_SAMPLER, 0), "vae": Link("1", 2)})
    for preview, images in ((BASELINE_PREVIEW, BASELINE_DECODE), (LORA_PREVIEW, "13")):
        workflow[preview] = ApiNode(class_type="PreviewImage", title=None,
                                    inputs={"images": Link(images, 0)})
    return workflow


def measure_learning(base: Path, overrides: Mapping[str, Any] = DEMO_OVERRIDES):
    """Run `learning_workflow` in `base` up to the two previews (nothing is saved to output/)
    and return (LearningFigure, RunResult). Nodes the demo's own run already executed in this
    process (checkpoint, dataset, training, LoRA sampling) come from the engine's cache, so
    only the base-model branch is new work."""
    import torch

    from .engine.context import RunContext
    from .engine.execute import run_workflow
    from .nodes import REGISTRY

    result = run_workflow(learning_workflow(overrides), RunContext.create(base), REGISTRY,
                          targets=[BASELINE_PREVIEW, LORA_PREVIEW])
    training = torch.cat([latent["samples"] for latent in result.outputs["3"][0]])
    losses = result.outputs["5"][1][0]["loss"]
    window = max(1, min(10, len(losses) // 2))
    figure = LearningFigure(
        with_lora=nearest_distance(result.outputs["12"][0][0]["samples"], training),
        without=nearest_distance(result.outputs[BASELINE_SAMPLER][0][0]["samples"], training),
        first_loss=sum(losses[:window]) / window, last_loss=sum(losses[-window:]) / window)
    return figure, result


def _print_learning(base: Path, overrides: Mapping[str, Any]) -> None:
    figure, _ = measure_learning(base, overrides)
    print("\nThe demo's model has random weights, so its images are noise: the loss graph and")
    print("this figure, measured in the VAE's latent space, are where the learning shows.")
    print(f"  {figure.line()}")
