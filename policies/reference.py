"""The reference LM: the bundled trainer's model fitted on the target text (CCNet-style).

CCNet (Wenzek et al. 2020) ranks crawl text by its perplexity under a language model trained on
text one wants (Wikipedia there, the user's `agent.target` here): fluent prose of the target's
kind is likely, menus, spam, lists and other languages are not. The model is the bundled
trainer's GPT at the RL environment's sizes, dense attention (documents are cut to
`max_tokens`, so sparsity buys nothing and the dense path is the faster one on CPU), trained
through the trainer's own steps. Its weights travel inside the policy checkpoint, so scoring
needs no target text.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import torch

from curator.trainer.config import TrainConfig
from curator.trainer.model import GPT

PREFIX = "reference."
DENSE_FOREVER = 1 << 40  # dense_warmup_steps: every step of this model is dense


def reference_train_config(seed: int = 0) -> TrainConfig:
    from policies.reward import TrainerSpec, tiny_train_config

    cfg = tiny_train_config(TrainerSpec(), seed)
    return cfg.model_copy(update={"dsa": cfg.dsa.model_copy(
        update={"dense_warmup_steps": DENSE_FOREVER})})


@dataclass
class ReferenceLM:
    model: GPT
    cfg: TrainConfig
    max_tokens: int = 512  # per document: the loss of its first tokens (bounded scoring cost)

    @classmethod
    def fit(cls, docs: list[np.ndarray], vocab_size: int, steps: int, seed: int = 0
            ) -> ReferenceLM:
        """Train from a seeded init on the target documents' tokens, LR decayed at `steps`
        (the trainer's one training recipe, `curator.trainer.fit.fit_tokens`)."""
        from curator.trainer.engine import build_model, build_optimizer, resolve_device
        from curator.trainer.fit import fit_tokens

        cfg = reference_train_config(seed)
        stream = np.concatenate([np.asarray(d, np.int64) for d in docs])
        if len(stream) <= cfg.model.seq_len:
            raise ValueError(f"the reference LM needs more than {cfg.model.seq_len} target "
                             f"tokens; the target has {len(stream)}")
        device = resolve_device(cfg.device)
        model = build_model(cfg, vocab_size, device)
        optimizer = build_optimizer(model, cfg.optim, device)
        fit_tokens(model, optimizer, stream, cfg, steps, total_steps=steps, seed=seed)
        # scoring runs in CPU workers (the scorer stage, `curator score`)
        model = model.cpu().eval()
        return cls(model, cfg)

    def losses(self, docs: list[np.ndarray]) -> np.ndarray:
        """Mean next-token loss (nats) of each document's first `max_tokens` tokens.

        On one thread whatever the caller set: a matrix product split over more threads sums
        in another order, and a feature must not depend on which process computes it."""
        from curator.trainer.engine import per_document_loss

        heads = [np.asarray(d[: self.max_tokens], np.int64) for d in docs]
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return per_document_loss(self.model, heads, batch_size=32, dense=True)
        finally:
            torch.set_num_threads(threads)

    def tensors(self) -> dict[str, torch.Tensor]:
        return {PREFIX + k: v.detach().cpu().contiguous()
                for k, v in self.model.state_dict().items()}

    def metadata(self) -> dict[str, str]:
        return {"reference_config": self.cfg.model_dump_json(),
                "reference_max_tokens": json.dumps(self.max_tokens)}

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor], meta: dict[str, str]
                     ) -> ReferenceLM | None:
        if "reference_config" not in meta:
            return None
        from curator.trainer.engine import build_model

        cfg = TrainConfig.model_validate_json(meta["reference_config"])
        state = {k[len(PREFIX):]: v for k, v in tensors.items() if k.startswith(PREFIX)}
        vocab = int(state["embed.weight"].shape[0])
        model = build_model(cfg, vocab)
        model.load_state_dict(state)
        model.eval()
        return cls(model, cfg, int(json.loads(meta["reference_max_tokens"])))
