"""Training MFU of both backends at one shape, side by side: the GPU check of issue 17.

Times our torch model (lab.model.Llama, fused AdamW, bf16 autocast where the device has it)
and the JAX backend's jitted step (lab.jax.step.TrainStep over lab.jax.optim's AdamW, bf16
matmuls on an accelerator) on the same random batches, and prints tokens/s and MFU for each:
MFU = tokens/s x the lab's FLOPs per token (lab.accounting, attention included) / the device's
listed dense peak (lab.precision; a CPU's is measured). Compilation and warm-up steps are
excluded and printed apart.

Usage: python bench/mfu.py [--shape gpt2-small|tiny] [--batch 8] [--seq 1024] [--steps 20]
                           [--backends torch,jax] [--compile]
  gpt2-small: ~124M parameters (d_model 768, 12 layers, 12 heads, 4 KV heads, vocab 50304).
  tiny: a seconds-long CPU smoke of the script itself.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lab.accounting import describe  # noqa: E402
from lab.config import ModelConfig, TrainConfig  # noqa: E402

SHAPES = {"gpt2-small": dict(d_model=768, n_layers=12, n_heads=12, n_kv_heads=4, vocab_size=50304),
          "tiny": dict(d_model=64, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=512)}


def batches(n: int, batch: int, seq: int, vocab: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, vocab, (batch, seq + 1), dtype=np.int64) for _ in range(n)]


def time_torch(cfg: ModelConfig, data: list[np.ndarray], warmup: int, compile: bool = False) -> dict:
    import torch

    from lab.model import Llama
    from lab.precision import choose, peak_flops
    from lab.torch_backend import build_optimizer

    precision = choose("auto", "auto")
    torch.manual_seed(0)
    model = Llama(cfg).to(precision.device)
    optimizer = build_optimizer(model, TrainConfig(lr=1e-4), precision.device)
    trained = torch.compile(model) if compile else model  # compiled during the warm-up steps

    def step(block):
        x = torch.from_numpy(block).to(precision.device)
        with precision.autocast():
            loss = trained(x[:, :-1], x[:, 1:])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss

    sync = torch.cuda.synchronize if precision.device == "cuda" else (lambda: None)
    start = time.perf_counter()
    for block in data[:warmup]:
        step(block)
    sync()
    warm_s = time.perf_counter() - start
    start = time.perf_counter()
    for block in data[warmup:]:
        loss = step(block)
    sync()
    elapsed = time.perf_counter() - start
    device = torch.cuda.get_device_name() if precision.device == "cuda" else "cpu"
    return {"backend": "torch" + (" compiled" if compile else ""), "device": device, "precision": precision.dtype,
            "warmup_s": warm_s,
            "seconds": elapsed, "loss": float(loss.detach()), "peak": peak_flops(precision)}


def time_jax(cfg: ModelConfig, data: list[np.ndarray], warmup: int) -> dict:
    import jax
    from flax import nnx

    from lab.jax.model import Llama
    from lab.jax.optim import build_optimizer
    from lab.jax.step import TrainStep, split_model
    from lab.jax.train import choose_precision
    from lab.precision import gpu_peak_flops
    from lab.precision import peak_flops as cpu_peak

    device = jax.devices()[0]
    precision = choose_precision("auto", device)
    dtype = jax.numpy.bfloat16 if precision.dtype == "bf16" else jax.numpy.float32
    graphdef, params = split_model(Llama(cfg, rngs=nnx.Rngs(0), compute_dtype=dtype))
    tx = build_optimizer(TrainConfig(lr=1e-4), len(data))
    opt_state = tx.init(params)
    train_step = TrainStep(graphdef, tx)

    def step(block, params, opt_state):
        block = block.astype(np.int32)[None]  # (accumulation 1, batch, T+1)
        return train_step(params, opt_state, block[..., :-1], block[..., 1:])

    start = time.perf_counter()
    for block in data[:warmup]:
        params, opt_state, metrics = step(block, params, opt_state)
    jax.block_until_ready((params, opt_state, metrics))
    warm_s = time.perf_counter() - start
    start = time.perf_counter()
    for block in data[warmup:]:
        params, opt_state, metrics = step(block, params, opt_state)
    jax.block_until_ready((params, opt_state, metrics))
    elapsed = time.perf_counter() - start
    if precision.device == "cuda":
        peak = gpu_peak_flops(device.device_kind, precision.dtype)
    elif precision.device == "cpu":
        peak = cpu_peak(precision)
    else:
        peak = float("nan")
    return {"backend": "jax", "device": device.device_kind, "precision": precision.dtype, "warmup_s": warm_s,
            "seconds": elapsed, "loss": float(metrics["loss"]), "peak": peak, "traces": train_step.traces}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", choices=sorted(SHAPES), default="gpt2-small")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--backends", default="torch,jax")
    ap.add_argument("--compile", action="store_true", help="torch.compile the torch model (as train.compile=true)")
    args = ap.parse_args()
    cfg = ModelConfig(**SHAPES[args.shape])
    shape = describe(cfg, args.seq)
    data = batches(args.warmup + args.steps, args.batch, args.seq, cfg.vocab_size)
    print(f"shape {args.shape}: {shape['params'] / 1e6:.1f}M parameters, {shape['flops_per_token'] / 1e6:.0f} "
          f"MFLOP/token, batch {args.batch} x {args.seq}, {args.steps} timed steps after {args.warmup}")
    timers = {"torch": lambda *a: time_torch(*a, compile=args.compile), "jax": time_jax}
    for name in args.backends.split(","):
        row = timers[name](cfg, data, args.warmup)
        tokens_per_s = args.steps * args.batch * args.seq / row["seconds"]
        row.update(tokens_per_s=tokens_per_s, mfu=tokens_per_s * shape["flops_per_token"] / row["peak"])
        print(f"{row['backend']:>5} on {row['device']} ({row['precision']}): {tokens_per_s:10,.0f} tokens/s, "
              f"MFU {row['mfu']:.1%} (warm-up incl. compile {row['warmup_s']:.1f} s, last loss {row['loss']:.3f})")
        print(json.dumps(row))


if __name__ == "__main__":
    main()
