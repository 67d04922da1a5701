"""Decontamination: a shared 13-gram drops a document, 12 shared words do not; case and
punctuation do not hide a match; the benchmark is named (first in config order); only alive rows
are examined; bad evaluation files fail before any work, naming the field; the vectorized check
agrees with a plain Python one; and a real `curate` run drops, names and leaves out of the
export the contaminated documents."""

from __future__ import annotations

import json
import random
import unicodedata
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curator.config import ConfigError, CurateConfig, DecontaminateConfig, load_model
from curator.pipeline import build_pass1_steps, output_schema
from curator.rundir import RunDir
from curator.schema import DROPPED, KEPT
from curator.schema import doc_table as docs
from curator.stages.decontaminate import Decontaminate, EvalSet
from curator.stages.eval_sets import load_eval_set, store_eval_set
from curator.stages.text_columns import split_words

QUESTION = ("Which planet in the solar system has the largest number of confirmed moons "
            "orbiting it as of the most recent survey")  # 21 words
WORDS = QUESTION.split()


def write_jsonl(path: Path, records: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


def check(tmp_path: Path, texts: list[str | None], decisions: list[str] | None = None,
          **cfg: object) -> pa.Table:
    """Run the step over `texts` against one benchmark `bench` holding QUESTION."""
    paths = cfg.pop("paths", None) or [write_jsonl(tmp_path / "bench.jsonl", [{"text": QUESTION}])]
    step = Decontaminate(load_eval_set(DecontaminateConfig(paths=paths, **cfg)))
    return step(docs(texts, decisions))


def reasons(table: pa.Table) -> list[str | None]:
    return table.column("reason").to_pylist()


def test_one_shared_13gram_drops_and_12_shared_words_do_not(tmp_path):
    out = check(tmp_path, [
        "Intro words here. " + " ".join(WORDS[3:16]) + " and then something else.",  # 13
        "Intro words here. " + " ".join(WORDS[3:15]) + " and then something else.",  # 12
        " ".join(WORDS[:12]) + " unrelated " + " ".join(WORDS[12:]),  # 12 + 9, split apart
    ])
    assert reasons(out) == ["contaminated", None, None]
    assert out.column("contaminated_by").to_pylist() == ["bench", None, None]
    assert out.column("decision").to_pylist() == [DROPPED, KEPT, KEPT]


def test_case_and_punctuation_do_not_hide_a_match(tmp_path):
    noisy = ('WHICH planet, in THE "solar system", HAS the largest NUMBER of confirmed '
             "MOONS -- orbiting IT?!")  # every 13 words hold an upper-cased one
    assert reasons(check(tmp_path, [noisy])) == ["contaminated"]


def test_ngram_is_configurable(tmp_path):
    five = "Today I learned: " + " ".join(WORDS[5:10]) + ", believe it."
    assert reasons(check(tmp_path, [five])) == [None]
    assert reasons(check(tmp_path, [five], ngram=5)) == ["contaminated"]
    assert reasons(check(tmp_path, ["nothing shared at all here"], ngram=1)) == [None]


def test_two_benchmarks_are_named_and_the_first_in_config_order_wins(tmp_path):
    other = "the mitochondria is the powerhouse of the cell according to every single textbook"
    a = write_jsonl(tmp_path / "qa.jsonl", [{"text": QUESTION}])
    b = tmp_path / "cloze.txt"
    b.write_text(f"{other}\n\n{QUESTION}\n")
    texts = [QUESTION, other, "clean text", f"{QUESTION}. {other}", f"{other}. {QUESTION}"]
    out = check(tmp_path, texts, paths=[a, str(b)])
    assert out.column("contaminated_by").to_pylist() == ["qa", "cloze", None, "qa", "qa"]
    out = check(tmp_path, texts, paths=[str(b), a])
    assert out.column("contaminated_by").to_pylist() == ["cloze"] * 2 + [None] + ["cloze"] * 2


def test_rows_already_dropped_are_untouched_and_empty_text_passes(tmp_path):
    out = check(tmp_path, [QUESTION, QUESTION, None, ""], [DROPPED, KEPT, KEPT, KEPT])
    assert reasons(out) == [None, "contaminated", None, None]  # docs() gives no first reason
    assert out.column("decision").to_pylist() == [DROPPED, DROPPED, KEPT, KEPT]
    assert out.column("contaminated_by").to_pylist() == [None, "bench", None, None]


def test_short_items_are_matched_whole_or_skipped_and_counted(tmp_path):
    path = write_jsonl(tmp_path / "short.jsonl", [
        {"q": "What is the boiling point of water at sea", "a": "level"},  # 10 words: whole
        {"q": "Capital of France?", "a": "Paris"},  # 4 words: skipped
        {"q": None, "a": None},  # empty: skipped
        {"q": QUESTION, "a": "Saturn"},
    ])
    cfg = DecontaminateConfig(paths=[path], fields=["q", "a"])
    eval_set = load_eval_set(cfg)
    assert eval_set.counts["short"] == {"items": 4, "full_items": 1, "short_items": 1,
                                        "skipped_items": 2, "ngrams": 22 - 13 + 1 + 1}
    out = Decontaminate(eval_set)(docs([
        "Quiz: what is the boiling point of water at sea level? Answer below.",
        "what is the boiling point of water at sea",  # 9 of its 10 words: no match
        "The capital of France is Paris.",
    ]))
    assert reasons(out) == ["contaminated", None, None]


def test_txt_items_split_by_line_paragraph_or_file(tmp_path):
    txt = tmp_path / "lines.txt"
    first, second = " ".join(WORDS[:7]), " ".join(WORDS[7:14])  # 7 words each
    txt.write_text(f"{first}\n{second}\n")
    doc = [QUESTION]
    # per line: two 7-word items, under min_item_words=8, both skipped
    assert reasons(check(tmp_path, doc, paths=[str(txt)])) == [None]
    # per paragraph (and whole file): one 14-word item whose 13-grams match
    assert reasons(check(tmp_path, doc, paths=[str(txt)], txt_items="paragraph")) == [
        "contaminated"]
    assert reasons(check(tmp_path, doc, paths=[str(txt)], txt_items="file")) == ["contaminated"]


def test_parquet_fields_are_joined_lists_included(tmp_path):
    path = tmp_path / "mc.parquet"
    pq.write_table(pa.table({"question": ["Which planet has the most moons?"],
                             "choices": [["Jupiter", "Saturn", "Uranus", "Neptune", "Mars"]],
                             "answer": [1]}), path)
    cfg = {"paths": [str(path)], "fields": ["question", "choices", "answer"], "ngram": 8}
    doc = "Which planet has the most moons? Jupiter, Saturn, Uranus, Neptune... hm."
    assert reasons(check(tmp_path, [doc], **cfg)) == ["contaminated"]


def _reference(texts: list[str], items: list[str], n: int, min_item_words: int) -> list[bool]:
    """The rule in plain Python: same tokens, then lower-case, punctuation/symbols deleted."""
    # one split of every text (a split per text compiles its regexes each time: 40 ms)
    split = dict(zip([*items, *texts], split_words(pa.array([*items, *texts])).to_pylist(),
                     strict=True))

    def norm(text: str) -> list[str]:
        words = ("".join(c for c in t if unicodedata.category(c)[0] not in "PS").lower()
                 for t in split[text])
        return [w for w in words if w]

    grams = set()
    for item in items:
        w = norm(item)
        if len(w) >= n:
            grams |= {tuple(w[i:i + n]) for i in range(len(w) - n + 1)}
        elif len(w) >= min_item_words:
            grams.add(tuple(w))
    lengths = {len(g) for g in grams}
    out = []
    for text in texts:
        w = norm(text)
        out.append(any(tuple(w[i:i + k]) in grams for k in lengths
                       for i in range(len(w) - k + 1)))
    return out


def test_vectorized_check_agrees_with_plain_python(tmp_path):
    rng = random.Random(7)
    vocab = ["alpha", "Beta", "gamma,", "delta.", "(eps)", "zeta's", "eta", "THETA!"]

    def sentence(k: int) -> str:
        return " ".join(rng.choice(vocab) for _ in range(k))

    items = [sentence(rng.randrange(1, 9)) for _ in range(40)]
    texts = [sentence(rng.randrange(0, 30)) for _ in range(300)]
    path = write_jsonl(tmp_path / "rand.jsonl", [{"text": t} for t in items])
    out = Decontaminate(load_eval_set(DecontaminateConfig(
        paths=[path], ngram=5, min_item_words=3)))(docs(texts))
    got = [r == "contaminated" for r in reasons(out)]
    expected = _reference(texts, items, 5, 3)
    assert got == expected
    assert 0 < sum(expected) < len(expected)  # both outcomes occur


def test_the_stored_set_gives_the_same_decisions_and_a_changed_one_is_refused(tmp_path):
    path = write_jsonl(tmp_path / "bench.jsonl", [{"text": QUESTION}])
    cfg = DecontaminateConfig(paths=[path])
    run = RunDir.at(tmp_path / "run")
    meta = store_eval_set(load_eval_set(cfg), run)
    opened = EvalSet.open(run.eval_set, meta)
    assert isinstance(opened.hashes, np.memmap)
    texts = [QUESTION, "clean"]
    assert reasons(Decontaminate(opened)(docs(texts))) == ["contaminated", None]
    assert store_eval_set(load_eval_set(cfg), run) == meta  # a resume: same set
    write_jsonl(Path(path), [{"text": "an entirely different question " * 4}])
    with pytest.raises(ConfigError, match="decontaminate.paths"):
        store_eval_set(load_eval_set(cfg), run)


def _curate_cfg(decontaminate: dict) -> CurateConfig:
    return load_model(CurateConfig, base={  # type: ignore[return-value]
        "inputs": [{"path": "x.jsonl"}], "output": "out", "decontaminate": decontaminate})


def test_the_pipeline_places_it_after_the_rules_sharing_their_words(tmp_path):
    path = write_jsonl(tmp_path / "bench.jsonl", [{"text": QUESTION}])
    steps = build_pass1_steps(_curate_cfg({"paths": [path]}))
    names = [s.name for s in steps]
    at = names.index("decontaminate")
    assert names[at - 1] == "fineweb" and names[at + 1] == "exact_hash"
    assert steps[at].words is steps[at - 1].words  # one word split per batch
    assert output_schema(steps).field("contaminated_by").type == pa.string()
    assert "contaminated_by" not in output_schema(build_pass1_steps(_curate_cfg({}))).names


@pytest.mark.parametrize(("section", "field"), [
    ({"ngram": 0}, "decontaminate.ngram"),
    ({"paths": ["evals/mmlu.csv"]}, "decontaminate.paths"),
    ({"paths": ["a/mmlu.jsonl", "b/mmlu.parquet"]}, "decontaminate.paths"),
    ({"fields": []}, "decontaminate.fields"),
])
def test_bad_config_names_the_field(section, field):
    with pytest.raises(ConfigError, match=field):
        _curate_cfg(section)


@pytest.mark.parametrize(("name", "content", "cfg", "field"), [
    ("gone.jsonl", None, {}, "decontaminate.paths"),
    ("broken.jsonl", '{"text": "ok"}\n{"text": \n', {}, "decontaminate.paths"),
    ("nofield.jsonl", '{"question": "q"}\n', {}, "decontaminate.fields"),
    ("nested.jsonl", '{"text": {"a": 1}}\n', {}, "decontaminate.fields"),
    ("latin1.txt", b"caf\xe9 au lait", {}, "decontaminate.paths"),
    ("cols.parquet", pa.table({"q": ["x"]}), {"fields": ["q", "a"]}, "decontaminate.fields"),
    ("junk.parquet", b"not parquet at all", {}, "decontaminate.paths"),
])
def test_bad_evaluation_files_fail_naming_the_field(tmp_path, name, content, cfg, field):
    path = tmp_path / name
    if isinstance(content, str):
        path.write_text(content)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, pa.Table):
        pq.write_table(content, path)
    with pytest.raises(ConfigError, match=field):
        load_eval_set(DecontaminateConfig(paths=[str(path)], **cfg))


def test_a_bad_evaluation_file_stops_curate_before_any_work(tmp_path):
    from typer.testing import CliRunner

    from curator.cli import app

    (tmp_path / "docs.jsonl").write_text('{"text": "a document"}\n')
    out = tmp_path / "run"
    result = CliRunner().invoke(app, [
        "curate", "--input", str(tmp_path / "docs.jsonl"), "--output", str(out),
        "--set", f"decontaminate.paths=[{tmp_path / 'missing.jsonl'}]"])
    said = " ".join(result.output.split())
    assert result.exit_code == 2 and "decontaminate.paths" in said and "missing.jsonl" in said
    assert not out.exists()


def test_a_set_of_only_too_short_items_matches_nothing(tmp_path):
    path = write_jsonl(tmp_path / "tiny.jsonl", [{"text": "yes"}, {"text": ""}])
    eval_set = load_eval_set(DecontaminateConfig(paths=[path]))
    assert eval_set.counts["tiny"]["skipped_items"] == 2 and len(eval_set.hashes) == 0
    assert reasons(Decontaminate(eval_set)(docs(["yes", QUESTION]))) == [None, None]


def _plain_words(paragraph: str, k: int) -> str:
    """k consecutive words of `paragraph`, letters with at most a trailing , . ; or : (so k
    is their word count after normalization too)."""
    words = paragraph.split()
    for i in range(len(words) - k + 1):
        if all(w.rstrip(",.;:").isalpha() for w in words[i:i + k]):
            return " ".join(words[i:i + k])
    raise AssertionError(f"no {k} plain words in a row in {paragraph[:60]!r}")


def test_curate_drops_names_and_exports_without_contaminated_documents(ray_cluster, tmp_path):
    """The real run: pass 1 workers use the set the driver stored; the manifest says why; the
    export leaves the contaminated documents out; stats say what each benchmark gave."""
    from curator.executor import run_curate
    from curator.export import ExportConfig, run_export
    from tests.corpus import real_paragraphs

    paras = real_paragraphs()[:8]
    corpus = write_jsonl(tmp_path / "docs.jsonl",
                         [{"id": f"d{i}", "text": p} for i, p in enumerate(paras)])
    evals = tmp_path / "evals"
    evals.mkdir()
    qa = write_jsonl(evals / "qa.jsonl", [
        {"question": " ".join(paras[0].split()[2:20]).upper(), "answer": "yes"},  # d0, upper
        {"question": _plain_words(paras[2], 12), "answer": "zebra"},  # 12 of d2's words only
    ])
    cloze = evals / "cloze.txt"
    cloze.write_text("an unrelated line that matches nothing in the corpus at all, surely\n"
                     + _plain_words(paras[1], 15) + "\n")
    out = tmp_path / "run"
    stats = run_curate(load_model(CurateConfig, base={  # type: ignore[arg-type]
        "inputs": [{"path": corpus}], "output": str(out), "quiet": True,
        "tokenizer": {"vocab_size": 300},
        "quality": {"gopher_quality": {"min_alpha_words_ratio": 0.7}},
        "decontaminate": {"paths": [qa, str(cloze)], "fields": ["question", "answer"]}}))
    import polars as pl

    m = pl.read_parquet(out / "manifest" / "*.parquet").sort("input_id")
    by_id = {r["input_id"]: r for r in m.iter_rows(named=True)}
    assert (by_id["d0"]["reason"], by_id["d0"]["contaminated_by"]) == ("contaminated", "qa")
    assert (by_id["d1"]["reason"], by_id["d1"]["contaminated_by"]) == ("contaminated", "cloze")
    assert by_id["d2"]["decision"] == KEPT and by_id["d2"]["contaminated_by"] is None
    assert RunDir.at(out).read_marker("decontaminate")["names"] == ["qa", "cloze"]
    assert stats["outcomes"]["dropped/contaminated"] == 2
    assert stats["decontaminate"]["qa"]["documents"] == 1
    assert stats["decontaminate"]["cloze"] == {  # the 12-word line is matched whole
        "items": 2, "full_items": 1, "short_items": 1, "skipped_items": 0, "ngrams": 1 + 3,
        "documents": 1}
    run_export(ExportConfig(run=str(out), output=str(tmp_path / "export"), format="jsonl"))
    exported = [json.loads(line) for f in sorted((tmp_path / "export").glob("part-*.jsonl"))
                for line in f.read_text().splitlines()]
    kept = m.filter(pl.col("decision") == KEPT)
    assert len(exported) == kept.height > 0
    texts = {r["text"] for r in exported}
    assert paras[0] not in texts and paras[1] not in texts and paras[2] in texts
