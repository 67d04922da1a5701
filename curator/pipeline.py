"""Config -> the chain of per-document steps, and running a chain over one batch.

Per-document steps are fused into one callable per unit of work (what Ray Data's operator
fusion does to chained map_batches anyway), so one worker streams a file's batches through the
whole chain and writes one output per input file: that output plus its completion marker is
the unit of resume.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

import pyarrow as pa

from curator.config import CurateConfig
from curator.schema import DOC_SCHEMA, READER_METADATA
from curator.step import Step

if TYPE_CHECKING:
    from curator.stages.decontaminate import EvalSet


def build_pass1_steps(
    cfg: CurateConfig, *, filters: bool = True, eval_set: EvalSet | None = None
) -> list[Step]:
    """normalize -> url filter -> language -> quality rules -> decontaminate -> agent -> exact
    hash -> MinHash signature -> PII anonymization.

    `filters=False` gives the chain of `curator dedup` (normalize + hashes only). `eval_set`:
    the run's decontamination set (a worker memory-maps the driver's); None builds it from
    cfg.decontaminate.paths here.
    """
    from curator.stages.dedup_exact import ExactHash
    from curator.stages.language import LanguageId
    from curator.stages.minhash import MinHashSignature
    from curator.stages.normalize import Normalize
    from curator.stages.quality import build_quality_steps
    from curator.stages.text_columns import SharedWords

    steps: list[Step] = [Normalize(cfg.normalize)]
    if filters:
        from curator.stages.url_filter import UrlFilter

        url_filter = UrlFilter(cfg.filters)
        if url_filter.active:  # first: a blocked page costs no language id or rule
            steps.append(url_filter)
        if cfg.language.enabled:
            steps.append(LanguageId(cfg.language))
        words = SharedWords()  # one word split per batch for the rules and decontamination
        steps.extend(build_quality_steps(cfg.quality, words))
        if cfg.decontaminate.paths:
            from curator.stages.decontaminate import Decontaminate
            from curator.stages.eval_sets import load_eval_set

            # after the rules: it checks the text the run exports (C4 may rewrite it), and the
            # split the last rule made is reused; before the agent, whose forward pass a
            # contaminated document need not cost, and before the dedup hashes, so that a
            # contaminated document never becomes the kept representative of its duplicates
            eval_set = eval_set or load_eval_set(cfg.decontaminate)
            steps.append(Decontaminate(eval_set, words))
        if cfg.agent.enabled:
            from policies.scorer import PolicyScorer

            # after the rules: only documents the rules keep cost a forward pass, and the
            # score describes the text the run keeps (after C4's line removal)
            a = cfg.agent
            steps.append(PolicyScorer(a.policy, a.threshold, a.keep_fraction))
    if cfg.dedup.exact:
        steps.append(ExactHash(cfg.dedup))
    if cfg.dedup.near:
        steps.append(MinHashSignature(cfg.dedup))
    if filters:
        from curator.stages.pii import PiiAnonymizer

        # Last, as in FineWeb: the rules, the agent and both dedup signatures see the text as
        # it came, so turning pii on or off, or changing a replacement, moves no keep/drop
        # decision (two pages differing only in their contact address do not become exact
        # duplicates through a shared placeholder). Still in pass 1: the tokenizer sample, the
        # token shards, the exports and excluded/ all read pass 1's text, so none of them
        # holds an original address. Curriculum difficulty, appended after this chain,
        # scores the text as it is written. `curator dedup` writes no text: no pii there.
        pii = PiiAnonymizer(cfg.pii)
        if pii.active:
            steps.append(pii)
    return steps


def run_chain(
    steps: Sequence[Step], table: pa.Table, seconds: Counter[str] | None = None
) -> pa.Table:
    """Apply steps in order, adding each step's wall time to `seconds`."""
    for step in steps:
        t0 = time.perf_counter()
        table = step(table)
        if seconds is not None:
            seconds[step.name] += time.perf_counter() - t0
    return table


def output_schema(steps: Sequence[Step]) -> pa.Schema:
    """The schema a chain produces, found by running it on an empty table.

    Every unit's output then has the same schema (a unit with only quarantined rows would
    otherwise lack the signal columns).
    """
    schema = run_chain(steps, DOC_SCHEMA.empty_table()).schema
    for field in READER_METADATA:  # a reader adds them only where the input has them
        if field.name not in schema.names:
            schema = schema.append(field)
    return schema
