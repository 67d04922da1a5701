"""DSA: dynamic sparse attention over key blocks chosen by a lightning indexer.

Per query block the layer attends to: its own (diagonal) block, `window_blocks` blocks right
before it, the first `sink_blocks` blocks, and the `top_k_blocks` other past blocks that a small
indexer scores highest (DeepSeek-V3.2 lightning indexer over block-pooled keys, NSA-style blocks).

Causality of the *selection*: query block `b` is scored by the indexer query of token `b*bs - 1`
(the last token of block `b-1`), which is strictly in the past of every token in block `b`, and
only key blocks `< b` are candidates. Pooling the scores of all queries *inside* `b` would let
token `b*bs` pick blocks using information from tokens after it.

Two execution paths give the same numbers: `sparse_attention_gather` (gathers the selected key
blocks per query block; runs anywhere, with autograd -- FlexAttention has no CPU backward in
torch 2.13) and `sparse_attention_flex` (CUDA `flex_attention` with a `BlockMask` built from the
selection; compiled once, fixed shapes).

Dynamic gating (`gate=True`, NSA-style): a second branch attends only to the query block's own
and `window_blocks` preceding blocks, and a learned per-token, per-head sigmoid gate mixes the
two: `y = g_sel * attn(selected blocks) + g_win * attn(window blocks)`. Each branch has its own
softmax, so the local branch is not crowded out by distant blocks and the model can choose, per
head and token, how much to trust the selection. In dense mode (warm-up, dense eval) the first
branch is full causal attention, so the gate trains from step 0.

`selection` says who picks the top-k blocks: `indexer` (DSA), `random` (random past blocks, a
baseline for whether the indexer's choice matters) or `window` (no top-k at all: sink + window +
diagonal, a baseline for whether any distant block matters). Only `indexer` has an indexer.

The indexer is trained only by `indexer_kl` (KL to the main attention's head-summed,
block-pooled distribution, on the same block-end queries it scores with); it sees a detached
input so the KL never trains the model, and selection is an argmax under no_grad so the LM loss
never trains the indexer.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def at_least_fp32(t: Tensor) -> Tensor:
    """Upcast half types to fp32 for softmax/rope; leave fp64 alone (gradcheck runs in fp64)."""
    return t.to(torch.promote_types(t.dtype, torch.float32))


class Selection(NamedTuple):
    indices: Tensor  # (B, n_blocks, S) long: chosen key block per slot, valid slots first
    valid: Tensor  # (B, n_blocks, S) bool: slot holds a real (causal, distinct) block


def n_slots(n_blocks: int, top_k_blocks: int, window_blocks: int, sink_blocks: int) -> int:
    """Key blocks attended per query block (fixed, so shapes never change across steps)."""
    return min(n_blocks, 1 + window_blocks + sink_blocks + top_k_blocks)


def select_blocks(
    scores: Tensor, top_k_blocks: int, window_blocks: int, sink_blocks: int
) -> Selection:
    """Top-k selection with forced diagonal/window/sink blocks.

    `scores` (B, n_blocks, n_blocks): score of key block `k` for query block `q`, meaningful for
    `k < q` only (entries at `k >= q` are ignored). Forced blocks get +inf, future blocks -inf,
    so one `topk` returns forced blocks first, then the best candidates, then padding; distinct
    indices come for free because topk never repeats a column.
    """
    _, nq, nk = scores.shape
    q = torch.arange(nq, device=scores.device)[:, None]
    k = torch.arange(nk, device=scores.device)[None, :]
    causal = k <= q
    forced = causal & ((k == q) | (k < sink_blocks) | (q - k <= window_blocks))
    inf = torch.tensor(float("inf"), device=scores.device)
    prio = torch.where(forced, inf, torch.where(k < q, scores.float(), -inf))
    top, idx = prio.topk(n_slots(nk, top_k_blocks, window_blocks, sink_blocks), dim=-1)
    return Selection(idx, top > -inf)


def window_selection(
    batch: int, n_blocks: int, window_blocks: int, device: torch.device
) -> Selection:
    """The gate's local branch: each query block's own block and `window_blocks` before it."""
    scores = torch.zeros(batch, n_blocks, n_blocks, device=device)
    return select_blocks(scores, 0, window_blocks, 0)


def random_scores(batch: int, n_blocks: int, device: torch.device) -> Tensor:
    """Scores for `selection=random`: i.i.d. uniform, so top-k picks random past blocks."""
    return torch.rand(batch, n_blocks, n_blocks, device=device)


def sparse_attention_gather(
    q: Tensor, k: Tensor, v: Tensor, sel: Selection, block_size: int
) -> Tensor:
    """Reference sparse attention: gather the selected key/value blocks, masked softmax.

    q, k, v: (B, H, T, D) with T a multiple of block_size. Cost O(T * S * block_size) instead of
    O(T^2). Softmax runs in fp32 whatever the autocast dtype.
    """
    B, H, T, D = q.shape
    nb, bs, S = T // block_size, block_size, sel.indices.shape[-1]
    batch = torch.arange(B, device=q.device)[:, None, None]
    # (B, nb, bs, H, D) views indexed by [batch, block] -> (B, nb, S, bs, H, D)
    kb = k.transpose(1, 2).reshape(B, nb, bs, H, D)[batch, sel.indices]
    vb = v.transpose(1, 2).reshape(B, nb, bs, H, D)[batch, sel.indices]
    kb = kb.permute(0, 4, 1, 2, 3, 5).reshape(B, H, nb, S * bs, D)
    vb = vb.permute(0, 4, 1, 2, 3, 5).reshape(B, H, nb, S * bs, D)
    att = q.view(B, H, nb, bs, D) @ kb.transpose(-1, -2)  # (B, H, nb, bs, S*bs)
    offs = torch.arange(bs, device=q.device)
    kpos = (sel.indices[..., None] * bs + offs).reshape(B, nb, 1, S * bs)
    qpos = torch.arange(T, device=q.device).view(1, nb, bs, 1)
    ok = (kpos <= qpos) & sel.valid.repeat_interleave(bs, dim=-1)[:, :, None, :]
    att = at_least_fp32(att).mul(1.0 / math.sqrt(D)).masked_fill(~ok[:, None], float("-inf"))
    y = att.softmax(dim=-1).to(v.dtype) @ vb
    return y.reshape(B, H, T, D)


def flex_block_mask(sel: Selection, seq_len: int, block_size: int):  # -> BlockMask
    """BlockMask from a selection: off-diagonal picks are full blocks, the diagonal is partial.

    The mask_mod itself also encodes the selection (causal AND chosen block): flex defines its
    semantics by mask_mod -- the eager/CPU path ignores block sparsity entirely -- while the
    compiled kernels use the block lists to skip work and run mask_mod on partial blocks only.
    """
    from torch.nn.attention.flex_attention import BlockMask

    B, nb, _ = sel.indices.shape
    chosen = torch.zeros(B, nb, nb, dtype=torch.bool, device=sel.indices.device)
    chosen.scatter_(-1, sel.indices, sel.valid)  # padding slots scatter False
    diag = torch.eye(nb, dtype=torch.bool, device=chosen.device).expand(B, nb, nb)
    full = chosen & ~diag

    def ordered(mask: Tensor) -> tuple[Tensor, Tensor]:
        # flex wants, per row, the count and the column ids with wanted columns first
        num = mask.sum(-1, dtype=torch.int32)[:, None]
        idx = torch.argsort((~mask).to(torch.int8), dim=-1, stable=True).to(torch.int32)
        return num, idx[:, None]

    def selected_causal(b: Tensor, h: Tensor, q_idx: Tensor, kv_idx: Tensor) -> Tensor:
        return (q_idx >= kv_idx) & chosen[b, q_idx // block_size, kv_idx // block_size]

    kv_num, kv_idx = ordered(diag.contiguous())
    full_num, full_idx = ordered(full)
    return BlockMask.from_kv_blocks(
        kv_num,
        kv_idx,
        full_num,
        full_idx,
        BLOCK_SIZE=block_size,
        mask_mod=selected_causal,
        seq_lengths=(seq_len, seq_len),
    )


_compiled_flex = None

# Sparse block size the flex kernels can tile on CUDA. Inductor's default flex tiles on sm80/sm90
# are up to 128 wide (BLOCK_M/N fwd, BLOCK_N1/M2 bwd; torch/_inductor/template_heuristics/triton.py)
# and the lowering refuses a BlockMask block that is not a multiple of them, so smaller blocks
# must take the gather path.
FLEX_BLOCK_MULTIPLE = 128


def use_flex(kernel: str, block_size: int, device_type: str) -> bool:
    """Whether sparse attention runs on flex_attention: `kernel` is DSAConfig.kernel."""
    if kernel == "gather":
        return False
    fits = device_type == "cuda" and block_size % FLEX_BLOCK_MULTIPLE == 0
    if kernel == "flex" and not fits:
        why = (
            "flex_attention has no CPU backward in torch 2.13"
            if device_type != "cuda"
            else f"dsa.block_size={block_size} is not a multiple of {FLEX_BLOCK_MULTIPLE}, the "
            "flex kernel's tile on this GPU"
        )
        raise ValueError(
            f"dsa.kernel=flex cannot run here: {why}; set dsa.kernel=auto (gather where flex "
            f"cannot run) or dsa.block_size to a multiple of {FLEX_BLOCK_MULTIPLE} on CUDA"
        )
    return fits


def compiled_flex():  # -> the compiled flex_attention
    """flex_attention compiled once per process. Made before a compiled model first runs
    (`GPT.set_flex`): created inside traced code, the `_compiled_flex is None` check would
    become a dynamo guard that fails on the next call and retraces the whole model once."""
    global _compiled_flex
    if _compiled_flex is None:
        from torch.nn.attention.flex_attention import flex_attention

        # dynamic=False: training shapes are fixed, so this compiles once and never again
        _compiled_flex = torch.compile(flex_attention, dynamic=False)
    return _compiled_flex


def sparse_attention_flex(
    q: Tensor, k: Tensor, v: Tensor, sel: Selection, block_size: int, compiled: bool = True
) -> Tensor:
    """flex_attention over the selected blocks (CUDA path; eager forward also runs on CPU)."""
    from torch.nn.attention.flex_attention import flex_attention

    mask = flex_block_mask(sel, q.shape[-2], block_size)
    attend = compiled_flex() if compiled else flex_attention
    return attend(q, k, v, block_mask=mask)


def rope(x: Tensor, theta: float) -> Tensor:
    """Rotary position embedding on (B, H, T, D), computed in fp32."""
    T, D = x.shape[-2], x.shape[-1]
    xf = at_least_fp32(x)
    inv = theta ** (-torch.arange(0, D, 2, device=x.device, dtype=xf.dtype) / D)
    ang = torch.arange(T, device=x.device, dtype=xf.dtype)[:, None] * inv
    cos, sin = ang.cos(), ang.sin()
    x1, x2 = xf[..., 0::2], xf[..., 1::2]
    out = torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1).flatten(-2)
    return out.to(x.dtype)


class Indexer(nn.Module):
    """Lightning indexer: score(t, blk) = sum_j w_tj * relu(q_tj . k_blk), k_blk block-pooled."""

    def __init__(self, d_model: int, n_heads: int = 4, head_dim: int = 32) -> None:
        super().__init__()
        self.n_heads, self.head_dim = n_heads, head_dim
        self.wq = nn.Linear(d_model, n_heads * head_dim, bias=False)
        self.wk = nn.Linear(d_model, head_dim, bias=False)
        self.wh = nn.Linear(d_model, n_heads, bias=False)

    def forward(self, x: Tensor, block_size: int) -> Tensor:
        """Block scores (B, n_blocks, n_blocks) in fp32: row q scored by token q*bs - 1.

        Row 0 has no strictly-past query; it is all zeros (only its diagonal is a candidate).
        """
        B, T, _ = x.shape
        nb = T // block_size
        with torch.autocast(x.device.type, enabled=False):
            x = x.float()
            xq = x[:, block_size - 1 :: block_size]  # last token of each block
            q = self.wq(xq).view(B, nb, self.n_heads, self.head_dim)
            w = self.wh(xq) / math.sqrt(self.n_heads)
            kblk = self.wk(x).view(B, nb, block_size, self.head_dim).mean(2)
            dots = torch.einsum("brhd,bkd->brhk", q, kblk) / math.sqrt(self.head_dim)
            raw = torch.einsum("brh,brhk->brk", w, F.relu(dots))
        # shift: the query ending block r scores candidates for block r+1
        return torch.cat([torch.zeros_like(raw[:, :1]), raw[:, :-1]], dim=1)


class DSAttention(nn.Module):
    """Causal self-attention with DSA; `forward(x, dense=True)` is full attention, same weights.

    `use_flex` is set by the training code (model separate from how it runs): the CUDA path.
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        block_size: int = 64,
        top_k_blocks: int = 4,
        window_blocks: int = 1,
        sink_blocks: int = 1,
        indexer_heads: int = 4,
        indexer_dim: int = 32,
        rope_theta: float = 10000.0,
        sparse: bool = True,
        selection: str = "indexer",
        gate: bool = False,
    ) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} not divisible by n_heads={n_heads}")
        self.n_heads, self.head_dim = n_heads, d_model // n_heads
        self.block_size, self.top_k_blocks = block_size, top_k_blocks
        self.window_blocks, self.sink_blocks = window_blocks, sink_blocks
        self.rope_theta = rope_theta
        if selection not in ("indexer", "random", "window"):
            raise ValueError(f"selection={selection!r}: use indexer, random or window")
        self.sparse, self.selection = sparse, selection
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=False)
        self.proj = nn.Linear(d_model, d_model, bias=False)
        has_indexer = sparse and selection == "indexer"
        self.indexer = Indexer(d_model, indexer_heads, indexer_dim) if has_indexer else None
        # gate logits: [selected branch heads | window branch heads] per token; zero bias = 0.5
        self.gate = nn.Linear(d_model, 2 * n_heads) if sparse and gate else None
        if self.gate is not None:
            nn.init.zeros_(self.gate.bias)
        self.use_flex = False

    def qkv_heads(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        B, T, C = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.n_heads, self.head_dim).unbind(2)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))
        return rope(q, self.rope_theta), rope(k, self.rope_theta), v

    @torch.no_grad()
    def select(self, x: Tensor) -> Selection:
        """Block selection (no_grad, fp32) by `selection`; x length a multiple of bs."""
        B, nb = x.shape[0], x.shape[1] // self.block_size
        if self.selection == "indexer":
            assert self.indexer is not None
            scores = self.indexer(x, self.block_size)
            top_k = self.top_k_blocks
        elif self.selection == "random":
            scores, top_k = random_scores(B, nb, x.device), self.top_k_blocks
        else:  # window: forced blocks only
            scores, top_k = torch.zeros(B, nb, nb, device=x.device), 0
        return select_blocks(scores, top_k, self.window_blocks, self.sink_blocks)

    def attend(self, q: Tensor, k: Tensor, v: Tensor, sel: Selection) -> Tensor:
        fn = sparse_attention_flex if self.use_flex else sparse_attention_gather
        return fn(q, k, v, sel, self.block_size)

    def forward(self, x: Tensor, dense: bool = False) -> tuple[Tensor, Tensor | None]:
        """Returns (output, indexer KL loss or None); the KL is computed only while training."""
        B, T, C = x.shape
        sparse = not dense and self.sparse
        pad = (-T) % self.block_size if (sparse or self.gate is not None) else 0
        if pad:
            # causal: zeros appended at the end change nothing before them; cut off below
            x = F.pad(x, (0, 0, 0, pad))
        q, k, v = self.qkv_heads(x)
        kl = None
        if self.indexer is not None and self.training and torch.is_grad_enabled():
            kl = self.indexer_kl(x.detach(), q, k)  # detached: the KL must not train the model
        if sparse:
            y = self.attend(q, k, v, self.select(x))
        else:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        if self.gate is not None:
            nb = x.shape[1] // self.block_size
            local = self.attend(q, k, v, window_selection(B, nb, self.window_blocks, x.device))
            # (B, T, 2H) -> (2, B, H, T, 1): one gate per branch, head and token
            g = torch.sigmoid(self.gate(x)).view(B, x.shape[1], 2, self.n_heads)
            g = g.permute(2, 0, 3, 1)[..., None]
            y = g[0] * y + g[1] * local
        y = y.transpose(1, 2).reshape(B, x.shape[1], C)[:, :T]
        return self.proj(y), kl

    def indexer_kl(self, x: Tensor, q: Tensor, k: Tensor) -> Tensor:
        """KL(main attention || indexer) over key blocks, at the block-end queries.

        Target: softmax of the main attention for token r*bs-1 (queries the indexer scores with),
        summed over heads and pooled per key block; detached. Only the indexer gets gradients.
        """
        assert self.indexer is not None
        bs = self.block_size
        T = (x.shape[1] // bs) * bs
        if T < 2 * bs:
            return x.new_zeros((), dtype=torch.float32)
        x, q, k = x[:, :T], q[:, :, :T], k[:, :, :T]
        nb = T // bs
        with torch.no_grad():
            qe = q[:, :, bs - 1 :: bs].float()  # (B, H, nb, D), query ending block r
            att = qe @ k.float().transpose(-1, -2) / math.sqrt(self.head_dim)  # (B, H, nb, T)
            pos = torch.arange(T, device=x.device)
            end = pos[bs - 1 :: bs]
            att = att.masked_fill(pos[None, :] > end[:, None], float("-inf")).softmax(-1)
            target = att.mean(1).view(-1, nb, nb, bs).sum(-1)  # (B, r, key block)
            target = target[:, :-1]  # row r targets the selection of block r+1
        scores = self.indexer(x, bs)[:, 1:]  # (B, nb-1, nb): row r+1 <- query ending block r
        r = torch.arange(1, nb, device=x.device)[:, None]
        kb = torch.arange(nb, device=x.device)[None, :]
        logp = scores.masked_fill(kb >= r, float("-inf")).log_softmax(-1)
        logp = logp.masked_fill(kb >= r, 0.0)  # avoid 0 * -inf in the sum
        kl = (target * (target.clamp_min(1e-12).log() - logp)).sum(-1)
        return kl.mean()
