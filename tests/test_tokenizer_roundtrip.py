"""The trained tokenizer is lossless: decode(encode(text)) == text, whitespace and all.

Sentencepiece's defaults (NFKC, remove_extra_whitespaces) turned "Line one.\\nLine two." into
"Line one. Line two." and erased indentation and tabs; these tests train the model the way
`curator curate` does and compare strings exactly.
"""

from __future__ import annotations

import random

import pyarrow as pa
import pytest
import sentencepiece as spm

from curator.config import NormalizeConfig, TokenizerConfig
from curator.run_tokenizer import SentencePieceTokenizer
from curator.schema import DROPPED, KEPT
from curator.stages.normalize import normalize_text
from curator.stages.tokenize import Tokenize
from curator.tokenizer_train import MAX_SENTENCE_BYTES, _chunks, train_tokenizer

CODE = '''def fib(n: int) -> int:
    """Fibonacci, slowly."""
    if n < 2:
        return n
\treturn fib(n - 1) + fib(n - 2)  # a tab-indented line


class Point:
    x: float = 0.0
'''
MARKDOWN = """# Shopping list

- apples
- pears  
  - green ones
1. first
2. second

| a | b |
|---|---|
"""
POEM = """The woods are lovely, dark and deep,
But I have promises to keep,

And miles to go before I sleep,
    And miles to go before I sleep.


"""
TRAILING = "trailing spaces   \nand a line with two  spaces  inside  \n  leading too"
MULTILINGUAL = "Grüße aus Köln. 東京は日本の首都です。北京欢迎你！ 서울 🙂🚀 naïve café\n"
SAMPLES = [
    "Line one.\nLine two.\n\n    indented code()\tTab",  # the reported loss
    CODE, MARKDOWN, POEM, TRAILING, MULTILINGUAL,
    "ﬁ ① ｶ x²",  # NFKC would fold these
    "e\u0301 vs \u00e9",  # NFD and NFC stay distinct
    "a literal \u2581 block, and \u2581\u2581 two",  # sentencepiece's own space symbol
    "\n\n\nthree newlines first", " one leading space", "\t", " ", "",
    "never seen in training: \U0001f9ec \u16a0\u16a2 \u0f00",  # byte fallback
]


def training_texts(n: int = 300, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    words = "the of and to in is that for it as was with be by on not he this are or".split()
    texts = []
    for i in range(n):
        prose = " ".join(rng.choice(words) for _ in range(40)).capitalize() + ".\n\n"
        texts.append(prose + CODE.replace("fib", f"f{i}") + MARKDOWN + POEM + MULTILINGUAL)
    return texts


@pytest.fixture(scope="module", params=["bpe", "unigram"])
def sp(request, tmp_path_factory) -> spm.SentencePieceProcessor:
    cfg = TokenizerConfig(vocab_size=600, model_type=request.param)
    path = train_tokenizer(training_texts(), cfg, tmp_path_factory.mktemp("tok") / "t.model")
    return spm.SentencePieceProcessor(model_file=str(path))


@pytest.mark.parametrize("text", SAMPLES)
def test_decode_gives_back_the_text_exactly(sp, text):
    assert sp.decode(sp.encode(text)) == text


@pytest.mark.parametrize("collapse", [True, False])
def test_normalized_text_round_trips(sp, collapse):
    raw = SAMPLES + ["Windows\r\nline ends\r\n\u00a0nbsp\u2028sep\x07bell\ufeff"]
    normalized = normalize_text(pa.array(raw), NormalizeConfig(collapse_whitespace=collapse))
    texts = normalized.to_pylist()
    assert sp.decode(sp.encode(texts)) == texts


def test_ids_and_whitespace_pieces(sp):
    assert (sp.unk_id(), sp.bos_id(), sp.eos_id(), sp.pad_id()) == (0, 1, 2, -1)
    for symbol in ("\n", "\n\n", "\t"):
        assert sp.encode(f"a{symbol}b", out_type=str)[1] == symbol
    # indentation is learned as whitespace-only pieces, not one token per space
    assert len(sp.encode("        return n")) < len(sp.encode("return n")) + 8


def test_the_tokenize_stage_output_decodes_to_its_text(sp, tmp_path):
    model = tmp_path / "t.model"
    model.write_bytes(sp.serialized_model_proto())
    table = pa.table({
        "text": SAMPLES,
        "decision": [KEPT] * (len(SAMPLES) - 1) + [DROPPED],
    })
    out = Tokenize(SentencePieceTokenizer(model, num_threads=1))(table)
    tokens = out.column("tokens").to_pylist()
    assert tokens[-1] is None  # dropped rows are not tokenized
    assert all(t[-1] == sp.eos_id() for t in tokens[:-1])
    assert sp.decode(tokens[:-1]) == SAMPLES[:-1]  # EOS decodes to ""


def test_long_documents_are_cut_at_line_ends_without_losing_text():
    line = "x" * 100 + "\n"
    doc = line * 200 + "y" * 3 * MAX_SENTENCE_BYTES + "\n    tail\t"
    chunks = list(_chunks([doc, "short\n\n  one  "]))
    assert "".join(chunks[:-1]) == doc and chunks[-1] == "short\n\n  one  "
    assert all(len(c.encode()) <= MAX_SENTENCE_BYTES - 16 for c in chunks)
    assert all(c.endswith("\n") for c in chunks[:2])  # cut after a line, not inside it
