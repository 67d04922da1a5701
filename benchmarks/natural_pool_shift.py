"""How the natural agents' training pool differs from the pool a policy ranks (about a minute).

    .venv/bin/python -m benchmarks.natural_pool_shift --corpora ../shared/corpora \
        --crawl /work/data/crawl/*.jsonl.gz

The natural benchmark's agents learn from the crawl's training half, minus the documents a
reader kept (`--kept`: they join the target), and are judged ranking the evaluation half, which
keeps its own. This prints, per pool, the target classifier's logit (the DCLM-style feature,
the agents' strongest) as the serving model gives it and, for the training pool, out-of-fold
(`policies.target_fitting.cross_fitted_features`, `crossfit_folds`), with and without the kept
documents of the target's fitting part (`training_pool(data, kept_fit=True)`). No selection is
trained; it explains what a policy learns from, not how well it selects.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from policies.config import AgentConfig  # noqa: E402
from policies.features import FeatureExtractor, FeatureSpec  # noqa: E402
from policies.target_fitting import (  # noqa: E402
    cross_fitted_features,
    fit_target_models,
    target_members,
)
from policies.train_default import (  # noqa: E402
    TARGET_DIM,
    add_data_args,
    natural_data,
    natural_tokenizer,
    training_pool,
)

RESULTS = Path(__file__).parent / "results" / "natural_pool_shift.md"
FOLDS = 5


def summary(x: np.ndarray) -> str:
    q10, q50, q90 = np.quantile(x, [0.1, 0.5, 0.9])
    return (f"{len(x)} | {x.mean():+.2f} | {x.std():.2f} | {q10:+.2f} | {q50:+.2f} | {q90:+.2f} | "
            f"{(x > 0).mean():.0%}")


def classifier_column(raw: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    return raw[:, spec.names.index("target_classifier")].astype(np.float64)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_args(ap)
    ap.add_argument("--work", default="/tmp/curator-selection-natural")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    data = natural_data(args, Path(args.work) / "inputs")
    tok_path = Path(args.work) / "tokenizer.model"
    tokenizer = tok_path.read_bytes() if tok_path.exists() else natural_tokenizer(data)
    # the target columns only: the reference LM does not change what this measures
    cfg = AgentConfig(target_dim=TARGET_DIM, crossfit_folds=FOLDS, seed=0)
    spec = FeatureSpec(sketch_dim=1, target_dim=TARGET_DIM)
    plain, with_kept = training_pool(data), training_pool(data, kept_fit=True)
    target, _ = fit_target_models(cfg, plain, tokenizer)
    serving = FeatureExtractor(tokenizer, spec, target=target)
    kept = target_members(with_kept)
    rows = [
        ("evaluation half (what a policy ranks), serving model",
         classifier_column(serving(pa.array(data.pool_eval.texts, pa.string())), spec)),
        ("training pool, serving model (in-sample: fitted as negatives)",
         classifier_column(serving(plain.texts), spec)),
        (f"training pool, out-of-fold ({FOLDS} folds)",
         classifier_column(cross_fitted_features(cfg, plain, tokenizer, spec), spec)),
    ]
    crossed = classifier_column(cross_fitted_features(cfg, with_kept, tokenizer, spec), spec)
    rows += [
        ("training pool + kept fit documents, out-of-fold", crossed),
        ("  of which the kept fit documents, out-of-fold", crossed[kept]),
        ("  the same kept documents, serving model (fitted as positives)",
         classifier_column(serving(with_kept.texts.filter(pa.array(kept))), spec)),
    ]
    lines = [
        "## Natural agents' training pool against the pool they rank (target classifier logit)",
        "",
        "Command (repo root): `python -m benchmarks.natural_pool_shift " + " ".join(sys.argv[1:])
        + "`",
        "",
        f"The training half holds {len(data.pool_train.texts)} documents after the "
        f"{len(data.kept)} reader-kept ones moved to the target "
        f"({int(kept.sum())} of them in its fitting part of {len(data.target.fit)} documents); "
        f"the evaluation half {len(data.pool_eval.texts)}.",
        "",
        "| pool, model | documents | mean | sd | q10 | median | q90 | logit > 0 |",
        "|---|---|---|---|---|---|---|---|",
        *[f"| {name} | {summary(x)} |" for name, x in rows],
    ]
    text = "\n".join(lines)
    print(text)
    Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
