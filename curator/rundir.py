"""Paths of the run-directory contract (ARCHITECTURE.md), in one place."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from connectors.fs import write_text_atomic


@dataclass(frozen=True)
class RunDir:
    root: Path

    @classmethod
    def at(cls, path: str | Path) -> RunDir:
        return cls(Path(path).absolute())

    # -- final outputs -------------------------------------------------------------------------
    @property
    def shards(self) -> Path:
        return self.root / "shards"

    def shard(self, stage: int, idx: int) -> Path:
        return self.shards / f"stage={stage}" / f"part-{idx:05d}.parquet"

    @property
    def manifest(self) -> Path:
        return self.root / "manifest"

    def manifest_part(self, idx: int) -> Path:
        return self.manifest / f"part-{idx:05d}.parquet"

    @property
    def excluded(self) -> Path:
        return self.root / "excluded"

    def excluded_part(self, reason: str, idx: int) -> Path:
        # Reasons are snake_case codes; anything else is made path-safe (the file keeps the
        # exact reason in its `reason` column).
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", reason) or "_"
        return self.excluded / f"reason={safe}" / f"part-{idx:05d}.parquet"

    @property
    def catalog(self) -> Path:
        return self.root / "catalog.duckdb"

    @property
    def tokenizer(self) -> Path:
        """RUN/tokenizer.json (a Hugging Face tokenizer) or RUN/tokenizer.model (sentencepiece;
        the path also when neither exists yet)."""
        from curator.run_tokenizer import tokenizer_file

        return tokenizer_file(self.root)

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def stats(self) -> Path:
        return self.root / "stats.json"

    def kept_nothing(self) -> bool:
        """A finished run where no document survived (it has stats but no tokenizer)."""
        return (
            self.stats.exists()
            and not self.tokenizer.exists()
            and json.loads(self.stats.read_text()).get("kept") == 0
        )

    def kept_nothing_message(self, what: str) -> str:
        return (
            f"{self.root} kept no documents: nothing to {what}; `curator stats {self.root}` "
            f"and `curator show {self.root}` say why"
        )

    # -- intermediate work and resume markers --------------------------------------------------
    @property
    def work(self) -> Path:
        return self.root / "_work"

    def pass1(self, idx: int) -> Path:
        return self.work / "pass1" / f"source={idx:05d}.parquet"

    @property
    def spill(self) -> Path:
        """Decoded chunks of single-stream compressed jsonl inputs (connectors/spill.py)."""
        return self.work / "spill"

    @property
    def dedup_work(self) -> Path:
        return self.work / "dedup"

    def dups(self, idx: int) -> Path:
        return self.dedup_work / "dups" / f"source={idx:05d}.parquet"

    @property
    def eval_set(self) -> Path:
        """The decontamination n-gram set the driver built (curator/stages/eval_sets.py)."""
        return self.work / "decontaminate"

    @property
    def inputs(self) -> Path:
        """The inputs as they were at the first start (curator/input_fingerprint.py)."""
        return self.done / "inputs.json"

    @property
    def tries(self) -> Path:
        """Tries of each unit per pass (curator/unit_tries.py)."""
        return self.work / "tries"

    @property
    def done(self) -> Path:
        return self.root / "_done"

    def marker(self, phase: str, idx: int | None = None) -> Path:
        name = phase if idx is None else f"{phase}/source={idx:05d}"
        return self.done / f"{name}.json"

    def read_marker(self, phase: str, idx: int | None = None) -> dict | None:
        p = self.marker(phase, idx)
        return json.loads(p.read_text()) if p.exists() else None

    def write_marker(self, payload: dict, phase: str, idx: int | None = None) -> None:
        write_text_atomic(json.dumps(payload, sort_keys=True), self.marker(phase, idx))
