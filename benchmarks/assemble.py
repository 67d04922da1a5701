"""Concatenate benchmarks/results/*.md into BENCHMARKS.md (each benchmark writes its own file,
with the command that produced it)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ORDER = [
    "curate_vs_datatrove.md",
    "whole_pipeline_local.md",
    "whole_pipeline.md",
    "one_big_file.md",
    "one_big_file_warc.md",
    "whole_pipeline_recheck.md",
    "whole_pipeline_memory.md",
    "streaming_rss.md",
    "rules.md",
    "minhash.md",
    "connectors.md",
    "reader_limits.md",
    "warc_reading.md",
    "dsa_attention.md",
    "train_throughput.md",
    "dsa_selection.md",
    "selection_natural.md",
    "natural_pool_shift.md",
    "selection_quality.md",
    "closed_loop_natural_es_end_40_seeds.md",
    "closed_loop_natural_es_end_new_seeds.md",
    "closed_loop_natural_es_end.md",
    "closed_loop_natural_es_trial.md",
    "closed_loop_natural_es_split.md",
    "loop_judge_agreement.md",
    "closed_loop_natural_es.md",
    "closed_loop_natural.md",
    "closed_loop_natural_long.md",
    "closed_loop_natural_ordergain.md",
    "closed_loop.md",
    "loop_margin_probe.md",
]

HEADER = """# Benchmarks

Every table below was produced by the command printed with it, on the development machine
(2 shared CPU cores, no GPU; other jobs were running, so absolute timings are noisy -- the
ratios come from both sides run in the same script). Regenerate this file with
`.venv/bin/python -m benchmarks.assemble` after re-running any benchmark.
"""


def main() -> None:
    results = ROOT / "benchmarks" / "results"
    names = [n for n in ORDER if (results / n).exists()]
    names += sorted(p.name for p in results.glob("*.md") if p.name not in ORDER)
    parts = [HEADER] + [(results / n).read_text().strip() + "\n" for n in names]
    (ROOT / "BENCHMARKS.md").write_text("\n".join(parts))


if __name__ == "__main__":
    main()
