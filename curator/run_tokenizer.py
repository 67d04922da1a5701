"""The run's tokenizer behind one interface: a sentencepiece `.model` (the one curate trains, or
the user's) or a Hugging Face `tokenizer.json` (the user's model tokenizer, e.g. a GPT-2, Llama-3
or Qwen byte-level BPE, or one curate trains with `tokenizer.kind: hf`).

Contract for both: a document's tokens are the tokenizer's ids for the exact text, without any
template (`encode(text, add_special_tokens=False)` for Hugging Face; no BOS for sentencepiece),
followed by the end-of-text id when the tokenizer has one. The run directory holds the file as
`tokenizer.model` or `tokenizer.json`; for a Hugging Face file, which token ends a document is
not in `tokenizer.json` itself (it lives in `tokenizer_config.json` or in the user's config), so
it is resolved once, when the run takes the file, and written beside it (`tokenizer_eos.json`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from itertools import chain
from pathlib import Path
from typing import Literal, Protocol

import numpy as np

TokenizerKind = Literal["sentencepiece", "hf"]
# End-of-text tokens of the common model families, tried in order when neither the user's
# config nor a tokenizer_config.json beside the file names one: GPT-2/Qwen/Falcon/GPT-NeoX,
# Llama-3, Llama-2/Mistral/T5, Gemma.
KNOWN_EOS = ("<|endoftext|>", "<|end_of_text|>", "</s>", "<eos>")
EOS_SIDECAR = "tokenizer_eos.json"


class RunTokenizer(Protocol):
    kind: TokenizerKind
    vocab_size: int
    eos_id: int | None
    eos_token: str | None

    def encode(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(flat uint32 ids of every text, EOS appended; int64 token count per text)."""
        ...

    def decode(self, docs: Sequence[Sequence[int]]) -> list[str]:
        """Texts back from documents' ids (a trailing EOS is not part of the text)."""
        ...


def detect_kind(path: str | Path) -> TokenizerKind:
    """Which kind of tokenizer file `path` is, from its content (not its name). Raises ValueError
    naming the field and the fix when it is neither."""
    data = Path(path).read_bytes()
    if _is_json(data):
        try:
            from tokenizers import Tokenizer

            Tokenizer.from_str(data.decode("utf-8"))
            return "hf"
        except Exception as exc:  # the library raises plain Exception on a bad file
            raise ValueError(
                f"tokenizer.model_path: {path} is JSON but not a Hugging Face tokenizer.json "
                f"({exc}); give a tokenizer.json saved by `tokenizers` / `transformers`, or a "
                "sentencepiece .model"
            ) from None
    try:
        import sentencepiece as spm

        spm.SentencePieceProcessor(model_proto=data)
        return "sentencepiece"
    except (RuntimeError, OSError, TypeError):
        raise ValueError(
            f"tokenizer.model_path: {path} is neither a sentencepiece .model nor a Hugging Face "
            "tokenizer.json; point it at one of those, or set it to null to train one"
        ) from None


def _is_json(data: bytes) -> bool:
    # a sentencepiece model is a protobuf: it may well start with whitespace bytes (0x0A is its
    # first field's tag), but it never parses as JSON
    if data.lstrip()[:1] != b"{":
        return False
    try:
        json.loads(data)
        return True
    except ValueError:
        return False


def resolve_hf_eos(path: str | Path, eos_token: str | None) -> str | None:
    """The token that ends each document under the tokenizer.json at `path`: the configured
    one, else `eos_token` of a tokenizer_config.json beside the file, else the first of
    KNOWN_EOS the vocabulary holds, else None (documents are then not separated)."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(path))
    if eos_token is not None:
        if eos_token == "":
            return None  # asked for no separator
        if tok.token_to_id(eos_token) is None:
            raise ValueError(
                f"tokenizer.eos_token: {eos_token!r} is not in {path}'s vocabulary; name one of "
                "its special tokens, or \"\" for no end-of-text token"
            )
        return eos_token
    sibling = Path(path).with_name("tokenizer_config.json")
    if sibling.is_file():
        try:
            named = json.loads(sibling.read_text(encoding="utf-8")).get("eos_token")
        except (OSError, ValueError):
            named = None
        if isinstance(named, dict):  # transformers may store an AddedToken as a dict
            named = named.get("content")
        if isinstance(named, str) and tok.token_to_id(named) is not None:
            return named
    return next((t for t in KNOWN_EOS if tok.token_to_id(t) is not None), None)


class SentencePieceTokenizer:
    kind: TokenizerKind = "sentencepiece"

    def __init__(self, path: str | Path, num_threads: int = 0) -> None:
        import sentencepiece as spm

        self.sp = spm.SentencePieceProcessor(model_file=str(path))
        if self.sp.eos_id() < 0:
            raise ValueError(
                f"tokenizer {path} has no EOS piece; "
                "set tokenizer.model_path to a model with eos_id >= 0"
            )
        self.vocab_size = self.sp.get_piece_size()
        self.eos_id: int | None = int(self.sp.eos_id())
        self.eos_token: str | None = self.sp.id_to_piece(self.eos_id)
        self.num_threads = num_threads or (os.cpu_count() or 1)

    def encode(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        if not texts:
            return np.empty(0, np.uint32), np.empty(0, np.int64)
        # EncodeAsNumpy returns one int32 array per text: concatenating them is the whole
        # conversion (a list-of-lists pa.array would cost as much as the encoding itself).
        encoded = self.sp.EncodeAsNumpy(list(texts), add_eos=True, num_threads=self.num_threads)
        lengths = np.fromiter((len(e) for e in encoded), dtype=np.int64, count=len(encoded))
        return np.concatenate(encoded).view(np.uint32), lengths

    def decode(self, docs: Sequence[Sequence[int]]) -> list[str]:
        # EOS is a control piece and decodes to ""
        return self.sp.decode([list(d) for d in docs]) if docs else []


class HFTokenizer:
    kind: TokenizerKind = "hf"

    def __init__(self, path: str | Path, eos_token: str | None, num_threads: int = 0) -> None:
        if num_threads:
            # the Rust thread pool reads it once, at its first batch in this process
            os.environ.setdefault("RAYON_NUM_THREADS", str(num_threads))
        from tokenizers import Tokenizer

        self.tok = Tokenizer.from_file(str(path))
        self.vocab_size = self.tok.get_vocab_size(with_added_tokens=True)
        self.eos_token = eos_token
        self.eos_id = None if eos_token is None else self.tok.token_to_id(eos_token)
        if eos_token is not None and self.eos_id is None:
            raise ValueError(f"tokenizer {path}: end-of-text token {eos_token!r} not in its vocab")

    def encode(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        if not texts:
            return np.empty(0, np.uint32), np.empty(0, np.int64)
        # encode_batch_fast: the same ids as encode_batch, without computing character offsets
        ids = [e.ids for e in self.tok.encode_batch_fast(list(texts), add_special_tokens=False)]
        if self.eos_id is not None:
            for doc in ids:
                doc.append(self.eos_id)
        lengths = np.fromiter((len(d) for d in ids), dtype=np.int64, count=len(ids))
        flat = np.fromiter(chain.from_iterable(ids), dtype=np.uint32, count=int(lengths.sum()))
        return flat, lengths

    def decode(self, docs: Sequence[Sequence[int]]) -> list[str]:
        if not docs:
            return []
        trimmed = [
            list(d[:-1]) if self.eos_id is not None and len(d) and d[-1] == self.eos_id
            else list(d)
            for d in docs
        ]
        # special tokens that were in the text itself stay: they are part of it
        return self.tok.decode_batch(trimmed, skip_special_tokens=False)


def tokenizer_file(run_root: str | Path) -> Path:
    """RUN/tokenizer.json when the run uses a Hugging Face tokenizer, else RUN/tokenizer.model
    (which may not exist yet: nothing prepared, or nothing survived)."""
    hf = Path(run_root) / "tokenizer.json"
    return hf if hf.exists() else Path(run_root) / "tokenizer.model"


def open_run_tokenizer(run_root: str | Path, num_threads: int = 0) -> RunTokenizer:
    """The tokenizer a prepared run encodes with."""
    path = tokenizer_file(run_root)
    if path.suffix == ".json":
        sidecar = json.loads((Path(run_root) / EOS_SIDECAR).read_text(encoding="utf-8"))
        return HFTokenizer(path, sidecar["eos_token"], num_threads)
    return SentencePieceTokenizer(path, num_threads)


def take_tokenizer_file(path: str | Path, eos_token: str | None, run_root: str | Path) -> Path:
    """Copy the tokenizer at `path` into the run (atomically; for a Hugging Face file, its
    resolved end-of-text token first, so a run that has tokenizer.json always has the sidecar
    too). Returns the run's tokenizer path."""
    from connectors.fs import atomic_open

    root = Path(run_root)
    data = Path(path).read_bytes()
    if detect_kind(path) == "hf":
        sidecar = {"eos_token": resolve_hf_eos(path, eos_token), "source": str(path)}
        with atomic_open(root / EOS_SIDECAR, "w") as f:
            f.write(json.dumps(sidecar, indent=1))
        dest = root / "tokenizer.json"
    else:
        dest = root / "tokenizer.model"
    with atomic_open(dest, "wb") as f:
        f.write(data)
    return dest
