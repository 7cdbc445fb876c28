"""Training throughput: our Llama vs transformers' LlamaForCausalLM, same shape, same batch.

Alternates them in one process (so machine noise hits all alike) and prints tokens/s for each
and the ratio; then checks that our default CPU precision keeps the loss after 200 steps
within 2% of fp32. Also times our model under torch.compile (train.compile=true) after
reporting how long compiling took; --no-compile skips it.

--keep-freed-memory first tells glibc's malloc to keep freed memory for reuse instead of
handing large blocks back to the kernel (mallopt), for the whole process: every row then runs
without the page faults of re-touching fresh pages, which cost transformers' model (it holds
(tokens x vocab) fp32 logits, 64 MB at this shape) far more than ours. Off by default: the
default allocator is what the models meet in a user's process. It does not reach the JAX row's
faults (~140k a step: XLA's ~550 MB of temporaries, allocated on XLA's own threads, which glibc
serves from arenas that mmap any block over 64 MB); MALLOC_ARENA_MAX=1 in the environment
removes them in some runs only (see bench/RESULTS.md).
--backend jax (issue 17) times the JAX/Flax NNX backend's train step (lab.jax.step.TrainStep with
lab.jax.optim.build_optimizer: one jitted step, accumulation 1) on the same shape and the same
batches (as numpy int32), alternated with HF fp32 and ours (torch) fp32 in the same rounds, and
prints the ratio JAX / torch. JAX's compile time is measured apart and printed; the timed steps
wait for every result (jax.block_until_ready). Threads: torch runs torch.get_num_threads(), XLA's
CPU client its own intra-op pool, sized to the CPUs this process may run on; both are printed
with XLA_FLAGS (set it in the environment to try XLA's options; the bench sets none). The bf16
row and the loss check are torch-only and left out; without --no-compile a torch.compile row
runs in fp32 (compiled against XLA's compiled step). --backend torch (the default) is the
behaviour without the flag.
Usage: python bench/throughput.py [--steps 20] [--rounds 3] [--loss-steps 200] [--no-compile]
                                  [--keep-freed-memory] [--backend torch|jax]
"""
from __future__ import annotations

import argparse
import ctypes
import os
import resource
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lab.config import ModelConfig, TrainConfig  # noqa: E402
from lab.hf import to_hf_model  # noqa: E402
from lab.model import Llama  # noqa: E402
from lab.precision import choose  # noqa: E402
from lab.torch_backend import build_optimizer  # noqa: E402

SHAPE = dict(d_model=128, n_layers=4, n_heads=4, n_kv_heads=2, vocab_size=4096)
BATCH, SEQ = 16, 256


def hf_loss(model, x, y):
    logits = model(input_ids=x).logits
    return torch.nn.functional.cross_entropy(logits.float().view(-1, logits.size(-1)), y.reshape(-1))


def keep_freed_memory() -> None:
    """glibc only: no mmap for large blocks, no trimming of the heap's top (see module docstring)."""
    libc = ctypes.CDLL("libc.so.6")
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
    if not (libc.mallopt(M_MMAP_THRESHOLD, 1 << 30) and libc.mallopt(M_TRIM_THRESHOLD, 1 << 30)):
        raise SystemExit("mallopt refused the settings")


def page_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def timed_steps(model, loss_fn, optimizer, batches, autocast) -> float:
    start = time.perf_counter()
    for x, y in batches:
        with autocast():
            loss = loss_fn(model, x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return len(batches) * BATCH * SEQ / (time.perf_counter() - start)


class JaxStep:
    """The JAX backend's train step as a row: lab.jax.step.TrainStep over build_optimizer's AdamW
    (clip 1.0 as the torch rows), accumulation 1, starting from the torch model's initial weights.
    Imports JAX only when asked for, so the torch-only bench never loads it."""

    def __init__(self, torch_model, total_steps):
        import jax

        from lab.jax.optim import build_optimizer as jax_optimizer
        from lab.jax.step import TrainStep, split_model
        from lab.jax.weights import from_torch_state_dict

        self.jax = jax
        model = from_torch_state_dict(torch_model.cfg, torch_model.state_dict())
        graphdef, self.params = split_model(model)
        tx = jax_optimizer(TrainConfig(), total_steps)
        self.opt_state = tx.init(self.params)
        self.step = TrainStep(graphdef, tx)

    @staticmethod
    def as_numpy(batches):
        """The torch batches as (accumulation 1, BATCH, SEQ) numpy int32, TrainStep's layout."""
        return [(x.numpy().astype("int32")[None], y.numpy().astype("int32")[None]) for x, y in batches]

    def first_call(self, x, y) -> float:
        """Seconds of the first step: tracing and XLA's compile, plus one step."""
        start = time.perf_counter()
        self.params, self.opt_state, metrics = self.step(self.params, self.opt_state, x, y)
        self.jax.block_until_ready((self.params, self.opt_state, metrics))
        return time.perf_counter() - start

    def timed(self, batches) -> float:
        """tokens/s over `batches` (converted before the clock starts); every step's update
        is finished before the clock stops (JAX dispatches asynchronously)."""
        batches = self.as_numpy(batches)
        start = time.perf_counter()
        for x, y in batches:
            self.params, self.opt_state, metrics = self.step(self.params, self.opt_state, x, y)
        self.jax.block_until_ready((self.params, self.opt_state, metrics))
        return len(batches) * BATCH * SEQ / (time.perf_counter() - start)


def thread_settings() -> str:
    cpus = len(os.sched_getaffinity(0))
    return (f"torch {torch.get_num_threads()} intra-op threads; XLA's CPU pool sized to the {cpus} "
            f"CPUs this process may use, XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}")


def make_batches(n, seed):
    g = torch.Generator().manual_seed(seed)
    data = torch.randint(0, SHAPE["vocab_size"], (n, BATCH, SEQ + 1), generator=g)
    return [(d[:, :-1], d[:, 1:]) for d in data]


def structured_batches(n, seed):
    """Learnable data (a noisy repeating pattern) so losses actually fall over 200 steps."""
    g = torch.Generator().manual_seed(seed)
    base = torch.randint(0, 512, (64,), generator=g)
    out = []
    for _ in range(n):
        offsets = torch.randint(0, 64, (BATCH, 1), generator=g)
        idx = base[(offsets + torch.arange(SEQ + 1)) % 64]
        noise = torch.rand(idx.shape, generator=g) < 0.1
        idx = torch.where(noise, torch.randint(0, SHAPE["vocab_size"], idx.shape, generator=g), idx)
        out.append((idx[:, :-1], idx[:, 1:]))
    return out


def final_loss(precision, steps):
    torch.manual_seed(0)
    model = Llama(ModelConfig(**SHAPE))
    opt = build_optimizer(model, TrainConfig(lr=3e-3), "cpu")
    losses = []
    for x, y in structured_batches(steps, seed=1):
        with precision.autocast():
            loss = model.loss(x, y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
    return sum(losses[-10:]) / 10


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--loss-steps", type=int, default=200)
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--keep-freed-memory", action="store_true")
    ap.add_argument("--backend", choices=("torch", "jax"), default="torch",
                    help="jax: add the JAX backend's step (rows HF fp32, ours fp32, ours JAX fp32)")
    args = ap.parse_args()
    jax_backend = args.backend == "jax"
    if args.keep_freed_memory:
        keep_freed_memory()
    fp32, default = choose("cpu", "fp32"), choose("cpu", "auto")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, default precision "
          f"{default.dtype} ({default.reason}); shape {SHAPE}, batch {BATCH}x{SEQ}")
    torch.manual_seed(0)
    ours = Llama(ModelConfig(**SHAPE))
    hf = to_hf_model(Llama(ModelConfig(**SHAPE))).train()
    jax_step = JaxStep(ours, total_steps=3 + args.rounds * args.steps + 1) if jax_backend else None
    opt_ours = build_optimizer(ours, TrainConfig(), "cpu")
    opt_hf = torch.optim.AdamW(hf.parameters(), lr=1e-3, fused=True)
    ours_loss = lambda m, x, y: m(x, y)  # noqa: E731  (forward with targets = the fused loss)

    def torch_row(model, loss_fn, opt, precision):
        return lambda batches: timed_steps(model, loss_fn, opt, batches, precision.autocast)

    runs = [("hf fp32", torch_row(hf, hf_loss, opt_hf, fp32)),
            ("ours fp32", torch_row(ours, ours_loss, opt_ours, fp32))]
    compiled_precision = fp32 if jax_backend else default
    if jax_backend:
        import jax

        print(f"jax {jax.__version__} on {jax.default_backend()}; {thread_settings()}")
        runs.append(("ours JAX fp32", jax_step.timed))
    elif default.dtype != "fp32":
        runs.append((f"ours {default.dtype}", torch_row(ours, ours_loss, opt_ours, default)))
    else:  # the bf16 goal is about CPUs with native bf16; here bf16 would be emulated
        print("default precision here is fp32: this CPU lacks native bf16, so the bf16 goal "
              "cannot be measured on it (rows: HF fp32, ours fp32)")
    warm = make_batches(3, seed=0)
    if jax_backend:
        seconds = jax_step.first_call(*jax_step.as_numpy(warm[:1])[0])
        print(f"JAX first step (trace + XLA compile + one step), not timed below: {seconds:.1f} s")
    if not args.no_compile:
        compiled = torch.compile(ours)
        start = time.perf_counter()
        timed_steps(compiled, ours_loss, opt_ours, warm[:1], compiled_precision.autocast)
        print(f"torch.compile of our model ({compiled_precision.dtype}): {time.perf_counter() - start:.0f} s")
        runs.append((f"ours {compiled_precision.dtype} compiled",
                     torch_row(compiled, ours_loss, opt_ours, compiled_precision)))
    for _, timer in runs:
        timer(warm)
    results = {name: [] for name, _ in runs}
    faults = dict.fromkeys(results, 0)
    for r in range(args.rounds):
        batches = make_batches(args.steps, seed=r + 1)
        for name, timer in runs:
            before = page_faults()
            results[name].append(timer(batches))
            faults[name] += page_faults() - before
    med = {k: sorted(v)[len(v) // 2] for k, v in results.items()}
    for k, v in med.items():
        per_step = faults[k] / (args.rounds * args.steps)
        print(f"{k:>20}: {v:8.0f} tokens/s  ({v / med['hf fp32']:.2f}x HF fp32)  "
              f"{per_step:6.0f} page faults/step")
    if jax_backend:
        per_round = ", ".join(f"{j / t:.2f}" for j, t in zip(results["ours JAX fp32"], results["ours fp32"]))
        print(f"JAX / torch (ours fp32): {med['ours JAX fp32'] / med['ours fp32']:.2f}x of the medians "
              f"(goal >= 0.9x); per round {per_round}")
    if args.loss_steps and default.dtype != "fp32" and not jax_backend:
        a, b = final_loss(fp32, args.loss_steps), final_loss(default, args.loss_steps)
        print(f"loss after {args.loss_steps} steps: fp32 {a:.4f}, {default.dtype} {b:.4f} "
              f"(relative difference {abs(b - a) / a:.2%})")


if __name__ == "__main__":
    main()
