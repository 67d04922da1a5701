"""ReadTally: how many records a unit holds, counted by the framing layer, not by the parser.

A reader has two layers: framing finds the records (the line splitter of a jsonl file, the WARC
record scanner, one file = one record for text/html, the parquet footer, the rows a DuckDB
query streams) and parsing turns each one into a row. A parser that silently stops or skips
would still agree with its own row count, so conservation is checked against the framing
count instead: `read_unit` fills a tally and tops the rows up to it (connectors/registry.py).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ReadTally:
    """Counts of one unit, filled while `read_unit`'s iterator runs; final once it is exhausted.

    framed:  records the framing layer found, plus one for each stretch it could not frame
             (a damaged WARC region, a truncated or unreadable rest of file, a file that is
             refused whole as wrong_schema): each such stretch is exactly one quarantined row.
    skipped: framed records that are, by design, not documents (a WARC response that is not
             HTML); they get no row.
    rows:    rows `read_unit` yielded, every decision, including the `lost` ones.
    lost:    rows `read_unit` added as lost_in_parse because the reader returned fewer rows than
             framed - skipped.
    """

    framed: int = 0
    skipped: int = 0
    rows: int = 0
    lost: int = 0

    @property
    def expected(self) -> int:
        """Rows the unit must produce: the independent count conservation is checked against."""
        return self.framed - self.skipped

    @property
    def surplus(self) -> int:
        """Rows beyond `expected` (a reader emitting a record twice); 0 when the counts agree."""
        return max(0, self.rows - self.expected)
