"""The run's sentencepiece training: a small vocabulary over many distinct characters."""

from __future__ import annotations

import random

import pytest
import sentencepiece as spm

from curator.config import TokenizerConfig
from curator.tokenizer_train import train_tokenizer

ENGLISH = [f"The quick brown fox jumps over the lazy dog, time number {i}." for i in range(2000)]


def cjk_lines(n: int, alphabet: int = 3000, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return ["".join(chr(0x4E00 + rng.randrange(alphabet)) for _ in range(50)) for _ in range(n)]


def test_coverage_is_lowered_until_the_characters_fit(tmp_path):
    # ~1400 distinct characters at 0.9995 coverage do not fit in 1000 pieces; lower ones do
    texts = ENGLISH + cjk_lines(30)
    path = train_tokenizer(texts, TokenizerConfig(vocab_size=1000), tmp_path / "t.model")
    sp = spm.SentencePieceProcessor(model_file=str(path))
    assert sp.get_piece_size() == 1000
    assert all(sp.decode(sp.encode(t)) == t for t in texts[-30:])  # byte fallback: lossless


def test_a_vocabulary_too_small_names_the_fix(tmp_path):
    with pytest.raises(ValueError, match="raise tokenizer.vocab_size"):
        train_tokenizer(ENGLISH + cjk_lines(400), TokenizerConfig(vocab_size=1000),
                        tmp_path / "t.model")
    assert not (tmp_path / "t.model").exists()


def test_identical_runs_write_identical_model_bytes(tmp_path):
    """Sentencepiece stores its temp dir's paths and the thread count in the .model; the run's
    tokenizer must not differ between two identical runs (nor between machines)."""
    texts = ENGLISH[:500] + ["def f(x):\n\treturn x  # \u2581 kept\n"] * 20
    cfg = TokenizerConfig(vocab_size=400)
    a = train_tokenizer(texts, cfg, tmp_path / "a" / "t.model", num_threads=1).read_bytes()
    b = train_tokenizer(texts, cfg, tmp_path / "b" / "t.model", num_threads=2).read_bytes()
    assert a == b
    assert b"curator-spm" not in a and b"/tmp" not in a
    sp = spm.SentencePieceProcessor(model_file=str(tmp_path / "a" / "t.model"))
    assert all(sp.decode(sp.encode(t)) == t for t in texts[-2:])  # rules still apply


def test_the_training_sample_holds_kept_documents_and_no_removed_duplicate(tmp_path):
    """The sample is what pass 2 will keep: rule survivors, minus the duplicates dedup listed
    (a text repeated under many ids must not weigh in the vocabulary once per copy)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from curator.executor import _tokenizer_sample
    from curator.rundir import RunDir
    from curator.schema import DROPPED, KEPT

    run = RunDir.at(tmp_path / "run")
    run.pass1(0).parent.mkdir(parents=True)
    run.dups(0).parent.mkdir(parents=True)
    pq.write_table(pa.table({
        "doc_id": ["a", "b", "c", "d"],
        "decision": [KEPT, KEPT, DROPPED, KEPT],
        "text": ["first text", "a copy", "dropped by a rule", "second text"],
    }), run.pass1(0))
    pq.write_table(pa.table({"doc_id": ["b"], "duplicate_of": ["a"],
                             "reason": ["exact_duplicate"]}), run.dups(0))
    assert list(_tokenizer_sample(run, 1, fraction=1.0, seed=0)) == ["first text", "second text"]
