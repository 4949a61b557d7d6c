"""Execute of TextGenerate (nodes/text_generate.py); the generation is models/qwen_generate.py.

ComfyUI's node, restated: the prompt is tokenized by the CLIP's own chat rules (system prompt,
images; `thinking` and `use_default_template` where the encoder reads them), the sampling
values come from the "on" option (ComfyUI's fallbacks when one is absent: temperature 1,
top_k 50, top_p 1, min_p 0, repetition penalty 1, presence penalty 0; seed absent -> 42 at
the model), at most `max_length` new tokens are generated and decoded with special tokens
skipped. The text is then split at the first `</think>`: before it is the reasoning (one
`<think>` removed), after it the answer; with no `</think>` the whole text is the answer,
unless it starts (after blanks) with `<think>`: then generation stopped while reasoning and
it is all reasoning. Both outputs are stripped of surrounding whitespace.
"""

from __future__ import annotations

from ...models import qwen_generate as qg
from ...models.residency import release_idle


def _node_error(ctx, input_name: str, message: str) -> ValueError:
    return ValueError(f"node {ctx.node_id} ({ctx.class_type}) input '{input_name}': {message}")


def sampling_from_inputs(sampling_mode: str, values: dict) -> qg.Sampling:
    """ComfyUI's reading of the DynamicCombo (its fallbacks for absent values)."""
    def get(name, fallback):
        value = values.get(f"sampling_mode.{name}")
        return fallback if value is None else value

    if sampling_mode != "on":
        return qg.Sampling(do_sample=False)
    return qg.Sampling(do_sample=True, temperature=float(get("temperature", 1.0)),
                       top_k=int(get("top_k", 50)), top_p=float(get("top_p", 1.0)),
                       min_p=float(get("min_p", 0.0)),
                       repetition_penalty=float(get("repetition_penalty", 1.0)),
                       presence_penalty=float(get("presence_penalty", 0.0)),
                       seed=int(get("seed", 42)))


def split_thinking(text: str) -> tuple[str, str]:
    """(answer, reasoning) of generated text (module docstring)."""
    reasoning, close, answer = text.partition("</think>")
    if not close and not reasoning.lstrip().startswith("<think>"):
        reasoning, answer = "", reasoning
    return answer.strip(), reasoning.replace("<think>", "", 1).strip()


def _images(ctx, image) -> list:
    """One IMAGE [1, H, W, C] per sample of the batch."""
    if image is None:
        return []
    if getattr(image, "ndim", None) != 4 or image.shape[-1] != 3:
        raise _node_error(ctx, "image", "expected an IMAGE [B, H, W, 3], got "
                          f"{tuple(getattr(image, 'shape', ())) or type(image).__name__}")
    return [image[i:i + 1] for i in range(image.shape[0])]


def _check_inputs(ctx, clip, images, video, audio):
    """The CLIP and media inputs, checked before any model work."""
    if clip is None:
        raise _node_error(ctx, "clip", "expected a CLIP text encoder, got None")
    try:
        clip = qg.require_generative(clip, "this CLIP")
    except ValueError as exc:
        raise _node_error(ctx, "clip", str(exc)) from None
    for name, value in (("video", video), ("audio", audio)):
        if value is not None:
            raise _node_error(ctx, name, f"the {clip.encoder.title} text encoder takes no "
                              f"{name} (comfyless generates from text and images only); "
                              "leave it unconnected")
    if images:
        try:
            clip.require_vision()
        except ValueError as exc:
            raise _node_error(ctx, "image", str(exc)) from None
    return clip


def text_generate(ctx, clip, prompt: str = "", max_length: int = 512,
                  sampling_mode: str = "on", image=None, video=None, audio=None,
                  thinking: bool = False, use_default_template: bool = True,
                  mtp: str = "auto", system_prompt: str | None = None, **sampling_values):
    """(generated_text, thinking): see the module docstring. `mtp` has no effect (our files
    carry no multi-token-prediction head); `thinking` is read by no Qwen tokenizer here."""
    images = _images(ctx, image)
    clip = _check_inputs(ctx, clip, images, video, audio)
    release_idle(keep=(clip,))  # other encoders wait in their files while it runs
    options = sampling_from_inputs(sampling_mode, sampling_values)
    try:
        text = qg.generation_text(clip.encoder, prompt, images=len(images),
                                  system_prompt=system_prompt or "",
                                  use_default_template=use_default_template)
    except ValueError as exc:
        raise _node_error(ctx, "prompt", str(exc)) from None

    def on_token(step, _logits):
        ctx.progress(step + 1, max_length)  # also raises on an interrupt

    ids = qg.generate_text_ids(clip, text, max_length, options, images, on_token=on_token)
    return split_thinking(qg.decode_ids(ids))
