"""CLIP tokenizer: ids against transformers' CLIPTokenizer, emphasis parsing, 77-token windows."""

from __future__ import annotations

import gzip
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from comfyless.models.tokenizer import (
    BPE_FILE,
    END_TOKEN,
    START_TOKEN,
    ClipTokenizer,
    encode_text,
    parse_weights,
    vocab_and_merges,
)

TRICKY = [
    "a photo of a cat",
    "",
    "   leading and trailing   spaces\t\tand\ttabs\nnew lines  ",
    "UPPER case MiXeD, punctuation!!! ... ??? (no-emphasis here) [brackets] {braces}",
    "don't won't it's we're they've I'm you'll he'd",
    "numbers 1234567890 3.14 1e-5 #hashtag @mention 50% $100",
    "café naïve résumé Ünïcödé façade",
    "日本語のテキスト 中文 한국어 русский текст ελληνικά",
    "emoji 🐱🚀✨ and symbols ©®™ ← → ≠ ≤",
    "composed e\u0301 vs é (NFC)",
    "under_score snake_case kebab-case CamelCase",
    "<|startoftext|> special tokens <|endoftext|> inside",
    "masterpiece, best quality, " * 30,  # > 77 tokens
]


@pytest.fixture(scope="module")
def hf_tokenizer(tmp_path_factory):
    """transformers' CLIPTokenizer from vocab.json/merges.txt derived here from the BPE file."""
    transformers = pytest.importorskip("transformers")
    lines = gzip.open(BPE_FILE, "rt", encoding="utf-8").read().split("\n")
    merges = lines[1:49152 - 256 - 2 + 1]
    # byte alphabet, rebuilt independently of the module under test
    printable = [*range(33, 127), *range(161, 173), *range(174, 256)]
    extra = [b for b in range(256) if b not in printable]
    alphabet = [chr(b) for b in printable] + [chr(256 + i) for i in range(len(extra))]
    words = alphabet + [c + "</w>" for c in alphabet] + [m.replace(" ", "") for m in merges]
    words += ["<|startoftext|>", "<|endoftext|>"]
    d = tmp_path_factory.mktemp("clip_vocab")
    (d / "vocab.json").write_text(json.dumps({w: i for i, w in enumerate(words)}))
    (d / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    tok = transformers.CLIPTokenizer.from_pretrained(str(d))
    assert tok.vocab_size == 49408
    return tok


def test_vocab_has_clip_size_and_special_ids():
    vocab, merges = vocab_and_merges()
    assert len(vocab) == 49408 and len(merges) == 48894
    assert vocab["<|startoftext|>"] == START_TOKEN and vocab["<|endoftext|>"] == END_TOKEN


def test_known_ids():
    assert encode_text("a photo of a cat") == [320, 1125, 539, 320, 2368]


@pytest.mark.parametrize("text", TRICKY)
def test_ids_match_transformers(hf_tokenizer, text):
    expected = hf_tokenizer(text)["input_ids"]
    assert expected[0] == START_TOKEN and expected[-1] == END_TOKEN
    assert encode_text(text) == expected[1:-1]


def test_emphasis_is_stripped_before_tokenising(hf_tokenizer):
    windows = ClipTokenizer().tokenize_with_weights("a (red:1.3) cat, ((big)) \\(dog\\)")
    ids = [t for t, _ in windows[0] if t not in (START_TOKEN, END_TOKEN)]
    assert ids == hf_tokenizer("a red cat, big (dog)")["input_ids"][1:-1]


def test_parse_weights_follows_comfyui():
    assert parse_weights("a (red:1.3) cat") == [("a ", 1.0), ("red", 1.3), (" cat", 1.0)]
    (_, w), = [p for p in parse_weights("((big))") if p[0] == "big"]
    assert w == pytest.approx(1.21)
    assert parse_weights("(word)") == [("word", pytest.approx(1.1))]
    assert parse_weights("(a (b:0.5) c:2)") == [("a ", 2.0), ("b", 0.5), (" c", 2.0)]
    assert parse_weights("\\(literal\\) text") == [("(literal) text", 1.0)]
    assert parse_weights("(x:abc)") == [("x:abc", pytest.approx(1.1))]  # bad number: x1.1
    assert parse_weights("unclosed (group") == [("unclosed ", 1.0), ("(group", 1.0)]
    # square brackets are plain text in ComfyUI; A1111-style de-emphasis is opt-in
    assert parse_weights("[small]") == [("[small]", 1.0)]
    assert parse_weights("[small] dog", brackets=True) == [("small", pytest.approx(1 / 1.1)),
                                                          (" dog", 1.0)]


def test_windows_have_start_end_and_padding():
    for pad in (END_TOKEN, 0):
        (window,) = ClipTokenizer(pad_token=pad).tokenize_with_weights("a photo of a cat")
        ids = [t for t, _ in window]
        assert len(ids) == 77
        assert ids[:7] == [START_TOKEN, 320, 1125, 539, 320, 2368, END_TOKEN]
        assert ids[7:] == [pad] * 70
    (empty,) = ClipTokenizer(pad_token=0).tokenize_with_weights("")
    assert [t for t, _ in empty][:3] == [START_TOKEN, END_TOKEN, 0]


def test_long_prompt_split_into_75_token_chunks(hf_tokenizer):
    text = "masterpiece, best quality, " * 30
    flat = hf_tokenizer(text)["input_ids"][1:-1]
    assert len(flat) > 75
    windows = ClipTokenizer().tokenize_with_weights(text)
    assert len(windows) == (len(flat) + 74) // 75
    for k, window in enumerate(windows):
        ids = [t for t, _ in window]
        chunk = flat[75 * k:75 * (k + 1)]
        assert len(ids) == 77
        assert ids[: len(chunk) + 2] == [START_TOKEN, *chunk, END_TOKEN]


def test_short_weighted_segment_moves_whole_to_next_window():
    text = "word " * 74 + "(two words:1.2)"  # 74 tokens then a 2-token segment: does not fit
    windows = ClipTokenizer().tokenize_with_weights(text)
    assert len(windows) == 2
    first = [t for t, _ in windows[0]]
    assert first[75] == END_TOKEN  # closed after 74 tokens
    second = windows[1]
    assert [w for _, w in second[1:3]] == [1.2, 1.2]
    assert second[3][0] == END_TOKEN


def test_weights_attached_per_token():
    (window,) = ClipTokenizer().tokenize_with_weights("a (red:1.3) cat")
    assert window[:5] == [(START_TOKEN, 1.0), (320, 1.0), (736, 1.3), (2368, 1.0),
                          (END_TOKEN, 1.0)]


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60))
def test_random_text_ids_match_transformers(hf_tokenizer, text):
    assert encode_text(text) == hf_tokenizer(text)["input_ids"][1:-1]
