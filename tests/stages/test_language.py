"""Language id: batched scoring equals py3langid's classify; drop reasons; pass-through."""

from __future__ import annotations

import pyarrow as pa
import pytest

from curator.config import LanguageConfig
from curator.schema import DROPPED, KEPT
from curator.schema import doc_table as docs
from curator.stages.language import LanguageId, LanguageModel

EN = "The farmers who settled near the river built houses of stone and wood, and they stayed."
FR = "Les agriculteurs qui se sont installés près de la rivière ont construit des maisons."
DE = "Die Bauern, die sich am Fluss niederließen, bauten Häuser aus Stein und Holz."


@pytest.fixture(scope="module")
def step() -> LanguageId:
    return LanguageId(LanguageConfig())


def test_batched_scores_equal_py3langid() -> None:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    ref = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    texts = [EN, FR, DE, "SHOUTING IN ENGLISH IS STILL ENGLISH TEXT", "", "12345 !!!"]
    lang, score = LanguageModel().classify(pa.array(texts))
    for text, got_lang, got_score in zip(texts, lang.to_pylist(), score.tolist(), strict=False):
        want_lang, want_score = ref.classify(text)
        assert (got_lang, round(got_score, 4)) == (want_lang, round(want_score, 4))


def test_english_kept_with_signals(step: LanguageId) -> None:
    out = step(docs([EN]))
    assert out.column("decision").to_pylist() == [KEPT]
    assert out.column("lang").to_pylist() == ["en"]
    assert out.column("lang_score").type == pa.float32()


def test_wrong_language(step: LanguageId) -> None:
    assert step(docs([FR])).column("reason").to_pylist() == ["wrong_language"]


def test_language_score_too_low() -> None:
    # py3langid: ("en", 0.68) -- right language, too unsure for a 0.9 bar
    out = LanguageId(LanguageConfig(min_score=0.9))(docs(["this is it"]))
    assert out.column("reason").to_pylist() == ["language_score_too_low"]


def test_non_alive_rows_pass_through(step: LanguageId) -> None:
    out = step(docs([FR, None], [DROPPED, "quarantined"]))
    assert out.column("reason").to_pylist() == [None, None]
    assert out.column("lang").null_count == 2
