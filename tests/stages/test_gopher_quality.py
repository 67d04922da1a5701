"""Gopher quality rules: one doc per drop reason, pass-through, clean doc."""

from __future__ import annotations

import pyarrow as pa
import pytest

from curator.config import GopherQualityConfig
from curator.schema import DROPPED, KEPT
from curator.schema import doc_table as docs
from curator.stages.gopher_quality import GopherQuality

CLEAN = (
    "The history of the small town began with a group of farmers who settled near the river.\n"
    "They built houses with stone and wood, and they planted wheat that grew well in the soil.\n"
    "Over the years, merchants arrived to trade goods, and a market square formed at the center.\n"
    "Children attended a school that the community funded with gifts from every family.\n"
    "During the winter, people gathered in the hall to share stories and to plan for spring.\n"
    "Travelers often remarked that the place felt welcoming, because neighbors helped each other.\n"
    "Today, visitors can walk along the old bridge and read plaques that describe early days."
)


def reason_of(text: str, **cfg: object) -> str | None:
    out = GopherQuality(GopherQualityConfig(**cfg))(docs([text]))
    return out.column("reason")[0].as_py()


def test_clean_doc_passes_with_signals() -> None:
    out = GopherQuality(GopherQualityConfig())(docs([CLEAN]))
    assert out.column("decision").to_pylist() == [KEPT]
    assert out.column("gopher_n_words")[0].as_py() == 107  # datatrove+spaCy count the same
    assert out.column("gopher_n_words").type == pa.int32()
    assert out.column("gopher_mean_word_length").type == pa.float32()
    assert out.column("gopher_n_stop_words")[0].as_py() == 6


LINES = CLEAN.split("\n")


@pytest.mark.parametrize(
    ("reason", "text", "cfg"),
    [
        ("too_few_words", "The cat sat with the dog and the bird.", {}),
        ("too_many_words", CLEAN, {"max_words": 100}),
        ("mean_word_length_too_short", CLEAN, {"min_mean_word_length": 6}),
        ("mean_word_length_too_long", CLEAN, {"max_mean_word_length": 4}),
        ("symbol_word_ratio_too_high", CLEAN + "\n" + "#" * 20, {}),
        ("bullet_lines_ratio_too_high", "\n".join("- " + ln for ln in LINES), {}),
        (
            "ellipsis_lines_ratio_too_high",
            "\n".join(ln[:-1] + "..." if i < 3 else ln for i, ln in enumerate(LINES)),
            {},
        ),
        ("alpha_words_ratio_too_low", CLEAN + " " + " ".join(str(i) for i in range(10, 70)), {}),
        ("too_few_stop_words", CLEAN, {"min_stop_words": 7}),
    ],
)
def test_each_reason(reason: str, text: str, cfg: dict) -> None:
    assert reason_of(text, **cfg) == reason


def test_non_alive_rows_pass_through() -> None:
    table = docs(["tiny", "tiny"], [DROPPED, "quarantined"])
    out = GopherQuality(GopherQualityConfig())(table)
    assert out.column("decision").to_pylist() == [DROPPED, "quarantined"]
    assert out.column("reason").to_pylist() == [None, None]
    assert out.column("gopher_n_words").null_count == 2
