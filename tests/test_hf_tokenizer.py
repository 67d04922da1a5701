"""The user's Hugging Face tokenizer.json: told apart from a sentencepiece model by content,
shard tokens equal to `Tokenizer.from_file(path).encode(text, add_special_tokens=False).ids` of
the exported text plus the end-of-text id (named in the export header), vocabularies past
65,535 exported as 32-bit, and bad tokenizer settings named before any work."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers

from curator.config import ConfigError, CurateConfig, TokenizerConfig, load_model
from curator.executor import run_curate, validate_before_work
from curator.export import ExportConfig, run_export
from curator.run_tokenizer import (
    HFTokenizer,
    detect_kind,
    open_run_tokenizer,
    resolve_hf_eos,
    take_tokenizer_file,
)
from curator.schema import DROPPED, KEPT
from curator.stages.tokenize import Tokenize
from curator.tokenizer_train import train_tokenizer
from curator.tokenizer_train_hf import END_OF_TEXT, train_hf_tokenizer
from tests.corpus import real_paragraphs

# what a byte-level tokenizer must give back exactly: newlines, tabs, indentation, non-ASCII,
# and a literal special token inside the text
ODD_TEXTS = [
    "def f(x):\n\treturn x  # two spaces\n\n\nnext paragraph",
    "naïve café — 東京 🚀 ﬁ ligature",
    "   leading and trailing   ",
    "a literal <|endoftext|> inside a document",
]


@pytest.fixture(scope="module")
def hf_file(tmp_path_factory) -> Path:
    """A GPT-2 style byte-level BPE tokenizer.json, trained offline on real prose."""
    out = tmp_path_factory.mktemp("hf") / "tokenizer.json"
    return train_hf_tokenizer(real_paragraphs()[:30], TokenizerConfig(kind="hf", vocab_size=600),
                              out)


def big_vocab_file(path: Path) -> Path:
    """A byte-level tokenizer whose 256 byte symbols sit at ids 70,000 and up (70,000 unused
    filler entries below them), so every id it emits needs more than 16 bits."""
    fill = 70_000
    vocab = {f"<fill{i}>": i for i in range(fill)}
    vocab.update({ch: fill + i for i, ch in enumerate(pre_tokenizers.ByteLevel.alphabet())})
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(["</s>"])
    tok.save(str(path))
    return path


def reference_ids(path: Path, texts: list[str], eos: int | None) -> list[list[int]]:
    tok = Tokenizer.from_file(str(path))
    tail = [] if eos is None else [eos]
    return [tok.encode(t, add_special_tokens=False).ids + tail for t in texts]


def test_hf_tokenizer_encodes_as_the_library_does_and_decodes_back(hf_file):
    texts = real_paragraphs()[30:] + ODD_TEXTS
    tok = HFTokenizer(hf_file, END_OF_TEXT, num_threads=2)
    flat, lengths = tok.encode(texts)
    docs = np.split(flat, np.cumsum(lengths)[:-1])
    eos = Tokenizer.from_file(str(hf_file)).token_to_id(END_OF_TEXT)
    assert [d.tolist() for d in docs] == reference_ids(hf_file, texts, eos)
    assert tok.decode([d.tolist() for d in docs]) == texts  # byte-level: lossless
    assert tok.encode([])[0].size == 0


def test_the_tokenize_step_encodes_alive_rows_only(hf_file):
    texts = ODD_TEXTS
    table = pa.table({"text": texts, "decision": [KEPT, DROPPED, KEPT, KEPT]})
    out = Tokenize(HFTokenizer(hf_file, END_OF_TEXT))(table)
    eos = Tokenizer.from_file(str(hf_file)).token_to_id(END_OF_TEXT)
    ref = reference_ids(hf_file, texts, eos)
    assert out.column("tokens").to_pylist() == [ref[0], None, ref[2], ref[3]]
    assert out.column("n_tokens").to_pylist() == [len(ref[0]), None, len(ref[2]), len(ref[3])]


def test_ids_past_16_bits_survive_the_step(tmp_path):
    path = big_vocab_file(tmp_path / "tokenizer.json")
    tok = HFTokenizer(path, "</s>")
    assert tok.vocab_size == 70_257 and tok.eos_id == 70_256
    out = Tokenize(tok)(pa.table({"text": ODD_TEXTS[:2], "decision": [KEPT, KEPT]}))
    assert out.column("tokens").to_pylist() == reference_ids(path, ODD_TEXTS[:2], 70_256)
    assert min(min(t) for t in out.column("tokens").to_pylist()) >= 70_000


def test_the_kind_is_told_by_content_not_by_name(hf_file, tmp_path):
    sp_model = train_tokenizer(real_paragraphs()[:100], TokenizerConfig(vocab_size=500),
                               tmp_path / "sp.model")
    assert detect_kind(sp_model) == "sentencepiece"
    assert detect_kind(shutil.copy(hf_file, tmp_path / "odd-name.model")) == "hf"
    assert detect_kind(shutil.copy(sp_model, tmp_path / "odd-name.json")) == "sentencepiece"
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(b"\x00\x01not a tokenizer")
    with pytest.raises(ValueError, match="tokenizer.model_path: .* neither a sentencepiece"):
        detect_kind(garbage)
    other_json = tmp_path / "config.json"
    other_json.write_text('{"model_type": "gpt2"}')
    with pytest.raises(ValueError, match="JSON but not a Hugging Face tokenizer.json"):
        detect_kind(other_json)


def test_the_end_of_text_token_comes_from_config_then_beside_the_file_then_known_names(
    tmp_path,
):
    path = big_vocab_file(tmp_path / "tokenizer.json")  # holds </s>, not <|endoftext|>
    assert resolve_hf_eos(path, None) == "</s>"  # a known name
    assert resolve_hf_eos(path, "") is None  # asked for none
    assert resolve_hf_eos(path, "<fill7>") == "<fill7>"
    with pytest.raises(ValueError, match="tokenizer.eos_token: '<eot>' is not in"):
        resolve_hf_eos(path, "<eot>")
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(
        {"eos_token": {"content": "<fill3>", "special": True}}))
    assert resolve_hf_eos(path, None) == "<fill3>"  # transformers' AddedToken form
    # what the run takes is recorded beside its copy, so exports and the trainer agree
    run = tmp_path / "run"
    run.mkdir()
    assert take_tokenizer_file(path, None, run) == run / "tokenizer.json"
    reopened = open_run_tokenizer(run)
    assert (reopened.kind, reopened.eos_token, reopened.eos_id) == ("hf", "<fill3>", 3)


def curate_cfg(tmp_path: Path, **tokenizer) -> CurateConfig:
    corpus = tmp_path / "corpus"
    corpus.mkdir(exist_ok=True)
    texts = real_paragraphs() + ODD_TEXTS
    (corpus / "docs.jsonl").write_text(
        "".join(json.dumps({"id": f"d{i}", "text": t}) + "\n" for i, t in enumerate(texts)))
    return load_model(CurateConfig, base={
        "inputs": [{"path": str(corpus)}], "output": str(tmp_path / "run"), "quiet": True,
        "tokenizer": tokenizer, "language": {"enabled": False},
        # no rule families: the odd texts (code, non-ASCII, a special token) must reach shards
        "quality": {k: {"enabled": False}
                    for k in ("gopher_quality", "gopher_repetition", "c4", "fineweb")}})


def exported(run: Path, out: Path, fmt: str) -> Path:
    run_export(ExportConfig(run=str(run), output=str(out), format=fmt))
    return out


def test_bad_tokenizer_settings_are_named_before_any_work(hf_file, tmp_path):
    sp_model = train_tokenizer(real_paragraphs()[:100], TokenizerConfig(vocab_size=500),
                               tmp_path / "sp.model")
    garbage = tmp_path / "tok.json"
    garbage.write_text("{ not json")
    cases = [
        ({"model_path": str(garbage)}, "tokenizer.model_path: .*neither a sentencepiece"),
        ({"model_path": str(hf_file), "kind": "sentencepiece"}, "tokenizer.kind: 'sentencepiece'"),
        ({"model_path": str(sp_model), "kind": "hf"}, "tokenizer.kind: 'hf' but .* sentencepiece"),
        ({"model_path": str(sp_model), "eos_token": "</s>"}, "tokenizer.eos_token: only Hugging"),
        ({"model_path": str(hf_file), "eos_token": "<eot>"}, "tokenizer.eos_token: '<eot>'"),
    ]
    for tokenizer, message in cases:
        with pytest.raises(ConfigError, match=message):
            validate_before_work(curate_cfg(tmp_path, **tokenizer))
    assert not (tmp_path / "run").exists()
    with pytest.raises(ConfigError, match="257 symbols a byte-level BPE needs"):
        curate_cfg(tmp_path, kind="hf", vocab_size=200)


def test_curate_with_a_users_tokenizer_json_past_16_bits(ray_cluster, tmp_path):
    (tmp_path / "user").mkdir()
    path = big_vocab_file(tmp_path / "user" / "tokenizer.json")
    cfg = curate_cfg(tmp_path, model_path=str(path))
    stats = run_curate(cfg)
    run = tmp_path / "run"
    assert stats["kept"] > 0 and (run / "tokenizer.json").read_bytes() == path.read_bytes()
    assert not (run / "tokenizer.model").exists()

    # the parquet export's tokens are the library's ids of its text, then EOS
    pq_out = exported(run, tmp_path / "pq", "parquet")
    jl = pl.read_ndjson(list(exported(run, tmp_path / "jl", "jsonl").glob("part-*.jsonl")))
    table = pl.read_parquet(list(pq_out.glob("part-*.parquet")))
    text_of = dict(zip(jl["doc_id"], jl["text"], strict=True))
    tokens = [list(t) for t in table["tokens"].to_list()]
    assert tokens == reference_ids(path, [text_of[d] for d in table["doc_id"]], 70_256)
    assert table.height == stats["kept"]

    # token exports switch to 32-bit and name the EOS
    bin_header = json.loads((exported(run, tmp_path / "bin", "bin") / "header.json").read_text())
    assert (bin_header["dtype"], bin_header["vocab_size"], bin_header["eos_id"]) == (
        "uint32", 70_257, 70_256)
    meg = exported(run, tmp_path / "meg", "megatron")
    assert json.loads((meg / "header.json").read_text())["dtype"] == "int32"
    indexed = pytest.importorskip("megatron.core.datasets.indexed_dataset")
    dataset = indexed.IndexedDataset(str(meg / "tokens"))
    assert sorted(dataset[i].tolist() for i in range(len(dataset))) == sorted(tokens)

    # without the run's _work/, jsonl text is decoded from the tokens: the same text
    shutil.rmtree(run / "_work")
    again = pl.read_ndjson(list(exported(run, tmp_path / "jl2", "jsonl").glob("part-*.jsonl")))
    assert dict(zip(again["doc_id"], again["text"], strict=True)) == text_of

    from curator.trainer.data import read_shards

    corpus = read_shards(run)
    assert (corpus.vocab_size, corpus.eos_id, corpus.tokens.dtype) == (70_257, 70_256, np.uint32)


def test_curate_trains_a_byte_level_bpe_when_asked(ray_cluster, tmp_path):
    run_curate(curate_cfg(tmp_path, kind="hf", vocab_size=400))
    run = tmp_path / "run"
    tok = Tokenizer.from_file(str(run / "tokenizer.json"))
    eos = tok.token_to_id(END_OF_TEXT)
    assert eos is not None and json.loads((run / "tokenizer_eos.json").read_text())[
        "eos_token"] == END_OF_TEXT
    table = pl.read_parquet(list(exported(run, tmp_path / "pq", "parquet").glob("*.parquet")))
    jl = pl.read_ndjson(list(exported(run, tmp_path / "jl", "jsonl").glob("part-*.jsonl")))
    text_of = dict(zip(jl["doc_id"], jl["text"], strict=True))
    for doc_id, tokens in zip(table["doc_id"], table["tokens"].to_list(), strict=True):
        assert tokens[-1] == eos
        assert tok.decode(tokens[:-1], skip_special_tokens=False) == text_of[doc_id]
    kept = "".join(text_of.values())  # the odd texts made it (as normalize left them)
    for piece in ("def f(x):\nreturn x", "東京 🚀", "literal <|endoftext|>"):
        assert piece in kept
