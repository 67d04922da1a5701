"""The policy/value network: a per-document MLP shared across the candidates of a step.

The keep logit of a document depends on its own features only, so the same network scores one
document at a time inside the scorer (its keep logit is the `quality_score`: a logit, not a
probability -- sigmoid(quality_score) is the keep probability the policy was trained to sample)
and a whole candidate batch inside the environment (independent Bernoulli keep/drop per
document). The value head reads the mean of the candidates' hidden vectors: the value of a step
depends on the batch.

keep logit = MLP(x) + w . x ("wide and deep"): the linear path `w` starts at zero and learns
from the reward like the MLP. It lets a noisy reward weigh one informative column (the DSIR
weight, a rule signal) directly, which the tanh MLP from its small init learns slowly:
benchmarks/agent_diagnostics.py (deduplicated pools), 50% noise: AUC 0.903 without it,
0.927 with it.

With `upweight` the net has a second head: the action per document is then categorical over
{drop 0, keep 1, upweight 2}, factored as keep ~ Bernoulli(sigmoid(keep logit)) and, given
keep, upweight ~ Bernoulli(sigmoid(up logit)). The keep logit stays the quality score, so the
scorer's ranking and thresholds mean what they meant with two actions. `ActionDist` is the one
place that turns logits into samples, log-probs and entropies for either action kind.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.distributions import Bernoulli

DROP, KEEP, UPWEIGHT = 0, 1, 2


@dataclass(frozen=True)
class ActionDist:
    """Per-document action distribution: keep/drop Bernoulli, or with `up` the factored
    {drop, keep, upweight} categorical. Shapes (..., docs); log_prob and entropy are per
    document (sum over the docs for a step's joint)."""

    keep: Bernoulli
    up: Bernoulli | None = None

    def sample(self, shape: torch.Size | tuple[int, ...] = ()) -> Tensor:
        """Actions as floats: 0/1, or 0/1/2 with an upweight head."""
        kept = self.keep.sample(shape)
        if self.up is None:
            return kept
        return kept * (1.0 + self.up.sample(shape))

    def log_prob(self, actions: Tensor) -> Tensor:
        if self.up is None:
            return self.keep.log_prob(actions)
        kept = (actions >= KEEP).to(self.keep.logits.dtype)
        up = (actions == UPWEIGHT).to(self.keep.logits.dtype)
        # the upweight decision exists only for kept documents
        return self.keep.log_prob(kept) + kept * self.up.log_prob(up)

    def entropy(self) -> Tensor:
        """Exact entropy of the factored categorical: H(keep) + p(keep) * H(up | keep)."""
        if self.up is None:
            return self.keep.entropy()
        return self.keep.entropy() + self.keep.probs * self.up.entropy()

    def greedy(self) -> Tensor:
        """Most likely choice of each factor: keep if p > 0.5, then upweight if p > 0.5."""
        kept = (self.keep.logits > 0).to(self.keep.logits.dtype)
        if self.up is None:
            return kept
        return kept * (1.0 + (self.up.logits > 0).to(kept.dtype))


class PolicyNet(nn.Module):
    def __init__(self, n_features: int, hidden: int = 64, upweight: bool = False) -> None:
        super().__init__()
        self.n_features, self.hidden, self.upweight = n_features, hidden, upweight
        self.body = nn.Sequential(
            nn.Linear(n_features, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh()
        )
        self.keep_head = nn.Linear(hidden, 1)
        self.value_head = nn.Linear(hidden, 1)
        # small last-layer init (cleanrl's std=0.01): start near keep-prob 0.5 everywhere
        nn.init.normal_(self.keep_head.weight, std=0.01)
        nn.init.zeros_(self.keep_head.bias)
        # a zero tensor, not nn.Linear, whose init would draw from the torch RNG: a seeded
        # policy starts from the same weights as before the linear path existed
        self.linear = nn.Parameter(torch.zeros(n_features))
        if upweight:
            # built last: a keep/drop net draws exactly the init it drew before this head
            self.up_head = nn.Linear(hidden, 1)
            nn.init.normal_(self.up_head.weight, std=0.01)
            nn.init.zeros_(self.up_head.bias)

    def keep_logits(self, obs: Tensor) -> Tensor:
        """(..., docs, features) -> (..., docs) keep logits."""
        return self.keep_head(self.body(obs)).squeeze(-1) + obs @ self.linear

    def up_logits(self, obs: Tensor) -> Tensor:
        """(..., docs, features) -> (..., docs) upweight-given-keep logits."""
        if not self.upweight:
            raise ValueError("this policy has no upweight head (trained with env.upweight=false)")
        return self.up_head(self.body(obs)).squeeze(-1)

    def value(self, obs: Tensor) -> Tensor:
        """(..., docs, features) -> (...) state value."""
        return self.value_head(self.body(obs).mean(dim=-2)).squeeze(-1)

    def dist(self, obs: Tensor, upweight: bool | None = None, center: float = 0.0,
             temperature: float = 1.0) -> ActionDist:
        """The action distribution; `upweight` (default: whether the net has the head) picks the
        action kind; keep logits are sampled as (logit - center) / temperature (see
        reinforce.train_policy's logit_affine), the upweight logits as they are."""
        upweight = self.upweight if upweight is None else upweight
        keep = self.keep_logits(obs)
        if (center, temperature) != (0.0, 1.0):
            keep = (keep - center) / temperature
        up = Bernoulli(logits=self.up_logits(obs)) if upweight else None
        return ActionDist(Bernoulli(logits=keep), up)

    @torch.no_grad()
    def score(self, x: Tensor) -> Tensor:
        """(n, features) -> (n,) quality score = keep logit (higher = better; not a
        probability: sigmoid of it is)."""
        return self.keep_logits(x)
