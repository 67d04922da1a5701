"""GPT-style decoder: RMSNorm, RoPE, SwiGLU, tied embeddings, DSA attention.

A plain nn.Module: device placement, autocast and compile are applied by the training code.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from curator.trainer.config import DSAConfig, ModelConfig
from curator.trainer.dsa import DSAttention, at_least_fp32, compiled_flex


class Output(NamedTuple):
    logits: Tensor | None  # (B, T, V); None when only the loss was asked for
    loss: Tensor | None  # mean next-token cross entropy (targets == -1 ignored)
    indexer_loss: Tensor | None  # summed indexer KL over layers, training only


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        # norm statistics in fp32 even under bf16/fp16 autocast
        xf = at_least_fp32(x)
        return F.rms_norm(xf, (x.shape[-1],), self.weight.to(xf.dtype), self.eps).to(x.dtype)


class SwiGLU(nn.Module):
    def __init__(self, d_model: int, hidden: int) -> None:
        super().__init__()
        self.gate_up = nn.Linear(d_model, 2 * hidden, bias=False)
        self.down = nn.Linear(hidden, d_model, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        gate, up = self.gate_up(x).chunk(2, dim=-1)
        return self.down(F.silu(gate) * up)


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig, dsa: DSAConfig) -> None:
        super().__init__()
        self.attn_norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.attn = DSAttention(
            cfg.d_model,
            cfg.n_head,
            block_size=dsa.block_size,
            top_k_blocks=dsa.top_k_blocks,
            window_blocks=dsa.window_blocks,
            sink_blocks=dsa.sink_blocks,
            indexer_heads=dsa.indexer_heads,
            indexer_dim=dsa.indexer_dim,
            rope_theta=cfg.rope_theta,
            sparse=dsa.enabled,
            selection=dsa.selection,
            gate=dsa.gate,
        )
        self.mlp_norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.mlp = SwiGLU(cfg.d_model, cfg.hidden)

    def forward(self, x: Tensor, dense: bool) -> tuple[Tensor, Tensor | None]:
        a, kl = self.attn(self.attn_norm(x), dense=dense)
        x = x + a
        return x + self.mlp(self.mlp_norm(x)), kl


class GPT(nn.Module):
    def __init__(self, cfg: ModelConfig, dsa: DSAConfig) -> None:
        super().__init__()
        if cfg.vocab_size is None:
            raise ValueError("ModelConfig.vocab_size is None; resolve it from the data first")
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg, dsa) for _ in range(cfg.n_layer))
        self.norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.init_weights(torch.initial_seed())

    def init_weights(self, seed: int) -> None:
        """Normal init from `seed` in independent streams: one for the model's own weights, one
        each for the DSA extras (indexer, gate). Dense, DSA and gated models of one seed then
        start from the same weights wherever they share them, so an ablation compares
        attention, not inits."""
        main, indexer, gate = (torch.Generator().manual_seed(seed + i) for i in range(3))
        for name, m in self.named_modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                gen = indexer if ".indexer" in name else gate if name.endswith(".gate") else main
                nn.init.normal_(m.weight, 0.0, self.cfg.init_std, generator=gen)
        # residual projections scaled down with depth (GPT-2) so the stream starts near unit size
        for name, p in self.named_parameters():
            if name.endswith(("attn.proj.weight", "mlp.down.weight")):
                nn.init.normal_(p, 0.0, self.cfg.init_std / (2 * self.cfg.n_layer) ** 0.5,
                                generator=main)

    def forward(
        self,
        idx: Tensor,
        targets: Tensor | None = None,
        dense: bool = False,
        reduction: str = "mean",
    ) -> Output:
        """idx (B, T) -> logits; with targets, the loss (per token when reduction='none')."""
        x = self.embed(idx)
        kls = []
        for block in self.blocks:
            x, kl = block(x, dense)
            if kl is not None:
                kls.append(kl)
        # tied embeddings: the output head is the embedding matrix
        logits = F.linear(self.norm(x), self.embed.weight)
        indexer_loss = torch.stack(kls).sum() if kls else None
        if targets is None:
            return Output(logits, None, indexer_loss)
        loss = F.cross_entropy(
            logits.float().flatten(0, 1), targets.flatten(), ignore_index=-1, reduction=reduction
        )
        if reduction == "none":
            loss = loss.view(targets.shape)
        return Output(None, loss, indexer_loss)

    def indexer_parameters(self) -> list[nn.Parameter]:
        return [p for n, p in self.named_parameters() if ".indexer." in n]

    def model_parameters(self) -> list[nn.Parameter]:
        return [p for n, p in self.named_parameters() if ".indexer." not in n]

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def set_flex(self, enabled: bool) -> None:
        """Route sparse attention through flex_attention (CUDA) instead of the gather path."""
        if enabled:
            compiled_flex()  # now, not inside the first traced forward (see compiled_flex)
        for block in self.blocks:
            block.attn.use_flex = enabled
