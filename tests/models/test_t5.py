"""T5-XXL encoder and tokenizer: the oracle (transformers' T5EncoderModel and T5TokenizerFast on
the same tiny random weights / the shipped tokenizer.json), config inference, the relative
position buckets, ComfyUI's token rules (no start, one end token, pad to min_length)."""

from __future__ import annotations

import gzip
import math

import pytest
import torch

from comfyless.models.t5 import (
    CONFIGS,
    END_TOKEN,
    PAD_TOKEN,
    TOKENIZER_FILE,
    T5Tokenizer,
    build_t5,
    encode_t5_text,
    infer_t5_config,
    relative_position_buckets,
    t5_root,
    t5_state_dict,
)
from tests.floats import assert_close_scaled

TRICKY = [
    "a photo of a cat",
    "",
    "   leading and trailing   spaces\t\tand\ttabs\nnew lines  ",
    "UPPER case MiXeD, punctuation!!! ... ??? [brackets] {braces} <angle> a/b\\c",
    "numbers 1234567890 3.14 1e-5 #hashtag @mention 50% $100 2024-08-16",
    "café naïve résumé Ünïcödé façade Straße",
    "日本語のテキスト 中文 한국어 русский текст ελληνικά",
    "emoji 🐱🚀✨ and symbols ©®™ ← → ≠ ≤ \u00a0nbsp\u3000ideographic space",
    "composed e\u0301 vs é, ligature ﬁ, fullwidth ＡＢＣ１２３",
    "literal </s> and <extra_id_0> and <pad> tokens",
    "masterpiece, best quality, highly detailed, " * 40,  # > 256 tokens
]


@pytest.fixture(scope="module")
def tiny_sd():
    return t5_state_dict("tiny", torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def hf_encoder(tiny_sd):
    from transformers import T5Config, T5EncoderModel

    cfg = CONFIGS["tiny"]
    hf_cfg = T5Config(vocab_size=cfg.vocab, d_model=cfg.d_model, d_kv=cfg.d_kv, d_ff=cfg.d_ff,
                      num_layers=cfg.layers, num_heads=cfg.heads,
                      relative_attention_num_buckets=32, relative_attention_max_distance=128,
                      feed_forward_proj="gated-gelu", layer_norm_epsilon=1e-6, dropout_rate=0.0,
                      is_encoder_decoder=False, use_cache=False)
    model = T5EncoderModel(hf_cfg).eval()
    result = model.load_state_dict(tiny_sd, strict=False)
    assert result.unexpected_keys == [] and set(result.missing_keys) <= {
        "encoder.embed_tokens.weight"}  # tied to shared.weight
    return model


@pytest.fixture(scope="module")
def hf_tokenizer(tmp_path_factory):
    import transformers

    path = tmp_path_factory.mktemp("t5tok") / "tokenizer.json"
    path.write_bytes(gzip.decompress(TOKENIZER_FILE.read_bytes()))
    cls = getattr(transformers, "T5TokenizerFast", None) or transformers.T5Tokenizer
    return cls(tokenizer_file=str(path))


# -- the oracle: encoder ------------------------------------------------------------------------

def test_encoder_equals_transformers(tiny_sd, hf_encoder, one_torch_thread):
    ours = build_t5(t5_root(tiny_sd))
    ids = torch.randint(0, CONFIGS["tiny"].vocab, (2, 300), generator=torch.Generator()
                        .manual_seed(1))  # > 2·max_distance: every bucket is used
    with torch.no_grad():
        expected = hf_encoder(input_ids=ids).last_hidden_state
        actual = ours(ids)
    diff = float((actual - expected).abs().max())
    print(f"T5 oracle max abs diff (fp32, tiny, L=300): {diff:.3g}")
    assert diff <= 1e-4
    assert_close_scaled(actual, expected)


def test_intermediate_layer_equals_transformers_hidden_state(tiny_sd, hf_encoder):
    ours = build_t5(t5_root(tiny_sd))
    ids = torch.tensor([encode_t5_text("a red fox in the snow") + [END_TOKEN]])
    with torch.no_grad():
        hf = hf_encoder(input_ids=ids, output_hidden_states=True).hidden_states
        block0 = ours(ids, layer_idx=0, norm_hidden=False)
        normed = ours(ids, layer_idx=-2, norm_hidden=True)  # 2 blocks: -2 is block 0
    assert_close_scaled(block0, hf[1])  # hidden_states[1] = block 0's output
    assert_close_scaled(normed, ours.encoder.final_layer_norm(block0))


def test_embed_tokens_only_file_and_fp16_storage(tiny_sd):
    ours = build_t5(t5_root(tiny_sd))
    renamed = {("encoder.embed_tokens.weight" if k == "shared.weight" else k): v
               for k, v in tiny_sd.items()}
    prefixed = {"text_encoders.t5xxl.transformer." + k: v for k, v in renamed.items()}
    other = build_t5(t5_root(prefixed))
    half = build_t5(t5_root(tiny_sd), dtype=torch.float16)
    rounded = build_t5({k: v.half().float() for k, v in t5_root(tiny_sd).items()})
    ids = torch.tensor([[3, 9, 1712, 1, 0, 0]])
    with torch.no_grad():
        assert torch.equal(other(ids), ours(ids))
        out = half(ids)
        # fp16 weights, float32 activations (ComfyUI's per-layer upcast): no fp16 overflow
        assert out.dtype == torch.float32 and half.shared.weight.dtype == torch.float16
        assert_close_scaled(out, rounded(ids))


def test_relative_position_buckets_equal_transformers():
    from transformers.models.t5.modeling_t5 import T5Attention

    n = 600
    pos = torch.arange(n)
    expected = T5Attention._relative_position_bucket(pos[None, :] - pos[:, None],
                                                     bidirectional=True, num_buckets=32,
                                                     max_distance=128)
    actual = relative_position_buckets(n, 32, 128, torch.device("cpu"))
    assert torch.equal(actual, expected)
    assert actual.min() == 0 and actual.max() == 31


def test_config_is_inferred_from_shapes(tiny_sd):
    assert infer_t5_config(t5_root(tiny_sd)) == CONFIGS["tiny"]
    full = t5_state_dict("full")
    assert all(t.is_meta for t in full.values())
    assert infer_t5_config(full) == CONFIGS["full"]
    assert full["encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"].shape \
        == (32, 64)
    assert full["encoder.block.23.layer.1.DenseReluDense.wi_1.weight"].shape == (10240, 4096)
    params = sum(math.prod(t.shape) for t in full.values())
    assert round(params / 1e9, 3) == 4.762  # model-families.md §8
    assert "encoder.block.1.layer.0.SelfAttention.relative_attention_bias.weight" not in full


def test_missing_or_misshapen_weights_are_named(tiny_sd):
    sd = dict(t5_root(tiny_sd))
    del sd["encoder.block.1.layer.1.DenseReluDense.wo.weight"]
    with pytest.raises(KeyError, match="block.1.layer.1.DenseReluDense.wo"):
        build_t5(sd)
    with pytest.raises(KeyError, match="not a T5 encoder"):
        t5_root({"text_model.embeddings.token_embedding.weight": torch.zeros(1)})
    # a scaled-fp8 marker is dropped (scaled weights: tests/models/test_scaled_fp8.py)
    assert "scaled_fp8" not in t5_root({**tiny_sd, "scaled_fp8": torch.zeros(0)})


# -- the oracle: tokenizer ----------------------------------------------------------------------

@pytest.mark.parametrize("text", TRICKY)
def test_token_ids_equal_transformers(text, hf_tokenizer):
    """ComfyUI's rule: the fast tokenizer's ids (which end in </s>), padded with 0 to 256."""
    hf_ids = hf_tokenizer(text)["input_ids"]
    assert hf_ids[-1] == END_TOKEN
    (seq,) = T5Tokenizer(min_length=256).tokenize_with_weights(text)
    ids = [t for t, _ in seq]
    assert ids == hf_ids + [PAD_TOKEN] * max(0, 256 - len(hf_ids))
    assert all(w == 1.0 for _, w in seq)


def test_long_prompts_are_one_sequence(hf_tokenizer):
    text = TRICKY[-1]
    (seq,) = T5Tokenizer(min_length=256).tokenize_with_weights(text)
    assert len(seq) == len(hf_tokenizer(text)["input_ids"]) > 256  # never cut or chunked
    assert seq[-1] == (END_TOKEN, 1.0) and PAD_TOKEN not in [t for t, _ in seq]


def test_weighted_segments_are_encoded_one_by_one(hf_tokenizer):
    text = "a (weighted:1.2) word, ((twice)) and \\(literal\\)"
    (seq,) = T5Tokenizer(min_length=None).tokenize_with_weights(text)
    segments = [("a ", 1.0), ("weighted", 1.2), (" word, ", 1.0), ("twice", 1.1 * 1.1),
                (" and (literal)", 1.0)]
    expected = [(t, w) for s, w in segments for t in hf_tokenizer(s)["input_ids"][:-1]]
    assert [t for t, _ in seq] == [t for t, _ in expected] + [END_TOKEN]
    assert [w for _, w in seq] == pytest.approx([w for _, w in expected] + [1.0])


def test_padding_options():
    content = len(encode_t5_text("a cat"))  # 3 pieces
    assert len(T5Tokenizer(min_length=77).tokenize_with_weights("a cat")[0]) == 77
    assert len(T5Tokenizer(min_length=0).tokenize_with_weights("a cat")[0]) == content + 1
    (seq,) = T5Tokenizer(min_length=0, min_padding=5).tokenize_with_weights("a cat")
    assert [t for t, _ in seq[content:]] == [END_TOKEN] + [PAD_TOKEN] * 5
    (seq,) = T5Tokenizer(min_length=10, min_padding=2).tokenize_with_weights("a cat")
    assert len(seq) == 10
