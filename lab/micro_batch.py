"""train.micro_batch_size=auto: the largest micro batch that fits the device, measured once per
model shape and device and cached.

A candidate fits when one forward and backward pass at that many sequences runs without running
out of memory, and its peak memory plus what the optimizer will still allocate (AdamW's two
fp32 moments per parameter) stays within MEMORY_FRACTION of the device. Candidates are the
divisors of the process's share of the batch, so accumulation stays exact; memory grows with the
micro batch, so a bisection over them finds the largest that fits. On a CPU there is no device
memory to probe: auto is the whole share (no accumulation).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from common.errors import ConfigError
from common.files import atomic_write_text

# Head room for what a probe does not see: the allocator's fragmentation, DDP's gradient buckets,
# validation, a checkpoint's copies.
MEMORY_FRACTION = 0.85
CACHE_FILE = "micro_batch.json"


def per_process_batch(batch_size: int, world: int) -> int:
    return batch_size // world


def candidates(share: int) -> list[int]:
    """Micro batches that split `share` sequences exactly, smallest first."""
    return [d for d in range(1, share + 1) if share % d == 0]


def largest_fitting(options: list[int], fits: Callable[[int], bool]) -> int | None:
    """The largest option for which fits() holds, assuming it holds for every option below one
    that fits (memory grows with the micro batch); None when even the smallest does not."""
    low, high, best = 0, len(options) - 1, None
    while low <= high:
        middle = (low + high) // 2
        if fits(options[middle]):
            best, low = options[middle], middle + 1
        else:
            high = middle - 1
    return best


def cache_key(shape: dict) -> str:
    return json.dumps(shape, sort_keys=True)


def read_cache(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):  # absent or damaged: measure again
        return {}


def resolve(shape: dict, share: int, fits: Callable[[int], bool], cache_path: Path | None,
            log: Callable[[str], None] = print) -> int:
    """The cached micro batch for `shape` (everything that moves the memory: model, seq_len,
    precision, device, processes), else the measured one, which is then cached."""
    key = cache_key(shape)
    cached = read_cache(cache_path).get(key) if cache_path is not None else None
    if cached is not None and share % int(cached) == 0:
        return int(cached)
    found = largest_fitting(candidates(share), fits)
    if found is None:
        raise ConfigError("train.micro_batch_size", f"not even one sequence of {shape['seq_len']} tokens fits "
                                                    f"{shape['device_name']}; use train.activation_checkpointing=true, "
                                                    "train.parallel=fsdp, or a smaller model")
    log(f"train.micro_batch_size=auto: {found} of {share} sequences per process fit {shape['device_name']}")
    if cache_path is not None:
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        # Read again just before writing: another run may have cached another shape meanwhile.
        atomic_write_text(cache_path, json.dumps({**read_cache(cache_path), key: found}, indent=1, sort_keys=True))
    return found


def torch_fits(model, optimizer_bytes: int, seq_len: int, vocab_size: int, precision, device) -> Callable[[int], bool]:
    """A probe for one CUDA device: a forward and backward pass on `rows` random sequences."""
    import torch

    total = torch.cuda.get_device_properties(device).total_memory

    def fits(rows: int) -> bool:
        x = torch.randint(0, vocab_size, (rows, seq_len), device=device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        try:
            with precision.autocast():
                loss = model(x, x)
            loss.backward()
            peak = torch.cuda.max_memory_allocated(device)
        except torch.cuda.OutOfMemoryError:
            return False
        finally:
            model.zero_grad(set_to_none=True)
            loss = None
            torch.cuda.empty_cache()
        return peak + optimizer_bytes <= MEMORY_FRACTION * total

    return fits
