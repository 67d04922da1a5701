"""The replay memory (policies/replay.py): ring order, truncated importance weights, and a
gradient that flows through the current log-prob only."""

import numpy as np
import pytest
import torch

from policies.replay import ReplayBuffer, Transitions, replay_loss, truncated_is_weight


def _transitions(ids: list[int], docs: int = 3, features: int = 2) -> Transitions:
    """Transitions tagged by id: the advantage is the id, the obs and actions are filled with it."""
    n = len(ids)
    tag = torch.tensor(ids, dtype=torch.float32)
    return Transitions(tag[:, None, None].expand(n, docs, features).clone(),
                       tag[:, None].expand(n, docs).clone(), tag.clone(), -tag)


def test_ring_buffer_keeps_the_newest_in_insertion_order():
    buf = ReplayBuffer(capacity=5, obs_shape=(3, 2))
    buf.add(_transitions([0, 1, 2]))
    assert len(buf) == 3 and buf.in_order().advantage.tolist() == [0, 1, 2]
    buf.add(_transitions([3, 4, 5, 6]))  # wraps: 0 and 1 are overwritten
    held = buf.in_order()
    assert len(buf) == 5 and held.advantage.tolist() == [2, 3, 4, 5, 6]
    assert held.logp_behaviour.tolist() == [-2, -3, -4, -5, -6]
    assert (held.obs[:, 0, 0] == held.advantage).all()
    assert (held.actions[:, 0] == held.advantage).all()
    buf.add(_transitions(list(range(10, 18))))  # more than capacity at once: newest 5 kept
    assert buf.in_order().advantage.tolist() == [13, 14, 15, 16, 17]


def test_sample_draws_held_transitions_reproducibly():
    a, b = ReplayBuffer(8, (3, 2), seed=1), ReplayBuffer(8, (3, 2), seed=1)
    for buf in (a, b):
        with pytest.raises(ValueError, match="empty"):
            buf.sample(4)
        buf.add(_transitions([5, 6, 7]))
    got = a.sample(64).advantage
    assert set(got.tolist()) == {5, 6, 7}
    assert torch.equal(got, b.sample(64).advantage)


def test_importance_weight_is_truncated_at_clip():
    now = torch.tensor([0.0, 1.0, -1.0, 5.0])
    behaviour = torch.zeros(4)
    w = truncated_is_weight(now, behaviour, clip=2.0)
    np.testing.assert_allclose(w.numpy(), [1.0, 2.0, np.exp(-1.0), 2.0], rtol=1e-6)


def test_no_gradient_flows_through_the_weight():
    logp_now = torch.tensor([0.5, -0.3, 2.0], requires_grad=True)
    batch = Transitions(torch.zeros(3, 1, 1), torch.zeros(3, 1), torch.tensor([1.0, -2.0, 0.5]),
                        torch.zeros(3))
    loss, weight = replay_loss(logp_now, batch, clip=2.0)
    assert not weight.requires_grad
    loss.backward()
    # d/dlogp of -(w * A * logp).mean() with w held constant
    expected = -(weight * batch.advantage) / 3
    torch.testing.assert_close(logp_now.grad, expected)
    np.testing.assert_allclose(weight.numpy(), [np.exp(0.5), np.exp(-0.3), 2.0], rtol=1e-6)
