"""Plot and table helpers of the HTML reports: matplotlib figures as inline PNG, HTML tables."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import numpy as np


def png(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img alt="plot" src="data:image/png;base64,{data}">'


def html_table(columns: list[str], rows: list[tuple]) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = "".join(
        "<tr>"
        + "".join(f"<td>{html.escape('' if v is None else str(v))}</td>" for v in r)
        + "</tr>"
        for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def figure(width: float = 8, height: float = 3.5):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(width, height))


def hist_plot(edges: np.ndarray, counts: dict, title: str, xlabel: str) -> str:
    fig, ax = figure()
    centers = (edges[:-1] + edges[1:]) / 2
    for name, c in sorted(counts.items()):
        ax.step(centers, c / max(1, c.sum()), where="mid", label=f"{Path(name).name} ({c.sum()})")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("fraction of group")
    ax.set_title(title)
    ax.legend(fontsize=7)
    return png(fig)
