"""What the DiT benchmarks (dit_train_step.py, dit_load.py) need to know per family.

Everything else comes from the family record (network, sampling, latent format, writer module
`families/<folder>/writer.py` with network_config / write_diffusion_model): this table holds
only what a benchmark must invent, the text-encoder output it feeds the network (width field of
the network config, a realistic prompt length, extra conditioning) and display names.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class DiTBench:
    family: str  # comfyless family record name (also the writer's `name` argument)
    label: str  # for headers
    text_encoder: str  # whose hidden states the context stands for
    context_field: str  # the network config field holding the context width
    tokens: int  # default caption length of the training/forward context
    file_name: str  # models/diffusion_models file name of the bf16 release
    fp8_file_name: str  # ... and of its float8_e4m3fn release
    pooled: bool = False  # Flux: CLIP-L pooled vector + guidance in the conditioning dict

    def writer(self) -> Any:
        """families/<folder>/writer.py of this family (network_config, write_diffusion_model)."""
        from comfyless.models import families

        folder = families.family(self.family).folder
        return importlib.import_module(f"comfyless.models.families.{folder}.writer")

    def describe(self, cfg: Any) -> str:
        from comfyless.models import families

        return families.family(self.family).describe_config(cfg)

    def context_width(self, cfg: Any) -> int:
        return getattr(cfg, self.context_field)

    def cond_extras(self, cfg: Any, gen: Any) -> dict[str, Any]:
        """The conditioning dict next to the context (CONDITIONING's second element). Full
        prompts without padding, so no attention_mask: the networks then skip masking."""
        if not self.pooled:
            return {}
        import torch

        return {"pooled_output": torch.randn(1, cfg.vec_in_dim, generator=gen), "guidance": 3.5}


BENCHES = {b.family: b for b in (
    # Flux: T5's min_length pads every prompt to 256 tokens
    DiTBench("flux", "FLUX.1 dev", "T5-XXL", "context_in_dim", 256, "flux1-dev.safetensors",
             "flux1-dev-fp8.safetensors", pooled=True),
    # Z-Image: Qwen3-4B chat-template prompt, unpadded; a one-sentence caption is ~32-64 tokens
    DiTBench("zimage", "Z-Image", "Qwen3-4B", "cap_feat_dim", 48,
             "z_image_turbo_bf16.safetensors", "z_image_turbo_fp8_e4m3fn.safetensors"),
    # Qwen-Image: Qwen2.5-VL-7B with the template's system prefix dropped: ~40 for a caption
    DiTBench("qwen-image", "Qwen-Image", "Qwen2.5-VL-7B", "joint_attention_dim", 40,
             "qwen_image_bf16.safetensors", "qwen_image_fp8_e4m3fn.safetensors"),
)}


def bench_for(name: str) -> DiTBench:
    """The benchmark entry of a family name or alias (e.g. "z-image" -> zimage)."""
    from comfyless.models import families

    try:
        return BENCHES[families.family(name).name]
    except (KeyError, ValueError) as exc:
        raise SystemExit(f"--family must be one of {sorted(BENCHES)}, got {name!r}") from exc
