"""Inline SVG charts for the HTML reports: horizontal bars, lines (steps included), stacked areas.

Why not matplotlib here: RUN/report.html is drawn at the end of every `curator curate`, and
matplotlib's import plus the report's four figures cost ~1.9 CPU-s per run (0.48 s import,
~1.4 s drawing and PNG encoding, in process on a 3 MB run's report), a fifth of a whole 3 MB
job. These charts are strings built in milliseconds; they scale without blur and keep the
report self-contained. matplotlib stays for the PNG files training runs write
(`curator.plots.loss_plot`).
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import PurePath

import numpy as np

# matplotlib's tab10, so the report keeps the colours its readers know
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
           "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
WIDTH = 800
FONT = 'font-family="sans-serif" font-size="11"'
LEGEND_CHARS = 34  # longer names are cut: the legend sits right of the plot


def color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def nice_ticks(lo: float, hi: float, target: int = 6) -> list[float]:
    """Round tick values covering [lo, hi]: steps of 1, 2 or 5 times a power of ten."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / target
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    return [first + k * step for k in range(int((hi - first) / step + 1e-9) + 1)]


def fmt(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 1e5 or abs(v) < 1e-3:
        return f"{v:.1e}"
    return f"{v:.6g}"


def _text(x: float, y: float, s: str, anchor: str = "start", extra: str = "") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" {FONT}{extra}>'
            f"{html.escape(s)}</text>")


def _svg(width: int, height: int, body: list[str], title: str) -> str:
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" aria-label="{html.escape(title)}">')
    heading = _text(width / 2, 16, title, "middle", ' font-weight="bold"')
    return head + heading + "".join(body) + "</svg>"


def bar_chart(labels: Sequence[str], values: Sequence[float], colors: Sequence[str], title: str,
              xlabel: str) -> str:
    """Horizontal bars, first label on top, each bar's value written at its end."""
    row = 18
    left = 12 + 6.2 * max((len(s) for s in labels), default=1)
    right, top = 70, 28
    height = int(top + row * max(1, len(labels)) + 40)
    plot_w = WIDTH - left - right
    vmax = max([float(v) for v in values] + [1e-12])
    ticks = [t for t in nice_ticks(0, vmax) if t <= vmax * 1.0001]
    scale = plot_w / max(vmax, ticks[-1] if ticks else vmax)
    body = []
    bottom = top + row * len(labels)
    for t in ticks:
        x = left + t * scale
        body.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{bottom}" stroke="#ddd"/>')
        body.append(_text(x, bottom + 14, fmt(t), "middle"))
    for i, (label, v, c) in enumerate(zip(labels, values, colors, strict=True)):
        y = top + i * row
        body.append(f'<rect x="{left:.1f}" y="{y + 2}" width="{max(0.0, v * scale):.1f}" '
                    f'height="{row - 4}" fill="{c}"/>')
        body.append(_text(left - 6, y + row - 5, label, "end"))
        body.append(_text(left + v * scale + 4, y + row - 5, fmt(float(v))))
    body.append(_text(left + plot_w / 2, bottom + 30, xlabel, "middle"))
    return _svg(WIDTH, height, body, title)


@dataclass
class Line:
    xs: np.ndarray
    ys: np.ndarray
    color: str
    label: str | None = None  # None: not in the legend (a second seed of the same arm)
    opacity: float = 1.0


@dataclass
class Axes:
    """Data ranges -> pixel box; ticks, grid, axis labels and the legend around it."""

    title: str
    xlabel: str
    ylabel: str
    xlim: tuple[float, float]
    ylim: tuple[float, float]
    legend: list[tuple[str, str]] = field(default_factory=list)  # (label, colour)
    height: int = 330
    left: int = 64
    right: int = 220
    top: int = 28
    bottom: int = 46

    def x(self, v: np.ndarray | float) -> np.ndarray | float:
        lo, hi = self.xlim
        return self.left + (np.asarray(v, float) - lo) / (hi - lo or 1) * self.plot_w

    def y(self, v: np.ndarray | float) -> np.ndarray | float:
        lo, hi = self.ylim
        return self.top + (1 - (np.asarray(v, float) - lo) / (hi - lo or 1)) * self.plot_h

    @property
    def plot_w(self) -> float:
        return WIDTH - self.left - self.right

    @property
    def plot_h(self) -> float:
        return self.height - self.top - self.bottom

    def render(self, marks: list[str]) -> str:
        body = []
        x0, x1 = self.left, self.left + self.plot_w
        y0, y1 = self.top, self.top + self.plot_h
        for t in nice_ticks(*self.xlim):
            px = float(self.x(t))
            body.append(f'<line x1="{px:.1f}" y1="{y0}" x2="{px:.1f}" y2="{y1}" stroke="#eee"/>')
            body.append(_text(px, y1 + 14, fmt(t), "middle"))
        for t in nice_ticks(*self.ylim):
            py = float(self.y(t))
            body.append(f'<line x1="{x0}" y1="{py:.1f}" x2="{x1}" y2="{py:.1f}" stroke="#eee"/>')
            body.append(_text(x0 - 5, py + 4, fmt(t), "end"))
        body += marks
        body.append(f'<rect x="{x0}" y="{y0}" width="{self.plot_w:.1f}" height="{self.plot_h:.1f}" '
                    'fill="none" stroke="#333"/>')
        body.append(_text((x0 + x1) / 2, y1 + 32, self.xlabel, "middle"))
        body.append(_text(14, (y0 + y1) / 2, self.ylabel, "middle",
                          f' transform="rotate(-90 14 {(y0 + y1) / 2:.1f})"'))
        for i, (label, c) in enumerate(self.legend):
            ly = y0 + 8 + 16 * i
            body.append(f'<rect x="{x1 + 12}" y="{ly - 8}" width="14" height="9" fill="{c}"/>')
            short = label if len(label) <= LEGEND_CHARS else label[: LEGEND_CHARS - 1] + "…"
            body.append(_text(x1 + 30, ly, short))
        return _svg(WIDTH, self.height, body, self.title)


def _points(ax: Axes, xs: np.ndarray, ys: np.ndarray) -> str:
    px, py = ax.x(xs), ax.y(ys)
    return " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(px, py, strict=True))


def _limits(values: Sequence[np.ndarray], pad: float) -> tuple[float, float]:
    finite = np.concatenate([np.asarray(v, float)[np.isfinite(v)] for v in values] or [[0.0]])
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if hi <= lo:
        return lo - 0.5, hi + 0.5
    return lo - pad * (hi - lo), hi + pad * (hi - lo)


def line_chart(lines: Sequence[Line], title: str, xlabel: str, ylabel: str,
               hlines: Sequence[tuple[float, str, str]] = (),
               ylim: tuple[float, float] | None = None) -> str:
    """Polylines; `hlines`: (y, label, colour) reference lines, dashed and in the legend."""
    xlim = _limits([ln.xs for ln in lines], 0.0)
    ylim = ylim or _limits([ln.ys for ln in lines] + [np.array([h[0] for h in hlines])], 0.05)
    legend = [(ln.label, ln.color) for ln in lines if ln.label is not None]
    legend += [(label, c) for _, label, c in hlines]
    ax = Axes(title, xlabel, ylabel, xlim, ylim, legend)
    marks = []
    for ln in lines:
        ok = np.isfinite(ln.xs) & np.isfinite(ln.ys)
        marks.append(f'<polyline points="{_points(ax, ln.xs[ok], ln.ys[ok])}" fill="none" '
                     f'stroke="{ln.color}" stroke-width="1.4" '
                     f'stroke-opacity="{ln.opacity}"/>')
    for yv, _, c in hlines:
        py = float(ax.y(yv))
        marks.append(f'<line x1="{ax.left}" y1="{py:.1f}" x2="{ax.left + ax.plot_w:.1f}" '
                     f'y2="{py:.1f}" stroke="{c}" stroke-dasharray="5,4"/>')
    return ax.render(marks)


def step_xy(edges: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A histogram's outline: each bin's value held flat from its left to its right edge."""
    return np.repeat(np.asarray(edges, float), 2)[1:-1], np.repeat(np.asarray(values, float), 2)


def hist_chart(edges: np.ndarray, counts: dict[str, np.ndarray], title: str, xlabel: str) -> str:
    """One histogram outline per group (named by its file name if a path), each as a fraction
    of its group."""
    lines = []
    for i, (name, c) in enumerate(sorted(counts.items())):
        xs, ys = step_xy(edges, c / max(1, c.sum()))
        lines.append(Line(xs, ys, color(i), f"{PurePath(name).name} ({c.sum()})"))
    return line_chart(lines, title, xlabel, "fraction of group")


def stacked_area_chart(xs: np.ndarray, shares: np.ndarray, names: Sequence[str], title: str,
                       xlabel: str, ylabel: str, vlines: Sequence[float] = ()) -> str:
    """Shares (layers, points) stacked bottom-up over `xs`, on [0, 1] both ways; `vlines`:
    dotted separators (rounds)."""
    ax = Axes(title, xlabel, ylabel, (0.0, 1.0), (0.0, 1.0),
              [(n, color(i)) for i, n in enumerate(names)])
    cum = np.vstack([np.zeros(len(xs)), np.cumsum(shares, axis=0)])
    marks = []
    for i in range(len(names)):
        upper = _points(ax, xs, cum[i + 1])
        lower = _points(ax, xs[::-1], cum[i][::-1])
        marks.append(f'<polygon points="{upper} {lower}" fill="{color(i)}" fill-opacity="0.85"/>')
    for v in vlines:
        px = float(ax.x(v))
        marks.append(f'<line x1="{px:.1f}" y1="{ax.top}" x2="{px:.1f}" '
                     f'y2="{ax.top + ax.plot_h:.1f}" stroke="#000" stroke-dasharray="2,3"/>')
    return ax.render(marks)
