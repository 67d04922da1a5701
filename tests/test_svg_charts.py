"""curator/svg_charts.py: the report's inline charts put data where the axes say it is, escape
their text, and stay well-formed SVG."""

from __future__ import annotations

import re
from xml.etree import ElementTree

import numpy as np
import pytest

from curator.svg_charts import (
    Line,
    bar_chart,
    line_chart,
    nice_ticks,
    stacked_area_chart,
    step_xy,
)

SVG = "{http://www.w3.org/2000/svg}"


@pytest.mark.parametrize("lo,hi", [(0, 446), (0.43, 0.78), (-3.2, 17.0), (0, 1), (1e3, 2.5e6)])
def test_ticks_are_round_steps_inside_the_range(lo, hi):
    ticks = nice_ticks(lo, hi)
    assert 3 <= len(ticks) <= 12
    assert all(lo - 1e-9 <= t <= hi + 1e-9 for t in ticks)
    steps = np.diff(ticks)
    assert np.allclose(steps, steps[0])
    mantissa = steps[0] / 10 ** np.floor(np.log10(steps[0]))
    assert any(np.isclose(mantissa, m) for m in (1, 2, 5))


def test_bars_are_proportional_to_their_values_and_labels_are_escaped():
    svg = bar_chart(["kept", "dropped/a<b & c"], [300, 100], ["#0f0", "#f80"], "t & t", "docs")
    root = ElementTree.fromstring(svg)  # raises on an unescaped & or <
    widths = [float(r.get("width")) for r in root.iter(f"{SVG}rect")]
    assert widths[0] == pytest.approx(3 * widths[1], abs=0.2)  # pixels to one decimal
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "dropped/a<b & c" in texts and "t & t" in texts


def test_line_points_sit_on_the_axes_ticks():
    xs, ys = np.array([0.0, 10.0, 20.0]), np.array([9.0, 6.0, 5.0])
    svg = line_chart([Line(xs, ys, "#123", "agent")], "loss", "tokens", "loss",
                     hlines=[(5.5, "target 5.500", "#777")], ylim=(4.0, 10.0))
    root = ElementTree.fromstring(svg)
    (poly,) = root.iter(f"{SVG}polyline")
    pts = np.array([[float(v) for v in p.split(",")] for p in poly.get("points").split()])
    frame = [r for r in root.iter(f"{SVG}rect") if r.get("fill") == "none"][0]
    x0, y0 = float(frame.get("x")), float(frame.get("y"))
    w, h = float(frame.get("width")), float(frame.get("height"))
    # x: 0 and 20 at the frame's edges, 10 in the middle; y: 4 at the bottom, 10 at the top
    assert pts[:, 0] == pytest.approx([x0, x0 + w / 2, x0 + w], abs=0.1)
    assert pts[:, 1] == pytest.approx([y0 + h / 6, y0 + h * 2 / 3, y0 + h * 5 / 6], abs=0.1)
    # the reference line is drawn at y = 5.5 and named in the legend
    target = [ln for ln in root.iter(f"{SVG}line") if ln.get("stroke-dasharray")]
    assert float(target[0].get("y1")) == pytest.approx(y0 + h * 0.75, abs=0.1)
    assert "target 5.500" in [t.text for t in root.iter(f"{SVG}text")]


def test_a_histogram_outline_holds_each_bin_flat_and_unlabelled_curves_stay_out_of_the_legend():
    xs, ys = step_xy(np.array([0.0, 1.0, 2.0]), np.array([3.0, 5.0]))
    assert xs.tolist() == [0, 1, 1, 2] and ys.tolist() == [3, 3, 5, 5]
    svg = line_chart([Line(xs, ys, "#1", "a"), Line(xs, ys + 1, "#2", None)], "h", "x", "y")
    assert len(re.findall(r'<rect [^>]*width="14"', svg)) == 1  # one legend swatch


def test_stacked_layers_fill_the_unit_square():
    shares = np.array([[0.5, 0.2], [0.5, 0.8]])
    svg = stacked_area_chart(np.array([0.0, 1.0]), shares, ["easy", "hard"], "mix", "x", "share",
                             vlines=[0.5])
    root = ElementTree.fromstring(svg)
    polys = list(root.iter(f"{SVG}polygon"))
    assert len(polys) == 2
    top = np.array([[float(v) for v in p.split(",")] for p in polys[1].get("points").split()])
    frame = [r for r in root.iter(f"{SVG}rect") if r.get("fill") == "none"][0]
    # the top layer's upper edge is the frame's top: the shares sum to 1 at every x
    assert top[:2, 1] == pytest.approx([float(frame.get("y"))] * 2, abs=0.1)
