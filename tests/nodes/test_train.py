"""TrainLoraNode: schema as ComfyUI's, errors naming node and input, resume, engine runs."""

from __future__ import annotations

import inspect
import json
import logging
import struct
import subprocess
import sys

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from comfyless.engine.cache import OutputCache
from comfyless.engine.context import RunContext
from comfyless.engine.execute import run_workflow
from comfyless.lora import ALGORITHMS
from comfyless.lora.train_options import OPTIONS, TRAIN_OPTIONS, TrainInputError
from comfyless.lora.training import (
    LORA_DTYPES,
    LOSSES,
    OPTIMIZERS,
    TRAINING_DTYPES,
    TrainConfig,
)
from comfyless.lora.weights import metadata_of
from comfyless.nodes import build_registry
from comfyless.nodes import train as train_module
from comfyless.nodes.train import TrainLoraNode
from comfyless.typesys.errors import WorkflowError
from comfyless.typesys.schema import Input, Node, NodeSchema, Output
from comfyless.typesys.types import CONDITIONING, LATENT, MODEL, SEED_MAX


@pytest.fixture(autouse=True)
def one_thread():
    """Teammates' tests share 2 cores: 2 OpenMP threads then run ~15x slower than 1."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# Every widget input, as an API-format workflow has them (ComfyUI's defaults, fp32 for speed).
WIDGETS = dict(batch_size=1, grad_accumulation_steps=1, steps=2, learning_rate=0.0005, rank=8,
               optimizer="AdamW", loss_function="MSE", seed=0, training_dtype="fp32",
               lora_dtype="fp32", quantized_backward=False, algorithm="LoRA",
               gradient_checkpointing=True, checkpoint_depth=1, offloading=False,
               existing_lora="[None]", bucket_mode=False, bypass_mode=False)


def wrap(**kw):
    """Inputs as the engine passes them to an is_input_list node: every value a list."""
    base = dict(training_dtype="fp32", lora_dtype="fp32", steps=2)
    base.update(kw)
    return {k: [v] for k, v in base.items()}


def dataset(model, n=2, captions=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    dim = model.config.context_dim
    lat = [{"samples": torch.randn(n, 4, 8, 8, generator=g)}]
    pos = [[[torch.randn(1, 8, dim, generator=g), {}] for _ in range(captions or n)]]
    return lat, pos


def run(ctx, model, n=2, captions=None, **kw):
    lat, pos = dataset(model, n, captions)
    return TrainLoraNode.execute(ctx, model=[model], latents=lat, positive=pos, **wrap(**kw))


def test_schema_matches_comfyui():
    s = TrainLoraNode.schema
    assert [i.name for i in s.inputs] == [
        "model", "latents", "positive", "batch_size", "grad_accumulation_steps", "steps",
        "learning_rate", "rank", "optimizer", "loss_function", "seed", "training_dtype",
        "lora_dtype", "quantized_backward", "algorithm", "gradient_checkpointing",
        "checkpoint_depth", "offloading", "existing_lora", "bucket_mode", "bypass_mode"]
    widgets = [i.default for i in s.inputs[3:]]
    assert widgets == [1, 1, 16, 0.0005, 8, "AdamW", "MSE", 0, "bf16", "bf16", False, "LoRA",
                       True, 1, False, "[None]", False, False]
    ranges = {i.name: (i.min, i.max) for i in s.inputs if i.min is not None}
    assert ranges == {"batch_size": (1, 10000), "grad_accumulation_steps": (1, 1024),
                      "steps": (1, 100000), "learning_rate": (0.0000001, 1.0),
                      "rank": (1, 128), "seed": (0, 2**64 - 1), "checkpoint_depth": (1, 5)}
    assert [o.name for o in s.outputs] == ["lora", "loss_map", "steps"]
    assert [o.name for o in s.legacy_outputs] == ["model", "lora", "loss_map", "steps"]
    # Not flagged not_idempotent (as in ComfyUI): with a fixed seed an unchanged training is a
    # cache hit, and the trained LoRA is reused.
    assert s.is_input_list and not s.not_idempotent and not s.output_node
    lora = s.input_map["existing_lora"]
    assert lora.choices_from == "loras" and lora.extra_choices == ("[None]",)


def test_one_table_drives_schema_config_and_dispatch():
    """train_options.TRAIN_OPTIONS is the one source: the schema's inputs, TrainConfig's
    fields/defaults/checks and the dispatch dicts' keys all follow it."""
    m = TrainLoraNode.schema.input_map
    for o in TRAIN_OPTIONS:
        inp = m[o.name]
        assert (inp.default, inp.min, inp.max, inp.step) == (o.default, o.min, o.max, o.step)
        if o.choices is not None:
            assert inp.choices == o.choices
    names = [i.name for i in TrainLoraNode.schema.inputs[3:]]
    assert names == [o.name for o in TRAIN_OPTIONS]
    config = TrainConfig()
    assert {f: getattr(config, f) for f in TrainConfig.__dataclass_fields__} == \
        {o.name: o.default for o in TRAIN_OPTIONS if o.config}
    assert set(TrainConfig.__dataclass_fields__) < set(names)  # node-only: GPU switches, file
    for key, table in (("optimizer", OPTIMIZERS), ("loss_function", LOSSES),
                       ("training_dtype", TRAINING_DTYPES), ("lora_dtype", LORA_DTYPES),
                       ("algorithm", ALGORITHMS)):
        assert tuple(table) == OPTIONS[key].choices == m[key].choices
    seed = m["seed"]
    assert seed.max == SEED_MAX == 2**64 - 1 and OPTIONS["seed"].max == SEED_MAX


def test_execute_signature_has_the_table_defaults():
    params = inspect.signature(TrainLoraNode.execute).parameters
    assert [p for p in params][:4] == ["ctx", "model", "latents", "positive"]
    assert {n: p.default for n, p in list(params.items())[4:]} == \
        {o.name: (o.default,) for o in TRAIN_OPTIONS}


@pytest.mark.parametrize(("name", "value"), [
    ("optimizer", "Lion"), ("loss_function", "MAE"), ("training_dtype", "fp8"),
    ("lora_dtype", "fp16"), ("algorithm", "DoRA"), ("rank", 0), ("checkpoint_depth", 6),
    ("learning_rate", 2.0)])
def test_bad_option_is_a_structured_error(name, value):
    with pytest.raises(TrainInputError) as raw:
        TrainConfig(**{name: value})
    assert raw.value.input_name == name  # structured: no searching in the message
    ctx = RunContext.create(".").for_node("4", "TrainLoraNode")
    with pytest.raises(WorkflowError) as info:  # the node maps it before touching the model
        TrainLoraNode.execute(ctx, model=[None], latents=[], positive=[], **{name: [value]})
    assert (info.value.node_id, info.value.input_name) == ("4", name)
    assert f"input '{name}'" in str(info.value)


def test_node_module_imports_only_the_torch_free_table():
    source = open(train_module.__file__).read()
    top = [line for line in source.splitlines() if line.startswith(("import ", "from "))]
    assert not any("torch" in line or ".models" in line for line in top)
    assert [line for line in top if ".lora" in line] == [
        "from ..lora.train_options import NO_LORA, TRAIN_OPTIONS, TrainOption"]
    code = ("import sys, comfyless.nodes.train, comfyless.lora.train_options; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_outputs_metadata_and_progress(ctx, tiny_sd15_model):
    events = []
    ctx.listeners.append(events.append)
    ctx = ctx.for_node("5", "TrainLoraNode")
    lora, loss_map, steps = run(ctx, tiny_sd15_model, steps=3, seed=11)
    assert steps == 3 and len(loss_map["loss"]) == 3
    assert all(isinstance(v, float) for v in loss_map["loss"])
    meta = metadata_of(lora)
    assert meta["training.steps"] == "3" and meta["training.seed"] == "11"
    assert meta["training.rank"] == "8" and meta["training.algorithm"] == "LoRA"
    assert meta["training.base_model"] == tiny_sd15_model.source["file"]
    assert len(meta["training.base_model_sha256"]) == 64
    progress = [e for e in events if e.kind == "progress"]
    assert [(e.value, e.max) for e in progress] == [(1, 3), (2, 3), (3, 3)]
    assert [e.info["loss"] for e in progress] == loss_map["loss"]


def test_rank_too_large_names_the_input(ctx, tiny_sd15_model):
    with pytest.raises(WorkflowError, match="rank 128 is too large") as info:
        run(ctx.for_node("3", "TrainLoraNode"), tiny_sd15_model, rank=128)
    assert info.value.input_name == "rank" and info.value.node_id == "3"


def test_caption_mismatch_names_the_input(ctx, tiny_sd15_model):
    with pytest.raises(WorkflowError, match=r"positive conditions \(3\)") as info:
        run(ctx, tiny_sd15_model, n=4, captions=3)
    assert info.value.input_name == "positive"


def test_existing_lora_missing(ctx, tiny_sd15_model):
    with pytest.raises(WorkflowError) as info:
        run(ctx, tiny_sd15_model, existing_lora="gone_4_steps_00001_.safetensors")
    assert info.value.input_name == "existing_lora"
    assert "gone_4_steps_00001_.safetensors" in str(info.value)


def test_resume_adds_steps_and_restores(ctx, tiny_sd15_model):
    lora, _, _ = run(ctx, tiny_sd15_model, steps=2, learning_rate=0.01)
    folder = ctx.paths.folders("loras")[0]
    folder.mkdir(parents=True, exist_ok=True)
    save_file(dict(lora), str(folder / "run_2_steps_00001_.safetensors"))
    again, loss_map, steps = run(ctx, tiny_sd15_model, steps=1, optimizer="SGD",
                                 learning_rate=0.0000001,
                                 existing_lora="run_2_steps_00001_.safetensors")
    assert steps == 3 and metadata_of(again)["training.steps"] == "3"
    for k, v in lora.items():
        torch.testing.assert_close(again[k], v, rtol=0, atol=1e-5)


def test_resume_without_steps_in_name_counts_zero(ctx, tiny_sd15_model, caplog):
    lora, _, _ = run(ctx, tiny_sd15_model, steps=1)
    folder = ctx.paths.folders("loras")[0]
    folder.mkdir(parents=True, exist_ok=True)
    save_file(dict(lora), str(folder / "my_lora.safetensors"))
    with caplog.at_level(logging.WARNING):
        _, _, steps = run(ctx, tiny_sd15_model, steps=1, existing_lora="my_lora.safetensors")
    assert steps == 1
    assert "counting 0 prior steps" in caplog.text


class Data(Node):
    """Test source: a latent batch and its captions (one per sample)."""

    schema = NodeSchema("TestTrainData", inputs=(Input("model", MODEL),),
                        outputs=(Output("latents", LATENT), Output("conditioning", CONDITIONING)))

    @staticmethod
    def execute(ctx, model):
        lat, pos = dataset(model, n=3)
        return lat[0], pos[0]


class NanData(Data):
    schema = NodeSchema("TestNanData", inputs=Data.schema.inputs, outputs=Data.schema.outputs)

    @staticmethod
    def execute(ctx, model):
        lat, pos = dataset(model, n=3)
        lat[0]["samples"][:] = float("nan")
        return lat[0], pos[0]


@pytest.mark.parametrize("slots", [(0, 2), (1, 3)], ids=["current", "legacy"])
def test_through_the_engine_with_savelora(tmp_path, builder, tiny_sd15_checkpoint, slots):
    from tests.fixtures_models import install_model

    ctx = RunContext.create(tmp_path)
    registry = build_registry()
    registry.register(Data)
    name = install_model(ctx, tiny_sd15_checkpoint)
    ckpt = builder.add("CheckpointLoaderSimple", ckpt_name=name)
    data = builder.add("TestTrainData", model=ckpt.out(0))
    train = builder.add("TrainLoraNode", model=ckpt.out(0), latents=data.out(0),
                        positive=data.out(1), **{**WIDGETS, "seed": 3})
    builder.add("SaveLoRA", lora=train.out(slots[0]), prefix="loras/run",
                steps=train.out(slots[1]))
    run_workflow(builder.build(), ctx, registry)
    path = tmp_path / "output" / "loras" / "run_2_steps_00001_.safetensors"
    with safe_open(path, "pt") as f:
        assert f.metadata()["training.seed"] == "3"
        assert "diffusion_model.input_blocks.0.0.lora_down.weight" in f.keys()


def test_same_seed_same_file_through_the_engine(tmp_path, builder, tiny_sd15_checkpoint):
    from tests.fixtures_models import install_model

    ctx = RunContext.create(tmp_path)
    registry = build_registry()
    registry.register(Data)
    name = install_model(ctx, tiny_sd15_checkpoint)
    ckpt = builder.add("CheckpointLoaderSimple", ckpt_name=name)
    data = builder.add("TestTrainData", model=ckpt.out(0))
    train = builder.add("TrainLoraNode", model=ckpt.out(0), latents=data.out(0),
                        positive=data.out(1), **{**WIDGETS, "learning_rate": 0.01})
    builder.add("SaveLoRA", lora=train.out(0), prefix="loras/same", steps=train.out(2))
    workflow = builder.build()
    shared = OutputCache()
    first = run_workflow(workflow, ctx, registry, cache=shared)
    again = run_workflow(workflow, ctx, registry, cache=OutputCache())  # a fresh process, say
    assert train.id in first.executed and train.id in again.executed
    # Same seed, unchanged inputs: a cache hit, as in ComfyUI with a "fixed" seed.
    assert train.id in run_workflow(workflow, ctx, registry, cache=shared).cached
    folder = tmp_path / "output" / "loras"
    a = (folder / "same_2_steps_00001_.safetensors").read_bytes()
    b = (folder / "same_2_steps_00002_.safetensors").read_bytes()
    assert a == b  # byte-identical, header included


def _split(raw: bytes) -> tuple[dict, bytes]:
    n = struct.unpack("<Q", raw[:8])[0]
    return json.loads(raw[8:8 + n]), raw[8 + n:]


def test_nan_loss_writes_nothing(tmp_path, builder, tiny_sd15_checkpoint):
    from tests.fixtures_models import install_model

    ctx = RunContext.create(tmp_path)
    registry = build_registry()
    registry.register(NanData)
    name = install_model(ctx, tiny_sd15_checkpoint)
    ckpt = builder.add("CheckpointLoaderSimple", ckpt_name=name)
    data = builder.add("TestNanData", model=ckpt.out(0))
    train = builder.add("TrainLoraNode", model=ckpt.out(0), latents=data.out(0),
                        positive=data.out(1), **{**WIDGETS, "steps": 3})
    builder.add("SaveLoRA", lora=train.out(0), prefix="loras/nan", steps=train.out(2))
    with pytest.raises(WorkflowError, match="loss became nan at step 1 of 3") as info:
        run_workflow(builder.build(), ctx, registry)
    assert info.value.node_id == train.id
    folder = tmp_path / "output" / "loras"
    assert not folder.exists() or not any(folder.iterdir())


# -- bf16 on a CPU without bf16 units: one warning per process ------------------------------
@pytest.fixture
def bf16_warnings(ctx, monkeypatch):
    """(ctx for node 7, the warnings it emitted, a setter for the CPU's bf16 slowdown)."""
    from comfyless import cpu
    from comfyless.nodes.impl import train as impl

    monkeypatch.setattr(impl, "_bf16_warned", [False])
    slowdown = [None]
    monkeypatch.setattr(cpu, "bf16_slowdown", lambda: slowdown[0])
    events = []
    ctx.listeners.append(events.append)
    warnings = lambda: [e.info["warning"] for e in events  # noqa: E731
                        if e.kind == "message" and "warning" in e.info]

    def set_slowdown(value):
        slowdown[0] = value
    return ctx.for_node("7", "TrainLoraNode"), warnings, set_slowdown


def _warn(ctx, model, **kw):
    from comfyless.nodes.impl.train import warn_slow_bf16

    warn_slow_bf16(ctx, model, TrainConfig(**kw))


def test_bf16_on_a_slow_cpu_warns_once_naming_the_node(bf16_warnings, tiny_sd15_model, caplog):
    ctx, warnings, set_slowdown = bf16_warnings
    set_slowdown(80.0)
    with caplog.at_level(logging.WARNING):
        _warn(ctx, tiny_sd15_model, training_dtype="bf16", lora_dtype="bf16")
        _warn(ctx, tiny_sd15_model, training_dtype="bf16", lora_dtype="bf16")
    [msg] = warnings()
    assert "1/80 of fp32 speed" in msg
    assert "--set 7.training_dtype=fp32" in msg and "--set 7.lora_dtype=fp32" in msg
    assert [r.getMessage() for r in caplog.records if "bf16" in r.getMessage()] == [msg]


def test_only_the_bf16_inputs_are_named(bf16_warnings, tiny_sd15_model):
    ctx, warnings, set_slowdown = bf16_warnings
    set_slowdown(80.0)
    _warn(ctx, tiny_sd15_model, training_dtype="fp32", lora_dtype="bf16")
    [msg] = warnings()
    assert "--set 7.lora_dtype=fp32" in msg and "training_dtype" not in msg


def test_no_bf16_warning_for_fp32_or_on_a_bf16_cpu(bf16_warnings, tiny_sd15_model):
    ctx, warnings, set_slowdown = bf16_warnings
    set_slowdown(80.0)
    _warn(ctx, tiny_sd15_model, training_dtype="fp32", lora_dtype="fp32")
    set_slowdown(None)
    _warn(ctx, tiny_sd15_model, training_dtype="bf16", lora_dtype="bf16")
    assert warnings() == []


def test_the_node_keeps_fp32_without_warning(bf16_warnings, tiny_sd15_model):
    ctx, warnings, set_slowdown = bf16_warnings
    set_slowdown(80.0)
    _, _, steps = run(ctx, tiny_sd15_model, steps=1)
    assert steps == 1 and warnings() == []
