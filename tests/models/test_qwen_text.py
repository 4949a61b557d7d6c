"""Qwen text encoders (Z-Image's Qwen3-4B, Qwen-Image's Qwen2.5-VL-7B LM) and the Qwen tokenizer.

Oracles: transformers' `Qwen3Model` and `Qwen2_5_VLTextModel` (the Qwen2.5-VL language model,
multimodal RoPE on text-only positions) on the same tiny random weights, compared at the layer
each encoder uses (forward hooks, so the comparison does not depend on how transformers fills
`hidden_states`); transformers' `Qwen2Tokenizer` built from `vocab.json` + `merges.txt` +
the added tokens of ComfyUI's `qwen25_tokenizer` config (what ComfyUI loads).
"""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import save_file

from comfyless.models import qwen_text as qt
from comfyless.models import text_sets
from comfyless.models.text_sets import (
    TextSetError,
    checkpoint_text_state_dict,
    clip_file_types,
    full_text_encoder_files,
    load_checkpoint_text_encoders,
    load_qwen_checkpoint_text,
    load_text_encoder_files,
    text_encoder_files,
)
from tests.floats import assert_close_scaled

ORACLE_ATOL = 1e-4  # max abs difference allowed against transformers (fp32)
QWEN25_VOCAB_SHA256 = "ca10d7e9fb3ed18575dd1e277a2579c16d108e32f27439684afa0e10b1440910"
QWEN25_MERGES_SHA256 = "8831e4f1a044471340f7c0a83d7bd71306a5b867e95fd870f74d0c5308a904d5"
# ComfyUI's qwen25_tokenizer/tokenizer_config.json: added tokens (id -> content, special)
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>",
           "<|object_ref_end|>", "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>",
           "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>",
           "<|video_pad|>"]
NOT_SPECIAL = ["<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>",
               "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>",
               "<tool_response>", "</tool_response>", "<think>", "</think>"]

TRICKY = [
    "a cat",
    "",
    " ",
    "一只橘猫坐在窗台上晒太阳，背景是东京的夜景。",
    "猫が窓辺で日向ぼっこ、고양이가 창가에서 햇볕을 쬐고 있다",
    "emoji 🐱‍👤 👨‍👩‍👧‍👦 🏳️‍🌈 ❤️🔥 and flags 🇯🇵🇫🇷",
    "combining e\u0301te\u0301 cafe\u0301 n\u0303 A\u030a vs été café ñ Å; ﬁ ligature, Ｆｕｌｌ",
    "whitespace   runs\t\ttabs\n\n\nnewlines  \n  \r\n end   ",
    "I'M can't WE'LL you'd 12345 3.14159 -0.5e10 $1,000,000",
    "code: def f(x): return x**2  # comment\n    indented",
    "<|im_start|>system\nYou are a cat.<|im_end|>\n<|im_start|>user\nmeow<|im_end|>\n",
    "text with <|endoftext|> inside and <|image_pad|> <|vision_start|>",
    "<think>reasoning</think> <tool_call>{\"a\": 1}</tool_call> <|fim_prefix|>x",
    "Ünïcödé — “quotes” ‘single’ … « guillemets » ¿qué? ¡sí! ß ẞ ǅ",
    "ZWJ\u200dZWNJ\u200cNBSP\u00a0BOM\ufeffend",
    ("a long prompt about a majestic orange tabby cat sitting on a wooden windowsill, "
     "golden hour light, bokeh, 35mm film, highly detailed fur, ") * 24,
]


# --- fixtures ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def hf_tokenizer(tmp_path_factory):
    """transformers' Qwen2Tokenizer from vocab.json + merges.txt written from the shipped
    tokenizer, with ComfyUI's added-token config; also returns the written file hashes."""
    from transformers import Qwen2Tokenizer

    folder = tmp_path_factory.mktemp("qwen25_tokenizer")
    with gzip.open(qt.TOKENIZER_FILE, "rt", encoding="utf-8") as f:
        model = json.load(f)["model"]
    vocab = json.dumps(model["vocab"], ensure_ascii=False, separators=(",", ":")).encode()
    merges = ("#version: 0.2\n" + "\n".join(" ".join(m) for m in model["merges"]) + "\n").encode()
    (folder / "vocab.json").write_bytes(vocab)
    (folder / "merges.txt").write_bytes(merges)
    added = {str(qt.PAD_TOKEN + i): {"content": c, "special": i < len(SPECIAL), "lstrip": False,
                                     "rstrip": False, "normalized": False, "single_word": False}
             for i, c in enumerate(SPECIAL + NOT_SPECIAL)}
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "Qwen2Tokenizer", "added_tokens_decoder": added, "bos_token": None,
        "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>", "unk_token": None,
        "add_prefix_space": False, "errors": "replace", "split_special_tokens": False,
        "clean_up_tokenization_spaces": False}))
    hashes = {name: hashlib.sha256(data).hexdigest()
              for name, data in (("vocab.json", vocab), ("merges.txt", merges))}
    return Qwen2Tokenizer.from_pretrained(str(folder)), hashes


def _tiny(clip_type: str, seed: int = 0) -> dict[str, torch.Tensor]:
    files = text_encoder_files(clip_type, "tiny", torch.Generator().manual_seed(seed))
    (sd,) = files.values()
    return sd


@pytest.fixture(scope="module")
def tiny_sds():
    return {t: _tiny(t) for t in ("lumina2", "qwen_image")}


def _oracle(clip_type: str, sd: dict[str, torch.Tensor]):
    """The transformers model of that encoder with the same weights (eager attention)."""
    c = qt.QWEN_TEXT_ENCODERS[clip_type].configs["tiny"]
    common = dict(vocab_size=c.vocab, hidden_size=c.hidden, intermediate_size=c.mlp,
                  num_hidden_layers=c.layers, num_attention_heads=c.heads,
                  num_key_value_heads=c.kv_heads, rms_norm_eps=c.eps,
                  attn_implementation="eager")
    if clip_type == "lumina2":
        from transformers import Qwen3Config, Qwen3Model

        model = Qwen3Model(Qwen3Config(**common, head_dim=c.head_dim, tie_word_embeddings=True,
                                       rope_parameters={"rope_type": "default",
                                                        "rope_theta": c.rope_theta}))
    else:
        from transformers.models.qwen2_5_vl import Qwen2_5_VLTextConfig, Qwen2_5_VLTextModel

        assert c.hidden // c.heads == c.head_dim  # transformers derives the head width
        section = [c.head_dim // 4, c.head_dim // 8, c.head_dim // 8]  # sums to head_dim / 2
        model = Qwen2_5_VLTextModel(Qwen2_5_VLTextConfig(
            **common, rope_parameters={"rope_type": "default", "rope_theta": c.rope_theta,
                                       "mrope_section": section}))
    model.load_state_dict({k[len("model."):]: v for k, v in sd.items()
                           if k.startswith("model.")}, strict=True)  # visual.* is the tower
    return model.eval()


def _oracle_layers(model, ids: torch.Tensor, mask: torch.Tensor | None = None):
    """(output of every decoder layer, final normed output) from the transformers model."""
    outs = []
    hooks = [layer.register_forward_hook(lambda m, a, o: outs.append(
        (o[0] if isinstance(o, tuple) else o).detach())) for layer in model.layers]
    try:
        with torch.no_grad():
            last = model(input_ids=ids, attention_mask=mask).last_hidden_state
    finally:
        for h in hooks:
            h.remove()
    return outs, last


def _ids(clip, text: str) -> list[int]:
    (window,) = clip.tokenize(text)[clip.encoder.root]
    return [t for t, _ in window]


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max())


# --- tokenizer -----------------------------------------------------------------------------

def test_shipped_vocab_and_merges_are_the_qwen25_files(hf_tokenizer):
    _, hashes = hf_tokenizer
    assert hashes == {"vocab.json": QWEN25_VOCAB_SHA256, "merges.txt": QWEN25_MERGES_SHA256}
    added = {i: (t.content, t.special)
             for i, t in qt.qwen_tokenizer().get_added_tokens_decoder().items()}
    assert added == {qt.PAD_TOKEN + i: (c, i < len(SPECIAL))
                     for i, c in enumerate(SPECIAL + NOT_SPECIAL)}


@pytest.mark.parametrize("text", TRICKY)
def test_token_ids_equal_transformers_qwen2_tokenizer(hf_tokenizer, text):
    tok, _ = hf_tokenizer
    assert qt.encode_qwen_text(text) == tok(text)["input_ids"]


@pytest.mark.parametrize("clip_type", ["lumina2", "qwen_image"])
def test_templates_tokenize_as_comfyui(hf_tokenizer, tiny_sds, clip_type):
    tok, _ = hf_tokenizer
    clip = qt.build_qwen_text(tiny_sds[clip_type], qt.QWEN_TEXT_ENCODERS[clip_type])
    template = qt.QWEN_TEXT_ENCODERS[clip_type].template
    for text in TRICKY[:10] + TRICKY[11:]:
        expected = tok(text if clip_type == "qwen_image" and text.startswith("<|im_start|>")
                       else template.format(text))["input_ids"]
        (window,) = clip.tokenize(text)[clip.encoder.root]
        assert [t for t, _ in window] == expected
        assert {w for _, w in window} == {1.0}
    # weight syntax is literal text; ComfyUI's unescaping still drops the backslash of \( \)
    assert _ids(clip, "(cat:1.5) [dog]") == tok(template.format("(cat:1.5) [dog]"))["input_ids"]
    assert _ids(clip, r"a \(cat\)") == _ids(clip, "a (cat)")


def test_token_counts_of_the_spec(tiny_sds):
    zimage = qt.build_qwen_text(tiny_sds["lumina2"], qt.QWEN_TEXT_ENCODERS["lumina2"])
    ids = _ids(zimage, "a cat")
    assert ids == [151644, 872, 198, 64, 8251, 151645, 198, 151644, 77091, 198]  # 3 + 2 + 5
    qwen = qt.build_qwen_text(tiny_sds["qwen_image"], qt.QWEN_TEXT_ENCODERS["qwen_image"])
    ids = _ids(qwen, "a cat")
    assert len(ids) == 41 and [i for i, t in enumerate(ids) if t == qt.IM_START][1] == 31
    assert qt.template_head_length(ids, len(ids)) == 34
    assert qwen.encode("a cat")[0].shape == (1, 7, 32)
    assert zimage.encode("a cat")[0].shape == (1, 10, 32)
    # ComfyUI's rule on raw prompts: one <|im_start|> -> it and user\n dropped; none -> -1
    assert qt.template_head_length([151644, 872, 198, 64, 8251], 5) == 3
    assert qt.template_head_length([64, 8251, 198], 3) == -1


def test_attention_mask_rule():
    pad = qt.PAD_TOKEN
    assert qt.attention_mask([1, 2, 3]) == [1, 1, 1]
    assert qt.attention_mask([1, pad, 3, pad]) == [1, 0, 0, 0]
    assert qt.attention_mask([pad, pad, 5, 6, pad, 7]) == [0, 0, 1, 1, 0, 0]
    assert qt.attention_mask([pad]) == [0]


# --- the networks against transformers -----------------------------------------------------

@pytest.mark.parametrize("clip_type", ["lumina2", "qwen_image"])
def test_encoder_matches_transformers(tiny_sds, clip_type, one_torch_thread):
    sd = tiny_sds[clip_type]
    enc = qt.QWEN_TEXT_ENCODERS[clip_type]
    clip = qt.build_qwen_text(sd, enc)
    oracle = _oracle(clip_type, sd)
    for text in ("a cat", TRICKY[3], TRICKY[-1]):
        ids = _ids(clip, text)
        layers, last = _oracle_layers(oracle, torch.tensor([ids]))
        cond, pooled = clip.encode(text)
        assert pooled is None
        if clip_type == "lumina2":  # layer index L-2 (34 of 36) without the final norm
            expected = layers[-2]
        else:  # last layer after the final norm, template head dropped
            expected = last[:, qt.template_head_length(ids, len(ids)):]
        assert cond.shape == expected.shape
        diff = _max_diff(cond, expected)
        print(f"{clip_type} {len(ids)} tokens: max abs diff {diff:.3g}")
        assert diff <= ORACLE_ATOL
        assert not torch.allclose(layers[-1], layers[-2], atol=1e-3)  # the layer choice matters


@pytest.mark.parametrize("clip_type", ["lumina2", "qwen_image"])
def test_padding_mask_matches_transformers_and_reaches_the_cond(tiny_sds, clip_type):
    sd = tiny_sds[clip_type]
    clip = qt.build_qwen_text(sd, qt.QWEN_TEXT_ENCODERS[clip_type])
    text = "a cat <|endoftext|> and what follows is masked"
    ids = _ids(clip, text)
    mask = torch.tensor([qt.attention_mask(ids)])
    assert not bool(mask.all())
    layers, last = _oracle_layers(_oracle(clip_type, sd), torch.tensor([ids]), mask)
    out = clip.encode_from_tokens(clip.tokenize(text), return_dict=True)
    start = qt.template_head_length(ids, len(ids)) if clip_type == "qwen_image" else 0
    expected = layers[-2] if clip_type == "lumina2" else last[:, start:]
    diff = _max_diff(out["cond"], expected)
    print(f"{clip_type} masked: max abs diff {diff:.3g}")
    assert diff <= ORACLE_ATOL
    assert torch.equal(out["attention_mask"], mask[:, start:])
    assert out["pooled_output"] is None
    # no zeros, no mask (as ComfyUI drops an all-ones mask)
    assert "attention_mask" not in clip.encode_from_tokens(clip.tokenize("a cat"),
                                                           return_dict=True)


def test_clip_set_last_layer(tiny_sds):
    sd = tiny_sds["lumina2"]
    clip = qt.build_qwen_text(sd, qt.QWEN_TEXT_ENCODERS["lumina2"])
    layers, last = _oracle_layers(_oracle("lumina2", sd), torch.tensor([_ids(clip, "a cat")]))
    assert _max_diff(clip.clip_layer(-1).encode("a cat")[0], layers[-1]) <= ORACLE_ATOL
    assert _max_diff(clip.clip_layer(-3).encode("a cat")[0], layers[0]) <= ORACLE_ATOL
    assert _max_diff(clip.clip_layer(-4).encode("a cat")[0], last) <= ORACLE_ATOL  # "last"
    assert clip.layer_idx is None  # never mutated


def test_config_inferred_from_shapes_and_full_sizes():
    for clip_type, params in (("lumina2", 4.022e9), ("qwen_image", 7.747e9)):  # 7B: LM + tower
        enc = qt.QWEN_TEXT_ENCODERS[clip_type]
        full = qt.qwen_state_dict(enc, "full")
        assert all(t.is_meta for t in full.values())
        assert qt.infer_qwen_config(full) == enc.configs["full"]
        assert abs(sum(t.numel() for t in full.values()) - params) < 0.0005e9
        assert qt.is_encoder_file({k: tuple(v.shape) for k, v in full.items()}, enc)
        assert qt.infer_qwen_config(qt.qwen_state_dict(enc, "tiny")) == enc.configs["tiny"]
    assert "model.layers.35.self_attn.q_norm.weight" in qt.qwen_state_dict(
        qt.QWEN_TEXT_ENCODERS["lumina2"], "full")
    assert "model.layers.27.self_attn.k_proj.bias" in qt.qwen_state_dict(
        qt.QWEN_TEXT_ENCODERS["qwen_image"], "full")


# --- loading -------------------------------------------------------------------------------

def _write(tmp_path: Path, name: str, sd: dict[str, torch.Tensor]) -> Path:
    path = tmp_path / name
    save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    return path


def test_clip_loader_types_load_their_files(tmp_path, tiny_sds):
    assert {"lumina2", "qwen_image"} <= set(clip_file_types())
    for clip_type, sd in tiny_sds.items():
        enc = qt.QWEN_TEXT_ENCODERS[clip_type]
        extra = {}
        if clip_type == "qwen_image":  # an lm_head is not read (the vision tower is)
            extra = {"lm_head.weight": torch.zeros(enc.configs["tiny"].vocab, 32)}
        path = _write(tmp_path, enc.file_name, {**sd, **extra})
        clip = load_text_encoder_files([path], clip_type, names=["clip_name"])
        assert isinstance(clip, qt.QwenTextClip) and clip.dtype == torch.float32
        assert clip.has_vision == (clip_type == "qwen_image")
        direct = qt.build_qwen_text(sd, enc)
        assert_close_scaled(clip.encode("a cat")[0], direct.encode("a cat")[0])


@pytest.mark.parametrize("clip_type, wrong, found", [
    ("lumina2", "qwen_image", "Qwen2.5-VL-7B"),
    ("qwen_image", "lumina2", "Qwen3-4B"),
    ("lumina2", "flux-t5", "T5-XXL"),
    ("qwen_image", "flux-clip", "CLIP"),
])
def test_wrong_files_name_the_input(tmp_path, tiny_sds, clip_type, wrong, found):
    if wrong.startswith("flux"):
        files = text_encoder_files("flux", "tiny", torch.Generator().manual_seed(0))
        sd = files["t5xxl_fp16.safetensors" if wrong == "flux-t5" else "clip_l.safetensors"]
    else:
        sd = tiny_sds[wrong]
    path = _write(tmp_path, "wrong.safetensors", sd)
    with pytest.raises(TextSetError, match=found) as err:
        load_text_encoder_files([path], clip_type, names=["clip_name"])
    assert err.value.input_name == "clip_name"
    assert qt.QWEN_TEXT_ENCODERS[clip_type].title in str(err.value)


def test_qwen_files_with_other_types_or_in_pairs_are_refused(tmp_path, tiny_sds):
    path = _write(tmp_path, "qwen_3_4b.safetensors", tiny_sds["lumina2"])
    with pytest.raises(TextSetError, match="'lumina2'") as err:
        load_text_encoder_files([path], "stable_diffusion", names=["clip_name"])
    assert err.value.input_name == "clip_name"
    with pytest.raises(TextSetError, match="2 files") as err:
        load_text_encoder_files([path, path], "lumina2", names=["clip_name1", "clip_name2"])
    assert err.value.input_name == "clip_name2"
    real_width = {k: v for k, v in qt.qwen_state_dict(
        qt.QWEN_TEXT_ENCODERS["lumina2"], "full").items()}
    shapes = {k: tuple(v.shape) for k, v in real_width.items()}
    shapes["model.layers.0.post_attention_layernorm.weight"] = (4096,)  # a Qwen3-8B
    assert not qt.is_encoder_file(shapes, qt.QWEN_TEXT_ENCODERS["lumina2"])
    assert "4096 wide" in qt.describe_qwen(shapes)


def test_all_in_one_checkpoints(monkeypatch):
    sd = checkpoint_text_state_dict("qwen_image", "tiny", torch.Generator().manual_seed(0))
    assert all(k.startswith(("text_encoders.qwen25_7b.transformer.model.",
                             "text_encoders.qwen25_7b.transformer.visual.")) for k in sd)
    record = SimpleNamespace(name="qwen_image_test", clip_type="qwen_image")
    monkeypatch.setattr(text_sets, "find_family", lambda family: record)
    clip = load_checkpoint_text_encoders(sd, "qwen_image_test")
    assert clip.family == "qwen_image_test" and clip.encoder.root == "qwen25_7b"
    direct = qt.build_qwen_text(_tiny("qwen_image"), qt.QWEN_TEXT_ENCODERS["qwen_image"])
    assert_close_scaled(clip.encode("a cat")[0], direct.encode("a cat")[0])
    assert load_checkpoint_text_encoders({"model.diffusion_model.x": torch.zeros(1)},
                                         "qwen_image_test") is None
    zimage = checkpoint_text_state_dict("lumina2", "tiny", torch.Generator().manual_seed(0))
    moved = {k.replace("qwen3_4b", "qwen25_7b"): v for k, v in zimage.items()}
    with pytest.raises(TextSetError, match="Qwen3-4B"):
        load_qwen_checkpoint_text(moved, "qwen_image")


def test_full_size_files_are_streamed():
    for clip_type, name in (("lumina2", "qwen_3_4b.safetensors"),
                            ("qwen_image", "qwen_2.5_vl_7b.safetensors")):
        files = full_text_encoder_files(clip_type)
        assert list(files) == [name] and callable(files[name])


def test_lora_on_the_text_encoder_matches_merged_weights(tiny_sds):
    sd = tiny_sds["lumina2"]
    enc = qt.QWEN_TEXT_ENCODERS["lumina2"]
    gen = torch.Generator().manual_seed(3)
    up, down = torch.randn(64, 4, generator=gen), torch.randn(4, 32, generator=gen)
    key = "text_encoders.qwen3_4b.transformer.model.layers.1.self_attn.q_proj"
    lora = {f"{key}.lora_up.weight": up, f"{key}.lora_down.weight": down,
            f"{key}.alpha": torch.tensor(2.0)}
    clip = qt.build_qwen_text(sd, enc)
    before = clip.encode("a cat")[0]
    after = clip.with_lora(lora, 0.5).encode("a cat")[0]
    merged_sd = dict(sd)
    name = "model.layers.1.self_attn.q_proj.weight"
    merged_sd[name] = sd[name] + 0.5 * (2.0 / 4) * up @ down
    merged = qt.build_qwen_text(merged_sd, enc).encode("a cat")[0]
    assert not torch.allclose(before, after, atol=1e-3)
    assert_close_scaled(after, merged)
    assert_close_scaled(clip.encode("a cat")[0], before)  # weights restored


def test_clip_loader_node_and_text_encode(tmp_path, tiny_sds):
    from comfyless.engine.context import RunContext
    from comfyless.nodes.conditioning import CLIPTextEncode
    from comfyless.nodes.loaders import CLIPLoader
    from comfyless.typesys.errors import ModelLoadError

    ctx = RunContext.create(tmp_path / "base").for_node("6", "CLIPLoader")
    folder = ctx.paths.folders("text_encoders")[0]
    folder.mkdir(parents=True)
    _write(folder, "qwen_2.5_vl_7b.safetensors", tiny_sds["qwen_image"])
    (clip,) = CLIPLoader.execute(ctx, clip_name="qwen_2.5_vl_7b.safetensors", type="qwen_image")
    ((cond, extras),) = CLIPTextEncode.execute(ctx, text="a cat", clip=clip)[0]
    assert cond.shape == (1, 7, 32) and extras["pooled_output"] is None
    with pytest.raises(ModelLoadError) as info:
        CLIPLoader.execute(ctx, clip_name="qwen_2.5_vl_7b.safetensors", type="lumina2")
    assert (info.value.node_id, info.value.input_name) == ("6", "clip_name")
    assert "Qwen2.5-VL-7B" in str(info.value)


def test_scaled_fp8_file_loads_dequantised(tmp_path, tiny_sds):
    """`qwen_2.5_vl_7b_fp8_scaled.safetensors`-style file: Linear weights fp8 with
    `scale_weight`, a bare `scaled_fp8` marker; equals the model of the dequantised weights."""
    from tests.models.test_scaled_fp8 import scale_fp8

    scaled, plain = scale_fp8(tiny_sds["qwen_image"], "")
    assert scaled["model.layers.0.mlp.up_proj.weight"].dtype == torch.float8_e4m3fn
    path = _write(tmp_path, "qwen_2.5_vl_7b_fp8_scaled.safetensors", scaled)
    clip = load_text_encoder_files([path], "qwen_image", names=["clip_name"])
    direct = qt.build_qwen_text(plain, qt.QWEN_TEXT_ENCODERS["qwen_image"])
    assert_close_scaled(clip.encode("a cat")[0], direct.encode("a cat")[0])
    assert_close_scaled(qt.build_qwen_text(scaled, qt.QWEN_TEXT_ENCODERS["qwen_image"])
                        .encode("a cat")[0], direct.encode("a cat")[0])  # a dict handed in


def test_kohya_style_text_lora_names_reach_the_qwen_encoder():
    """`lora_te_<path after qwen3_4b.transformer.model., _>` (model-families.md §3.6) places
    on the LLM's weights, beside ComfyUI's `text_encoders.<parameter path>` form."""
    from comfyless.lora.keys import clip_key_map

    shapes = {"qwen3_4b.transformer.model.layers.0.self_attn.q_proj.weight": (8, 8),
              "qwen3_4b.transformer.model.layers.0.mlp.up_proj.weight": (16, 8),
              "qwen3_4b.transformer.model.norm.weight": (8,)}
    key_map = clip_key_map(shapes)
    assert key_map["lora_te_layers_0_self_attn_q_proj"] == \
        "qwen3_4b.transformer.model.layers.0.self_attn.q_proj.weight"
    assert key_map["lora_te_layers_0_mlp_up_proj"] == \
        "qwen3_4b.transformer.model.layers.0.mlp.up_proj.weight"
    assert key_map["text_encoders.qwen3_4b.transformer.model.layers.0.self_attn.q_proj"] == \
        "qwen3_4b.transformer.model.layers.0.self_attn.q_proj.weight"
