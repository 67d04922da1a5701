"""C4 rules: one doc per drop reason, line removal/rewrite, pass-through."""

from __future__ import annotations

import textwrap

import pytest

from curator.config import C4Config
from curator.schema import DROPPED, KEPT
from curator.schema import doc_table as docs
from curator.stages.c4 import C4Quality

CLEAN = "\n".join(
    [
        "The farmers who settled near the river built houses of stone and wood.",
        "Merchants arrived later to trade goods in a square at the center of town.",
        "Children attended a school that every family in the valley helped to fund.",
        "In winter, people gathered in the hall to share stories and plan for spring.",
        "Travelers said the place felt welcoming, because neighbors helped each other.",
    ]
)


def reason_of(text: str) -> str | None:
    return C4Quality(C4Config())(docs([text])).column("reason")[0].as_py()


def test_clean_doc_passes_unchanged() -> None:
    out = C4Quality(C4Config())(docs([CLEAN]))
    assert out.column("decision").to_pylist() == [KEPT]
    assert out.column("text")[0].as_py() == CLEAN
    assert out.column("c4_n_sentences").to_pylist() == [5]


@pytest.mark.parametrize(
    ("reason", "text"),
    [
        ("lorem_ipsum", CLEAN + "\nLorem ipsum dolor sit amet, consectetur."),
        ("curly_bracket", CLEAN + "\nCall the function f(x) { return x; } here."),
        ("too_few_sentences", "Only one sentence lives on this line."),
    ],
)
def test_each_reason(reason: str, text: str) -> None:
    assert reason_of(text) == reason


def test_first_offending_line_names_the_reason() -> None:
    text = CLEAN + "\nIt has { a brace in it.\nLorem ipsum dolor sit amet, here."
    assert reason_of(text) == "curly_bracket"


def test_lorem_on_a_removed_line_does_not_drop() -> None:
    # datatrove checks lorem ipsum only on lines that kept terminal punctuation
    assert reason_of(CLEAN + "\nLorem ipsum dolor sit amet") is None


def test_rewrite_removes_failing_lines_and_updates_n_chars() -> None:
    text = (
        "Home | About | Contact\n"
        + CLEAN
        + "\nPlease enable JavaScript to view this.\n"
        + ("This site uses cookies to improve things.\nOk.\nSee note [1] here [citation needed].")
    )
    out = C4Quality(C4Config())(docs([text]))
    assert out.column("text")[0].as_py() == CLEAN + "\nSee note  here ."
    assert out.column("n_chars")[0].as_py() == len(CLEAN + "\nSee note  here .")
    assert out.column("c4_n_lines_removed")[0].as_py() == 4


def test_rewrite_off_keeps_text() -> None:
    text = "Home | About\n" + CLEAN
    out = C4Quality(C4Config(rewrite_text=False))(docs([text]))
    assert out.column("text")[0].as_py() == text
    assert out.column("decision")[0].as_py() == KEPT


def test_non_alive_rows_pass_through() -> None:
    out = C4Quality(C4Config())(docs(["x", "y"], [DROPPED, "quarantined"]))
    assert out.column("reason").to_pylist() == [None, None]
    assert out.column("text").to_pylist() == ["x", "y"]
    assert out.column("c4_n_sentences").null_count == 2
    assert out.column("c4_removed_char_fraction").null_count == 2


# Plain-text editions wrap prose at ~70 columns: most lines break mid-sentence, so the
# terminal-punctuation rule removes them and what survives is fragments.
HARD_WRAPPED = "\n\n".join(textwrap.fill(" ".join(CLEAN.splitlines()), width=70) for _ in range(3))


def test_hard_wrapped_prose_gutted_by_the_line_rules_is_dropped() -> None:
    out = C4Quality(C4Config())(docs([HARD_WRAPPED]))
    assert out.column("reason").to_pylist() == ["too_many_lines_removed"]
    assert out.column("c4_removed_char_fraction")[0].as_py() > 0.7
    assert out.column("text")[0].as_py() == HARD_WRAPPED  # dropped docs keep their text


def test_removed_fraction_of_one_disables_the_drop() -> None:
    out = C4Quality(C4Config(max_removed_char_fraction=1.0))(docs([HARD_WRAPPED]))
    assert out.column("decision").to_pylist() == [KEPT]
    assert len(out.column("text")[0].as_py()) < len(HARD_WRAPPED) * 0.3  # the fragments


def test_web_doc_losing_a_nav_line_is_kept_with_its_removed_fraction() -> None:
    nav = "Home | About | Contact"
    out = C4Quality(C4Config())(docs([nav + "\n" + CLEAN]))
    assert out.column("decision").to_pylist() == [KEPT]
    assert out.column("text")[0].as_py() == CLEAN
    expected = len(nav) / (len(nav) + len(CLEAN.replace("\n", "")))
    assert out.column("c4_removed_char_fraction")[0].as_py() == pytest.approx(expected)
