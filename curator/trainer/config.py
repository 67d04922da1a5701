"""Typed configuration of a training run (pydantic), loaded like every curator config.

`load_train_config(path, overrides)` reads YAML + `--set key=value`; bad values fail here, before a
single tensor is allocated. Derived values (head size, steps from the token budget) are properties.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from curator.config import Section, load_model


class ModelConfig(Section):
    """GPT-style decoder: RMSNorm, RoPE, SwiGLU MLP, tied embeddings."""

    vocab_size: int | None = Field(
        None, gt=1, description="Vocabulary size; null takes it from the data (tokenizer/header)."
    )
    seq_len: int = Field(256, gt=1, description="Training context length in tokens.")
    n_layer: int = Field(4, gt=0, description="Transformer blocks.")
    n_head: int = Field(4, gt=0, description="Attention heads per block.")
    d_model: int = Field(128, gt=0, description="Residual stream width; divisible by n_head.")
    mlp_hidden: int | None = Field(
        None, gt=0, description="SwiGLU hidden width; null = 8/3 * d_model rounded up to 32."
    )
    rope_theta: float = Field(10000.0, gt=0, description="RoPE base frequency.")
    norm_eps: float = Field(1e-6, gt=0, description="RMSNorm epsilon.")
    init_std: float = Field(0.02, gt=0, description="Std of the normal weight init.")

    @model_validator(mode="after")
    def _heads_divide(self) -> ModelConfig:
        if self.d_model % self.n_head:
            raise ValueError(
                f"d_model={self.d_model} is not divisible by n_head={self.n_head}; "
                "pick d_model a multiple of n_head"
            )
        return self

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_head

    @property
    def hidden(self) -> int:
        return self.mlp_hidden or 32 * -(-(8 * self.d_model // 3) // 32)


class DSAConfig(Section):
    """Dynamic sparse attention: indexer-chosen key blocks + sink + local window."""

    enabled: bool = Field(True, description="Use DSA; false = plain dense model (no indexer).")
    block_size: int = Field(64, gt=0, description="Tokens per query/key block (128 suits GPU).")
    top_k_blocks: int = Field(4, ge=0, description="Past blocks the indexer picks per query block.")
    window_blocks: int = Field(1, ge=0, description="Blocks before the diagonal, always kept.")
    sink_blocks: int = Field(1, ge=0, description="Leading blocks always kept (sink).")
    indexer_heads: int = Field(4, gt=0, description="Lightning-indexer heads.")
    indexer_dim: int = Field(32, gt=0, description="Lightning-indexer head size.")
    dense_warmup_steps: int = Field(
        100, ge=0, description="Initial steps with dense attention while the indexer learns (KL)."
    )
    indexer_loss_weight: float = Field(1.0, ge=0, description="Weight of the indexer KL loss.")
    selection: Literal["indexer", "random", "window"] = Field(
        "indexer",
        description="Who picks the top-k blocks: the learned indexer (DSA), random past blocks, "
        "or none (window = sink + local blocks only); random and window are ablation baselines.",
    )
    gate: bool = Field(
        False,
        description="Dynamic gating: a per-token, per-head sigmoid gate mixes the selected-block "
        "branch with a local-window branch (NSA-style).",
    )
    kernel: Literal["auto", "flex", "gather"] = Field(
        "auto",
        description="Sparse attention kernel: flex_attention (CUDA, block_size a multiple of "
        "128), gather (anywhere), or auto (flex where it can run, else gather).",
    )

    @model_validator(mode="after")
    def _flex_tiles(self) -> DSAConfig:
        if not (self.enabled and self.kernel == "flex"):
            return self
        from curator.trainer.dsa import FLEX_BLOCK_MULTIPLE  # imports torch: only when asked

        if self.block_size % FLEX_BLOCK_MULTIPLE:
            raise ValueError(
                f"dsa.kernel=flex needs dsa.block_size a multiple of {FLEX_BLOCK_MULTIPLE} (the "
                f"flex kernel's tile on A100/H100/H200), got {self.block_size}; set "
                f"dsa.block_size={FLEX_BLOCK_MULTIPLE} or dsa.kernel=auto (gather path)"
            )
        return self


class OptimConfig(Section):
    """AdamW with warmup then cosine or WSD decay, fully decayed at the end of the budget."""

    lr: float = Field(3e-3, gt=0, description="Peak learning rate.")
    min_lr_ratio: float = Field(0.1, ge=0, le=1, description="Final lr as a fraction of peak.")
    warmup_frac: float = Field(0.05, ge=0, lt=1, description="Fraction of steps of linear warmup.")
    schedule: Literal["cosine", "wsd"] = Field(
        "cosine", description="cosine decay, or warmup-stable-decay (linear decay at the end)."
    )
    decay_frac: float = Field(0.2, gt=0, le=1, description="WSD: fraction of steps spent decaying.")
    weight_decay: float = Field(0.1, ge=0, description="AdamW decay on matrices only.")
    beta1: float = Field(0.9, ge=0, lt=1, description="AdamW beta1.")
    beta2: float = Field(0.95, ge=0, lt=1, description="AdamW beta2.")
    eps: float = Field(1e-8, gt=0, description="AdamW epsilon.")
    grad_clip: float = Field(1.0, ge=0, description="Global grad-norm clip; 0 disables.")


class DataConfig(Section):
    """Where tokens come from and how the held-out split is drawn."""

    path: str = Field(description="RUN directory (reads RUN/shards) or a .bin export directory.")
    order: Literal["curriculum", "shuffled"] = Field(
        "curriculum", description="curriculum = stage order as written; shuffled = seeded windows."
    )
    heldout_frac: float = Field(
        0.02, ge=0, lt=1, description="Fraction of documents held out (by doc_id hash)."
    )
    heldout_seed: int = Field(0, description="Seed of the doc_id hash; same seed, same split.")
    cache_dir: str | None = Field(
        None,
        description="Folder where a RUN's shards are converted once to a memory-mapped token "
        "file (keyed by the shard files' names, sizes and mtimes); null = OUT/token_cache.",
    )


class TrainConfig(Section):
    """One training run: model + DSA + optimizer + data + budget."""

    data: DataConfig = Field(description="Token source and held-out split.")
    model: ModelConfig = ModelConfig()
    dsa: DSAConfig = DSAConfig()
    optim: OptimConfig = OptimConfig()
    out_dir: str = Field("runs/train", description="Checkpoints, logs and summary.json go here.")
    max_tokens: int = Field(
        1_000_000, gt=0, description="Token budget; steps and the LR schedule derive from it."
    )
    batch_size: int = Field(8, gt=0, description="Sequences per micro-batch per worker.")
    grad_accum: int = Field(1, gt=0, description="Micro-batches per optimizer step.")
    precision: Literal["fp32", "bf16", "fp16"] = Field(
        "bf16", description="Autocast dtype; params stay fp32. fp16 (GradScaler) needs CUDA."
    )
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto = cuda if present.")
    compile: bool = Field(False, description="torch.compile the model (CUDA flex path is always).")
    seed: int = Field(0, description="Seed of init and shuffled order.")
    eval_interval: int = Field(100, gt=0, description="Steps between held-out evals.")
    eval_batches: int = Field(8, gt=0, description="Micro-batches per held-out eval.")
    log_interval: int = Field(10, gt=0, description="Steps between log lines.")
    checkpoint_interval: int = Field(0, ge=0, description="Steps between saves; 0 = end only.")
    keep_checkpoints: int = Field(2, gt=0, description="Newest checkpoints kept on disk.")
    resume: bool = Field(True, description="Resume from the newest checkpoint in out_dir.")
    workers: int = Field(0, ge=0, description="Ray Train data-parallel workers; 0 = in-process.")
    use_gpu: bool = Field(False, description="Ray Train workers take a GPU each (nccl).")

    @model_validator(mode="after")
    def _fp16_needs_cuda(self) -> TrainConfig:
        if self.precision == "fp16" and self.device == "cpu":
            raise ValueError("precision=fp16 needs CUDA (GradScaler); use bf16 on CPU")
        return self

    def tokens_per_step(self, world_size: int = 1) -> int:
        return self.batch_size * self.grad_accum * self.model.seq_len * world_size

    def total_steps(self, world_size: int = 1) -> int:
        return max(1, self.max_tokens // self.tokens_per_step(world_size))


def load_train_config(path: str | Path | None, overrides: list[str] | None = None) -> TrainConfig:
    cfg = load_model(TrainConfig, path, overrides)
    assert isinstance(cfg, TrainConfig)
    return cfg
