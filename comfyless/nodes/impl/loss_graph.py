"""The training loss as data and pictures: smoothing, the loss-graph PNG, the loss CSV."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from PIL import Image, ImageDraw, ImageFont

# -- loss graph --------------------------------------------------------------------------------


def smooth(values: Sequence[float]) -> list[float]:
    """Bias-corrected exponential moving average (as TensorBoard's smoothing).

    The window scales with the run (about a tenth of it), so 10 and 10 000 values both get a
    readable trend; non-finite values are skipped (the previous average is carried).
    """
    window = max(1, len(values) // 10)
    beta = 1.0 - 2.0 / (window + 1)
    out, avg, weight = [], 0.0, 0.0
    for v in values:
        if math.isfinite(v):
            avg = beta * avg + (1.0 - beta) * v
            weight = beta * weight + (1.0 - beta)
        out.append(avg / weight if weight > 0 else float("nan"))
    return out


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _ticks(lo: float, hi: float, count: int = 6) -> list[float]:
    """Round tick values (1, 2 or 5 x 10^k apart) covering [lo, hi], about `count` of them."""
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(lo / step - 1e-9)
    return [k * step for k in range(first, math.floor(hi / step + 1e-9) + 1)]


def _fmt(value: float) -> str:
    if value == 0 or 1e-3 <= abs(value) < 1e5:
        return f"{value:.4f}".rstrip("0").rstrip(".") if abs(value) < 10 else f"{value:.2f}"
    return f"{value:.3g}"


class _Plot:
    """Maps (step, loss) onto pixels of the plot area; the y range is padded if flat."""

    def __init__(self, box: tuple[int, int, int, int], steps: int, lo: float, hi: float):
        if hi - lo < 1e-12 * max(1.0, abs(hi)):
            pad = abs(hi) * 0.1 or 1.0  # a constant curve sits mid-plot
            lo, hi = lo - pad, hi + pad
        else:
            margin = (hi - lo) * 0.05  # keep the extremes off the axes
            lo, hi = lo - margin, hi + margin
        self.box, self.steps, self.lo, self.hi = box, steps, lo, hi

    def x(self, step: float) -> float:
        left, _, right, _ = self.box
        return left + (right - left) * ((step - 1) / (self.steps - 1) if self.steps > 1 else 0.5)

    def y(self, value: float) -> float:
        _, top, _, bottom = self.box
        return bottom - (bottom - top) * (value - self.lo) / (self.hi - self.lo)


def _draw_series(draw: ImageDraw.ImageDraw, plot: _Plot, values: Sequence[float],
                 colour: tuple[int, int, int], width: int) -> None:
    """A polyline through the finite points (gaps at NaN); a single point is a dot."""
    run: list[tuple[float, float]] = []
    for i, v in enumerate([*values, float("nan")]):
        if math.isfinite(v):
            run.append((plot.x(i + 1), plot.y(v)))
            continue
        if len(run) == 1:
            (px, py), r = run[0], width + 2
            draw.ellipse((px - r, py - r, px + r, py + r), fill=colour)
        elif run:
            draw.line(run, fill=colour, width=width, joint="curve")
        run = []


def render_loss_graph(values: Sequence[float], smoothed: Sequence[float],
                      title: str = "Training loss") -> Image.Image:
    """A white 960x540 chart: axes with step and loss ticks, raw curve, smoothed curve, legend."""
    width, height = 960, 540
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    font, small = _font(16), _font(13)
    box = (110, 50, width - 30, height - 70)
    left, top, right, bottom = box
    finite = [v for v in values if math.isfinite(v)]
    draw.text((left, 15), title, fill="black", font=font)
    draw.text(((left + right) // 2 - 20, height - 30), "step", fill="black", font=font)
    draw.text((10, (top + bottom) // 2 - 8), "loss", fill="black", font=font)
    if not finite:
        draw.rectangle(box, outline="black", width=2)
        draw.text((left + 20, top + 20), "no loss values", fill="black", font=font)
        return img
    lo, hi = min(finite), max(finite)
    plot = _Plot(box, len(values), lo, hi)
    for tick in _ticks(plot.lo, plot.hi):
        y = plot.y(tick)
        draw.line((left, y, right, y), fill=(225, 225, 225), width=1)
        draw.text((left - 8, y), _fmt(tick), fill="black", font=small, anchor="rm")
    step_ticks = sorted({1, len(values)} | {round(s) for s in _ticks(1, len(values))
                                              if s >= 1 and s == round(s)})
    if len(step_ticks) > 2 and step_ticks[1] - 1 < len(values) / 20:
        step_ticks.pop(1)  # a round tick right next to step 1 would overlap its label
    if len(step_ticks) > 2 and len(values) - step_ticks[-2] < len(values) / 20:
        step_ticks.pop(-2)
    for step in step_ticks:
        x = plot.x(step)
        draw.line((x, bottom, x, bottom + 5), fill="black", width=1)
        draw.text((x, bottom + 8), str(step), fill="black", font=small, anchor="mt")
    draw.line((left, top, left, bottom), fill="black", width=2)
    draw.line((left, bottom, right, bottom), fill="black", width=2)
    _draw_series(draw, plot, values, (150, 190, 235), 1)
    _draw_series(draw, plot, smoothed, (200, 40, 40), 2)
    for value, label in ((lo, "min"), (hi, "max")):
        step = values.index(value) + 1
        px, py = plot.x(step), plot.y(value)
        draw.ellipse((px - 4, py - 4, px + 4, py + 4), outline=(30, 30, 30), width=2)
        flip = px > right - 120  # near the right edge: label on the left of the point
        anchor = ("r" if flip else "l") + ("t" if label == "min" else "b")
        draw.text((px - 6 if flip else px + 6, py + (4 if label == "min" else -4)),
                  f"{label} {_fmt(value)}", fill=(30, 30, 30), font=small, anchor=anchor)
    legend = (f"loss (min {_fmt(lo)} at step {values.index(lo) + 1}, "
              f"max {_fmt(hi)} at step {values.index(hi) + 1})")
    draw.line((right - 430, 22, right - 410, 22), fill=(150, 190, 235), width=3)
    draw.text((right - 404, 14), legend, fill="black", font=small)
    draw.line((right - 430, 38, right - 410, 38), fill=(200, 40, 40), width=3)
    draw.text((right - 404, 30), "smoothed (moving average)", fill="black", font=small)
    return img


def loss_csv(values: Sequence[float], smoothed: Sequence[float]) -> str:
    """`step,loss,smoothed` lines, steps from 1, full float precision."""
    lines = ["step,loss,smoothed"]
    lines += [f"{i + 1},{v!r},{s!r}" for i, (v, s) in enumerate(zip(values, smoothed, strict=True))]
    return "\n".join(lines) + "\n"


def loss_values(loss: Any) -> list[float]:
    """The float list of a LOSS_MAP (`{"loss": [...]}`); a bare list is accepted too."""
    values = loss.get("loss") if isinstance(loss, dict) else loss
    if not isinstance(values, (list, tuple)):
        raise TypeError(f"expected a LOSS_MAP {{'loss': [float, ...]}}, got {type(loss).__name__}")
    return [float(v) for v in values]
