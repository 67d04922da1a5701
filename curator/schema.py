"""Arrow schemas shared by every stage, and the decision vocabulary.

A *document table* flows between stages. Readers produce `DOC_SCHEMA`; every stage may add
columns (signals, hashes, tokens) but never removes a row: a document leaves the stream only at
the writer, which sends kept rows to the shards and every row to the manifest.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curator.doc_ids import doc_ids

KEPT = "kept"  # still alive while streaming; final state if it reaches the writer alive
DROPPED = "dropped"  # a rule, dedup or the agent removed it; `reason` names the failed condition
QUARANTINED = "quarantined"  # bad input; `reason` is a short code, `error` the detail
SAMPLE_WEIGHT = "sample_weight"

DOC_SCHEMA = pa.schema(
    [
        # "<hash of source>:<record>", unique by construction (curator/doc_ids.py)
        pa.field("doc_id", pa.string(), nullable=False),
        pa.field("input_id", pa.string()),  # the input's own id, if any; need not be unique
        pa.field("source", pa.string(), nullable=False),  # path/URI of the input file
        pa.field("record", pa.int64(), nullable=False),  # ordinal of the record in its source
        pa.field("text", pa.string()),  # null once quarantined
        pa.field("decision", pa.string(), nullable=False),
        pa.field("reason", pa.string()),
        pa.field("error", pa.string()),
        pa.field("n_chars", pa.int64()),
    ]
)

# Input metadata a document may carry into the manifest (the connectors' url/date/metadata,
# language id's lang/lang_score); the exports and RUN/excluded/ copy the ones a run has.
INPUT_METADATA = ("url", "date", "metadata", "lang", "lang_score")
# What the readers keep of an input's own metadata (connectors: jsonl/parquet `url`, `date` and
# `metadata` fields, the metadata as JSON text; a WARC record's target URI, date and record id):
# strings, null where the input has none. Pass 1 always writes the three columns.
READER_METADATA = pa.schema([pa.field(n, pa.string()) for n in ("url", "date", "metadata")])


def is_read_schema(schema: pa.Schema) -> bool:
    """What a reader yields: DOC_SCHEMA, then any of READER_METADATA (where the input has them)."""
    extra = schema.names[len(DOC_SCHEMA):]
    return (pa.schema(list(schema)[: len(DOC_SCHEMA)]) == DOC_SCHEMA
            and set(extra) <= set(READER_METADATA.names))

# What became of a document: the leading columns of the manifest and of RUN/excluded/.
DECISION_FIELDS = [
    pa.field("doc_id", pa.string(), nullable=False),
    pa.field("input_id", pa.string()),
    pa.field("source", pa.string(), nullable=False),
    pa.field("record", pa.int64(), nullable=False),
    pa.field("decision", pa.string(), nullable=False),
    pa.field("reason", pa.string()),
    pa.field("error", pa.string()),
    pa.field("duplicate_of", pa.string()),
    pa.field("n_chars", pa.int64()),
]

# Columns every manifest row has besides the signal columns stages add.
MANIFEST_BASE_FIELDS = [
    *DECISION_FIELDS,
    pa.field("n_tokens", pa.int64()),
    # Filled by later stages (agent, curriculum); nullable until then.
    pa.field("quality_score", pa.float32()),
    pa.field("difficulty", pa.float32()),
    pa.field("stage", pa.int32()),
    # Times a kept document should be sampled (the agent's upweight action); 1 when no agent
    # upweighted it, null for documents not kept. Exports carry it; bin and the trainer repeat.
    pa.field(SAMPLE_WEIGHT, pa.int32()),
]

SHARD_SCHEMA = pa.schema(
    [
        pa.field("doc_id", pa.string(), nullable=False),
        pa.field("input_id", pa.string()),
        pa.field("source", pa.string(), nullable=False),
        pa.field("tokens", pa.list_(pa.uint32()), nullable=False),
        pa.field("n_tokens", pa.int64(), nullable=False),
        pa.field("quality_score", pa.float32()),
        pa.field("difficulty", pa.float32()),
        pa.field("stage", pa.int32()),
        pa.field(SAMPLE_WEIGHT, pa.int32()),  # >= 1; shards of older runs lack it (= 1)
    ]
)


def sample_weights(table: pa.Table) -> pa.Array:
    """A shard table's `sample_weight` as int32, 1 where absent or null (older runs, rows no
    agent weighed)."""
    if SAMPLE_WEIGHT not in table.column_names:
        return pa.array(np.ones(table.num_rows, np.int32))
    return pc.fill_null(table[SAMPLE_WEIGHT].cast(pa.int32()), 1).combine_chunks()


def empty_like(schema: pa.Schema) -> pa.Table:
    return schema.empty_table()


def cast_to_schema(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Select and cast `table` to `schema`, adding missing nullable columns as nulls.

    Raises ValueError naming the missing column when a non-nullable one is absent.
    """
    columns = []
    for field in schema:
        if field.name in table.column_names:
            columns.append(table.column(field.name).cast(field.type))
        elif field.nullable:
            columns.append(pa.nulls(table.num_rows, field.type))
        else:
            raise ValueError(f"column {field.name!r} missing; columns are {table.column_names}")
    return pa.Table.from_arrays(columns, schema=schema)


def doc_table(
    texts: list[str | None], decisions: list[str] | None = None, source: str = "memory"
) -> pa.Table:
    """A DOC_SCHEMA table from plain texts (records are row numbers, no input ids): for scoring
    an in-memory list of documents with the steps, and for tests."""
    n = len(texts)
    records = pa.array(range(n), pa.int64())
    return pa.Table.from_pydict(
        {
            "doc_id": doc_ids(source, records),
            "input_id": pa.nulls(n, pa.string()),
            "source": [source] * n,
            "record": records,
            "text": texts,
            "decision": decisions or [KEPT] * n,
            "reason": [None] * n,
            "error": [None] * n,
            "n_chars": [len(t or "") for t in texts],
        },
        schema=DOC_SCHEMA,
    )
