"""HTML tables for the reports, and matplotlib figures as PNG for the files training runs write
(`loss_plot`). The reports' charts are inline SVG: curator/svg_charts.py."""

from __future__ import annotations

import html
import io


def png_bytes(fig) -> bytes:
    """The figure as PNG bytes (closed afterwards): what training runs write."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


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


def loss_plot(
    train: dict[int, float], heldout: dict[int, float], tokens_per_step: int, title: str
) -> bytes:
    """PNG of a training run: per-step train loss and held-out loss vs step (bottom axis) and
    training tokens (top axis); held-out points are the evals, taken before their step."""
    fig, ax = figure()
    steps = sorted(train)
    ax.plot(steps, [train[s] for s in steps], lw=0.8, alpha=0.8, label="train (per step)")
    if heldout:
        at = sorted(heldout)
        ax.plot(at, [heldout[s] for s in at], "o-", color="C1", label="held-out")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats/token)")
    # tokens seen before a step = step * tokens per step, so the two axes are one linear map
    top = ax.secondary_xaxis(
        "top", functions=(lambda s: s * tokens_per_step, lambda t: t / tokens_per_step)
    )
    top.set_xlabel("training tokens")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    return png_bytes(fig)
