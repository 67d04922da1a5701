"""A selection's measured effect on a model: the bundled transformer, from a seeded init,
trained on exactly a token budget of the selected documents, then its loss on held-out text.

One function for both places that judge a ranking this way: ES's `selection` episodes
(policies/es.py: a ranking of a draw of the training pool, judged on the reward text) and the
natural selection benchmark (every method's ranking of a draw of the selection half, judged on
the target's evaluation text).
"""

from __future__ import annotations

import numpy as np

from policies.reward import TrainerLearner, TrainerSpec

DRAW_SHARE = 0.5
"""Each draw takes this share of its pool's documents: paired draws differ in what is offered."""


def draw_documents(n_docs: int, seed: int, share: float = DRAW_SHARE) -> np.ndarray:
    """Sorted indices of the `share` of `n_docs` documents that draw `seed` offers."""
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n_docs, int(share * n_docs), replace=False))


def train_on_selection(docs: list[np.ndarray], copies: np.ndarray, budget: int,
                       heldout: np.ndarray, vocab: int, seed: int,
                       eval_batches: int | None = None, spec: TrainerSpec | None = None) -> float:
    """Loss on `heldout` of the transformer trained from init `seed` on exactly `budget` tokens
    of the selected documents, each `copies[i]` times (0 = not selected; a short selection
    repeats), LR fully decayed. `eval_batches`: read the held-out stream's first that many
    batches of 2 x batch_size windows; None = every window."""
    from curator.trainer.data import TokenStream
    from curator.trainer.engine import evaluate

    learner = TrainerLearner(vocab, heldout, budget, episode_steps=1,
                             spec=spec or TrainerSpec(eval_batches=16))
    learner.reset(seed)
    kept = np.flatnonzero(copies)
    stream = np.concatenate([docs[i] for i in np.repeat(kept, copies[kept])])
    learner.train(stream, 0, seed)
    held = TokenStream(heldout, learner.cfg.model.seq_len)
    batch = learner.cfg.batch_size * 2
    n_batches = -(-held.n_windows // batch) if eval_batches is None else eval_batches
    return evaluate(learner.model, held, batch, n_batches)
