"""Replay memory for REINFORCE: off-policy reuse of past transitions (the seeds' design).

A transition is one sampled selection of one step: the normalized observation (docs x
features), the action of every document, the advantage as computed when it was fresh, and
the behaviour log-prob (the joint log-prob of the action under the policy that sampled it).
Replaying it later is an off-policy estimate, corrected by the importance ratio
pi_now(a|s) / pi_behaviour(a|s) truncated at `clip` (V-trace's rho-bar, ACER's truncation):
truncation bounds the variance a selection now far likelier than when it was sampled would
bring (the joint ratio over 32 documents swings widely), at the price of some bias. The ratio
is a weight, never a path for the gradient: the gradient is weight * advantage *
grad log pi_now(a|s), the usual truncated-IS policy gradient.

A ring buffer of preallocated tensors: adding and sampling are index operations, and the
oldest transitions are the ones overwritten.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor


@dataclass(frozen=True)
class Transitions:
    obs: Tensor  # (n, docs, features) float32
    actions: Tensor  # (n, docs) float32: 0/1, or 0/1/2 with the upweight action
    advantage: Tensor  # (n,) float32, as computed when the transition was fresh
    logp_behaviour: Tensor  # (n,) float32, joint log-prob of the action when sampled


class ReplayBuffer:
    def __init__(self, capacity: int, obs_shape: tuple[int, int], seed: int = 0) -> None:
        self.capacity = capacity
        docs, _ = obs_shape
        self._obs = torch.zeros((capacity, *obs_shape))
        self._actions = torch.zeros((capacity, docs))
        self._advantage = torch.zeros(capacity)
        self._logp = torch.zeros(capacity)
        self._next = 0  # slot the next transition goes to
        self.size = 0
        # its own generator: replay never moves the torch RNG the policy samples from
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return self.size

    def add(self, t: Transitions) -> None:
        """Append n transitions; past capacity the oldest are overwritten."""
        n = len(t.advantage)
        if n > self.capacity:  # only the newest `capacity` can survive anyway
            t = Transitions(*(x[-self.capacity:] for x in (t.obs, t.actions, t.advantage,
                                                           t.logp_behaviour)))
            n = self.capacity
        slots = torch.from_numpy((self._next + np.arange(n)) % self.capacity)
        self._obs[slots] = t.obs.detach().float()
        self._actions[slots] = t.actions.detach().float()
        self._advantage[slots] = t.advantage.detach().float()
        self._logp[slots] = t.logp_behaviour.detach().float()
        self._next = (self._next + n) % self.capacity
        self.size = min(self.capacity, self.size + n)

    def _take(self, slots: np.ndarray) -> Transitions:
        idx = torch.from_numpy(slots)
        return Transitions(self._obs[idx], self._actions[idx], self._advantage[idx],
                           self._logp[idx])

    def sample(self, batch: int) -> Transitions:
        """`batch` transitions drawn uniformly with replacement."""
        if self.size == 0:
            raise ValueError("replay buffer is empty; add transitions before sampling")
        return self._take(self.rng.integers(0, self.size, batch))

    def in_order(self) -> Transitions:
        """Every held transition, oldest first."""
        start = self._next if self.size == self.capacity else 0
        return self._take((start + np.arange(self.size)) % self.capacity)


def truncated_is_weight(logp_now: Tensor, logp_behaviour: Tensor, clip: float) -> Tensor:
    """min(clip, pi_now / pi_behaviour), detached: a weight on the gradient, not part of it."""
    return torch.clamp(torch.exp(logp_now.detach() - logp_behaviour), max=clip)


def replay_loss(logp_now: Tensor, batch: Transitions, clip: float
                ) -> tuple[Tensor, Tensor]:
    """Truncated-IS policy-gradient loss of replayed transitions, and their weights."""
    weight = truncated_is_weight(logp_now, batch.logp_behaviour, clip)
    return -(weight * batch.advantage * logp_now).mean(), weight
