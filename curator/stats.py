"""Per-unit statistics as values that merge (summed by the driver, never mutated on steps)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from curator.schema import KEPT


@dataclass
class UnitStats:
    """Counts and timings for one unit of work (or, summed, for a whole pass)."""

    records: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)  # "decision/reason" -> docs
    chars_in: int = 0
    chars_alive: int = 0
    tokens: int = 0
    seconds: Counter[str] = field(default_factory=Counter)  # step name -> seconds

    def __add__(self, other: UnitStats) -> UnitStats:
        return UnitStats(
            records=self.records + other.records,
            outcomes=self.outcomes + other.outcomes,
            chars_in=self.chars_in + other.chars_in,
            chars_alive=self.chars_alive + other.chars_alive,
            tokens=self.tokens + other.tokens,
            seconds=self.seconds + other.seconds,
        )

    def add_batch_outcomes(self, table: pa.Table) -> None:
        """Count (decision, reason) pairs of a finished batch with one vectorized group-by."""
        if table.num_rows == 0:
            return
        keys = pc.binary_join_element_wise(
            table.column("decision"), pc.fill_null(table.column("reason"), ""), "/"
        )
        for item in pc.value_counts(keys).to_pylist():
            self.outcomes[item["values"].rstrip("/")] += item["counts"]

    @staticmethod
    def alive_chars(table: pa.Table) -> int:
        alive = pc.equal(table.column("decision"), KEPT)
        return int(pc.sum(pc.if_else(alive, table.column("n_chars"), 0)).as_py() or 0)

    def to_json(self) -> dict:
        return {
            "records": self.records,
            "outcomes": dict(sorted(self.outcomes.items())),
            "chars_in": self.chars_in,
            "chars_alive": self.chars_alive,
            "tokens": self.tokens,
            "seconds": {k: round(v, 4) for k, v in sorted(self.seconds.items())},
        }

    @classmethod
    def from_json(cls, d: dict) -> UnitStats:
        return cls(
            records=d["records"],
            outcomes=Counter(d["outcomes"]),
            chars_in=d["chars_in"],
            chars_alive=d["chars_alive"],
            tokens=d.get("tokens", 0),
            seconds=Counter(d["seconds"]),
        )

    def by_decision(self) -> Counter[str]:
        out: Counter[str] = Counter()
        for key, n in self.outcomes.items():
            out[key.split("/", 1)[0]] += n
        return out
