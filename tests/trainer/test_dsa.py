"""DSA correctness: oracle equality, selection invariants, causality, gradients, flex == gather."""

from __future__ import annotations

import pytest
import torch

from curator.trainer.dsa import (
    DSAttention,
    Selection,
    flex_block_mask,
    n_slots,
    select_blocks,
    sparse_attention_flex,
    sparse_attention_gather,
)


def make_attn(top_k: int, seed: int = 0, **kw: int) -> DSAttention:
    torch.manual_seed(seed)
    attn = DSAttention(
        64,
        4,
        block_size=16,
        top_k_blocks=top_k,
        window_blocks=1,
        sink_blocks=1,
        indexer_heads=2,
        indexer_dim=16,
        **kw,
    )
    # larger indexer weights than the 0.02-ish default so scores really differ between blocks
    for p in attn.indexer.parameters():
        torch.nn.init.normal_(p, 0.0, 0.5)
    return attn.eval()


@pytest.mark.parametrize("T", [128, 120])  # 120: not a block multiple, exercises padding
def test_full_k_sparse_equals_dense(T: int) -> None:
    attn = make_attn(top_k=64)
    x = torch.randn(2, T, 64)
    with torch.no_grad():
        dense, _ = attn(x, dense=True)
        sparse, _ = attn(x)
    torch.testing.assert_close(sparse, dense, rtol=1e-5, atol=1e-6)


def test_sparse_differs_from_dense_when_k_is_small() -> None:
    # guards the test above: with few blocks kept the paths must really differ
    attn = make_attn(top_k=1)
    x = torch.randn(2, 128, 64)
    with torch.no_grad():
        assert (attn(x)[0] - attn(x, dense=True)[0]).abs().max() > 1e-3


def test_selection_invariants() -> None:
    torch.manual_seed(1)
    nb, top_k, window, sink = 12, 3, 2, 1
    scores = torch.randn(3, nb, nb)
    sel = select_blocks(scores, top_k, window, sink)
    S = n_slots(nb, top_k, window, sink)
    assert sel.indices.shape == (3, nb, S)
    for b in range(3):
        for q in range(nb):
            chosen = sel.indices[b, q][sel.valid[b, q]].tolist()
            assert len(chosen) == min(q + 1, S)  # count
            assert len(set(chosen)) == len(chosen)  # no duplicates
            assert max(chosen) <= q  # nothing in the future
            forced = {q, *range(min(sink, q + 1)), *range(max(0, q - window), q)}
            assert forced <= set(chosen)  # diagonal, window and sink always in
            free = [k for k in range(q) if k not in forced]
            picked = [k for k in chosen if k not in forced]
            best = sorted(free, key=lambda k: -scores[b, q, k].item())[: len(picked)]
            assert sorted(picked) == sorted(best)  # the rest are the indexer's top scores
    # valid slots come first (flex and gather both rely on it)
    assert (sel.valid.int().diff(dim=-1) <= 0).all()


def test_selection_ignores_scores_of_future_blocks() -> None:
    torch.manual_seed(2)
    scores = torch.randn(1, 8, 8)
    poisoned = scores.clone()
    poisoned[0][torch.ones(8, 8).triu().bool()] = 1e9  # k >= q: must not matter
    a, b = select_blocks(scores, 2, 1, 1), select_blocks(poisoned, 2, 1, 1)
    assert torch.equal(a.indices[a.valid], b.indices[b.valid])


@pytest.mark.parametrize("t", [37, 47, 48, 100])  # inside a block, block end, block start
def test_perturbing_the_future_leaves_the_past_unchanged(t: int) -> None:
    attn = make_attn(top_k=1)
    x = torch.randn(2, 128, 64)
    x2 = x.clone()
    x2[:, t + 1 :] = torch.randn_like(x2[:, t + 1 :]) * 3
    with torch.no_grad():
        y, _ = attn(x)
        y2, _ = attn(x2)
        sel, sel2 = attn.select(x), attn.select(x2)
    torch.testing.assert_close(y[:, : t + 1], y2[:, : t + 1], rtol=0, atol=1e-6)
    assert not torch.allclose(y[:, t + 1 :], y2[:, t + 1 :])
    # the selection of the block holding t is identical too (it was made from the past)
    qb = t // 16
    assert torch.equal(sel.indices[:, : qb + 1], sel2.indices[:, : qb + 1])


def test_gradcheck_reference_path_float64() -> None:
    torch.manual_seed(3)
    B, H, T, D, bs = 1, 2, 32, 4, 8
    q, k, v = (torch.randn(B, H, T, D, dtype=torch.float64, requires_grad=True) for _ in "qkv")
    sel = select_blocks(torch.randn(B, T // bs, T // bs), 1, 0, 1)
    assert torch.autograd.gradcheck(
        lambda q, k, v: sparse_attention_gather(q, k, v, sel, bs), (q, k, v), eps=1e-6, atol=1e-5
    )


def test_lm_loss_does_not_train_indexer_and_kl_does_not_train_model() -> None:
    attn = make_attn(top_k=1).train()
    x = torch.randn(2, 128, 64, requires_grad=True)
    y, kl = attn(x)
    assert kl is not None and kl.item() > 0
    y.square().mean().backward(retain_graph=True)
    assert all(p.grad is None for p in attn.indexer.parameters())
    assert attn.qkv.weight.grad is not None and x.grad is not None
    attn.zero_grad(set_to_none=True)
    x.grad = None
    kl.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in attn.indexer.parameters())
    assert attn.qkv.weight.grad is None and attn.proj.weight.grad is None and x.grad is None


def test_indexer_kl_training_lowers_the_kl() -> None:
    attn = make_attn(top_k=1).train()
    x = torch.randn(4, 128, 64)
    opt = torch.optim.Adam(attn.indexer.parameters(), lr=1e-2)
    first = None
    for _ in range(30):
        _, kl = attn(x)
        first = first if first is not None else kl.item()
        opt.zero_grad()
        kl.backward()
        opt.step()
    assert kl.item() < 0.7 * first


@pytest.mark.filterwarnings("ignore:flex_attention called without torch.compile")
def test_flex_forward_matches_gather_on_cpu() -> None:
    # FlexAttention's CPU forward runs (eager); its CPU backward does not exist in torch 2.13
    attn = make_attn(top_k=2)
    x = torch.randn(2, 128, 64)
    with torch.no_grad():
        q, k, v = attn.qkv_heads(x)
        sel = attn.select(x)
        ref = sparse_attention_gather(q, k, v, sel, 16)
        out = sparse_attention_flex(q, k, v, sel, 16, compiled=False)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)


def test_flex_block_mask_lists_exactly_the_selection() -> None:
    sel = select_blocks(torch.randn(2, 8, 8), 2, 1, 1)
    dense = flex_block_mask(sel, 128, 16).to_dense()[:, 0]  # (B, nb, nb) 0/1
    want = torch.zeros(2, 8, 8, dtype=torch.int32)
    want.scatter_(-1, sel.indices, sel.valid.int())
    assert torch.equal(dense.int(), want)


def test_selection_type_is_fixed_shape() -> None:
    sel = select_blocks(torch.randn(1, 4, 4), 10, 1, 1)
    assert isinstance(sel, Selection) and sel.indices.shape == (1, 4, 4)
