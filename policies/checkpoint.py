"""Policy checkpoints as one self-contained safetensors file.

Tensors: the network (`net.*`), the feature normalization (`norm.mean`, `norm.std`), the
target-aware feature model when there is one (`target.*`), the reference LM's weights when the
policy has its loss column (`reference.*`, its TrainConfig in the metadata), and the
sentencepiece model the
features were computed with (`tokenizer`, uint8 bytes), so a policy
scores the same anywhere. Metadata (strings): format, feature names, network sizes, whether
the net has the upweight head (`upweight`, JSON bool; absent in older files = false) and its
`upweight_factor`, the training config as JSON and its sha256 (`config_hash`) to tell
policies apart.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from policies.agent import PolicyNet
from policies.features import FeatureExtractor, FeatureNorm, FeatureSpec
from policies.reference import ReferenceLM
from policies.target import TargetModel

FORMAT = "curator-policy/1"
DEFAULT_POLICY = Path(__file__).parent / "default" / "policy.safetensors"


@dataclass
class Policy:
    net: PolicyNet
    norm: FeatureNorm
    spec: FeatureSpec
    tokenizer: bytes
    config: dict[str, Any]
    config_hash: str
    target: TargetModel | None = None  # fitted target-aware feature model (spec.target_dim > 0)
    reference: ReferenceLM | None = None  # the reference LM (spec.reference)
    upweight_factor: int = 1  # sample weight of an upweighted document; 1 = no upweight head

    def feature_extractor(self) -> FeatureExtractor:
        """The extractor that rebuilds this policy's features exactly (tokenizer, spec, target,
        reference LM)."""
        return FeatureExtractor(self.tokenizer, self.spec, target=self.target,
                                reference=self.reference)


def config_hash(config: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()


def save_policy(path: str | Path, net: PolicyNet, norm: FeatureNorm, spec: FeatureSpec,
                tokenizer: bytes, config: dict[str, Any], target: TargetModel | None = None,
                reference: ReferenceLM | None = None) -> Path:
    """Write atomically (temp name + rename): a reader never sees half a policy."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {f"net.{k}": v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    tensors["norm.mean"] = torch.from_numpy(np.ascontiguousarray(norm.mean, np.float32))
    tensors["norm.std"] = torch.from_numpy(np.ascontiguousarray(norm.std, np.float32))
    tensors["tokenizer"] = torch.from_numpy(np.frombuffer(tokenizer, np.uint8).copy())
    if spec.target_dim:
        if target is None:
            raise ValueError("spec.target_dim > 0 but no TargetModel to save")
        tensors.update(target.tensors())
    if spec.reference:
        if reference is None:
            raise ValueError("spec.reference is set but no ReferenceLM to save")
        tensors.update(reference.tensors())
    meta = {
        "format": FORMAT,
        "feature_names": json.dumps(spec.names),
        "sketch_dim": str(spec.sketch_dim),
        "model_features": json.dumps(spec.model_features),
        "target_dim": str(spec.target_dim),
        "reference": json.dumps(spec.reference),
        **(reference.metadata() if spec.reference and reference is not None else {}),
        "hidden": str(net.hidden),
        "upweight": json.dumps(net.upweight),
        "config": json.dumps(config, sort_keys=True),
        "config_hash": config_hash(config),
    }
    if net.upweight:
        meta["upweight_factor"] = str(config.get("env", {}).get("upweight_factor", 2))
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    tmp.replace(path)
    return path


def load_policy(path: str | Path) -> Policy:
    from safetensors import safe_open

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"policy {path} does not exist; train one with `curator agent "
                                "train` or use policy 'default' / 'heuristic'")
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        if meta.get("format") != FORMAT:
            raise ValueError(f"{path} is not a curator policy (format={meta.get('format')!r}, "
                             f"expected {FORMAT!r})")
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    spec = FeatureSpec(int(meta["sketch_dim"]), json.loads(meta["model_features"]),
                       int(meta.get("target_dim", "0")),
                       json.loads(meta.get("reference", "false")))
    names = json.loads(meta["feature_names"])
    if names != spec.names:
        raise ValueError(f"{path} was trained on features {len(names)} wide that this version "
                         f"no longer builds ({spec.dim} now); retrain the policy")
    upweight = json.loads(meta.get("upweight", "false"))  # older policies: keep/drop only
    net = PolicyNet(spec.dim, int(meta["hidden"]), upweight=upweight)
    state = {k[4:]: v for k, v in tensors.items() if k.startswith("net.")}
    # policies saved before the linear path existed score as if it were zero
    state.setdefault("linear", torch.zeros(spec.dim))
    net.load_state_dict(state)
    net.eval()
    norm = FeatureNorm(tensors["norm.mean"].numpy(), tensors["norm.std"].numpy())
    target = TargetModel.from_tensors(tensors)
    reference = ReferenceLM.from_tensors(tensors, meta)
    return Policy(net, norm, spec, tensors["tokenizer"].numpy().tobytes(),
                  json.loads(meta["config"]), meta["config_hash"], target, reference,
                  int(meta.get("upweight_factor", "1")) if upweight else 1)


class MetricsLog:
    """JSONL metrics, one object per line: {"step": k, "<cleanrl name>": value, ...}.

    (TensorBoard is not a dependency; the JSONL file loads with polars/pandas as is.)
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(self.path, "w")

    def log(self, step: int, **metrics: float) -> None:
        row = {"step": step, **{k: float(v) for k, v in metrics.items()}}
        self._f.write(json.dumps(row) + "\n")
        self._f.flush()

    def close(self) -> None:
        self._f.close()
