"""Typed configuration of a curation job (pydantic), loaded from YAML, overridable by --set.

Every field has a description: `curator config-reference` prints them, and README's config
reference is generated from the same models. Bad configuration fails here, before any work,
with the field's dotted path and the fix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveInt,
    ValidationError,
    field_validator,
    model_validator,
)


class Section(BaseModel):
    # Unknown keys are a typo far more often than an intent: refuse them.
    model_config = ConfigDict(extra="forbid", frozen=True)


InputFormat = Literal["auto", "jsonl", "parquet", "text", "warc", "html", "duckdb"]


class InputSpec(Section):
    """One input: a path, glob, folder or fsspec URI (or a DuckDB SQL query)."""

    path: str = Field(
        description="File, folder, glob or fsspec URI; for format=duckdb a .duckdb file "
        "or ':memory:'."
    )
    format: InputFormat = Field("auto", description="Reader; 'auto' picks by file extension.")
    text_field: str = Field("text", description="Field/column holding the document text.")
    id_field: str | None = Field(
        "id",
        description="Field holding the input's own id; kept as input_id (for joining outputs "
        "back to the input; it need not be unique). doc_id is (source, record), always unique.",
    )
    query: str | None = Field(
        None,
        description="SQL query for format=duckdb: one read-only SELECT (or FROM ...) statement "
        "returning the text_field column; COPY, ATTACH, INSERT, several statements etc. are "
        "refused before any work.",
    )
    html_field: str | None = Field(
        None,
        description="Field/column holding raw HTML (jsonl, parquet, duckdb): its text is "
        "extracted with html_extractor, as for WARC pages, and replaces text_field.",
    )
    html_extractor: Literal["trafilatura", "resiliparse"] = Field(
        "resiliparse",
        description="HTML-to-text extractor for WARC pages, .html files and html_field.",
    )

    @model_validator(mode="after")
    def _query_needs_duckdb(self) -> InputSpec:
        if self.format == "duckdb" and not self.query:
            raise ValueError("format=duckdb needs `query` (SQL returning the text column)")
        return self

    @field_validator("query")
    @classmethod
    def _query_is_one_select(cls, v: str | None) -> str | None:
        """A query is run while inputs are validated (to learn its columns) and again by each
        reader: anything but one SELECT could write files or attach databases there."""
        if v is None:
            return v
        import duckdb

        try:
            kinds = [st.type.name for st in duckdb.extract_statements(v)]
        except duckdb.Error as err:
            raise ValueError(f"query does not parse: {err}") from None
        if kinds != ["SELECT"]:
            raise ValueError(
                f"query must be exactly one SELECT statement, got {kinds or 'none'}; read the "
                "data with SELECT ... FROM read_parquet(...)/read_json(...), nothing else"
            )
        return v

    @model_validator(mode="after")
    def _html_field_needs_fields(self) -> InputSpec:
        if self.html_field is not None and self.format in ("text", "warc", "html"):
            raise ValueError(
                f"html_field applies to jsonl, parquet and duckdb inputs; format={self.format} "
                "has no fields (WARC and .html pages are always extracted): drop html_field"
            )
        return self


class ReadConfig(Section):
    batch_size: int = Field(
        1000, gt=0, description="Documents per Arrow batch; bounds worker memory."
    )
    max_doc_chars: int = Field(
        2_000_000, gt=0, description="Documents longer than this are quarantined as too_large."
    )
    max_batch_bytes: int = Field(
        64 << 20,
        gt=0,
        description="A batch is cut early once its text reaches this many bytes, so a few huge "
        "documents cannot multiply worker memory by batch_size.",
    )
    max_doc_bytes: int = Field(
        16 << 20,
        gt=0,
        description="A line, WARC record body or file over this many (decompressed) bytes is "
        "skipped while it is read, never held whole, and quarantined as too_large: a "
        "decompression bomb costs time, not memory.",
    )
    unit_bytes: int = Field(
        16 << 20,
        ge=0,
        description="Local files larger than this are cut into units of about this size (the "
        "last one again in four, so that a pass ends evenly across workers), so "
        "one big file uses every worker: plain jsonl (line-aligned byte ranges), gzip jsonl of "
        "several members (runs of members), WARC, plain or .warc.gz (runs of records), parquet "
        "(runs of row groups), and a single-stream compressed jsonl (.jsonl.zst, a one-member "
        ".jsonl.gz, .bz2, .xz), decoded once by the driver into plain chunks under "
        "RUN/_work/spill (see spill_max_bytes); doc_ids do not change. 0 = one unit per file.",
    )
    spill_max_bytes: int = Field(
        64 << 30,
        ge=0,
        description="Most decoded bytes all of a run's spills (single-stream compressed jsonl "
        "cut into units, see unit_bytes) may hold on disk at once; a file that would go past "
        "it (a decompression bomb of short lines, say) is read whole instead. The chunks are "
        "deleted once pass 1 has read them. 0 = never spill: such files stay one unit.",
    )
    metadata_fields: list[str] = Field(
        ["url", "date", "metadata"],
        description="The input's own fields each document keeps: url and date (own columns), "
        "metadata (its JSON object), and any other field name (added to the metadata object, "
        "e.g. crawl_id); an empty list keeps none. Extracted pages also record the extractor.",
    )

    @field_validator("metadata_fields")
    @classmethod
    def _field_names(cls, v: list[str]) -> list[str]:
        bad = [f for f in v if not isinstance(f, str) or not f.strip()]
        if bad:
            raise ValueError(f"read.metadata_fields holds empty names {bad}; list field names")
        return list(dict.fromkeys(v))


class NormalizeConfig(Section):
    nfc: bool = Field(True, description="Apply unicode NFC normalization.")
    strip_control: bool = Field(
        True,
        description=("Remove control characters except tab and newline."),
    )
    collapse_whitespace: bool = Field(
        True, description="Collapse runs of spaces/tabs, trim lines, cap blank lines at one."
    )


class FiltersConfig(Section):
    """URL and domain filters on the documents' `url` (a WARC page's target URI, a jsonl,
    parquet or DuckDB input's `url`); documents without a url pass."""

    blocked_domains: list[str] | str = Field(
        [],
        description="Domains to drop (reason blocked_domain), a list or a file of one domain "
        "per line (# comments); a domain also blocks its subdomains, case-insensitively.",
    )
    url_patterns: list[str] = Field(
        [], description="RE2 regular expressions; a url matching any is dropped (blocked_url)."
    )

    @field_validator("blocked_domains")
    @classmethod
    def _read_domains(cls, v: list[str] | str) -> list[str]:
        if isinstance(v, str):
            try:
                lines = Path(v).read_text(encoding="utf-8").splitlines()
            except (OSError, UnicodeDecodeError) as exc:
                raise ValueError(
                    f"blocked_domains file {v!r} cannot be read ({type(exc).__name__}: {exc}); "
                    "give a readable text file of one domain per line, or a list"
                ) from None
            v = [line.split("#", 1)[0] for line in lines]
        domains = [d.strip().lower().lstrip("*").strip(".") for d in v]
        return sorted({d for d in domains if d})

    @field_validator("url_patterns")
    @classmethod
    def _compile(cls, v: list[str]) -> list[str]:
        import pyarrow as pa
        import pyarrow.compute as pc

        for pattern in v:
            try:
                pc.match_substring_regex(pa.array([""], pa.string()), pattern)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise ValueError(f"url_patterns entry {pattern!r} is not an RE2 regular "
                                 f"expression ({exc}); fix or remove it") from None
        return v


# What an evaluation file may be; the benchmark is the file name without these suffixes.
EVAL_SUFFIXES = (".jsonl", ".jsonl.gz", ".jsonl.zst", ".parquet", ".txt", ".txt.gz", ".txt.zst")


def eval_benchmark(path: str) -> str | None:
    """The benchmark an evaluation file names (`evals/mmlu.jsonl.gz` -> `mmlu`), or None when
    its suffix is not one of EVAL_SUFFIXES."""
    name = Path(path).name
    for suffix in sorted(EVAL_SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return None


class DecontaminateConfig(Section):
    """Drop documents that share a word n-gram with an evaluation set (reason `contaminated`,
    the benchmark named in the manifest's `contaminated_by`), as GPT-3, Dolma and DCLM do
    (curator/stages/decontaminate.py). Both sides are normalized alike: lower-cased, words
    with punctuation and symbols deleted, so case and punctuation edits still match. The files
    are read once by the driver before any work (an unreadable file or a missing field fails
    there, naming decontaminate.paths); workers read the hash set it stores in the run."""

    paths: list[str] = Field(
        [],
        description="Evaluation sets, one benchmark per file, named by the file name without "
        "its suffix (evals/mmlu.jsonl -> mmlu): .jsonl, .parquet or .txt (jsonl and txt may "
        "be .gz/.zst). Empty = no decontamination.",
    )
    ngram: int = Field(
        13, ge=1, description="Words per n-gram; a document sharing any one with an "
        "evaluation item is dropped (13: GPT-3, Dolma). Both sides are lower-cased and "
        "punctuation/symbols deleted first, so case and punctuation edits still match."
    )
    fields: list[str] = Field(
        ["text"],
        min_length=1,
        description="jsonl/parquet fields holding an item's text, joined with a space "
        "(e.g. [question, answer]); a list value is joined too. Each file must have each field.",
    )
    txt_items: Literal["line", "paragraph", "file"] = Field(
        "line",
        description="How a .txt file splits into items: one per non-blank line, per "
        "blank-line-separated paragraph, or the whole file as one item.",
    )
    min_item_words: int = Field(
        8,
        ge=1,
        description="An item of fewer than `ngram` words but at least this many is matched "
        "whole (one shorter n-gram, GPT-3's floor of 8); shorter items are skipped and counted "
        "in RUN/stats.json (decontaminate.<benchmark>.skipped_items).",
    )

    @field_validator("paths")
    @classmethod
    def _named_files(cls, v: list[str]) -> list[str]:
        names: dict[str, str] = {}
        for path in v:
            name = eval_benchmark(path)
            if name is None:
                raise ValueError(
                    f"{path!r} is not an evaluation file curator reads; give a file ending in "
                    f"one of {', '.join(EVAL_SUFFIXES)}"
                )
            if name in names:
                raise ValueError(
                    f"{names[name]!r} and {path!r} both name benchmark {name!r} (the file name "
                    "without its suffix): rename one, or merge them into one file"
                )
            names[name] = path
        return v

    @property
    def benchmarks(self) -> dict[str, str]:
        """Benchmark name -> path, in config order (the order `contaminated_by` prefers)."""
        return {eval_benchmark(p) or p: p for p in self.paths}


class LanguageConfig(Section):
    enabled: bool = Field(True, description="Identify language with py3langid (bundled model).")
    keep: list[str] = Field(["en"], description="ISO 639-1 codes to keep; empty list keeps all.")
    min_score: float = Field(
        0.65,
        ge=0,
        le=1,
        description=("Drop docs whose top-language probability is below this."),
    )
    max_chars: int = Field(
        2000,
        gt=0,
        description=("Characters of each document the identifier reads."),
    )


class GopherQualityConfig(Section):
    """Gopher quality rules (Rae et al. 2021); defaults are datatrove 0.10.1's."""

    enabled: bool = Field(True, description="Apply the Gopher quality rules.")
    min_words: int = Field(
        50,
        description=("Drop docs with fewer words (tokens with a non-punctuation char)."),
    )
    max_words: int = Field(100_000, description="Drop docs with more words.")
    min_mean_word_length: float = Field(
        3,
        description=("Drop if the mean word length (chars) is below."),
    )
    max_mean_word_length: float = Field(
        10,
        description=("Drop if the mean word length (chars) is above."),
    )
    max_symbol_word_ratio: float = Field(
        0.1, description="Max ratio of '#' count, and of ellipsis ('...', '…') count, to tokens."
    )
    max_bullet_lines_ratio: float = Field(
        0.9,
        description=("Max fraction of lines starting with '•' or '-'."),
    )
    max_ellipsis_lines_ratio: float = Field(
        0.3,
        description=("Max fraction of lines ending with an ellipsis."),
    )
    min_alpha_words_ratio: float = Field(
        0.8,
        description=("Min fraction of tokens with an alphabetic char."),
    )
    min_stop_words: int = Field(
        2,
        description=("Min number of distinct stop words present (case-sensitive)."),
    )
    stop_words: list[str] = Field(
        ["the", "be", "to", "of", "and", "that", "have", "with"],
        description="Stop words counted by min_stop_words (Gopher's English list).",
    )


class GopherRepetitionConfig(Section):
    """Gopher repetition rules (Rae et al. 2021, table A1); defaults are the paper's."""

    enabled: bool = Field(True, description="Apply the Gopher repetition rules.")
    max_dup_line_frac: float = Field(
        0.3,
        description=("Max fraction of lines equal to an earlier line."),
    )
    max_dup_para_frac: float = Field(
        0.3,
        description=("Max fraction of paragraphs equal to an earlier one."),
    )
    max_dup_line_char_frac: float = Field(
        0.2,
        description=("Max fraction of the doc's chars in duplicated lines."),
    )
    max_dup_para_char_frac: float = Field(
        0.2,
        description=("Max fraction of the doc's chars in duplicated paragraphs."),
    )
    max_top_ngram_char_frac: dict[int, float] = Field(
        {2: 0.2, 3: 0.18, 4: 0.16},
        description="n -> max fraction of the doc's chars taken by the most frequent word n-gram.",
    )
    max_dup_ngram_char_frac: dict[int, float] = Field(
        {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10},
        description="n -> max fraction of the doc's chars covered by repeated word n-grams.",
    )


class C4Config(Section):
    """C4 rules (Raffel et al. 2020) as datatrove's C4QualityFilter: line removal + doc drops."""

    enabled: bool = Field(True, description="Apply the C4 rules.")
    min_sentences: int = Field(
        5,
        description=("Drop docs with fewer sentences in their kept lines; 0 disables."),
    )
    min_words_per_line: int = Field(
        3,
        description=("Remove lines with fewer whitespace-separated words."),
    )
    max_word_length: int = Field(
        1000,
        description=("Remove lines with a longer word (chars); 0 disables."),
    )
    remove_citations: bool = Field(
        True,
        description=("Cut wiki citations ([1], [edit], [citation needed])."),
    )
    drop_lines_without_terminal_punct: bool = Field(
        True, description="Remove lines not ending in . ? ! \" ' (or ending in '...')."
    )
    drop_lorem_ipsum: bool = Field(
        True,
        description=("Drop docs with a kept line containing 'lorem ipsum'."),
    )
    drop_javascript: bool = Field(True, description="Remove lines mentioning 'javascript'.")
    drop_curly_bracket: bool = Field(True, description="Drop docs with a kept line containing '{'.")
    drop_policy: bool = Field(
        True,
        description=("Remove lines with cookie / terms-of-use / privacy-policy phrases."),
    )
    rewrite_text: bool = Field(
        True,
        description=(
            "Replace a surviving doc's text by its kept lines (as C4 did); false = only drop docs."
        ),
    )
    max_removed_char_fraction: float = Field(
        0.7,
        ge=0,
        le=1,
        description="Drop docs (too_many_lines_removed) whose removed lines held more than this "
        "fraction of their chars, instead of keeping the fragments; 1 disables. Measured: web "
        "docs C4 keeps lose at most 0.35 (Common Crawl/Dolma text) and 0.60 (WARC extractions); "
        "hard-wrapped books lose 0.85 (median).",
    )


class FineWebConfig(Section):
    """FineWeb quality rules (Penedo et al. 2024); defaults are datatrove 0.10.1's."""

    enabled: bool = Field(True, description="Apply the FineWeb quality rules.")
    min_line_punct_ratio: float = Field(
        0.12,
        description=("Min fraction of non-blank lines ending in terminal punctuation."),
    )
    max_short_line_ratio: float = Field(
        0.67,
        description=("Max fraction of non-blank lines of at most short_line_chars."),
    )
    short_line_chars: int = Field(
        30,
        description=("Length (chars) at or under which a line is short."),
    )
    max_char_dup_ratio: float = Field(
        0.01,
        description=("Max fraction of non-newline chars in lines repeating an earlier line."),
    )
    max_newline_word_ratio: float = Field(
        0.3,
        description=("Max ratio of newlines to word tokens (list-like docs)."),
    )


class QualityConfig(Section):
    """Heuristic rule families, applied in a fixed order (curator/stages/quality.py)."""

    gopher_quality: GopherQualityConfig = GopherQualityConfig()
    gopher_repetition: GopherRepetitionConfig = GopherRepetitionConfig()
    c4: C4Config = C4Config()
    fineweb: FineWebConfig = FineWebConfig()


class DedupConfig(Section):
    exact: bool = Field(True, description="Drop exact duplicates (hash of normalized text).")
    near: bool = Field(True, description="Drop near duplicates (MinHash LSH).")
    shingle_size: int = Field(5, gt=0, description="Words per shingle.")
    bands: int = Field(14, gt=0, description="LSH bands b.")
    rows: int = Field(8, gt=0, description="Rows per band r; num_perm = bands * rows.")
    threshold: float | None = Field(
        None,
        ge=0,
        le=1,
        description="If set, LSH candidate pairs are kept only when their signature Jaccard "
        "estimate "
        "is >= threshold (fewer false positives); null keeps every LSH collision.",
    )
    num_partitions: PositiveInt | Literal["auto"] = Field(
        "auto",
        description="Hash partitions of the dedup shuffles (exact groups, band buckets, graph "
        "edges): each partition is one reduce task, and each map task writes one file per "
        "partition. 'auto' takes one partition per 250,000 shuffle rows (the pass-1 files' "
        "rows x (bands + 1)), so a small corpus shuffles through a few files instead of "
        "files x 16; an integer fixes the count (more partitions, less memory per reduce task).",
    )
    seed: int = Field(1, description="Seed of the MinHash permutations.")

    @property
    def num_perm(self) -> int:
        return self.bands * self.rows


PII_KINDS = ("email", "ip", "phone", "card")


def _refuse_unknown(data: Any, known: tuple[str, ...], what: str) -> Any:
    """An unknown key of a PII section is most likely a kind curator does not detect (ssn,
    iban): name the kinds there are instead of pydantic's bare 'extra inputs'."""
    if isinstance(data, dict) and (bad := sorted(set(data) - set(known))):
        raise ValueError(
            f"unknown field(s) {bad} in {what}; {what} takes {', '.join(known)} (PII of other "
            "kinds is not detected): fix the name or remove it"
        )
    return data


class PiiReplacementConfig(Section):
    """What each kind of address becomes. Realistic-looking but reserved values, as FineWeb
    (datatrove's PIIFormatter, `email@example.com`): the model still sees an address's shape
    in its context (a `<EMAIL>` tag is a string it never meets at inference), and none of them
    belongs to a person or a reachable host."""

    email: str = Field(
        "email@example.com", description="Replaces each email (example.com is reserved, RFC 2606)."
    )
    ipv4: str = Field(
        "192.0.2.1",
        description="Replaces each IPv4 address (TEST-NET-1, reserved for documentation, RFC "
        "5737; not public, so with ip_public_only a second pass leaves it alone).",
    )
    ipv6: str = Field(
        "2001:db8::1",
        description="Replaces each IPv6 address (the documentation prefix, RFC 3849).",
    )
    phone: str = Field(
        "555-0100",
        description="Replaces each phone number (the NANP block reserved for fiction; 7 digits, "
        "so the phone pattern does not match it again).",
    )
    card: str = Field(
        "0000 0000 0000 0000",
        description="Replaces each card number (card-shaped, but no card network issues "
        "numbers starting with 0).",
    )

    @model_validator(mode="before")
    @classmethod
    def _known_kinds(cls, data: Any) -> Any:
        return _refuse_unknown(data, ("email", "ipv4", "ipv6", "phone", "card"),
                               "pii.replacement")


class PiiConfig(Section):
    """Anonymization of personal addresses in the text (curator/stages/pii.py): each one found
    is replaced by `replacement.<kind>` and counted per document in the manifest (`pii_<kind>`,
    int32). Runs after every keep/drop decision and before anything is tokenized or written,
    so dedup sees the original text and no output holds an original address. Only the text:
    `url` and `metadata` are carried as the input had them."""

    email: bool = Field(True, description="Replace email addresses (local@domain.tld).")
    ip: bool = Field(True, description="Replace IPv4 and IPv6 addresses.")
    phone: bool = Field(
        False,
        description="Replace phone numbers: NANP ((555) 123-4567, 555-123-4567, 1-800-...) and "
        "international ones written with + (+44 20 7946 0958). Off by default: unlike an "
        "address, a digit pattern also matches ordinary numbers.",
    )
    card: bool = Field(
        False,
        description="Replace payment card numbers: 13-19 digits, contiguous or grouped by "
        "spaces or dashes, with a card network's prefix and a valid Luhn checksum. Off by "
        "default, as in FineWeb.",
    )
    ip_public_only: bool = Field(
        True,
        description="Replace only public IP addresses (as datatrove's only_remove_public_ips): "
        "private, loopback, link-local, documentation, multicast and other reserved ones "
        "(127.0.0.1, 192.168.1.1, 255.255.255.0) identify no one and are kept.",
    )
    replacement: PiiReplacementConfig = PiiReplacementConfig()

    @model_validator(mode="before")
    @classmethod
    def _known_kinds(cls, data: Any) -> Any:
        return _refuse_unknown(data, (*PII_KINDS, "ip_public_only", "replacement"), "pii")

    @property
    def kinds(self) -> list[str]:
        """The kinds turned on, in PII_KINDS order."""
        return [k for k in PII_KINDS if getattr(self, k)]


class TokenizerConfig(Section):
    model_path: str | None = Field(
        None,
        description="The user's tokenizer: a sentencepiece .model or a Hugging Face "
        "tokenizer.json (told apart by content); null trains one.",
    )
    kind: Literal["auto", "sentencepiece", "hf"] = Field(
        "auto",
        description="auto = the model_path file's kind, or sentencepiece when training; 'hf' "
        "with no model_path trains a byte-level BPE tokenizer.json (GPT-2 style).",
    )
    eos_token: str | None = Field(
        None,
        description="Hugging Face tokenizers: the token appended after each document; null = "
        "eos_token of a tokenizer_config.json beside the file, else <|endoftext|>, "
        "<|end_of_text|>, </s> or <eos> if the vocabulary has one; \"\" = none.",
    )
    model_type: Literal["bpe", "unigram"] = Field(
        "bpe", description="Sentencepiece algorithm when training."
    )
    vocab_size: int = Field(8000, gt=32, description="Vocabulary size when training.")
    character_coverage: float = Field(
        0.9995,
        gt=0.5,
        le=1,
        description="Share of characters the vocabulary must cover (the rest encode as bytes); "
        "lowered automatically when vocab_size cannot hold them.",
    )
    sample_chars: int = Field(
        20_000_000, gt=0, description="Characters of kept text sampled to train on."
    )
    num_threads: int = Field(
        0, ge=0, description="Encoder threads per worker; 0 = worker's CPU count."
    )
    seed: int = Field(0, description="Seed for the training sample.")

    @model_validator(mode="after")
    def _hf_training_vocab(self) -> TokenizerConfig:
        # a byte-level BPE starts from the 256 byte symbols plus its end-of-text token
        if self.kind == "hf" and self.model_path is None and self.vocab_size < 257:
            raise ValueError(
                f"tokenizer.vocab_size={self.vocab_size} is below the 257 symbols a byte-level "
                "BPE needs (256 bytes + <|endoftext|>); raise it, or use kind: sentencepiece"
            )
        if self.eos_token is not None and self.model_path is None:
            raise ValueError(
                "tokenizer.eos_token applies to a model_path tokenizer.json (a trained "
                "tokenizer ends documents with its own EOS); remove it or set model_path"
            )
        return self


class CurriculumConfig(Section):
    """Difficulty per kept document, and stages by its quantiles (curator/stages/curriculum.py).

    Difficulty is computed in pass 1 for documents alive after the rules; the cut points are the
    quantiles over the documents that survive dedup, so every stage holds about as many kept
    documents. `model_loss` needs a trained checkpoint, so it is offered at export time
    (`curator export --difficulty model_loss`), not here.
    """

    score: Literal["none", "length", "compression_ratio", "agent_score"] = Field(
        "compression_ratio",
        description="Difficulty: 'length' = n_chars; 'compression_ratio' = zstd size / raw size "
        "(higher = less redundant, harder); 'agent_score' = 1 - sigmoid(quality_score), the "
        "agent's drop probability (needs the agent stage); 'none' = everything in stage 0 with "
        "null difficulty.",
    )
    n_stages: int = Field(
        3, ge=1, le=16, description="Stages by difficulty quantile (3 = easy/medium/hard)."
    )
    zstd_level: int = Field(
        3, ge=1, le=19, description="zstd level of the compression_ratio score."
    )


class ExcludedConfig(Section):
    """Dropped and quarantined documents kept for inspection under
    `RUN/excluded/reason=<reason>/part-<unit>.parquet` (doc_id, source, reason, error, text and
    the metadata columns the run has); `curator show RUN` prints them (curator/excluded.py).

    By default a sample bounded per input unit: of each reason's documents in a unit, the
    `max_per_reason_per_unit` with the smallest stable hash of their doc_id (a uniform draw,
    all of them when fewer), so a small run keeps every excluded document and a large one a few
    MB per unit. The choice depends on the documents only: every run and resume picks the same.
    """

    enabled: bool = Field(True, description="Write RUN/excluded/ (false = no excluded output).")
    sample_rate: float = Field(
        1.0,
        gt=0,
        le=1,
        description="Fraction of excluded documents eligible for the sample (by a stable hash "
        "of doc_id); 1 = all, capped by max_per_reason_per_unit.",
    )
    max_per_reason_per_unit: int | None = Field(
        100,
        ge=1,
        description="Documents kept per reason per input unit (a uniform draw by doc_id hash); "
        "null = no cap.",
    )
    all: bool = Field(
        False,
        description="Write every dropped and quarantined document (ignores sample_rate and "
        "max_per_reason_per_unit); pass 1 then keeps the text of every dropped row.",
    )

    @model_validator(mode="after")
    def _all_needs_enabled(self) -> ExcludedConfig:
        if self.all and not self.enabled:
            raise ValueError(
                "excluded.all=true writes every excluded document but excluded.enabled=false "
                "turns the output off; set excluded.enabled=true or excluded.all=false"
            )
        return self


class AgentStageConfig(Section):
    """The quality agent as a pass-1 stage after the rules (policies/scorer.py): adds
    `quality_score` (the policy's keep logit: higher = better, sigmoid = keep probability,
    unbounded; the 'heuristic' policy's is its rule-family count) to alive documents and, with
    `keep_fraction` or `threshold`, drops the rest with reason `agent_low_score`; kept documents
    get the policy's `sample_weight` (its upweight action, 1 for a policy without one)."""

    enabled: bool = Field(False, description="Score alive documents with a policy.")
    policy: str | None = Field(
        None,
        description="Policy checkpoint (.safetensors from `curator agent train`), 'default' "
        "(also null: the policy shipped with curator) or 'heuristic' (rule-based score).",
    )
    keep_fraction: float | None = Field(
        None, gt=0, le=1, description="Keep this top fraction of alive docs by score (per batch)."
    )
    threshold: float | None = Field(
        None, description="Drop alive docs scoring below this; null with keep_fraction null = "
        "score only.",
    )

    @model_validator(mode="after")
    def _one_rule(self) -> AgentStageConfig:
        if self.keep_fraction is not None and self.threshold is not None:
            raise ValueError("set agent.keep_fraction or agent.threshold, not both")
        if self.policy not in (None, "default", "heuristic") and not Path(self.policy).is_file():
            raise ValueError(
                f"agent.policy {self.policy!r} is not a file; pass a policy checkpoint, "
                "'default' or 'heuristic'"
            )
        return self


class RayConfig(Section):
    executor: Literal["auto", "ray", "local"] = Field(
        "auto",
        description="Where a job's units run. ray: on a Ray cluster (ray.address, RAY_ADDRESS, "
        "or an embedded one started for the job). local: worker processes on this machine, no "
        "Ray, the same isolation (a file that kills its worker is retried, then quarantined) "
        "without a cluster's start-up, daemons and imports (BENCHMARKS.md, whole pipeline). "
        "auto: local when no cluster is named (ray.address, RAY_ADDRESS) and every input is a "
        "local file, together at most ray.local_max_mb; else ray.",
    )
    local_max_mb: float = Field(
        256.0,
        ge=0,
        description="executor=auto: the most input, in MB as stored on disk (compressed), run "
        "without Ray. Past it a cluster's fixed cost is small beside the job, and Ray's live "
        "progress and dashboard come with it.",
    )
    address: str | None = Field(
        None, description="Ray address; null connects to RAY_ADDRESS or starts an embedded cluster."
    )
    num_cpus: int | None = Field(None, description="CPUs for an embedded cluster; null = all.")
    concurrency: int | None = Field(
        None, description="Parallel workers per pass; null = cluster CPUs."
    )
    max_unit_attempts: int = Field(
        3,
        ge=1,
        description="Tries per input file when its worker dies (killed, out of memory); after "
        "the last, the file is quarantined as unit_failed with the cause and the run finishes.",
    )
    worker_memory_bytes: int | None = Field(
        None,
        gt=0,
        description="Resident memory one worker may reach while it handles a file; over it, the "
        "try ends (and counts against max_unit_attempts). null = 4 GiB or the node's memory "
        "per CPU, whichever is larger.",
    )

    @model_validator(mode="after")
    def _local_has_no_cluster(self) -> RayConfig:
        if self.executor == "local" and self.address:
            raise ValueError(
                f"ray.executor=local runs without Ray, but ray.address={self.address!r} names a "
                "cluster: set ray.executor=ray (or auto) to use it, or drop ray.address"
            )
        return self


class CurateConfig(Section):
    """A curation job: inputs -> RUN directory (ARCHITECTURE.md)."""

    inputs: list[InputSpec] = Field(description="Inputs to curate.")
    output: str = Field(
        description="RUN directory to create or resume: a local or mounted folder, or an "
        "object-store URI (s3://bucket/runs/r1), built in `staging` and copied up."
    )
    staging: str | None = Field(
        None,
        description="Object-store output only: the local folder the run is built in before "
        "each committed file is copied to the store; null = ~/.cache/curator/staging/<hash>. "
        "On a cluster of several nodes, a folder every node sees.",
    )
    read: ReadConfig = ReadConfig()
    normalize: NormalizeConfig = NormalizeConfig()
    filters: FiltersConfig = FiltersConfig()
    language: LanguageConfig = LanguageConfig()
    quality: QualityConfig = QualityConfig()
    decontaminate: DecontaminateConfig = DecontaminateConfig()
    agent: AgentStageConfig = AgentStageConfig()
    dedup: DedupConfig = DedupConfig()
    pii: PiiConfig = PiiConfig()
    tokenizer: TokenizerConfig = TokenizerConfig()
    curriculum: CurriculumConfig = CurriculumConfig()
    excluded: ExcludedConfig = ExcludedConfig()
    ray: RayConfig = RayConfig()
    quiet: bool = Field(False, description="No progress bars.")

    @field_validator("inputs")
    @classmethod
    def _some_input(cls, v: list[InputSpec]) -> list[InputSpec]:
        if not v:
            raise ValueError(
                "at least one input is required: add `inputs: [{path: ...}]` or --input PATH"
            )
        return v

    @model_validator(mode="after")
    def _agent_score_needs_agent(self) -> CurateConfig:
        if self.curriculum.score == "agent_score" and not self.agent.enabled:
            raise ValueError(
                "curriculum.score=agent_score needs the agent stage: set agent.enabled=true "
                "(and agent.policy), or pick another curriculum.score"
            )
        return self


class ConfigError(ValueError):
    """Bad configuration: message names the field and the fix."""


def _set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = data
    for k in keys[:-1]:
        node = node.setdefault(k, {})
        if not isinstance(node, dict):
            raise ConfigError(f"--set {dotted}: {k!r} is not a section")
    node[keys[-1]] = value


def parse_overrides(pairs: list[str]) -> list[tuple[str, Any]]:
    """`key.sub=value` strings -> (key, YAML-parsed value)."""
    out = []
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(f"--set {pair!r}: expected key=value, e.g. --set dedup.bands=20")
        key, raw = pair.split("=", 1)
        out.append((key.strip(), yaml.safe_load(raw)))
    return out


def format_validation_error(err: ValidationError, what: str) -> str:
    lines = [f"invalid {what}:"]
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown field; check spelling against `curator config-reference`"
        elif e["type"] == "missing":
            msg = "required field missing; set it in the YAML or with --set " + loc + "=..."
        lines.append(
            f"  {loc}: {msg} (got {e.get('input')!r})"
            if e["type"] != "missing"
            else f"  {loc}: {msg}"
        )
    return "\n".join(lines)


def read_config_file(path: str | Path) -> dict[str, Any]:
    """A YAML config file's top-level mapping (`--config`), or ConfigError saying what is wrong."""
    p = Path(path)
    if not p.exists():
        raise ConfigError(
            f"config file {p} does not exist; pass --config PATH to an existing YAML file"
        )
    loaded = yaml.safe_load(p.read_text()) or {}
    if not isinstance(loaded, dict):
        raise ConfigError(
            f"config file {p} must hold a mapping at top level, got {type(loaded).__name__}"
        )
    return loaded


def load_model(
    model: type[BaseModel],
    path: str | Path | None = None,
    overrides: list[str] | None = None,
    base: dict[str, Any] | None = None,
) -> BaseModel:
    """Build a config model from YAML file + dict base + --set overrides; fail with named fields."""
    data: dict[str, Any] = dict(base or {})
    if path is not None:
        data = {**read_config_file(path), **data}
    for key, value in parse_overrides(overrides or []):
        _set_dotted(data, key, value)
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, model.__name__)) from None


def dump_yaml(cfg: BaseModel) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)


# Sections that may change between a killed run and its resume (they do not change the output).
# `output` is where the folder is, not what it holds: it is recorded absolute (output_place), and
# a run recorded relative before that, or moved since, resumes.
RESUMABLE_DIFFERENCES = frozenset({"ray", "quiet", "output", "staging"})


def _default_json(field: Any) -> object:
    """A model field's default as model_dump(mode="json") writes it; None when it has none."""
    if field.is_required():
        return None
    value = field.get_default(call_default_factory=True)
    return value.model_dump(mode="json") if isinstance(value, BaseModel) else value


def check_or_record_config(cfg: BaseModel, path: Path, what: str) -> None:
    """Resume guard: an existing `path` must hold this same config (up to the sections in
    RESUMABLE_DIFFERENCES), else ConfigError before any work; a missing one is written."""
    from connectors.fs import write_text_atomic

    if not path.exists():
        write_text_atomic(dump_yaml(cfg), path)
        return
    previous, resolved = yaml.safe_load(path.read_text()), cfg.model_dump(mode="json")
    # A section added to curator after the run started (pii, decontaminate, ...) is absent
    # from its config.yaml: at its defaults it changes nothing, so the run still resumes.
    defaults = {
        name: _default_json(field) for name, field in type(cfg).model_fields.items()
        if name not in previous
    }
    diff = sorted(
        k
        for k in set(previous) | set(resolved)
        if k not in RESUMABLE_DIFFERENCES
        and previous.get(k, defaults.get(k)) != resolved.get(k)
    )
    if diff:
        raise ConfigError(
            f"{path.parent} holds a {what} with a different config (sections {diff} differ); "
            "use a new output, or delete the directory to start over"
        )
