"""One-shot GPU acceptance check for the DSA trainer (issue 19): attention, training, recompiles.

    bash benchmarks/gpu_check.sh [OUT.md]                                  # the GPU run (H200)
    python -m benchmarks.gpu_check --smoke --out /tmp/gpu_check.md         # CPU, tiny, ~30 s
    python -m benchmarks.gpu_check --out OUT.md --part attention --budget-s 150

Parts (each in its own process when run from gpu_check.sh, each with its own time budget; every
cell is written to OUT.json as soon as it is measured and OUT.md is re-rendered from it, so a
crash or a timeout in one part loses nothing measured before it, nor the other parts' tables):

- env: torch / CUDA / GPU / driver / dependency versions, the SDPA backend dispatched to.
- attention (a): DSA sparse attention forward+backward --
  `curator.trainer.dsa.sparse_attention_flex` (the model's CUDA path: BlockMask built from a
  `select_blocks` Selection, compiled `flex_attention`, dynamic=False) over random indexer
  scores -- against `F.scaled_dot_product_attention(is_causal=True)` at T = 4K/16K/32K/64K,
  keep 1/8 and 1/16, bf16, B=1, 16 heads x 128 (a 2048-wide layer), block 128. CUDA-event
  median after warm-up, and peak memory above the inputs (`max_memory_allocated` after
  `reset_peak_memory_stats`). Then a flex-vs-gather numerical check at 4K, and the whole
  `DSAttention` layer (train mode: qkv, rope, indexer selection, indexer KL, sparse attention,
  projection) against the same layer with dense=True, with the indexer's own cost in a column.
- train (b)+(c): a ~110M-parameter DSA model (6 layers x d_model 1024, 8 heads x 128, vocab 32000,
  seq_len 4096, batch 16, block 128, top-k 4 + window 1 + sink 1 = 7 of 32 blocks), built by the
  trainer's own `build_model` / `build_optimizer` / `train_steps` from a `TrainConfig`, compiled
  as `TrainConfig.compile=True` does (`torch.compile(model)`), random tokens, 50 steps:
  3 warm-up (compilation) + 47 timed, once in bf16 and once in fp16 with a GradScaler.
  `dsa.dense_warmup_steps=0`: the default (100) would make all 50 steps dense. tokens/s, MFU
  against 989 TFLOP/s (H200 dense bf16), and the dynamo compilations after warm-up (target 0).

`--smoke` runs every part on CPU at tiny sizes (T 256/512, a 2-layer model, 5 steps, fp32
attention, bf16 training, `torch.compile(backend="eager")`): the DSA side is the gather path
(flex_attention has no CPU backward), memory is the bytes saved for backward, and fp16 is
recorded as skipped (GradScaler needs CUDA). It writes the same tables; the numbers mean nothing.

Exit codes: 0 done (cells may still hold errors), 1 the part raised outside a cell, 3 the CUDA
context is unusable (sticky error); gpu_check.sh then reruns the attention part once at the end,
and the rerun skips the cells already recorded.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import gc
import importlib.util
import json
import logging
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "gpu_check.md"
PEAK_TFLOPS = 989.0  # H200 (SXM) dense bf16, no sparsity; fp16 has the same peak
KEEPS = (8, 16)  # keep fraction 1/8 and 1/16 of the key blocks
# speed targets (SDPA time / DSA time) per (T, keep); memory target for every cell
SPEED_TARGETS = {(4096, 8): 0.7, (4096, 16): 0.7, (16384, 8): 1.5, (65536, 8): 2.5}
MEM_TARGET = 1.1
STICKY_CUDA = (
    "illegal memory access",
    "device-side assert",
    "unspecified launch failure",
    "misaligned address",
    "CUBLAS_STATUS_EXECUTION_FAILED",
    "an illegal instruction",
)
_DEADLINE = float("inf")  # time.monotonic() by which the running part must be done
_QUICK = False  # smoke: one warm-up call and 3 timed calls per measurement


class CudaPoisoned(RuntimeError):
    """A sticky CUDA error: nothing more can run in this process."""


# ---------------------------------------------------------------------------------------------
# plan: the sizes of each mode (render uses it too, so cells that never ran still get a row)


def plan(smoke: bool) -> dict[str, Any]:
    if smoke:
        return {
            "lengths": [256, 512],
            "layer_lengths": [256],
            "check_T": 256,
            "heads": 2,
            "head_dim": 32,
            "block": 32,
            "precisions": ["bf16", "fp16"],
            "model": {"n_layer": 2, "n_head": 2, "d_model": 64, "seq_len": 256},
            "vocab": 1024,
            "batch": 2,
            "train_block": 32,
            "top_k": 2,
            "steps": 5,
            "warmup": 2,
        }
    return {
        # run order = priority: targets at 4K/16K/64K first, 32K last
        "lengths": [4096, 16384, 65536, 32768],
        "layer_lengths": [16384, 65536, 4096, 32768],
        "check_T": 4096,
        "heads": 16,
        "head_dim": 128,
        "block": 128,
        "precisions": ["bf16", "fp16"],
        "model": {"n_layer": 6, "n_head": 8, "d_model": 1024, "seq_len": 4096},
        "vocab": 32000,
        "batch": 16,
        "train_block": 128,
        "top_k": 4,
        "steps": 50,
        "warmup": 3,
    }


def slots_for(dsa: Any, T: int, block: int, keep: int) -> tuple[int, int, int]:
    """(top_k, slots S, blocks nb) with 1 + window(1) + sink(1) + top_k = nb / keep, top_k >= 0."""
    nb = T // block
    top_k = max(0, round(nb / keep) - 3)
    return top_k, dsa.n_slots(nb, top_k, 1, 1), nb


def kept_pairs(T: int, block: int, slots: int | None) -> int:
    """(query, key) pairs attended: causal-dense when slots is None, else the DSA selection.

    Query block b attends min(b+1, S) blocks: the diagonal (half, causal) and the rest in full.
    """
    if slots is None:
        return T * (T + 1) // 2
    nb = T // block
    diag = block * (block + 1) // 2
    return sum((min(b + 1, slots) - 1) * block * block + diag for b in range(nb))


# ---------------------------------------------------------------------------------------------
# results file: one json, rewritten atomically after every cell; OUT.md re-rendered from it


def json_path(md: Path) -> Path:
    return md.with_suffix(".json")


def load(md: Path) -> dict[str, Any]:
    p = json_path(md)
    if p.exists():
        try:
            return json.loads(p.read_text())
        except json.JSONDecodeError:
            p.rename(p.with_suffix(f".corrupt-{int(time.time())}.json"))
    return {}


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def update(md: Path, fn: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Read-modify-write the json (parts run one after another, never concurrently), re-render."""
    data = load(md)
    fn(data)
    write_atomic(json_path(md), json.dumps(data, indent=1, default=str))
    write_atomic(md, render(data))
    return data


def set_part(md: Path, part: str, **fields: Any) -> None:
    def f(d: dict[str, Any]) -> None:
        d.setdefault("parts", {}).setdefault(part, {}).update(fields)

    update(md, f)


def error_text(e: BaseException) -> str:
    msg = " ".join(str(e).split())
    return f"{type(e).__name__}: {msg[:300]}{'...' if len(msg) > 300 else ''}"


def remaining() -> float:
    return _DEADLINE - time.monotonic()


def log(msg: str) -> None:
    print(f"[gpu_check {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---------------------------------------------------------------------------------------------
# env


def dep_versions() -> dict[str, str]:
    from importlib import metadata

    out = {}
    for name, dist in [
        ("numpy", "numpy"),
        ("yaml", "pyyaml"),
        ("pydantic", "pydantic"),
        ("pyarrow", "pyarrow"),
        ("fsspec", "fsspec"),
        ("xxhash", "xxhash"),
        ("triton", "triton"),
    ]:
        if importlib.util.find_spec(name) is None:
            out[name] = "MISSING"
            continue
        try:
            out[name] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[name] = "present"
    return out


def shell(cmd: list[str]) -> str:
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=15, cwd=ROOT)
        return r.stdout.strip() if r.returncode == 0 else f"({cmd[0]} rc {r.returncode})"
    except (OSError, subprocess.SubprocessError) as e:
        return f"({cmd[0]}: {type(e).__name__})"


def part_env(md: Path, smoke: bool) -> None:
    import torch

    env: dict[str, Any] = {
        "torch": torch.__version__,
        "cuda (torch build)": torch.version.cuda,
        "python": platform.python_version(),
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "git commit": shell(["git", "rev-parse", "--short", "HEAD"]),
        "deps": dep_versions(),
    }
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        env.update(
            {
                "gpu": p.name,
                "capability": f"sm_{p.major}{p.minor}",
                "gpu memory GiB": round(p.total_memory / 2**30, 1),
                "SMs": p.multi_processor_count,
                "cudnn": torch.backends.cudnn.version(),
                "driver": shell(
                    [
                        "nvidia-smi",
                        "--query-gpu=driver_version,clocks.max.sm",
                        "--format=csv,noheader",
                    ]
                ),
            }
        )
    else:
        env["gpu"] = "none (CPU run)"
    try:
        import curator.trainer.engine  # noqa: F401  -- what part (b) needs

        env["trainer import"] = "ok"
    except Exception as e:  # a missing dependency on the GPU machine: say which, early
        env["trainer import"] = error_text(e)
    update(md, lambda d: d.__setitem__("env", env))
    log(f"env: {json.dumps(env, default=str)}")


# ---------------------------------------------------------------------------------------------
# measuring


def load_dsa() -> tuple[Any, str | None]:
    """curator.trainer.dsa; if the package's own imports fail (pydantic missing on the GPU
    machine, say), the same file loaded standalone -- dsa.py imports only torch."""
    try:
        from curator.trainer import dsa

        return dsa, None
    except ImportError as e:
        spec = importlib.util.spec_from_file_location(
            "curator_dsa_standalone", ROOT / "curator" / "trainer" / "dsa.py"
        )
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod, f"curator.trainer import failed ({error_text(e)}); dsa.py loaded standalone"


def sync(dev: Any) -> None:
    import torch

    if dev.type == "cuda":
        torch.cuda.synchronize()


def free_memory(dev: Any) -> None:
    import torch

    gc.collect()
    if dev.type == "cuda":  # these raise too after a sticky CUDA error: let the cell be recorded
        with contextlib.suppress(Exception):
            torch.cuda.synchronize()
            torch.cuda.empty_cache()


def time_fn(fn: Callable[[], Any], dev: Any, warmup: int, target_s: float = 1.5) -> dict[str, Any]:
    """First call (compiles), more warm-up, then the median of n timed calls (CUDA events on
    CUDA, perf_counter on CPU); n from the warm time of one call, the target and the deadline."""
    import torch

    if _QUICK:
        warmup, target_s = 1, 0.0
    t0 = time.perf_counter()
    fn()
    sync(dev)
    first = time.perf_counter() - t0
    for _ in range(max(0, warmup - 1)):
        fn()
    sync(dev)
    t0 = time.perf_counter()
    fn()
    sync(dev)
    one = max(time.perf_counter() - t0, 1e-6)
    n = int(min(25, max(3, target_s / one), max(1, (remaining() - 10) / one)))
    times = []
    if dev.type == "cuda":
        events = [
            (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
            for _ in range(n)
        ]
        for start, end in events:
            start.record()
            fn()
            end.record()
        torch.cuda.synchronize()
        times = [s.elapsed_time(e) for s, e in events]
    else:
        for _ in range(n):
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
    return {"ms": statistics.median(times), "iters": n, "first_call_s": first, "ms_all": times}


def memory_fn(fn: Callable[[], Any], dev: Any) -> dict[str, Any]:
    """CUDA: peak allocated during one call, above what was allocated before (the inputs) and
    raw. CPU (no allocator statistics): the bytes autograd saves for backward."""
    import torch

    if dev.type == "cuda":
        free_memory(dev)
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated()
        return {"mb": (peak - base) / 2**20, "peak_mb": peak / 2**20, "kind": "peak above inputs"}
    from benchmarks.dsa_attention import saved_bytes  # CPU only: it imports curator.trainer

    _, total = saved_bytes(fn)
    return {"mb": total / 2**20, "peak_mb": None, "kind": "saved for backward"}


# ---------------------------------------------------------------------------------------------
# (a) attention


def part_attention(md: Path, smoke: bool) -> None:
    import torch._dynamo

    # the benchmark compiles flex for 4 shapes x 2 input layouts: more than dynamo's default
    # recompile limit (8), past which it would silently fall back to eager flex (T x T scores)
    name = next(
        n for n in ("recompile_limit", "cache_size_limit") if hasattr(torch._dynamo.config, n)
    )
    with torch._dynamo.config.patch(**{name: 64}):
        attention_cells(md, smoke)


def attention_cells(md: Path, smoke: bool) -> None:
    import torch
    import torch.nn.functional as F

    P = plan(smoke)
    dsa, note = load_dsa()
    cuda = torch.cuda.is_available() and not smoke
    dev = torch.device("cuda" if cuda else "cpu")
    dtype = torch.bfloat16 if cuda else torch.float32
    H, D, bs = P["heads"], P["head_dim"], P["block"]
    backend = sdpa_backend(dev, dtype, H, D) if cuda else "math (CPU)"
    config = {
        "device": str(dev),
        "dtype": str(dtype).removeprefix("torch."),
        "heads": H,
        "head_dim": D,
        "block": bs,
        "window": 1,
        "sink": 1,
        "dsa path": "sparse_attention_flex (compiled flex_attention)"
        if cuda
        else "sparse_attention_gather (flex has no CPU backward)",
        "sdpa backend": backend,
        "dsa import": note or "curator.trainer.dsa",
    }
    done = update(md, lambda d: d.setdefault("attention", {}).update(config=config))
    cells: dict[str, Any] = done.get("attention", {}).get("cells", {})
    compile_s: list[float] = []  # observed first-call times, to guess if one more compile fits
    attend = dsa.sparse_attention_flex if cuda else dsa.sparse_attention_gather

    def cell(key: str, compiles: bool, fn: Callable[[], dict[str, Any]]) -> None:
        if key in cells:
            log(f"{key}: recorded by an earlier run, skipped")
            return
        need = (max(compile_s) * 1.5 if compile_s else 60.0) if compiles and cuda else 8.0
        if remaining() < need:
            res: dict[str, Any] = {
                "skipped": f"out of time ({remaining():.0f} s left, ~{need:.0f} s needed)"
            }
        else:
            t0 = time.perf_counter()
            try:
                res = fn()
            except Exception as e:
                res = {"error": error_text(e), "traceback": traceback.format_exc()[-4000:]}
                traceback.print_exc()
                if any(s in str(e) for s in STICKY_CUDA):
                    res["sticky"] = True
            res["cell_s"] = round(time.perf_counter() - t0, 2)
            if compiles and "error" not in res and "first_call_s" in res.get("dsa", {}):
                compile_s.append(res["dsa"]["first_call_s"])
            free_memory(dev)
        cells[key] = res
        update(
            md, lambda d: d.setdefault("attention", {}).setdefault("cells", {}).update({key: res})
        )
        shown = {k: v for k, v in res.items() if k != "traceback"}
        log(f"{key}: {json.dumps(shown, default=str)[:400]}")
        if res.get("sticky"):
            raise CudaPoisoned(res["error"])

    def qkv(T: int, seed: int) -> tuple[torch.Tensor, ...]:
        g = torch.Generator(device=dev).manual_seed(seed)
        q, k, v, dy = (
            torch.randn(1, H, T, D, device=dev, dtype=dtype, generator=g) for _ in range(4)
        )
        return q.requires_grad_(), k.requires_grad_(), v.requires_grad_(), dy

    def selection(T: int, keep: int, seed: int) -> tuple[Any, int, int, int]:
        top_k, S, nb = slots_for(dsa, T, bs, keep)
        g = torch.Generator(device=dev).manual_seed(seed)
        scores = torch.randn(1, nb, nb, device=dev, generator=g)
        return dsa.select_blocks(scores, top_k, 1, 1), top_k, S, nb

    # 1. attention alone, every length: SDPA, then DSA at each keep
    for T in P["lengths"]:
        q, k, v, dy = qkv(T, T)

        def sdpa(q=q, k=k, v=v, dy=dy) -> None:
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            torch.autograd.grad(out, (q, k, v), dy)

        def sdpa_cell(sdpa=sdpa) -> dict[str, Any]:
            return {"sdpa": {**time_fn(sdpa, dev, 2), **memory_fn(sdpa, dev)}}

        cell(f"sdpa|{T}", False, sdpa_cell)
        for keep in KEEPS:

            def dsa_cell(T=T, keep=keep, q=q, k=k, v=v, dy=dy) -> dict[str, Any]:
                sel, top_k, S, nb = selection(T, keep, 1000 * T + keep)

                def run() -> None:
                    out = attend(q, k, v, sel, bs)
                    torch.autograd.grad(out, (q, k, v), dy)

                def mask() -> None:  # the BlockMask build alone (part of every DSA call on CUDA)
                    dsa.flex_block_mask(sel, T, bs)

                res = {"dsa": {**time_fn(run, dev, 3), **memory_fn(run, dev)}}
                if cuda:
                    res["mask_ms"] = time_fn(mask, dev, 2, 0.3)["ms"]
                res.update(top_k=top_k, slots=S, blocks=nb)
                res["ideal_x"] = kept_pairs(T, bs, None) / kept_pairs(T, bs, S)
                return res

            cell(f"dsa|{T}|{keep}", True, dsa_cell)
        del q, k, v, dy
        free_memory(dev)
        if T == P["check_T"]:
            cell(f"check|{T}", False, lambda T=T: check_cell(dsa, dev, dtype, T, H, D, bs, cuda))

    # 2. the whole DSAttention layer (train mode), dense=True vs sparse
    for T in P["layer_lengths"]:
        for keep in KEEPS:
            cell(
                f"layer|{T}|{keep}",
                True,
                lambda T=T, keep=keep: layer_cell(dsa, dev, T, keep, H, D, bs, cuda),
            )


def sdpa_backend(dev: Any, dtype: Any, H: int, D: int) -> str:
    """Which fused kernel F.scaled_dot_product_attention dispatches to for these inputs."""
    import torch

    try:
        q = torch.empty(1, H, 1024, D, device=dev, dtype=dtype, requires_grad=True)
        choice = int(torch._fused_sdp_choice(q, q, q, is_causal=True))
        from torch.nn.attention import SDPBackend

        names = {int(getattr(v, "value", v)): k for k, v in SDPBackend.__members__.items()}
        return names.get(choice, f"backend #{choice}")
    except Exception as e:
        return f"unknown ({error_text(e)})"


def check_cell(
    dsa: Any, dev: Any, dtype: Any, T: int, H: int, D: int, bs: int, cuda: bool
) -> dict[str, Any]:
    """The timed DSA path against the gather reference: same output and gradients?

    CUDA: compiled flex forward+backward vs gather. CPU: eager flex forward vs gather forward
    (flex has no CPU backward)."""
    import torch

    top_k, S, nb = slots_for(dsa, T, bs, 8)
    g = torch.Generator(device=dev).manual_seed(7)
    sel = dsa.select_blocks(torch.randn(1, nb, nb, device=dev, generator=g), top_k, 1, 1)
    q, k, v, dy = (torch.randn(1, H, T, D, device=dev, dtype=dtype, generator=g) for _ in range(4))
    res: dict[str, Any] = {}

    def rel(a: torch.Tensor, b: torch.Tensor) -> float:
        return float((a.float() - b.float()).abs().max() / b.float().abs().max().clamp_min(1e-12))

    if cuda:
        outs = {}
        for name, fn in (
            ("flex", dsa.sparse_attention_flex),
            ("gather", dsa.sparse_attention_gather),
        ):
            qq, kk, vv = (t.detach().clone().requires_grad_() for t in (q, k, v))
            out = fn(qq, kk, vv, sel, bs)
            outs[name] = (out.detach(), *torch.autograd.grad(out, (qq, kk, vv), dy))
        for i, name in enumerate(("out", "dq", "dk", "dv")):
            res[name] = rel(outs["flex"][i], outs["gather"][i])
        tol = 3e-2
    else:
        with torch.no_grad():
            flex = dsa.sparse_attention_flex(q, k, v, sel, bs, compiled=False)
            ref = dsa.sparse_attention_gather(q, k, v, sel, bs)
        res["out"] = rel(flex, ref)
        tol = 1e-4
    res["tol"] = tol
    res["ok"] = all(res[n] <= tol for n in ("out", "dq", "dk", "dv") if n in res)
    return res


def layer_cell(
    dsa: Any, dev: Any, T: int, keep: int, H: int, D: int, bs: int, cuda: bool
) -> dict[str, Any]:
    """DSAttention fwd+bwd in train mode (indexer KL included), sparse vs dense=True; and the
    indexer alone: select (scores + top-k, no grad) + indexer_kl forward+backward."""
    import torch

    top_k, S, nb = slots_for(dsa, T, bs, keep)
    torch.manual_seed(0)
    layer = dsa.DSAttention(
        H * D, H, block_size=bs, top_k_blocks=top_k, window_blocks=1, sink_blocks=1
    )
    layer = layer.to(dev).train()
    layer.use_flex = cuda
    g = torch.Generator(device=dev).manual_seed(T + keep)
    x = torch.randn(1, T, H * D, device=dev, generator=g, requires_grad=True)
    amp = torch.autocast(dev.type, dtype=torch.bfloat16) if cuda else contextlib.nullcontext()
    dy = torch.randn(
        1, T, H * D, device=dev, generator=g, dtype=torch.bfloat16 if cuda else torch.float32
    )

    def run(dense: bool) -> None:
        layer.zero_grad(set_to_none=True)
        with amp:
            y, kl = layer(x, dense=dense)
        torch.autograd.backward([y, kl], [dy.to(y.dtype), torch.ones_like(kl)])
        x.grad = None

    with amp, torch.no_grad():
        qk, kk, _ = layer.qkv_heads(x.detach())

    def indexer() -> None:
        layer.zero_grad(set_to_none=True)
        with amp:
            layer.select(x.detach())
            kl = layer.indexer_kl(x.detach(), qk, kk)
        kl.backward()

    res: dict[str, Any] = {"top_k": top_k, "slots": S, "blocks": nb}
    res["dsa"] = {**time_fn(lambda: run(False), dev, 3, 1.0), **memory_fn(lambda: run(False), dev)}
    res["dense"] = {**time_fn(lambda: run(True), dev, 2, 1.0), **memory_fn(lambda: run(True), dev)}
    res["indexer_ms"] = time_fn(indexer, dev, 2, 0.5)["ms"]
    return res


# ---------------------------------------------------------------------------------------------
# (b) + (c) training


class CompileWatch:
    """Counts dynamo compilations (first compiles, recompiles, graph-break continuations) and
    lazy backward compilations with the step they happened in, and captures recompile reasons
    from the `recompiles` log artifact."""

    def __init__(self) -> None:
        import torch
        import torch._dynamo

        self.step: int | str = "build"
        self.events: list[dict[str, Any]] = []
        self.reasons: list[dict[str, Any]] = []
        self.api: list[str] = []
        self.handler = getattr(torch._dynamo, "callback_handler", None)
        if self.handler is not None:
            self.handler.register_start_callback(self._start)
            self.api.append("torch._dynamo.callback_handler (compile start callbacks)")
        watch = self

        class Reasons(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                watch.reasons.append({"step": watch.step, "text": record.getMessage()[:1000]})

        self.log_handler = Reasons(logging.DEBUG)
        self.logger = logging.getLogger("torch._dynamo.guards.__recompiles")
        with contextlib.suppress(Exception):
            torch._logging.set_logs(recompiles=True)
            self.logger.addHandler(self.log_handler)
            self.api.append("torch._logging recompiles artifact (reasons)")
        self.counters = torch._dynamo.utils.counters

    def close(self) -> None:
        import torch

        with contextlib.suppress(Exception):
            if self.handler is not None:
                self.handler.remove_start_callback(self._start)
            self.logger.removeHandler(self.log_handler)
            torch._logging.set_logs()

    def _start(self, args: Any) -> None:
        trigger = getattr(getattr(args, "callback_trigger", None), "name", str(args))
        self.events.append(
            {"step": self.step, "trigger": trigger, "id": getattr(args, "compile_id", "")}
        )

    def frames(self) -> int:
        return int(self.counters["frames"]["total"])

    def graph_breaks(self) -> dict[str, int]:
        return {str(k)[:200]: int(v) for k, v in self.counters["graph_break"].items()}


def part_train(md: Path, smoke: bool, precision: str) -> None:
    import torch
    import torch._dynamo

    cuda = torch.cuda.is_available() and not smoke
    if precision == "fp16" and not cuda:
        skipped = {"skipped": "fp16 needs CUDA (GradScaler); CPU smoke run"}
        update(md, lambda d: d.setdefault("train", {}).__setitem__(precision, skipped))
        return
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    watch = CompileWatch()
    try:
        train_and_count(md, plan(smoke), precision, cuda, watch)
    finally:
        watch.close()


def train_and_count(
    md: Path, P: dict[str, Any], precision: str, cuda: bool, watch: CompileWatch
) -> None:
    import torch

    from curator.trainer.config import TrainConfig
    from curator.trainer.dsa import n_slots
    from curator.trainer.engine import build_model, build_optimizer, train_steps

    key = precision

    def save(**fields: Any) -> None:
        update(md, lambda d: d.setdefault("train", {}).setdefault(key, {}).update(fields))

    dev = torch.device("cuda" if cuda else "cpu")
    m, steps, warmup, batch = P["model"], P["steps"], P["warmup"], P["batch"]
    T = m["seq_len"]
    cfg = TrainConfig.model_validate(
        {
            "data": {"path": "unused: random tokens"},
            "device": dev.type,
            "precision": precision,
            "compile": True,
            "model": {**m, "vocab_size": P["vocab"]},
            # dense_warmup_steps=0: the default (100) would make all 50 steps dense
            "dsa": {
                "block_size": P["train_block"],
                "top_k_blocks": P["top_k"],
                "window_blocks": 1,
                "sink_blocks": 1,
                "dense_warmup_steps": 0,
            },
            "batch_size": batch,
            "max_tokens": steps * batch * T,
        }
    )
    model = build_model(cfg, P["vocab"], dev)
    opt = build_optimizer(model, cfg.optim, dev)
    scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None
    # as train.py does for cfg.compile; the CPU smoke run only traces (no C++ toolchain needed)
    fwd = torch.compile(model) if cuda else torch.compile(model, backend="eager")
    n_params = model.num_params()
    S = n_slots(T // P["train_block"], P["top_k"], 1, 1)
    tokens = batch * T
    pairs_dsa = kept_pairs(T, P["train_block"], S)
    attn_flops = 12 * m["d_model"] * pairs_dsa * m["n_layer"] * batch  # fwd 4*d per pair, bwd 2x
    save(
        config={
            "params": n_params,
            "layers": m["n_layer"],
            "d_model": m["d_model"],
            "heads": m["n_head"],
            "seq_len": T,
            "batch": batch,
            "vocab": P["vocab"],
            "block": P["train_block"],
            "slots": S,
            "blocks": T // P["train_block"],
            "steps": steps,
            "warmup": warmup,
            "compile": "torch.compile(model)" if cuda else "torch.compile(model, backend='eager')",
            "flex": bool(getattr(model.blocks[0].attn, "use_flex", False)),
            "watch api": watch.api,
        },
        flops_per_step={"6N": 6 * n_params * tokens, "attention kept": attn_flops},
        stage="built",
    )
    g = torch.Generator(device=dev).manual_seed(0)
    data = [
        (
            torch.randint(0, P["vocab"], (batch, T), device=dev, generator=g),
            torch.randint(0, P["vocab"], (batch, T), device=dev, generator=g),
        )
        for _ in range(4)
    ]
    times: list[float] = []
    losses: list[float] = []
    skipped = 0

    def step(i: int) -> float:
        nonlocal skipped
        watch.step = i
        scale = scaler.get_scale() if scaler is not None else None
        t0 = time.perf_counter()
        st = train_steps(fwd, opt, [[data[i % len(data)]]], cfg, steps, start_step=i, scaler=scaler)
        sync(dev)
        elapsed = time.perf_counter() - t0
        losses.append(st[0].loss)
        if scaler is not None and scaler.get_scale() < scale:
            skipped += 1  # inf/nan gradients: GradScaler skipped the optimizer step
        return elapsed

    warm_times: list[float] = []

    def warm_up() -> None:
        for i in range(warmup):
            warm_times.append(step(i))
            log(f"train {key}: warm-up step {i} {warm_times[-1]:.1f} s")
            save(stage=f"warm-up step {i} done", warmup_s=warm_times)

    try:
        warm_up()
    except Exception as e:
        # the trainer's default is compile=False (model eager, flex still compiled): measure
        # that rather than nothing, and say why
        if any(s in str(e) for s in STICKY_CUDA):
            raise
        traceback.print_exc()
        fwd = model
        warm_times.clear()
        losses.clear()
        free_memory(dev)
        note = f"torch.compile(model) failed: {error_text(e)}; measured with compile=False"
        save(note=note, compile_error=traceback.format_exc()[-4000:], stage="retry compile=False")
        warm_up()
    warm_frames, warm_events = watch.frames(), len(watch.events)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()

    def summary(final: bool) -> dict[str, Any]:
        n = len(times)
        rate = n * tokens / sum(times) if n else None
        res = {
            "stage": "done" if final else f"timed {n} steps",
            "warmup_s": warm_times,
            "timed_steps": n,
            "tokens_per_s": rate,
            "step_ms_median": statistics.median(times) * 1e3 if n else None,
            "mfu": (6 * n_params * tokens + attn_flops) * rate / (PEAK_TFLOPS * 1e12)
            if rate
            else None,
            "mfu_6n": 6 * n_params * tokens * rate / (PEAK_TFLOPS * 1e12) if rate else None,
            "loss_first": losses[0] if losses else None,
            "loss_last": losses[-1] if losses else None,
            "fp16_skipped_steps": skipped if scaler is not None else None,
            "final_scale": scaler.get_scale() if scaler is not None else None,
            "peak_gb": torch.cuda.max_memory_allocated() / 2**30 if dev.type == "cuda" else None,
            "compiles_warmup": watch.events[:warm_events],
            "frames_warmup": warm_frames,
            "compiles_after_warmup": watch.events[warm_events:],
            "frames_after_warmup": watch.frames() - warm_frames,
            "recompile_reasons": watch.reasons,
            "graph_breaks": watch.graph_breaks(),
        }
        return res

    stopped = None
    for i in range(warmup, steps):
        est = statistics.median(times) if times else max(warm_times[-1], 1.0)
        if remaining() < 3 * est + 5:
            stopped = f"stopped after {len(times)} timed steps: out of time"
            break
        times.append(step(i))
        if len(times) % 10 == 0:
            save(**summary(False))
    res = summary(True)
    if stopped:
        res["note"] = f"{load(md)['train'][key].get('note', '')} {stopped}".strip()
    save(**res)
    shown = {k: res[k] for k in ("tokens_per_s", "mfu", "frames_after_warmup")}
    log(f"train {key}: {json.dumps(shown)}")


# ---------------------------------------------------------------------------------------------
# markdown


def fmt(x: Any, spec: str | None = None) -> str:
    """Floats to 3 significant digits unless told; ints as they are unless told; None as '-'."""
    if x is None:
        return "-"
    if isinstance(x, float):
        if math.isnan(x) or math.isinf(x):
            return str(x)
        return format(x, spec or ".3g")
    if isinstance(x, int) and not isinstance(x, bool) and spec:
        return format(x, spec)
    return str(x)


def cellmsg(res: dict[str, Any] | None) -> str | None:
    """Why a cell has no numbers (not run / skipped / error), or None when it has."""
    if res is None:
        return "not run"
    if "skipped" in res:
        return f"skipped: {res['skipped']}"
    if "error" in res:
        return f"ERROR: {res['error']}"
    return None


def row(*cells: Any) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def esc(s: str) -> str:
    return s.replace("|", "\\|").replace("\n", " ")


def verdict(value: float | None, target: float, higher: bool) -> str:
    if value is None:
        return "not measured"
    ok = value >= target if higher else value <= target
    return "PASS" if ok else "MISS"


def render(data: dict[str, Any]) -> str:
    meta = data.get("meta", {})
    smoke = bool(meta.get("smoke"))
    P = plan(smoke)
    out = [
        "# GPU check: DSA attention, DSA training throughput, recompiles"
        + (" (SMOKE: CPU, tiny sizes; numbers mean nothing)" if smoke else ""),
        "",
        f"Command: `{meta.get('command', 'bash benchmarks/gpu_check.sh')}`; started "
        f"{meta.get('started', '?')}; raw numbers in `{meta.get('json', 'the .json beside')}`.",
        "",
        "## Environment",
        "",
    ]
    env = data.get("env")
    if not env:
        out.append("(env part did not run)")
    else:
        out += ["| | |", "|---|---|"]
        for k, v in env.items():
            if k == "deps":
                v = ", ".join(f"{n} {ver}" for n, ver in v.items())
            out.append(f"| {k} | {esc(str(v))} |")
    out += ["", "## Parts", "", "| part | status | seconds | note |", "|---|---|---|---|"]
    for name, p in data.get("parts", {}).items():
        out.append(
            f"| {name} | {p.get('status', '?')} | {fmt(p.get('seconds'), '.0f')} | "
            f"{esc(str(p.get('note', '')))[:300]} |"
        )
    att = data.get("attention", {})
    cells = att.get("cells", {})
    train = data.get("train", {})

    # targets summary
    out += ["", "## Targets", "", "| target | measured | verdict |", "|---|---|---|"]
    for (T, keep), target in SPEED_TARGETS.items():
        if T not in P["lengths"]:
            continue
        x = speedup(cells, T, keep)
        what = f"attention {T // 1024}K keep 1/{keep}: SDPA/DSA >= {target}x"
        out.append(row(what, fmt(x, ".2f"), verdict(x, target, True)))
    ratios = [
        r for T in P["lengths"] for keep in KEEPS if (r := mem_ratio(cells, T, keep)) is not None
    ]
    worst = max(ratios) if ratios else None
    out.append(
        f"| attention peak memory DSA/SDPA <= {MEM_TARGET}x (worst cell) | {fmt(worst, '.2f')} | "
        f"{verdict(worst, MEM_TARGET, False)} |"
    )
    for prec in P["precisions"]:
        t = train.get(prec, {})
        n = t.get("frames_after_warmup") if t.get("timed_steps") else None
        what = f"training {prec}: dynamo compilations after warm-up == 0"
        out.append(row(what, fmt(n), verdict(n, 0, False)))
    if smoke:
        out.append("")
        out.append("Smoke run: the speed and memory verdicts compare CPU paths at toy sizes.")

    # (a)
    cfg = att.get("config", {})
    clock = "CUDA-event" if cfg.get("device", "").startswith("cuda") else "wall-clock"
    mem_kind = (
        "peak MB above inputs"
        if cfg.get("device", "").startswith("cuda")
        else "saved-for-backward MB"
    )
    out += [
        "",
        "## (a) Attention forward+backward: DSA vs causal SDPA",
        "",
        f"B=1, {P['heads']} heads x {P['head_dim']}, block {P['block']}, window 1 + sink 1 + "
        f"top-k; {esc(', '.join(f'{k}: {v}' for k, v in cfg.items()))}. "
        f"Time: median of {clock} timings after warm-up (the first call compiles). "
        f"Memory: {mem_kind}. x = SDPA ms / DSA ms; ideal x = causal pairs / kept pairs (a "
        "ratio above it is a bug until proven otherwise). keep 1/k: 1 + window + sink + top_k = "
        "blocks / k, top_k >= 0 (at 4K keep 1/16 that would be 2 slots: it is 3). DSA ms includes "
        "building the BlockMask from the Selection (mask ms, also shown alone).",
        "",
        row(
            "T",
            "keep",
            "slots/blocks",
            "ideal x",
            "SDPA ms",
            "DSA ms",
            "x",
            "target x",
            f"SDPA {mem_kind}",
            f"DSA {mem_kind}",
            f"mem ratio (<= {MEM_TARGET})",
            "mask ms",
        ),
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for T in sorted(P["lengths"]):
        s = cells.get(f"sdpa|{T}")
        for keep in KEEPS:
            d = cells.get(f"dsa|{T}|{keep}")
            target = SPEED_TARGETS.get((T, keep))
            tgt = f">= {target}" if target else "-"
            sm = cellmsg(s)
            dm = cellmsg(d)
            sdpa_ms = sm or fmt(s["sdpa"]["ms"])
            sdpa_mb = "" if sm else fmt(s["sdpa"]["mb"], ".1f")
            if dm:
                out.append(
                    row(T, f"1/{keep}", "", "", esc(sdpa_ms), esc(dm), "", tgt, sdpa_mb, "", "", "")
                )
                continue
            x = speedup(cells, T, keep)
            mr = mem_ratio(cells, T, keep)
            out.append(
                f"| {T} | 1/{keep} | {d['slots']}/{d['blocks']} | {fmt(d['ideal_x'], '.2f')} | "
                f"{esc(sdpa_ms)} | {fmt(d['dsa']['ms'])} | {fmt(x, '.2f')} | {tgt} | {sdpa_mb} | "
                f"{fmt(d['dsa']['mb'], '.1f')} | {fmt(mr, '.2f')} | {fmt(d.get('mask_ms'))} |"
            )
    ck = cells.get(f"check|{P['check_T']}")
    out += [
        "",
        f"Numerical check at T={P['check_T']}, keep 1/8 (max |DSA path - gather| / max |gather|): ",
    ]
    if cellmsg(ck):
        out[-1] += esc(cellmsg(ck) or "")
    else:
        out[-1] += ", ".join(f"{n} {ck[n]:.2e}" for n in ("out", "dq", "dk", "dv") if n in ck)
        out[-1] += f" (tolerance {ck['tol']:.0e}: {'ok' if ck['ok'] else 'MISMATCH'})"
    out += [
        "",
        "### The whole DSAttention layer (train mode), sparse vs dense=True",
        "",
        f"d_model {P['heads'] * P['head_dim']}, input fp32 under "
        f"{'bf16 autocast' if cfg.get('device', '').startswith('cuda') else 'no autocast'}; both "
        "include qkv, rope, the indexer KL (computed in train mode either way) and the projection; "
        "the DSA layer also the selection. indexer ms = select (scores + top-k) + indexer_kl "
        "forward+backward, timed alone.",
        "",
        f"| T | keep | dense layer ms | DSA layer ms | x | indexer ms | dense {mem_kind} | "
        f"DSA {mem_kind} | mem ratio |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for T in sorted(P["layer_lengths"]):
        for keep in KEEPS:
            c = cells.get(f"layer|{T}|{keep}")
            msg = cellmsg(c)
            if msg:
                out.append(f"| {T} | 1/{keep} | {esc(msg)} | | | | | | |")
                continue
            out.append(
                f"| {T} | 1/{keep} | {fmt(c['dense']['ms'])} | {fmt(c['dsa']['ms'])} | "
                f"{fmt(c['dense']['ms'] / c['dsa']['ms'], '.2f')} | {fmt(c['indexer_ms'])} | "
                f"{fmt(c['dense']['mb'], '.1f')} | {fmt(c['dsa']['mb'], '.1f')} | "
                f"{fmt(c['dsa']['mb'] / c['dense']['mb'] if c['dense']['mb'] else None, '.2f')} |"
            )

    # (b)
    m = P["model"]
    S = next((t["config"]["slots"] for t in train.values() if "config" in t), "?")
    out += [
        "",
        "## (b) DSA model training throughput",
        "",
        f"{m['n_layer']} layers x d_model {m['d_model']} ({m['n_head']} heads), "
        f"vocab {P['vocab']}, "
        f"seq_len {m['seq_len']}, batch {P['batch']}, DSA block {P['train_block']}: {S} of "
        f"{m['seq_len'] // P['train_block']} blocks per query block (top-k {P['top_k']} + window 1 "
        f"+ sink 1 + diagonal), dense_warmup_steps=0 (all steps sparse). Built by "
        "`build_model`/`build_optimizer`, stepped by `train_steps` (AdamW fused on CUDA, grad clip "
        f"1.0), compiled as `TrainConfig.compile=True` does; random tokens. {P['steps']} steps: "
        f"{P['warmup']} warm-up (compilation, not timed) + the rest timed (wall clock per step, "
        "synchronized). MFU = (6 N tokens + attention FLOPs) / time / "
        f"{PEAK_TFLOPS:.0f} TFLOP/s; N = all parameters (embedding included: it is the tied output "
        "head), attention FLOPs = 12 x d_model x (query, key) pairs x layers x batch (QK and PV, "
        "2 FLOP per multiply-add, backward 2x forward) counting only the kept blocks (the "
        "diagonal block as causal half); the indexer's FLOPs are not counted. MFU (6N) leaves "
        "attention out.",
        "",
        "| precision | params | warm-up s | timed steps | tokens/s | step ms (median) | MFU | "
        "MFU (6N) | peak GB | loss first -> last | note |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for prec in P["precisions"]:
        t = train.get(prec)
        part = data.get("parts", {}).get(f"train-{prec}", {})
        msg = cellmsg(t) if t is None or "skipped" in t or "error" in t else None
        if msg:
            if t is None and part.get("status") not in (None, "done"):
                msg = f"{part.get('status')}: {part.get('note', '')}"
            out.append(f"| {prec} | {esc(msg)} | | | | | | | | | |")
            continue
        note = t.get("note", "")
        if t.get("stage") != "done":
            note = f"stopped at: {t.get('stage')}. {part.get('status', '')} {part.get('note', '')}"
        if t.get("fp16_skipped_steps"):
            note += (
                f" GradScaler skipped {t['fp16_skipped_steps']} steps"
                f" (final scale {t['final_scale']:g})."
            )
        warm = t.get("warmup_s") or []
        out.append(
            f"| {prec} | {fmt(t.get('config', {}).get('params'), ',')} | "
            f"{' + '.join(f'{w:.1f}' for w in warm)} | {fmt(t.get('timed_steps'))} | "
            f"{fmt(t.get('tokens_per_s'), ',.0f')} | {fmt(t.get('step_ms_median'), ',.1f')} | "
            f"{fmt(t.get('mfu'), '.1%')} | {fmt(t.get('mfu_6n'), '.1%')} | "
            f"{fmt(t.get('peak_gb'), '.1f')} | "
            f"{fmt(t.get('loss_first'), '.3f')} -> {fmt(t.get('loss_last'), '.3f')} | "
            f"{esc(note.strip())} |"
        )

    # (c)
    out += [
        "",
        "## (c) Compilations during training",
        "",
        "Dynamo compilations = frames dynamo converted (first compiles, recompiles and graph-break "
        "continuations; `torch._dynamo.utils.counters['frames']['total']`); compile events from "
        "`torch._dynamo.callback_handler` with the step they happened in (DYNAMO = a frame "
        "traced, LAZY_BACKWARD = a backward graph compiled at its first use); reasons from the "
        "`recompiles` log artifact. Target: 0 after warm-up.",
        "",
        row(
            "precision",
            "compilations in warm-up (step: trigger)",
            "after warm-up",
            "recompile reasons",
            "graph breaks",
        ),
        "|---|---|---|---|---|",
    ]
    for prec in P["precisions"]:
        t = train.get(prec)
        if not t or "compiles_warmup" not in t:
            msg = cellmsg(t) if t and ("skipped" in t or "error" in t) else None
            part = data.get("parts", {}).get(f"train-{prec}", {})
            if not msg and part.get("status") not in (None, "done"):
                msg = f"{part.get('status')}: {part.get('note', '')}"
            stage = f" (reached: {t['stage']})" if t and t.get("stage") else ""
            out.append(f"| {prec} | {esc((msg or 'not measured') + stage)} | | | |")
            continue
        warm = ", ".join(f"{e['step']}: {e['trigger']}" for e in t["compiles_warmup"])
        after = t["frames_after_warmup"]
        after_ev = ", ".join(f"{e['step']}: {e['trigger']}" for e in t["compiles_after_warmup"])
        reasons = "; ".join(
            f"step {r['step']}: {guard_failures(r['text'])}" for r in t["recompile_reasons"]
        )
        breaks = "; ".join(f"{k[:80]} x{v}" for k, v in t["graph_breaks"].items()) or "0"
        out.append(
            f"| {prec} | {t['frames_warmup']} frames ({warm}) | {after} frames"
            f"{f' ({after_ev})' if after_ev else ''} | {esc(reasons) or '-'} | {esc(breaks)} |"
        )
    return "\n".join(out) + "\n"


def guard_failures(text: str) -> str:
    """The failed guards of a `recompiles` log message, without the user stack trace."""
    lines = [ln.strip().removeprefix("- ") for ln in text.splitlines()[2:]]
    keep = []
    for ln in lines:
        if ln.startswith("User stack trace"):
            break
        keep.append(ln.split("  #")[0].strip())
    return " / ".join(keep)[:200] or text[:200]


def speedup(cells: dict[str, Any], T: int, keep: int) -> float | None:
    s, d = cells.get(f"sdpa|{T}"), cells.get(f"dsa|{T}|{keep}")
    if cellmsg(s) or cellmsg(d):
        return None
    return s["sdpa"]["ms"] / d["dsa"]["ms"]


def mem_ratio(cells: dict[str, Any], T: int, keep: int) -> float | None:
    s, d = cells.get(f"sdpa|{T}"), cells.get(f"dsa|{T}|{keep}")
    if cellmsg(s) or cellmsg(d) or not s["sdpa"]["mb"]:
        return None
    return d["dsa"]["mb"] / s["sdpa"]["mb"]


# ---------------------------------------------------------------------------------------------
# entry point


PARTS = ["env", "attention", "train-bf16", "train-fp16"]


def run_part(md: Path, part: str, smoke: bool) -> int:
    """Run one part, recording status, seconds and the error if it raised; the exit code."""
    t0 = time.monotonic()
    set_part(md, part, status="running", note="", seconds=None)
    log(f"part {part}: start ({remaining():.0f} s budget)")
    status, note, rc = "done", "", 0
    try:
        if part == "env":
            part_env(md, smoke)
        elif part == "attention":
            part_attention(md, smoke)
        elif part.startswith("train-"):
            part_train(md, smoke, part.removeprefix("train-"))
        else:
            raise ValueError(f"unknown part {part!r}; parts are {PARTS}")
    except CudaPoisoned as e:
        status, note, rc = "failed", f"CUDA context unusable: {e}", 3
    except Exception as e:
        traceback.print_exc()
        status, note, rc = "failed", error_text(e), 1
        if any(s in str(e) for s in STICKY_CUDA):
            rc = 3
    set_part(md, part, status=status, note=note, seconds=time.monotonic() - t0)
    log(f"part {part}: {status} in {time.monotonic() - t0:.0f} s {note}")
    return rc


def main(argv: list[str] | None = None) -> int:
    global _DEADLINE, _QUICK
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--out",
        type=Path,
        default=None,
        help=f"markdown path, json beside it; default {DEFAULT_OUT.relative_to(ROOT)} "
        "(with --smoke: gpu_check_smoke.md in the temp folder)",
    )
    ap.add_argument("--part", default="all", help=f"all, render, mark, or one of {PARTS}")
    ap.add_argument("--smoke", action="store_true", help="CPU, tiny sizes (tests)")
    ap.add_argument("--budget-s", type=float, default=None, help="this process's time budget")
    ap.add_argument("--mark", default=None, help="with --part mark: 'PART=status: note'")
    ap.add_argument(
        "--fresh", action="store_true", help="start a new json (the script's first call)"
    )
    args = ap.parse_args(argv)
    if args.budget_s is not None:
        _DEADLINE = time.monotonic() + args.budget_s
    if args.out is None:
        args.out = Path(tempfile.gettempdir()) / "gpu_check_smoke.md" if args.smoke else DEFAULT_OUT
    md = args.out.resolve()
    if str(ROOT) not in sys.path:  # run as a file (python benchmarks/gpu_check.py)
        sys.path.insert(0, str(ROOT))
    _QUICK = args.smoke
    if args.fresh:
        with contextlib.suppress(FileNotFoundError):
            json_path(md).unlink()
        update(
            md,
            lambda d: d.__setitem__(
                "meta",
                {
                    "smoke": args.smoke,
                    "started": dt.datetime.now().isoformat(timespec="seconds"),
                    "command": os.environ.get("GPU_CHECK_COMMAND", " ".join(sys.argv)),
                    "json": json_path(md).name,
                },
            ),
        )
    if args.part == "render":
        update(md, lambda d: None)
        return 0
    if args.part == "mark":  # gpu_check.sh: a part was killed (timeout) or crashed before recording
        part, _, rest = (args.mark or "").partition("=")
        status, _, note = rest.partition(":")

        def mark(d: dict[str, Any]) -> None:
            p = d.setdefault("parts", {}).setdefault(part, {})
            if p.get("status") in (None, "running"):  # keep a status the part wrote itself
                p.update(status=status.strip(), note=(p.get("note") or "") + note.strip())
            else:
                p["note"] = f"{p.get('note', '')} (process: {rest.strip()})".strip()

        update(md, mark)
        return 0
    if not load(md).get("meta"):
        update(
            md, lambda d: d.__setitem__("meta", {"smoke": args.smoke, "json": json_path(md).name})
        )
    if args.smoke:  # a shared CPU: more threads than free cores only adds waiting
        import torch

        torch.set_num_threads(1)
    parts = PARTS if args.part == "all" else [args.part]
    rc = 0
    for part in parts:
        rc = max(rc, run_part(md, part, args.smoke))
    return rc


if __name__ == "__main__":
    sys.exit(main())
