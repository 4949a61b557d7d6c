"""ModelSamplingSD3 / ModelSamplingAuraFlow / ModelSamplingFlux / EmptySD3LatentImage: schemas
as ComfyUI's, a new MODEL (input untouched), sampling and training on a flow-patched tiny SD1.5."""

from __future__ import annotations

import math

import pytest
import torch

from comfyless.engine.context import RunContext
from comfyless.engine.execute import run_workflow
from comfyless.nodes import REGISTRY, build_registry
from comfyless.nodes.model_sampling import (
    EmptySD3LatentImage,
    ModelSamplingAuraFlow,
    ModelSamplingFlux,
    ModelSamplingSD3,
)
from comfyless.nodes.train import TrainLoraNode
from comfyless.typesys.schema import Input, Node, NodeSchema, Output, Result
from comfyless.typesys.types import CONDITIONING, LATENT, MODEL
from tests.fixtures_models import install_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _spec(node):
    return [(i.name, i.type.name, i.default if i.type.widget else None, i.min, i.max, i.step)
            for i in node.schema.inputs]


def test_schemas_match_comfyui():
    assert _spec(ModelSamplingSD3) == [("model", "MODEL", None, None, None, None),
                                       ("shift", "FLOAT", 3.0, 0.0, 100.0, 0.01)]
    assert _spec(ModelSamplingAuraFlow)[1] == ("shift", "FLOAT", 1.73, 0.0, 100.0, 0.01)
    flux = _spec(ModelSamplingFlux)
    assert [f[0] for f in flux] == ["model", "max_shift", "base_shift", "width", "height"]
    assert flux[1][2] == 1.15 and flux[2][2] == 0.5
    assert flux[3][2:4] == (1024, 16) and flux[3][5] == 8 and flux[4][2:4] == (1024, 16)
    empty = _spec(EmptySD3LatentImage)
    assert [e[0] for e in empty] == ["width", "height", "batch_size"]
    assert empty[0][2:4] == (1024, 16) and empty[0][5] == 16 and empty[2][2] == 1
    for node in (ModelSamplingSD3, ModelSamplingAuraFlow, ModelSamplingFlux):
        assert [o.type.name for o in node.schema.outputs] == ["MODEL"]
        assert REGISTRY.get(node.schema.class_type) is node
    assert [o.type.name for o in EmptySD3LatentImage.schema.outputs] == ["LATENT"]


def test_nodes_return_a_new_model_and_leave_the_input(ctx, tiny_sd15_model):
    before = tiny_sd15_model.sampling
    (sd3,) = ModelSamplingSD3.execute(ctx, model=tiny_sd15_model, shift=3.0)
    (aura,) = ModelSamplingAuraFlow.execute(ctx, model=tiny_sd15_model, shift=1.73)
    (flux,) = ModelSamplingFlux.execute(ctx, model=tiny_sd15_model, max_shift=1.15,
                                        base_shift=0.5, width=1024, height=1024)
    assert tiny_sd15_model.sampling is before and before.prediction == "eps"
    for m in (sd3, aura, flux):
        assert m is not tiny_sd15_model and m.sampling.prediction == "const"
        assert m.diffusion_model is tiny_sd15_model.diffusion_model  # weights shared
    assert sd3.sampling.multiplier == 1000.0 and len(sd3.sampling.sigmas) == 1000
    assert aura.sampling.multiplier == 1.0 and aura.sampling.shift == pytest.approx(1.73)
    assert flux.sampling.kind == "flux" and len(flux.sampling.sigmas) == 10000
    assert flux.sampling.shift == pytest.approx(1.15)  # 4096 tokens -> max_shift
    (small,) = ModelSamplingFlux.execute(ctx, model=tiny_sd15_model, max_shift=1.15,
                                         base_shift=0.5, width=256, height=256)
    assert small.sampling.shift == pytest.approx(0.5)  # 256 tokens -> base_shift
    sigma = float(small.sampling.percent_to_sigma(0.5))
    assert sigma == pytest.approx(math.exp(0.5) / (math.exp(0.5) + 1.0))
    # SD3 over an existing flow model keeps its noise_scale
    sd3.sampling.noise_scale = 0.5
    (again,) = ModelSamplingSD3.execute(ctx, model=sd3, shift=2.0)
    assert again.sampling.noise_scale == 0.5 and again.sampling.shift == 2.0


def test_aura_flow_sampling_input_newer_comfyui(ctx, tiny_sd15_model):
    """`sampling` (optional, newer ComfyUI): "flow" is the plain flow; older files saved only
    [shift]; "img_to_img_velocity" is refused at validation, naming node and input."""
    from comfyless.engine.load import load_workflow
    from comfyless.engine.paths import BasePaths
    from comfyless.engine.validate import check_workflow

    sampling = ModelSamplingAuraFlow.schema.input_map["sampling"]
    assert sampling.optional and sampling.default == "flow"
    assert sampling.choices == ("flow", "img_to_img_velocity")
    (flow,) = ModelSamplingAuraFlow.execute(ctx, model=tiny_sd15_model, shift=3.0,
                                            sampling="flow")
    assert flow.sampling.shift == pytest.approx(3.0) and flow.sampling.multiplier == 1.0

    def ui(widgets):
        return {"nodes": [
            {"id": 1, "type": "CheckpointLoaderSimple", "widgets_values": ["m.safetensors"],
             "outputs": [{"name": "MODEL", "type": "MODEL", "links": [1]}]},
            {"id": 2, "type": "ModelSamplingAuraFlow", "widgets_values": widgets,
             "inputs": [{"name": "model", "type": "MODEL", "link": 1}],
             "outputs": [{"name": "MODEL", "type": "MODEL", "links": []}]}],
            "links": [[1, 1, 0, 2, 0, "MODEL"]]}

    older = load_workflow(ui([2.5]), REGISTRY)
    assert older["2"].inputs["shift"] == 2.5 and older["2"].inputs["sampling"] == "flow"
    newer = load_workflow(ui([2.5, "img_to_img_velocity"]), REGISTRY)
    checked = check_workflow(newer, REGISTRY, BasePaths.resolve(ctx.paths.base))
    refused = [e for e in checked.errors if e.input_name == "sampling"]
    assert refused and refused[0].node_id == "2" and "flow" in refused[0].message


def test_empty_sd3_latent(ctx):
    (out,) = EmptySD3LatentImage.execute(ctx, width=1024, height=512, batch_size=2)
    assert out["samples"].shape == (2, 16, 64, 128)
    assert not out["samples"].any()


def test_apply_model_uses_flow_input_and_timestep(ctx, tiny_sd15_model):
    """The network sees x unchanged and timestep sigma*1000; x0 = x - sigma*F."""
    (sd3,) = ModelSamplingSD3.execute(ctx, model=tiny_sd15_model, shift=3.0)
    seen = {}
    unet = sd3.diffusion_model
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 4, 8, 8, generator=g)
    context = torch.randn(1, 8, sd3.config.context_dim, generator=g)
    handle = unet.register_forward_pre_hook(
        lambda mod, args: seen.update(x=args[0].clone(), t=args[1].clone()))
    try:
        with torch.no_grad():
            x0 = sd3.apply_model(x, torch.tensor([0.4]), context)
            raw = unet(x, torch.tensor([400.0]), context, None)
    finally:
        handle.remove()
    torch.testing.assert_close(seen["t"], torch.tensor([400.0]))
    torch.testing.assert_close(x0, x - 0.4 * raw, rtol=1e-5, atol=1e-5)


class _Conds(Node):
    schema = NodeSchema("_FlowConds", inputs=(Input("model", MODEL),),
                        outputs=(Output("positive", CONDITIONING),
                                 Output("negative", CONDITIONING)))

    @staticmethod
    def execute(ctx, model):
        g = torch.Generator().manual_seed(0)
        dim = model.config.context_dim
        return ([[torch.randn(1, 8, dim, generator=g), {}]],
                [[torch.randn(1, 8, dim, generator=g), {}]])


class _Sink(Node):
    schema = NodeSchema("_FlowSink", inputs=(Input("samples", LATENT),), outputs=(),
                        output_node=True)

    @staticmethod
    def execute(ctx, samples):
        return Result((), ui={"samples": [samples["samples"]]})


def _ksampler_workflow(tmp_path, builder, checkpoint, *, flow: bool, sampler="euler"):
    ctx = RunContext.create(tmp_path / "base")
    name = install_model(ctx, checkpoint)
    registry = build_registry()
    registry.register(_Conds)
    registry.register(_Sink)
    b = builder
    model = b.add("CheckpointLoaderSimple", ckpt_name=name).out(0)
    if flow:
        model = b.add("ModelSamplingSD3", model=model, shift=3.0).out(0)
    conds = b.add("_FlowConds", model=model)
    latent = b.add("EmptyLatentImage", width=64, height=64, batch_size=1)
    ks = b.add("KSampler", model=model, seed=7, steps=4, cfg=4.0, sampler_name=sampler,
               scheduler="simple", positive=conds.out(0), negative=conds.out(1),
               latent_image=latent.out(0), denoise=1.0)
    sink = b.add("_FlowSink", samples=ks.out(0))
    result = run_workflow(b.build(), ctx, registry)
    return result.ui[sink.id]["samples"][0]


@pytest.mark.parametrize("sampler", ["euler", "euler_ancestral", "dpmpp_2m"])
def test_ksampler_with_model_sampling_sd3_runs_and_differs(tmp_path, tiny_sd15_checkpoint,
                                                           sampler):
    from tests.conftest import WorkflowBuilder

    flow = _ksampler_workflow(tmp_path / "a", WorkflowBuilder(), tiny_sd15_checkpoint, flow=True,
                              sampler=sampler)
    plain = _ksampler_workflow(tmp_path / "b", WorkflowBuilder(), tiny_sd15_checkpoint,
                               flow=False, sampler=sampler)
    assert flow.shape == plain.shape == (1, 4, 8, 8)
    assert torch.isfinite(flow).all()
    assert (flow - plain).abs().max() > 1e-2


def test_training_on_a_flow_model_lowers_the_loss(ctx, tiny_sd15_model):
    """TrainLoraNode's x0 objective (percent_to_sigma, noise_scaling, calculate_denoised) on
    ModelSamplingSD3: sigmas in (0, 1], and the loss falls when overfitting."""
    (sd3,) = ModelSamplingSD3.execute(ctx, model=tiny_sd15_model, shift=3.0)
    g = torch.Generator().manual_seed(0)
    dim = sd3.config.context_dim
    lat = [{"samples": torch.randn(4, 4, 8, 8, generator=g) * 4}]
    pos = [[[torch.randn(1, 8, dim, generator=g), {}] for _ in range(4)]]
    inputs = dict(training_dtype="fp32", lora_dtype="fp32", steps=40, learning_rate=0.03,
                  batch_size=4, rank=4, seed=0)
    _, loss_map, steps = TrainLoraNode.execute(
        ctx.for_node("9", "TrainLoraNode"), model=[sd3], latents=lat, positive=pos,
        **{k: [v] for k, v in inputs.items()})
    losses = loss_map["loss"]
    assert steps == 40 and all(math.isfinite(v) for v in losses)
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert last < 0.7 * first, (first, last)
