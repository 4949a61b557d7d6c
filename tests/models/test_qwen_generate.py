"""Text generation with the Qwen text encoders (models/qwen_generate.py): the transformers
causal LMs as oracle on the same tiny random weights, the KV cache against full forwards,
ComfyUI's sampling rules, chat texts and stop tokens."""

from __future__ import annotations

import pytest
import torch

from comfyless.models import qwen_generate as qg
from comfyless.models import qwen_text as qt
from comfyless.models.text_sets import text_encoder_files
from tests.floats import assert_close_scaled

EMBED_SCALE = 0.2  # smaller embeddings: the layers then steer the greedy text (varied tokens)


def tiny_generative_sd(clip_type: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """A tiny encoder file (the real key layout of text_encoder_files) whose greedy text
    varies: the random embeddings scaled down so they do not dominate the residual stream."""
    (sd,) = text_encoder_files(clip_type, "tiny", torch.Generator().manual_seed(seed)).values()
    return {k: v * EMBED_SCALE if k.endswith("embed_tokens.weight") else v
            for k, v in sd.items()}


@pytest.fixture(scope="module")
def clips():
    return {t: qt.build_qwen_text(tiny_generative_sd(t), qt.QWEN_TEXT_ENCODERS[t])
            for t in ("lumina2", "qwen_image")}


def _oracle(clip_type: str, sd: dict[str, torch.Tensor]):
    """transformers' Qwen3ForCausalLM / Qwen2ForCausalLM with the same weights, head tied to
    the embeddings (ComfyUI's logits)."""
    c = qt.QWEN_TEXT_ENCODERS[clip_type].configs["tiny"]
    common = dict(vocab_size=c.vocab, hidden_size=c.hidden, intermediate_size=c.mlp,
                  num_hidden_layers=c.layers, num_attention_heads=c.heads,
                  num_key_value_heads=c.kv_heads, rms_norm_eps=c.eps, tie_word_embeddings=True,
                  attn_implementation="eager",
                  rope_parameters={"rope_type": "default", "rope_theta": c.rope_theta})
    if clip_type == "lumina2":
        from transformers import Qwen3Config, Qwen3ForCausalLM

        model = Qwen3ForCausalLM(Qwen3Config(**common, head_dim=c.head_dim))
    else:
        from transformers import Qwen2Config, Qwen2ForCausalLM

        assert c.hidden // c.heads == c.head_dim
        model = Qwen2ForCausalLM(Qwen2Config(**common))
    result = model.load_state_dict({k: v for k, v in sd.items() if k.startswith("model.")},
                                   strict=False)
    assert result.missing_keys == ["lm_head.weight"] and not result.unexpected_keys
    model.tie_weights()
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    return model.eval()


def _prompt_ids(clip, text: str) -> list[int]:
    (window,) = clip.tokenize(text, llama_template="{}")[clip.encoder.root]
    return [t for t, _ in window]


@pytest.mark.parametrize("clip_type", ["lumina2", "qwen_image"])
def test_greedy_generation_matches_transformers(clips, clip_type, one_torch_thread):
    clip = clips[clip_type]
    text = qg.generation_text(clip.encoder, "a red fox in the snow")
    steps = []
    ids = qg.generate_text_ids(clip, text, 16, qg.Sampling(do_sample=False),
                               on_token=lambda step, logits: steps.append(logits.clone()))
    assert len(ids) == len(steps) == 16 and len(set(ids)) > 3  # a varied text, not one token

    prompt = torch.tensor([_prompt_ids(clip, text)])
    with torch.no_grad():
        out = _oracle(clip_type, tiny_generative_sd(clip_type)).generate(
            prompt, max_new_tokens=16, do_sample=False, output_logits=True,
            return_dict_in_generate=True, eos_token_id=list(qg.STOP_TOKENS),
            pad_token_id=qt.PAD_TOKEN)
    assert out.sequences[0, prompt.shape[1]:].tolist() == ids
    assert len(out.logits) == len(steps)
    worst = max(float((ours - theirs).abs().max())
                for ours, theirs in zip(steps, out.logits, strict=True))
    print(f"{clip_type}: max abs logit diff over 16 steps {worst:.2e}")
    assert worst < 1e-4


def test_cached_steps_equal_full_forwards(clips):
    """Each step's logits equal a full (uncached) forward over prompt + tokens so far."""
    clip = clips["lumina2"]
    lm = clip.stack.lm()
    prompt = _prompt_ids(clip, qg.generation_text(clip.encoder, "x"))
    steps = []
    with torch.no_grad():
        embeds = lm.model.embed_tokens(torch.tensor([prompt])).float()
        ids = qg.generate_from_embeds(lm, embeds, 5, qg.Sampling(do_sample=False),
                                      on_token=lambda s, logits: steps.append(logits))
        for k in range(len(ids)):
            hidden = lm(torch.tensor([prompt + ids[:k]]))
            assert_close_scaled(steps[k], qg.token_logits(lm, hidden))


def test_image_prompts_generate_with_multimodal_positions(clips):
    """Qwen2.5-VL with an image: the prefill equals the encoder's multimodal forward, and the
    first decode step sits one past the last prompt position on every axis."""
    clip = clips["qwen_image"]
    lm = clip.stack.lm()
    image = torch.rand(1, 56, 84, 3, generator=torch.Generator().manual_seed(1))
    text = qg.generation_text(clip.encoder, "describe", images=1)
    assert text.count(qt.VISION_TOKENS) == 1
    steps = []
    with torch.no_grad():
        embeds, positions = qg.prompt_embeds(clip, text, [image])
        assert positions is not None and positions.shape == (3, embeds.shape[1])
        ids = qg.generate_from_embeds(lm, embeds, 2, qg.Sampling(do_sample=False), positions,
                                      on_token=lambda s, logits: steps.append(logits))
        full = lm(None, None, embeds=embeds, positions=positions)
        assert_close_scaled(steps[0], qg.token_logits(lm, full))
        nxt = int(positions[:, -1].max()) + 1
        longer = torch.cat([embeds, lm.model.embed_tokens(torch.tensor([[ids[0]]]))], dim=1)
        more = torch.cat([positions, torch.full((3, 1), nxt)], dim=1)
        full = lm(None, None, embeds=longer, positions=more)
        assert_close_scaled(steps[1], qg.token_logits(lm, full))


def test_generation_stops_at_a_stop_token_and_keeps_it(clips):
    clip = clips["lumina2"]
    lm = clip.stack.lm()
    with torch.no_grad():
        embeds = lm.model.embed_tokens(torch.tensor([[1, 2, 3]])).float()
        ids = qg.generate_from_embeds(lm, embeds, 12, qg.Sampling(do_sample=False))
        stop = ids[4]
        first = ids.index(stop)
        stopped = qg.generate_from_embeds(lm, embeds, 12, qg.Sampling(do_sample=False),
                                          stop_tokens=(stop,))
    assert stopped == ids[:first + 1]


def test_sampling_is_deterministic_per_seed(clips):
    clip = clips["qwen_image"]
    text = qg.generation_text(clip.encoder, "a poem")

    def run(seed):
        options = qg.Sampling(temperature=1.5, top_k=0, top_p=1.0, seed=seed)
        return qg.generate_text_ids(clip, text, 10, options)

    assert run(7) == run(7)
    assert run(7) != run(8)


# --- ComfyUI's sample_token rules on small logits -------------------------------------------

def _draws(logits, options, n=200):
    gen = torch.Generator().manual_seed(options.seed)
    return {qg.sample_token(logits.clone(), [], options, gen) for _ in range(n)}


def test_greedy_and_zero_temperature_take_the_argmax():
    logits = torch.tensor([[0.1, 3.0, -1.0, 2.9]])
    assert qg.sample_token(logits, [], qg.Sampling(do_sample=False), None) == 1
    assert qg.sample_token(logits, [], qg.Sampling(temperature=0.0), None) == 1


def test_top_k_min_p_and_top_p_limit_the_candidates():
    logits = torch.tensor([[2.0, 1.9, 0.0, -3.0, 1.0]])
    assert _draws(logits, qg.Sampling(top_k=2, top_p=1.0)) == {0, 1}
    # min_p 0.3: probabilities below 0.3 × the highest go (index 3: e^-5, index 2: e^-2)
    assert _draws(logits, qg.Sampling(top_k=0, top_p=1.0, min_p=0.3)) == {0, 1, 4}
    # top_p: a token goes when the cumulative probability up to and including it passes
    # top_p (ComfyUI's rule, no shift): p ≈ 0.41, 0.37, 0.15, ... -> cumulative 0.41, 0.79, 0.94
    assert _draws(logits, qg.Sampling(top_k=0, top_p=0.8)) == {0, 1}
    assert _draws(logits, qg.Sampling(top_k=0, top_p=0.5)) == {0}
    assert _draws(logits, qg.Sampling(top_k=3, top_p=0.01)) == {0}  # the first always stays


def test_repetition_and_presence_penalties_follow_comfyui():
    logits = torch.tensor([[2.0, -1.0, 1.9, 0.5]])
    before = logits.clone()
    # repetition 2 on the history {0, 1}: 2.0 -> 1.0, -1.0 -> -2.0; 1.9 wins a top-1 draw
    options = qg.Sampling(top_k=1, repetition_penalty=2.0)
    assert qg.sample_token(logits, [0, 1, 0], options, torch.Generator()) == 2
    options = qg.Sampling(top_k=1, presence_penalty=0.2)  # 2.0 -> 1.8
    assert qg.sample_token(logits, [0], options, torch.Generator()) == 2
    assert qg.sample_token(logits, [], options, torch.Generator()) == 0
    assert torch.equal(logits, before)  # the caller's logits untouched


# --- chat texts and decoding ----------------------------------------------------------------

def test_chat_texts_as_comfyui_builds_them():
    z, q = qt.QWEN_TEXT_ENCODERS["lumina2"], qt.QWEN_TEXT_ENCODERS["qwen_image"]
    plain = "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    assert qg.generation_text(z, "hi") == plain
    assert qg.generation_text(z, "hi", use_default_template=False) == plain  # not read
    assert qg.generation_text(z, "hi", system_prompt="Be brief.") == (
        "<|im_start|>system\nBe brief.<|im_end|>\n" + plain)
    assert qg.generation_text(q, "hi") == plain  # not the Qwen-Image system prompt
    assert qg.generation_text(q, "hi", images=2) == (
        "<|im_start|>user\n" + qt.VISION_TOKENS * 2 + "hi<|im_end|>\n<|im_start|>assistant\n")
    assert qg.generation_text(q, "hi", use_default_template=False) == "hi"
    assert qg.generation_text(q, "hi", images=1, use_default_template=False) == (
        qt.VISION_TOKENS + "hi")
    raw = "<|im_start|>user\nsee<|im_end|>\n"
    assert qg.generation_text(q, raw, images=1) == (
        "<|im_start|>user\n" + qt.VISION_TOKENS + "see<|im_end|>\n")
    with pytest.raises(ValueError, match="2 <\\|image_pad\\|> placeholders but only 1"):
        qg.generation_text(q, "<|image_pad|><|image_pad|>", images=1,
                           use_default_template=False)


def test_decoding_skips_special_tokens():
    ids = qt.encode_qwen_text("<think>\nok</think>\n\nA cat.<|im_end|>")
    assert ids[-1] == qg.IM_END
    assert qg.decode_ids(ids) == "<think>\nok</think>\n\nA cat."


def test_only_qwen_encoders_generate():
    from comfyless.models.clip import ClipModel

    clip_l = ClipModel(stack=None, specs=(), family="sd1")
    with pytest.raises(ValueError, match="a text encoder .of the 'sd1' family., which cannot "
                                         "generate text.*lumina2.*qwen_image"):
        qg.require_generative(clip_l)
