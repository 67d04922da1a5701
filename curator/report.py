"""`RUN/report.html`: one self-contained page (charts as inline SVG, no external files).

Sections: run summary (stats.json); the filter funnel; score histograms per source and per drop
reason; the curriculum mix over training for a schedule; and, when `RUN/loop/result-*.json` exist,
held-out loss vs tokens per arm with a table of final losses and tokens-to-target.

The loop section and the format of its result files: curator/loop/report.py.

Aggregates come from DuckDB over the catalog (group-bys, never the manifest in memory); the
curriculum plot needs the kept documents' stage and token counts (two small arrays).
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np

from curator.catalog import FUNNEL_SQL, CatalogReader
from curator.config import ConfigError
from curator.loop.report import loop_section
from curator.plots import html_table
from curator.rundir import RunDir
from curator.svg_charts import bar_chart, color, hist_chart, stacked_area_chart

N_BINS = 40
MAX_SOURCES = 6
SIGNAL_PREFERENCE = ["quality_score", "difficulty", "gopher_mean_word_length", "n_chars"]


def funnel_section(cat: CatalogReader) -> str:
    cols, rows = cat.query(FUNNEL_SQL)
    labels = [f"{d}/{r}" if r else d for d, r, *_ in rows]
    colors = {"kept": color(2), "dropped": color(1), "quarantined": color(3)}
    chart = bar_chart(labels, [r[2] for r in rows], [colors[r[0]] for r in rows],
                      "filter funnel: documents by final decision and reason", "documents")
    return "<h2>Filter funnel</h2>" + chart + html_table(cols, rows)


def _manifest_columns(cat: CatalogReader) -> set[str]:
    cols, _ = cat.query("SELECT * FROM manifest LIMIT 0")
    return set(cols)


def pick_signal(cat: CatalogReader, candidates: list[str], where: str = "TRUE") -> str | None:
    """First candidate column with any non-null value in the manifest rows matching `where`."""
    present = _manifest_columns(cat)
    for name in candidates:
        if name in present:
            _, rows = cat.query(f"SELECT count({name}) FROM manifest WHERE {where}")
            if rows[0][0]:
                return name
    return None


def histograms(cat: CatalogReader, column: str, group: str, where: str
               ) -> tuple[np.ndarray, dict]:
    """Bin edges over the 1st-99th percentile of `column`, and counts per group (top groups by
    size, the rest as 'other'), computed by DuckDB."""
    _, rows = cat.query(
        f"SELECT quantile_cont({column}, 0.01), quantile_cont({column}, 0.99) "
        f"FROM manifest WHERE {where} AND {column} IS NOT NULL",
    )
    lo, hi = rows[0]
    lo, hi = float(lo), float(hi) if hi > lo else float(lo) + 1.0
    width = (hi - lo) / N_BINS
    _, rows = cat.query(
        f"""WITH v AS (SELECT coalesce({group}, '') AS grp, {column} AS x FROM manifest
                       WHERE {where} AND {column} IS NOT NULL),
           top AS (SELECT grp FROM v GROUP BY grp ORDER BY count(*) DESC, grp
                   LIMIT {MAX_SOURCES})
        SELECT CASE WHEN grp IN (SELECT grp FROM top) THEN grp ELSE 'other' END,
               least(greatest(floor((x - {lo}) / {width}), 0), {N_BINS - 1})::INT,
               count(*)
        FROM v GROUP BY 1, 2""",
    )
    counts: dict[str, np.ndarray] = {}
    for grp, b, n in rows:
        counts.setdefault(str(grp), np.zeros(N_BINS, np.int64))[b] += n
    return np.linspace(lo, hi, N_BINS + 1), counts


def scores_section(cat: CatalogReader) -> str:
    parts = ["<h2>Score histograms</h2>"]
    kept = "decision = 'kept'"
    signal = pick_signal(cat, SIGNAL_PREFERENCE, kept)
    if signal is not None:
        edges, counts = histograms(cat, signal, "source", kept)
        parts.append(hist_chart(edges, counts, f"kept documents: {signal} per source", signal))
    # Difficulty and the agent score exist for alive documents only; a rule signal or the
    # length compares the dropped reasons with the kept documents.
    everyone = "decision <> 'quarantined'"
    reason_signal = pick_signal(
        cat, ["quality_score", "gopher_mean_word_length", "n_chars"], everyone
    )
    if reason_signal is not None:
        group = "CASE WHEN decision = 'kept' THEN 'kept' ELSE reason END"
        edges, counts = histograms(cat, reason_signal, group, everyone)
        parts.append(hist_chart(edges, counts, f"{reason_signal} per reason", reason_signal))
    return "".join(parts)


def curriculum_section(cat: CatalogReader, schedule_name: str, seed: int = 0) -> str:
    from curator.schedules import load_schedule, plan_order

    _, rows = cat.query("SELECT stage, n_tokens FROM manifest WHERE decision = 'kept'")
    if not rows:
        return "<h2>Curriculum</h2><p>No kept documents.</p>"
    arr = np.array([(s or 0, n or 0) for s, n in rows], dtype=np.int64)
    stage, n_tokens = arr[:, 0], arr[:, 1]
    default = {"n_stages": int(stage.max()) + 1, "score": "none"}
    marker = cat.run.read_marker("curriculum") or default
    n_stages = marker["n_stages"]
    try:
        schedule = load_schedule(schedule_name, n_stages)
    except ConfigError as err:
        return f"<h2>Curriculum</h2><p>{html.escape(str(err))}</p>"
    plan = plan_order(stage, n_tokens, schedule, n_stages, seed)
    tok = n_tokens[plan.order]
    cum = np.cumsum(tok)
    # ~40 documents per bin: fewer and the plot shows document granularity, not the mix
    bins = int(np.clip(len(tok) // 40, 5, 50))
    where = np.minimum(((cum - tok / 2) / max(1, cum[-1]) * bins).astype(int), bins - 1)
    shares = np.zeros((n_stages, bins))
    np.add.at(shares, (stage[plan.order], where), tok)
    shares /= np.maximum(shares.sum(0, keepdims=True), 1)
    names = ["easy", "medium", "hard"] if n_stages == 3 else [f"stage {k}" for k in range(n_stages)]
    chart = stacked_area_chart((np.arange(bins) + 0.5) / bins, shares, names,
                               f"curriculum mix over training: schedule '{schedule.name}'",
                               "fraction of training tokens", "token share")
    summary = plan.summary(n_tokens, stage)
    rows_out = [
        (p, f"{ph.until:.2f}", *[int(x) for x in summary["phase_tokens"][p]])
        for p, ph in enumerate(schedule.phases)
    ]
    table = html_table(["phase", "until", *names], rows_out)
    note = (
        f"<p>Difficulty score: {html.escape(str(marker['score']))}; cut points "
        f"{html.escape(str([round(c, 4) for c in marker.get('cuts', [])]))}. Tokens placed: "
        f"{summary['tokens']} of {summary['kept_tokens']} kept (the default export places "
        "every kept token: an exhausted stage's share goes to the nearest stage; "
        "`--on-exhausted truncate` keeps the mix exact instead).</p>"
    )
    return "<h2>Curriculum</h2>" + chart + note + table


STYLE = """body{font-family:sans-serif;max-width:980px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:2px 8px;
font-size:13px;text-align:right}th{background:#eee}img{max-width:100%}"""


def render_report(run: RunDir, schedule: str = "phases") -> str:
    stats = json.loads(run.stats.read_text()) if run.stats.exists() else {}
    brief = [
        (k, stats[k]) for k in ("records", "kept", "dropped", "quarantined", "tokens") if k in stats
    ]
    brief += [(f"pii_{kind} replaced in kept docs", v["kept_replaced"])
              for kind, v in stats.get("pii", {}).items()]
    with CatalogReader(run) as cat:
        sections = [funnel_section(cat), scores_section(cat), curriculum_section(cat, schedule)]
    body = [
        f"<h1>curator run report</h1><p>{html.escape(str(run.root))}</p>",
        html_table(["", "value"], brief) if brief else "",
        *sections,
        loop_section(run),
    ]
    return (
        '<!DOCTYPE html><html><head><meta charset="utf-8"><title>curator report</title>'
        f"<style>{STYLE}</style></head><body>{''.join(body)}</body></html>"
    )


def write_report(run: RunDir, schedule: str = "phases") -> Path:
    """Render and write RUN/report.html atomically; returns its path."""
    from connectors.fs import write_text_atomic

    path = run.root / "report.html"
    write_text_atomic(render_report(run, schedule), path)
    return path
