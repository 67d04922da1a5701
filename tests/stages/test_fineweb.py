"""FineWeb rules: one doc per drop reason, pass-through, clean doc."""

from __future__ import annotations

import pyarrow as pa
import pytest

from curator.config import FineWebConfig
from curator.schema import DROPPED, KEPT
from curator.schema import doc_table as docs
from curator.stages.fineweb import FineWebQuality

CLEAN = "\n".join(
    [
        "The farmers who settled near the river built houses of stone and wood.",
        "Merchants arrived later to trade goods in a square at the center of town.",
        "Children attended a school that every family in the valley helped to fund.",
    ]
)


def reason_of(text: str) -> str | None:
    return FineWebQuality(FineWebConfig())(docs([text])).column("reason")[0].as_py()


def test_clean_doc_passes() -> None:
    out = FineWebQuality(FineWebConfig())(docs([CLEAN]))
    assert out.column("decision").to_pylist() == [KEPT]
    assert out.column("fineweb_line_punct_ratio").to_pylist() == [1.0]
    assert out.column("fineweb_line_punct_ratio").type == pa.float32()


@pytest.mark.parametrize(
    ("reason", "text"),
    [
        ("empty_text", "\n  \n"),
        (
            "line_punct_ratio_too_low",
            "\n".join(f"A long navigation entry number {i} without an end" for i in range(9)),
        ),
        ("short_line_ratio_too_high", "\n".join(f"Short line {i}." for i in range(9))),
        ("char_dup_ratio_too_high", CLEAN + "\n" + CLEAN.split("\n")[0]),
        (
            "newline_word_ratio_too_high",
            "\n".join(f"Pneumonoultramicroscopicsilicovolcanoconiosis{i}." for i in range(10)),
        ),
    ],
)
def test_each_reason(reason: str, text: str) -> None:
    assert reason_of(text) == reason


def test_non_alive_rows_pass_through() -> None:
    out = FineWebQuality(FineWebConfig())(docs(["", "x"], [DROPPED, "quarantined"]))
    assert out.column("reason").to_pylist() == [None, None]
    assert out.column("fineweb_short_line_ratio").null_count == 2
