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
    # Records the readers' framing layer counted (connectors/tally.py), apart from the parser
    # that made the rows: conservation compares the manifest with this count.
    framed: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)  # "decision/reason" -> docs
    chars_in: int = 0
    chars_alive: int = 0
    tokens: int = 0
    seconds: Counter[str] = field(default_factory=Counter)  # step name -> seconds

    def __add__(self, other: UnitStats) -> UnitStats:
        return UnitStats(
            records=self.records + other.records,
            framed=self.framed + other.framed,
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
            "framed": self.framed,
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
            framed=d.get("framed", d["records"]),
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


def nothing_survived_note(stats: dict, top: int = 3) -> str | None:
    """The line a run with zero kept documents ends with: how many records, and the reasons
    that removed most of them (from RUN/stats.json's `outcomes`). None when something was kept.
    """
    if stats["kept"] > 0:
        return None
    records = stats["records"]
    if records == 0:
        return "nothing survived: the inputs held no record"
    reasons = sorted(
        ((n, key) for key, n in stats["outcomes"].items() if not key.startswith("kept")),
        reverse=True,
    )
    parts = [f"{key.split('/', 1)[-1]} {n} ({100 * n / records:.0f}%)" for n, key in reasons[:top]]
    return (
        f"nothing survived: 0 of {records} records kept; most removed by " + ", ".join(parts)
        + ". `curator show RUN` lists examples; a preset (--preset books|code) or looser "
        "--set quality.* limits may fit this text better"
    )
