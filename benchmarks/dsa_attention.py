"""DSA attention vs F.scaled_dot_product_attention(is_causal=True): forward+backward time, memory.

    python benchmarks/dsa_attention.py                  # CPU: gather path, T = 1K..8K
    python benchmarks/dsa_attention.py --device cuda    # GPU: flex path, T = 4K..64K

Rows: `sdpa` (dense causal, the baseline), `sparse attn` (attention alone over a fixed
selection), `DSA layer` (the whole nn.Module in training mode: qkv, indexer scores, top-k
selection, sparse attention, projection and the indexer KL) next to `dense layer` (same module,
dense=True). Keep fraction f = attended blocks / all blocks; the ideal speedup over causal SDPA
is 1/(2f) -- a ratio above that is a bug until proven otherwise.

Memory: on CUDA the peak allocated bytes; on CPU (no allocator statistics) the bytes autograd
saves for backward, the part of peak memory that grows with T.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from curator.trainer.dsa import DSAttention, select_blocks, sparse_attention_flex
from curator.trainer.dsa import sparse_attention_gather as gather

RESULTS = Path(__file__).parent / "results" / "dsa_attention.md"


def saved_bytes(fn: Callable[[], torch.Tensor]) -> tuple[torch.Tensor, int]:
    total = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return out, total


def measure(fn: Callable[[], torch.Tensor], device: torch.device, reps: int) -> tuple[float, float]:
    """Median-of-reps seconds for forward+backward (after one warm-up run), and MB (peak on
    CUDA, saved on CPU). The median, not the best: on a shared machine the best of a few runs
    rewards whichever cell happened to run alone."""
    times, mem = [], 0.0
    for i in range(reps + 1):  # first run warms up (and compiles on CUDA)
        if device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
        t0 = time.perf_counter()
        out, saved = saved_bytes(fn)
        out.float().sum().backward()
        if device.type == "cuda":
            torch.cuda.synchronize()
            mem = (torch.cuda.max_memory_allocated() - base) / 2**20
        else:
            mem = saved / 2**20
        if i:
            times.append(time.perf_counter() - t0)
    return statistics.median(times), mem


def run(
    device: torch.device,
    lengths: list[int],
    fracs: list[float],
    block: int,
    heads: int,
    dim: int,
    reps: int,
) -> list[dict]:
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    attend = sparse_attention_flex if device.type == "cuda" else gather
    rows = []
    for T in lengths:
        nb = T // block
        q, k, v = (
            torch.randn(1, heads, T, dim, device=device, dtype=dtype, requires_grad=True)
            for _ in "qkv"
        )
        sdpa_t, sdpa_m = measure(
            lambda q=q, k=k, v=v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
            device,
            reps,
        )
        rows.append(
            {
                "T": T,
                "what": "sdpa (causal)",
                "f": 0.5 + 0.5 / nb,
                "s": sdpa_t,
                "mb": sdpa_m,
                "x": 1.0,
                "mx": 1.0,
            }
        )
        layer_dense = None
        for f in fracs:
            slots = max(3, round(f * nb))
            sel = select_blocks(torch.randn(1, nb, nb, device=device), slots - 3, 1, 1)
            keep = sel.valid.float().sum().item() / (nb * nb)
            t, m = measure(lambda q=q, k=k, v=v, sel=sel: attend(q, k, v, sel, block), device, reps)
            rows.append(
                {
                    "T": T,
                    "what": f"sparse attn, f=1/{round(1 / f)}",
                    "f": keep,
                    "s": t,
                    "mb": m,
                    "x": sdpa_t / t,
                    "mx": m / sdpa_m,
                }
            )
            torch.manual_seed(0)
            layer = (
                DSAttention(
                    heads * dim,
                    heads,
                    block_size=block,
                    top_k_blocks=slots - 3,
                    window_blocks=1,
                    sink_blocks=1,
                )
                .to(device)
                .train()
            )
            layer.use_flex = device.type == "cuda"
            x = torch.randn(1, T, heads * dim, device=device, requires_grad=True)
            ac = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")

            def fwd(layer=layer, x=x, dense=False, ac=ac) -> torch.Tensor:
                with ac:
                    y, kl = layer(x, dense=dense)
                return y.float().sum() + kl

            if layer_dense is None:
                layer_dense = measure(lambda fwd=fwd: fwd(dense=True), device, reps)
                ld_t, ld_m = layer_dense
                rows.append(
                    {
                        "T": T,
                        "what": "dense layer (SDPA inside)",
                        "f": 0.5 + 0.5 / nb,
                        "s": ld_t,
                        "mb": ld_m,
                        "x": sdpa_t / ld_t,
                        "mx": ld_m / sdpa_m,
                    }
                )
            t, m = measure(fwd, device, reps)
            rows.append(
                {
                    "T": T,
                    "what": f"DSA layer, f=1/{round(1 / f)}",
                    "f": keep,
                    "s": t,
                    "mb": m,
                    "x": layer_dense[0] / t,
                    "mx": m / layer_dense[1],
                }
            )
            print(rows[-3:], flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--lengths", default=None, help="comma list; default 1K-8K CPU, 4K-64K GPU")
    ap.add_argument("--block", type=int, default=None)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = device.type == "cuda"
    lengths = (
        [int(x) for x in args.lengths.split(",")]
        if args.lengths
        else ([4096, 16384, 65536] if cuda else [1024, 2048, 4096, 8192])
    )
    block = args.block or (128 if cuda else 64)
    rows = run(device, lengths, [1 / 8, 1 / 16], block, args.heads, args.dim, args.reps)
    mem = "peak MB" if cuda else "saved-for-backward MB"
    cmd = "python benchmarks/dsa_attention.py " + " ".join(
        f"--{k} {v}" for k, v in vars(args).items() if v not in (None, 0)
    )
    lines = [
        f"# DSA attention vs causal SDPA ({device.type})",
        "",
        f"Command: `{cmd}`",
        "",
        f"B=1, heads={args.heads}, head_dim={args.dim}, block={block}, fp32 on CPU / bf16 on "
        f"CUDA; forward+backward, median of {args.reps} after a warm-up; torch "
        f"{torch.__version__}, {torch.get_num_threads()} threads. `f` = attended fraction of all "
        "T x T blocks. `x` = speedup: attention rows vs SDPA, DSA layer vs the dense layer. "
        f"Memory = {mem}.",
        "",
        f"| T | what | f | fwd+bwd s | x | {mem} | mem ratio |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['T']} | {r['what']} | {r['f']:.3f} | {r['s']:.4f} | {r['x']:.2f} | "
        f"{r['mb']:.1f} | {r['mx']:.2f} |"
        for r in rows
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if not cuda:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(
            text + "\nGPU (flex_attention) numbers were not measured: no GPU was "
            "available to this session.\n"
        )


if __name__ == "__main__":
    main()
