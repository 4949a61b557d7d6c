"""CLIP BPE tokenizer with ComfyUI's prompt-weight syntax and 77-token windows.

The vocabulary comes from the shipped `vocab/bpe_simple_vocab_16e6.txt.gz` (MIT, see
vocab/README.md) and is built once per process into a `tokenizers` BPE model with the same
text pipeline as transformers' CLIPTokenizer: NFC, whitespace runs -> one space, lowercase,
CLIP's word regex, byte-level alphabet, `</w>` word ends.

Weights (ComfyUI): `(text)` x1.1 per nesting level, `(text:1.3)` sets the weight, `\\(` and
`\\)` are literal parentheses; square brackets are plain text in ComfyUI (A1111's `[text]`
/1.1 is available with `brackets=True`). Every weighted segment is tokenised on its own.
Windows: start token, up to 75 tokens, end token, padding to 77. A segment shorter than
`max_word_length` tokens is never split across windows (it moves to the next window whole).
"""

from __future__ import annotations

import functools
import gzip
from pathlib import Path

START_TOKEN = 49406
END_TOKEN = 49407
VOCAB_SIZE = 49408
BPE_FILE = Path(__file__).with_name("vocab") / "bpe_simple_vocab_16e6.txt.gz"
# CLIP's word splitter (contractions, letter runs, single digits, other non-space runs)
WORD_PATTERN = (r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|"""
                r"""[\p{N}]|[^\s\p{L}\p{N}]+""")

TokenWeights = list[tuple[int, float]]


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP byte -> printable character table (256 entries)."""
    bs = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
          + list(range(ord("®"), ord("ÿ") + 1)))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs), strict=True))


@functools.cache
def vocab_and_merges() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """CLIP's 49408-token vocabulary and 48894 merges, derived from the BPE file."""
    lines = gzip.open(BPE_FILE, "rt", encoding="utf-8").read().split("\n")
    merges = [tuple(line.split()) for line in lines[1:49152 - 256 - 2 + 1]]
    chars = list(bytes_to_unicode().values())
    tokens = chars + [c + "</w>" for c in chars] + ["".join(m) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    return {t: i for i, t in enumerate(tokens)}, merges


@functools.cache
def bpe_tokenizer():
    """The `tokenizers` pipeline (built at first use, then cached for the process)."""
    from tokenizers import Regex, Tokenizer, normalizers, pre_tokenizers
    from tokenizers.models import BPE

    vocab, merges = vocab_and_merges()
    tok = Tokenizer(BPE(vocab=vocab, merges=merges, continuing_subword_prefix="",
                        end_of_word_suffix="</w>", fuse_unk=False, unk_token="<|endoftext|>"))
    tok.normalizer = normalizers.Sequence(
        [normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(WORD_PATTERN), behavior="removed", invert=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False),
    ])
    tok.add_special_tokens(["<|startoftext|>", "<|endoftext|>"])
    return tok


def encode_text(text: str) -> list[int]:
    """BPE ids of `text` without start/end tokens."""
    return bpe_tokenizer().encode(text, add_special_tokens=False).ids


# --- prompt weights ------------------------------------------------------------------------

_ESCAPES = (("\\)", "\0\1"), ("\\(", "\0\2"))


def _escape(text: str) -> str:
    for src, dst in _ESCAPES:
        text = text.replace(src, dst)
    return text


def _unescape(text: str) -> str:
    for src, dst in _ESCAPES:
        text = text.replace(dst, src[1])
    return text


def _split_groups(text: str, open_: str, close: str) -> list[str]:
    """Top-level pieces: plain runs and whole `(...)` groups, split as ComfyUI splits them.

    An unclosed group runs to the end; a stray closing bracket drives the depth negative and
    stays in the text (ComfyUI's behaviour, kept so prompts tokenise identically).
    """
    out, cur, depth = [], "", 0
    for ch in text:
        if ch == open_:
            if depth == 0:
                if cur:
                    out.append(cur)
                cur = ch
            else:
                cur += ch
            depth += 1
        elif ch == close:
            depth -= 1
            if depth == 0:
                out.append(cur + ch)
                cur = ""
            else:
                cur += ch
        else:
            cur += ch
    if cur:
        out.append(cur)
    return out


def _weights(text: str, weight: float, brackets: bool) -> list[tuple[str, float]]:
    out: list[tuple[str, float]] = []
    for piece in _split_groups(text, "(", ")"):
        if len(piece) >= 2 and piece[0] == "(" and piece[-1] == ")":
            inner, w = piece[1:-1], weight * 1.1
            colon = inner.rfind(":")
            if colon > 0:
                try:
                    w = float(inner[colon + 1:])
                    inner = inner[:colon]
                except ValueError:
                    pass
            out += _weights(inner, w, brackets)
        elif brackets and "[" in piece:
            for sub in _split_groups(piece, "[", "]"):
                if len(sub) >= 2 and sub[0] == "[" and sub[-1] == "]":
                    out += _weights(sub[1:-1], weight / 1.1, brackets)
                else:
                    out.append((sub, weight))
        else:
            out.append((piece, weight))
    return out


def parse_weights(text: str, brackets: bool = False) -> list[tuple[str, float]]:
    """[(segment, weight)] for a prompt in ComfyUI's emphasis syntax, escapes resolved."""
    return [(_unescape(s), w) for s, w in _weights(_escape(text), 1.0, brackets)]


# --- windows -------------------------------------------------------------------------------

class ClipTokenizer:
    """Prompt -> 77-token windows of (id, weight); `pad_token` END (SD1 CLIP-L) or 0 (OpenCLIP)."""

    def __init__(self, pad_token: int = END_TOKEN, max_length: int = 77,
                 max_word_length: int = 8, brackets: bool = False):
        self.pad_token = pad_token
        self.max_length = max_length
        self.max_word_length = max_word_length
        self.brackets = brackets

    def tokenize_with_weights(self, text: str) -> list[TokenWeights]:
        """One list of max_length (id, weight) pairs per window; at least one window."""
        groups = [[(t, w) for t in encode_text(seg)]
                  for seg, w in parse_weights(text, self.brackets) if seg]
        windows: list[TokenWeights] = []
        window: TokenWeights = [(START_TOKEN, 1.0)]
        room = self.max_length - 1  # the end token always needs its slot
        for group in groups:
            is_large = len(group) >= self.max_word_length
            while group:
                if len(window) + len(group) <= room:
                    window += group
                    group = []
                    continue
                if is_large:  # long segments are cut at the window edge
                    cut = room - len(window)
                    window += group[:cut]
                    group = group[cut:]
                windows.append(self._close(window))
                window = [(START_TOKEN, 1.0)]
        windows.append(self._close(window))
        return windows

    def _close(self, window: TokenWeights) -> TokenWeights:
        window = window + [(END_TOKEN, 1.0)]
        return window + [(self.pad_token, 1.0)] * (self.max_length - len(window))

    def empty_tokens(self, length: int | None = None) -> list[int]:
        """The empty prompt's ids: start, end, padding."""
        n = self.max_length if length is None else length
        return ([START_TOKEN, END_TOKEN] + [self.pad_token] * n)[:n]


@functools.cache
def shipped_tokenizer(path: Path):
    """The `tokenizers` pipeline of a gzipped tokenizer.json shipped in models/vocab/ (T5,
    Qwen), built once per process."""
    from tokenizers import Tokenizer

    with gzip.open(path, "rt", encoding="utf-8") as f:
        return Tokenizer.from_str(f.read())
