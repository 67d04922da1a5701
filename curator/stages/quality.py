"""The heuristic quality rules as an ordered list of steps.

Order is FineWeb's production pipeline (Penedo et al. 2024): Gopher repetition, Gopher quality,
C4, FineWeb. Repetition and Gopher quality judge the text as it came; C4 may then rewrite the
survivors to their kept lines (C4Config.rewrite_text), and FineWeb's line rules judge that
cleaned text, as in datatrove's chained pipeline. Cheaper-first ordering would not save much:
every step only evaluates rows still alive.
"""

from __future__ import annotations

from curator.config import QualityConfig
from curator.stages.c4 import C4Quality
from curator.stages.fineweb import FineWebQuality
from curator.stages.gopher_quality import GopherQuality
from curator.stages.gopher_repetition import GopherRepetition
from curator.stages.text_columns import SharedWords
from curator.step import Step


def build_quality_steps(cfg: QualityConfig, words: SharedWords | None = None) -> list[Step]:
    """Enabled rule families, in the fixed order above; the word split is shared by the steps
    that read words (computed once per batch unless C4 rewrote the text in between), and with
    later steps of the pipeline that pass the same `words`."""
    steps: list[Step] = []
    words = words or SharedWords()
    if cfg.gopher_repetition.enabled:
        steps.append(GopherRepetition(cfg.gopher_repetition, words))
    if cfg.gopher_quality.enabled:
        steps.append(GopherQuality(cfg.gopher_quality, words))
    if cfg.c4.enabled:
        steps.append(C4Quality(cfg.c4))
    if cfg.fineweb.enabled:
        steps.append(FineWebQuality(cfg.fineweb, words))
    return steps
