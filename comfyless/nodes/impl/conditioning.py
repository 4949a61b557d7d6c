"""Execute of the conditioning nodes (nodes/conditioning.py)."""

from __future__ import annotations

from ...models.residency import release_idle


def _require_clip(ctx, clip, input_name: str = "clip"):
    """ComfyUI's 'clip input is invalid: None' check, naming the node and input."""
    if clip is None:
        raise ValueError(
            f"node {ctx.node_id} ({ctx.class_type}) input '{input_name}': expected a CLIP text "
            "encoder, got None; if it comes from a checkpoint loader, the checkpoint holds no "
            "text encoder (load one with CLIPLoader / DualCLIPLoader)")
    return clip


def clip_text_encode(ctx, text: str, clip):
    clip = _require_clip(ctx, clip)
    release_idle(keep=(clip,))  # other encoders wait in their files while it runs
    return (conditioning_from_tokens(clip, clip.tokenize(text)),)


def conditioning_from_tokens(clip, tokens) -> list:
    """ComfyUI's encode_from_tokens_scheduled for one prompt: [[cond, {"pooled_output", and
    "attention_mask" when an LLM encoder's mask has zeros}]]."""
    if getattr(clip, "returns_attention_mask", False):
        # LLM encoders (Qwen): the cond carries its text mask when the mask has zeros
        out = clip.encode_from_tokens(tokens, return_pooled=True, return_dict=True)
        options = {"pooled_output": out["pooled_output"]}
        if "attention_mask" in out:
            options["attention_mask"] = out["attention_mask"]
        return [[out["cond"], options]]
    cond, pooled = clip.encode_from_tokens(tokens, return_pooled=True)
    return [[cond, {"pooled_output": pooled}]]


def clip_set_last_layer(ctx, clip, stop_at_clip_layer: int = -1):
    return (_require_clip(ctx, clip).clip_layer(stop_at_clip_layer),)


def conditioning_set_values(conditioning, values: dict, append: bool = False) -> list:
    """A copy of `conditioning` with `values` set in every entry's options (ComfyUI's
    node_helpers.conditioning_set_values); `append` extends an existing list instead.

    Entries and option dicts are new, lists are concatenated into new lists: the input (which
    the cache may hand to other nodes) is never mutated.
    """
    out = []
    for cond, options in conditioning:
        options = dict(options)
        for key, value in values.items():
            old = options.get(key) if append else None
            if old is not None:
                value = old + value
            options[key] = list(value) if isinstance(value, list) else value  # one per entry
        out.append([cond, options])
    return out


def _latent_samples(ctx, latent, input_name: str):
    if not isinstance(latent, dict) or "samples" not in latent:
        raise ValueError(f"node {ctx.node_id} ({ctx.class_type}) input '{input_name}': expected "
                         f"a LATENT dict with a 'samples' tensor, got {type(latent).__name__}")
    return latent["samples"]


def reference_latent(ctx, conditioning, latent=None):
    if latent is None:  # optional input left open: the conditioning passes through
        return (conditioning,)
    samples = _latent_samples(ctx, latent, "latent")
    return (conditioning_set_values(conditioning, {"reference_latents": [samples]}, append=True),)


def flux_kontext_multi_reference_latent_method(ctx, conditioning, reference_latents_method: str):
    # ComfyUI stores "uxo" for any choice naming uxo (or uso); the others as chosen
    uxo = "uxo" in reference_latents_method or "uso" in reference_latents_method
    method = "uxo" if uxo else reference_latents_method
    return (conditioning_set_values(conditioning, {"reference_latents_method": method}),)


# ComfyUI's T5 tokenizer names: T5TokenizerOptions sets its options for every one of them
T5_TOKENIZERS = ("t5xxl", "pile_t5xl", "t5base", "mt5xl", "umt5xxl")


def _tokens_of(ctx, clip, text: str, keys: tuple[str, ...]) -> dict:
    """clip.tokenize(text), checking it has the token streams the node needs."""
    tokens = clip.tokenize(text)
    missing = [k for k in keys if k not in tokens]
    if missing:
        raise ValueError(
            f"node {ctx.node_id} ({ctx.class_type}) input 'clip': this CLIP has no "
            f"{', '.join(missing)} text encoder (it has {', '.join(tokens)}); load the matching "
            "set with DualCLIPLoader / TripleCLIPLoader")
    return tokens


def clip_text_encode_flux(ctx, clip, clip_l: str, t5xxl: str, guidance: float = 3.5):
    clip = _require_clip(ctx, clip)
    release_idle(keep=(clip,))  # other encoders wait in their files while it runs
    tokens = _tokens_of(ctx, clip, clip_l, ("l", "t5xxl"))
    tokens["t5xxl"] = clip.tokenize(t5xxl)["t5xxl"]
    cond, pooled = clip.encode_from_tokens(tokens, return_pooled=True)
    return ([[cond, {"pooled_output": pooled, "guidance": guidance}]],)


def clip_text_encode_sd3(ctx, clip, clip_l: str, clip_g: str, t5xxl: str,
                         empty_padding: str = "none"):
    clip = _require_clip(ctx, clip)
    release_idle(keep=(clip,))  # other encoders wait in their files while it runs
    drop_empty = empty_padding == "none"
    tokens = _tokens_of(ctx, clip, clip_g, ("l", "g", "t5xxl"))
    for key, text in (("g", clip_g), ("l", clip_l), ("t5xxl", t5xxl)):
        if drop_empty and not text:
            tokens[key] = []  # that encoder contributes nothing
        elif key != "g":
            tokens[key] = clip.tokenize(text)[key]
    _equalise_windows(clip, tokens)
    cond, pooled = clip.encode_from_tokens(tokens, return_pooled=True)
    return ([[cond, {"pooled_output": pooled}]],)


def _equalise_windows(clip, tokens: dict) -> None:
    """Give l and g the same number of 77-token windows by appending empty-prompt windows."""
    if len(tokens["l"]) == len(tokens["g"]):
        return
    empty = clip.tokenize("")
    short = "l" if len(tokens["l"]) < len(tokens["g"]) else "g"
    long_ = "g" if short == "l" else "l"
    while len(tokens[short]) < len(tokens[long_]):
        tokens[short] = tokens[short] + empty[short]


def flux_guidance(ctx, conditioning, guidance: float = 3.5):
    return (conditioning_set_values(conditioning, {"guidance": guidance}),)


def flux_disable_guidance(ctx, conditioning):
    return (conditioning_set_values(conditioning, {"guidance": None}),)


def t5_tokenizer_options(ctx, clip, min_padding: int = 0, min_length: int = 0):
    clip = _require_clip(ctx, clip)
    options = {}
    for name in T5_TOKENIZERS:
        options[f"{name}_min_padding"] = min_padding
        options[f"{name}_min_length"] = min_length
    set_options = getattr(clip, "with_tokenizer_options", None)
    # a CLIP without T5 tokenizers ignores the options, as in ComfyUI
    return (set_options(**options) if set_options is not None else clip,)
