"""`doc_id`: a document's key within a run, unique by construction.

`doc_id = "<16 hex of xxh3_64(source)>:<record>"`: the input file's URI namespaces the record
ordinal within that file. The input's own id (a jsonl `id`, a WARC-Record-ID, a parquet id
column) is not the key: inputs reuse ids (per-file 0..n, the same document copied into several
files), and a key shared by two documents makes dedup keep both copies of a duplicate or drop a
unique document that happens to share a duplicate's id. That id travels beside the key as
`input_id`, so users can join the run's outputs back to their data.

Both parts are functions of the input alone: a re-run, a resume and a fresh run over the same
URIs give the same ids. (Sources are absolute paths or full URIs, connectors/registry.py, so
the ids do not depend on the working directory; moving the input files changes them.)

Two sources collide only if their 64-bit hashes do (about n^2 / 2^65 for n files: 3e-8 at a
million files); the executor checks that the manifest's doc_ids are distinct.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import xxhash

_STR = pa.string()


def source_namespace(source: str) -> str:
    """The doc_id prefix of every record of `source`: 16 hex digits of xxh3_64(source)."""
    return xxhash.xxh3_64_hexdigest(source.encode("utf-8"))


def doc_ids(source: str, records: pa.Array | pa.ChunkedArray) -> pa.Array:
    """doc_id of each record ordinal of one source: one hash per batch, then a column concat."""
    if isinstance(records, pa.ChunkedArray):
        records = records.combine_chunks()
    prefix = pa.scalar(source_namespace(source) + ":", _STR)
    return pc.binary_join_element_wise(prefix, pc.cast(records, _STR), "")


def doc_id(source: str, record: int) -> str:
    """doc_id of one record (tools and tests; the readers use `doc_ids` per batch)."""
    return f"{source_namespace(source)}:{record}"
