"""Attention forward+backward: SDPA's kernel vs the blocked path (lab/attention.py).

Both run on the same tensors, alternating in one process; prints milliseconds per call and
the ratio for each sequence length and precision, at the default model's heads (4 query,
2 KV, head dim 32) and 4096 tokens per batch. lab.attention.BLOCKED_MAX_SEQ comes from this.
Usage: python bench/attention.py [--reps 10]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lab.attention import blocked_attention, sdpa_attention  # noqa: E402

H, HKV, HD, TOKENS = 4, 2, 32, 4096


def one_call(fn, q, k, v, grad) -> float:
    start = time.perf_counter()
    fn(q, k, v).backward(grad)
    return time.perf_counter() - start


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=10)
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; heads {H}/{HKV}, head dim {HD}, "
          f"{TOKENS} tokens per call; median ms of fwd+bwd")
    print(f"{'seq':>5} {'dtype':>9} {'sdpa':>8} {'blocked':>8} {'speedup':>8}")
    for seq in (128, 256, 512, 1024):
        for dtype in (torch.float32, torch.bfloat16):
            g = torch.Generator().manual_seed(seq)
            shape = lambda h: (TOKENS // seq, seq, h, HD)  # noqa: E731
            q, k, v = (torch.randn(shape(h), generator=g).to(dtype).requires_grad_() for h in (H, HKV, HKV))
            grad = torch.randn(TOKENS // seq, seq, H * HD, generator=g).to(dtype)
            times = {"sdpa": [], "blocked": []}
            for rep in range(args.reps + 2):
                for name, fn in (("sdpa", sdpa_attention), ("blocked", blocked_attention)):
                    elapsed = one_call(fn, q, k, v, grad)
                    if rep >= 2:  # the first two are warm-up
                        times[name].append(elapsed)
            sdpa, blocked = (statistics.median(times[n]) * 1e3 for n in ("sdpa", "blocked"))
            print(f"{seq:>5} {str(dtype).removeprefix('torch.'):>9} {sdpa:8.1f} {blocked:8.1f} {sdpa / blocked:7.2f}x")


if __name__ == "__main__":
    main()
