"""Correctness oracle: our UNet == diffusers' UNet2DConditionModel on the same tiny checkpoint,
converted with diffusers' own LDM -> diffusers key conversion (an independent implementation).
"""

from __future__ import annotations

import pytest
import torch

from tests.floats import assert_close_scaled

diffusers = pytest.importorskip("diffusers")
single_file_utils = pytest.importorskip("diffusers.loaders.single_file_utils")


def _diffusers_config(c) -> dict:
    """A diffusers UNet2DConditionModel config describing the same network as UNetConfig c."""
    chans = [c.model_channels * m for m in c.channel_mult]
    first_res = [sum(c.num_res_blocks[:i]) for i in range(len(chans))]
    depth = [c.transformer_depth[i] for i in first_res]
    down = ["CrossAttnDownBlock2D" if d else "DownBlock2D" for d in depth]
    up = ["CrossAttnUpBlock2D" if d else "UpBlock2D" for d in depth[::-1]]
    # diffusers' "attention_head_dim" is the number of heads for SD1.x configs
    per_head = c.num_head_channels
    heads = c.num_heads if per_head == -1 else [ch // per_head for ch in chans]
    cfg = dict(sample_size=8, in_channels=c.in_channels, out_channels=c.out_channels,
               down_block_types=down, up_block_types=up, block_out_channels=chans,
               layers_per_block=c.num_res_blocks[0], cross_attention_dim=c.context_dim,
               attention_head_dim=heads, use_linear_projection=c.use_linear_in_transformer,
               transformer_layers_per_block=[max(d, 1) for d in depth])
    if c.adm_in_channels:
        cfg.update(addition_embed_type="text_time", addition_time_embed_dim=256,
                   projection_class_embeddings_input_dim=c.adm_in_channels)
    return cfg


@pytest.mark.parametrize("arch", ["sd15", "sd2", "sdxl"])
def test_unet_matches_diffusers(arch, tiny_checkpoints):
    from safetensors.torch import load_file

    from comfyless.models.checkpoint import load_checkpoint

    path = tiny_checkpoints[arch]
    model, _, _ = load_checkpoint(path, load_clip=False, load_vae=False)
    c = model.config
    cfg = _diffusers_config(c)
    reference = diffusers.UNet2DConditionModel(**cfg)
    converted = single_file_utils.convert_ldm_unet_checkpoint(load_file(path), cfg)
    reference.load_state_dict(converted, strict=True)
    reference.eval()

    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 4, 16, 12, generator=g)
    context = torch.randn(2, 7, c.context_dim, generator=g)
    t = torch.tensor([10.0, 700.0])
    y, extra = None, {}
    if c.adm_in_channels:  # also checks extra_conds against diffusers' time_ids embedding
        pooled = torch.randn(2, c.adm_in_channels - 1536, generator=g)
        y = torch.cat([model.extra_conds({"pooled_output": pooled[i:i + 1], "crop_h": 3},
                                         width=96, height=128)["y"] for i in range(2)])
        time_ids = torch.tensor([[128.0, 96.0, 3.0, 0.0, 128.0, 96.0]] * 2)
        extra["added_cond_kwargs"] = {"text_embeds": pooled, "time_ids": time_ids}
    with torch.no_grad():
        ours = model.diffusion_model(x, t, context, y)
        theirs = reference(x, t, encoder_hidden_states=context, **extra).sample
    assert ours.abs().max() > 0.1  # a real signal, not zeros
    assert_close_scaled(ours, theirs, rtol=1e-4, atol_rel=1e-4)  # diffusers: other kernels
