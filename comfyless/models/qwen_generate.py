"""Text generation with a Qwen text encoder's language model (ComfyUI's TextGenerate).

What ComfyUI does (comfy/text_encoders/llama.py BaseGenerate / BaseQwen3, sd1_clip.py,
z_image.py, qwen_image.py, comfy_extras/nodes_textgen.py), restated:

* Chat text. Qwen3-4B (CLIP type lumina2, ComfyUI's ZImageTokenizer): always
  `<|im_start|>user\\n{prompt}<|im_end|>\\n<|im_start|>assistant\\n`, with
  `<|im_start|>system\\n{system_prompt}<|im_end|>\\n` in front when a system prompt is given;
  the `thinking` and `use_default_template` switches are not read by that tokenizer.
  Qwen2.5-VL-7B (CLIP type qwen_image, QwenImageTokenizer): the prompt as is when
  `use_default_template` is off or it already starts with `<|im_start|>` /
  `<|start_header_id|>` (one `<|vision_start|><|image_pad|><|vision_end|>` block per image
  that has no `<|image_pad|>` yet is inserted after the last such block, else after
  `<|im_start|>user\\n`, else in front; more pads than images is an error); otherwise the
  plain chat turn: optional system turn, `<|im_start|>user\\n`, one vision block per image,
  the prompt, `<|im_end|>\\n<|im_start|>assistant\\n` (not the Qwen-Image system prompt).
  Tokenized as for encoding (weights off, pad 151643, at least one token); an IMAGE batch
  is one image per sample.
* Prefill: the whole prompt through the decoder (causal attention, no padding mask; Qwen2.5-VL
  refuses a prompt whose mask has zeros; prompts with images get their vision rows and
  multimodal positions). Each later step feeds only the new token at the next position
  (text: 0…L−1 then L, L+1, …; multimodal: one past the last prompt position's maximum,
  equal on the three axes), reusing the cached keys and values of every earlier position.
* Logits: the final normed hidden state of the last position times the token embedding
  matrix (`embed_tokens.weight`): ComfyUI builds no `lm_head` for either encoder (Qwen3-4B
  ties it to the embeddings; for Qwen2.5-VL-7B ComfyUI uses the embeddings too, and so do we;
  a file's `lm_head.weight` is never read). Activations float32 as for encoding.
* Sampling (`sample_token`): greedy argmax when sampling is off or the temperature is 0.
  Otherwise, in this order: repetition penalty on the distinct tokens generated so far
  (negative logits × p, others ÷ p; skipped at 1.0) and presence penalty (minus the value);
  ÷ temperature (skipped at 1.0); if top_k > 0: keep the top_k logits, then min_p (drop
  probabilities below min_p × the highest, within those) and top_p (drop the sorted tail whose
  cumulative probability passes top_p, never the first), then draw one of them; if top_k is 0
  the same min_p / top_p filters on the whole vocabulary. Dropped logits become the float
  minimum. The draw is `torch.multinomial` with a `torch.Generator` on the model's device
  seeded with the seed, so a seed repeats its text on the same device.
* Stop: after `max_length` new tokens, or after a stop token (151643 `<|endoftext|>`, 151645
  `<|im_end|>`), which is kept in the ids. The text is the ids decoded with special tokens
  skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from .qwen_text import (
    PAD_TOKEN,
    VISION_TOKENS,
    QwenAttention,
    QwenLM,
    QwenTextClip,
    QwenTextEncoder,
    attention_mask,
    qwen_tokenizer,
    rope_tables,
)

IM_END = 151645  # <|im_end|>
STOP_TOKENS = (PAD_TOKEN, IM_END)  # ComfyUI's Qwen stop_tokens
IMAGE_PAD_TEXT = "<|image_pad|>"
RAW_CHAT_PREFIXES = ("<|im_start|>", "<|start_header_id|>")  # qwen_image: used as is


@dataclass(frozen=True)
class Sampling:
    """TextGenerate's sampling choices (ComfyUI's defaults when a value is not given)."""

    do_sample: bool = True
    temperature: float = 1.0
    top_k: int = 50
    top_p: float = 1.0
    min_p: float = 0.0
    repetition_penalty: float = 1.0
    presence_penalty: float = 0.0
    seed: int = 42


# --- chat text -----------------------------------------------------------------------------

def _system_turn(system_prompt: str) -> str:
    return f"<|im_start|>system\n{system_prompt}<|im_end|>\n" if system_prompt else ""


def generation_text(encoder: QwenTextEncoder, prompt: str, *, images: int = 0,
                    system_prompt: str = "", use_default_template: bool = True) -> str:
    """The text ComfyUI tokenizes for TextGenerate with this encoder (module docstring)."""
    if encoder.image_template is None:  # Qwen3-4B: ZImageTokenizer
        return (_system_turn(system_prompt)
                + f"<|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n")
    if not use_default_template or prompt.startswith(RAW_CHAT_PREFIXES):
        return _with_image_blocks(prompt, images)
    return (_system_turn(system_prompt) + "<|im_start|>user\n" + VISION_TOKENS * images
            + f"{prompt}<|im_end|>\n<|im_start|>assistant\n")


def _with_image_blocks(text: str, images: int) -> str:
    """`text` with a vision block for each image that has no `<|image_pad|>` yet."""
    pads = text.count(IMAGE_PAD_TEXT)
    if pads > images:
        raise ValueError(f"the prompt has {pads} {IMAGE_PAD_TEXT} placeholders but only "
                         f"{images} image(s) are given")
    blocks = VISION_TOKENS * (images - pads)
    if not blocks:
        return text
    if VISION_TOKENS in text:
        at = text.index(VISION_TOKENS) + len(VISION_TOKENS)
    elif "<|im_start|>user\n" in text:
        at = text.index("<|im_start|>user\n") + len("<|im_start|>user\n")
    else:
        at = 0
    return text[:at] + blocks + text[at:]


# --- the cached decoder --------------------------------------------------------------------

class KVCache:
    """Keys and values (after RoPE, before the grouped-query repeat) of every layer for the
    positions seen so far: [1, kv_heads, capacity, head_dim] float32 each."""

    def __init__(self, lm: QwenLM, capacity: int, device: torch.device):
        cfg = lm.config
        shape = (1, cfg.kv_heads, capacity, cfg.head_dim)
        self.keys = [torch.empty(shape, device=device) for _ in range(cfg.layers)]
        self.values = [torch.empty(shape, device=device) for _ in range(cfg.layers)]
        self.length = 0  # positions filled (the same in every layer once a step is done)


def _cached_attention(attn: QwenAttention, x: Tensor, rope: tuple[Tensor, Tensor],
                      cache: KVCache, layer: int) -> Tensor:
    """`self_attn` over the cached positions plus the `n` new ones in x [1, n, D] (causal
    among the new ones); stores their keys and values."""
    b, n, _ = x.shape
    q, k, v = attn.qkv(x, rope)
    start, end = cache.length, cache.length + n
    cache.keys[layer][:, :, start:end] = k
    cache.values[layer][:, :, start:end] = v
    groups = attn.heads // attn.kv_heads
    k = cache.keys[layer][:, :, :end].repeat_interleave(groups, dim=1)
    v = cache.values[layer][:, :, :end].repeat_interleave(groups, dim=1)
    mask = None
    if n > 1:  # new position i sees every cached one and new ones up to itself
        mask = torch.ones(n, end, dtype=torch.bool, device=x.device).tril(diagonal=start)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    return attn.o_proj(out.transpose(1, 2).reshape(b, n, -1))


def decoder_step(lm: QwenLM, embeds: Tensor, rope: tuple[Tensor, Tensor],
                 cache: KVCache) -> Tensor:
    """Final normed hidden states [1, n, D] float32 of `n` new positions (embeds [1, n, D],
    rope tables [n, head_dim]) after the cached ones; the cache grows by n."""
    x = embeds.float()
    for i, layer in enumerate(lm.model.layers):
        x = x + _cached_attention(layer.self_attn, layer.input_layernorm(x), rope, cache, i)
        x = x + layer.mlp(layer.post_attention_layernorm(x))
    cache.length += embeds.shape[1]
    return lm.model.norm(x)


def token_logits(lm: QwenLM, hidden: Tensor, head: Tensor | None = None) -> Tensor:
    """Logits [1, vocab] float32 of the last position: hidden · embed_tokens.weightᵀ
    (`head`: that weight already in float32, cast once per generation)."""
    if head is None:
        head = lm.model.embed_tokens.weight.float()
    return F.linear(hidden[:, -1].float(), head)


# --- sampling ------------------------------------------------------------------------------

def _drop(logits: Tensor, remove: Tensor) -> Tensor:
    return logits.masked_fill(remove, torch.finfo(logits.dtype).min)


def _min_p_and_top_p(logits: Tensor, min_p: float, top_p: float) -> Tensor:
    """ComfyUI's min_p then top_p filters (dropped entries set to the float minimum)."""
    if min_p > 0.0:
        probs = logits.softmax(dim=-1)
        logits = _drop(logits, probs < min_p * probs.max(dim=-1, keepdim=True).values)
    if top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        past = sorted_logits.softmax(dim=-1).cumsum(dim=-1) > top_p
        past[..., 0] = False  # the most likely token always stays
        logits = _drop(logits, torch.zeros_like(past).scatter(-1, order, past))
    return logits


def sample_token(logits: Tensor, history: Sequence[int], options: Sampling,
                 generator: torch.Generator | None) -> int:
    """The next token from logits [1, vocab] (module docstring for the rule)."""
    if not options.do_sample or options.temperature == 0.0:
        return int(logits.argmax(dim=-1))
    logits = logits.clone()
    penalise = options.repetition_penalty != 1.0 or options.presence_penalty != 0.0
    if history and penalise:
        ids = torch.tensor(sorted(set(history)), device=logits.device)
        picked = logits[:, ids]
        if options.repetition_penalty != 1.0:
            p = options.repetition_penalty
            picked = torch.where(picked < 0, picked * p, picked / p)
        logits[:, ids] = picked - options.presence_penalty
    if options.temperature != 1.0:
        logits = logits / options.temperature
    if options.top_k > 0:
        logits, candidates = logits.topk(min(options.top_k, logits.shape[-1]))
        logits = _min_p_and_top_p(logits, options.min_p, options.top_p)
        choice = torch.multinomial(logits.softmax(dim=-1), 1, generator=generator)
        return int(candidates.gather(1, choice))
    logits = _min_p_and_top_p(logits, options.min_p, options.top_p)
    return int(torch.multinomial(logits.softmax(dim=-1), 1, generator=generator))


# --- the whole loop ------------------------------------------------------------------------

def generate_from_embeds(lm: QwenLM, embeds: Tensor, max_new_tokens: int, options: Sampling,
                         positions: Tensor | None = None,
                         stop_tokens: Sequence[int] = STOP_TOKENS,
                         on_token: Callable[[int, Tensor], None] | None = None) -> list[int]:
    """New token ids after the prompt embeds [1, L, D] (multimodal `positions` [3, L] or
    0…L−1), at most `max_new_tokens`, the stop token included. `on_token(step, logits)` is
    called after each step's logits (progress, interrupt, tests)."""
    device = embeds.device
    length = embeds.shape[1]
    cfg = lm.config
    cache = KVCache(lm, length + max_new_tokens, device)
    next_position = length if positions is None else int(positions[:, -1].max()) + 1
    # 1-D RoPE for every decode position (equal T/H/W positions give the same angles)
    cos, sin = rope_tables(next_position + max_new_tokens, cfg.head_dim, cfg.rope_theta, device)
    rope = (rope_tables(length, cfg.head_dim, cfg.rope_theta, device, positions)
            if positions is not None else (cos[:length], sin[:length]))
    generator = (torch.Generator(device=device).manual_seed(options.seed & (2**64 - 1))
                 if options.do_sample else None)
    head = lm.model.embed_tokens.weight.float()  # a no-op on the CPU (float32 storage)
    generated: list[int] = []
    hidden = decoder_step(lm, embeds, rope, cache)
    for step in range(max_new_tokens):
        logits = token_logits(lm, hidden, head)
        if on_token is not None:
            on_token(step, logits)
        token = sample_token(logits, generated, options, generator)
        generated.append(token)
        if token in stop_tokens or step + 1 == max_new_tokens:
            break
        at = next_position + step
        new = lm.model.embed_tokens(torch.tensor([[token]], device=device))
        hidden = decoder_step(lm, new, (cos[at:at + 1], sin[at:at + 1]), cache)
    return generated


def require_generative(clip, what: str = "the CLIP") -> QwenTextClip:
    """The clip if its text encoder is a Qwen LLM that can generate, else a ValueError saying
    which encoders can."""
    if isinstance(clip, QwenTextClip) and clip.encoder is not None:
        return clip
    specs = [f"CLIP-{spec.name.upper()}" for spec in getattr(clip, "specs", ()) or ()]
    family = getattr(clip, "family", None)
    found = (" + ".join(specs) if specs else "a text encoder") + (
        f" (of the {family!r} family)" if family else "")
    raise ValueError(f"{what} is {found}, which cannot generate text; text generation needs "
                     "an LLM text encoder: Qwen3-4B (CLIPLoader type 'lumina2', e.g. "
                     "qwen_3_4b.safetensors) or Qwen2.5-VL-7B (type 'qwen_image', "
                     "qwen_2.5_vl_7b.safetensors)")


def prompt_embeds(clip: QwenTextClip, text: str, images: Sequence[Tensor] = ()
                  ) -> tuple[Tensor, Tensor | None]:
    """(embeds [1, L, D] float32 on the clip's device, multimodal positions [3, L] or None) of
    the chat text as ComfyUI tokenizes it (images in place of the image pads)."""
    (ids,) = clip.tokenize(text, images, llama_template="{}")[clip.encoder.root]
    ids = [t for t, _ in ids]
    lm = clip.stack.lm()
    if all(isinstance(t, int) for t in ids):
        if clip.encoder.image_template is not None and 0 in attention_mask(ids):
            raise ValueError("the prompt contains <|endoftext|>, which Qwen2.5-VL text "
                             "generation does not accept (ComfyUI: no padded prompts)")
        batch = torch.tensor([ids], dtype=torch.long, device=clip.device)
        return lm.model.embed_tokens(batch).float(), None
    embeds, _, positions = clip._multimodal_inputs(lm, ids)
    return embeds.float(), positions


def generate_text_ids(clip: QwenTextClip, text: str, max_new_tokens: int, options: Sampling,
                      images: Sequence[Tensor] = (),
                      on_token: Callable[[int, Tensor], None] | None = None) -> list[int]:
    """Generated ids for the chat text `text` (generation_text), LoRA patches applied."""
    from ..lora.apply import loras_applied

    clip.ensure_weights()
    with torch.no_grad(), loras_applied(clip.stack, list(clip.patches), target="clip"):
        embeds, positions = prompt_embeds(clip, text, images)
        return generate_from_embeds(clip.stack.lm(), embeds, max_new_tokens, options,
                                    positions, on_token=on_token)


def decode_ids(ids: Sequence[int]) -> str:
    """Token ids to text, special tokens (<|im_end|>, <|endoftext|>, …) skipped."""
    return qwen_tokenizer().decode(list(ids), skip_special_tokens=True)
