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


def lookup(shape: dict, share: int, cache_path: Path | None) -> int | None:
    """The cached micro batch for `shape`, if one is cached and splits `share`."""
    cached = read_cache(cache_path).get(cache_key(shape)) if cache_path is not None else None
    return int(cached) if cached is not None and share % int(cached) == 0 else None


def measure(shape: dict, share: int, fits: Callable[[int], bool]) -> int:
    """The largest divisor of `share` that fits, or a ConfigError saying what to do instead."""
    found = largest_fitting(candidates(share), fits)
    if found is None:
        raise ConfigError("train.micro_batch_size", f"not even one sequence of {shape['seq_len']} tokens fits "
                                                    f"{shape['device_name']}; use train.activation_checkpointing=true, "
                                                    "train.parallel=fsdp, or a smaller model")
    return found


def store(shape: dict, micro: int, cache_path: Path) -> None:
    cache_path.parent.mkdir(parents=True, exist_ok=True)
    # Read again just before writing: another run may have cached another shape meanwhile.
    atomic_write_text(cache_path, json.dumps({**read_cache(cache_path), cache_key(shape): micro}, indent=1,
                                             sort_keys=True))


def resolve(shape: dict, share: int, fits: Callable[[int], bool], cache_path: Path | None,
            log: Callable[[str], None] = print, *, writer: bool = True,
            from_writer: Callable[[int | None], int | None] = lambda cached: cached) -> int:
    """The cached micro batch for `shape` (everything that moves the memory: model, seq_len,
    precision, device, processes), else the measured one, which is then cached.

    Several processes of one run take the same steps, so none waits on a collective another
    skipped: only the writer reads and writes the cache, `from_writer` hands its answer to every
    process, and `fits` must answer alike everywhere (TorchBackend passes both)."""
    cached = from_writer(lookup(shape, share, cache_path) if writer else None)
    if cached is not None:
        return cached
    found = measure(shape, share, fits)
    if writer:
        log(f"train.micro_batch_size=auto: {found} of {share} sequences per process fit {shape['device_name']}")
        if cache_path is not None:
            store(shape, found, cache_path)
    return found


def out_of_memory(error: BaseException) -> bool:
    """CUDA's allocator raises OutOfMemoryError; cuBLAS and attention kernels that cannot get their
    workspace raise a plain RuntimeError saying so."""
    import torch

    text = str(error)
    return isinstance(error, torch.cuda.OutOfMemoryError) or (
        isinstance(error, RuntimeError) and ("out of memory" in text or "ALLOC_FAILED" in text))


def torch_fits(model, optimizer_bytes: int, seq_len: int, vocab_size: int, precision, device,
               extra_bytes_per_row: int = 0) -> Callable[[int], bool]:
    """A probe for one CUDA device: a forward and backward pass on `rows` random sequences.
    extra_bytes_per_row: memory a row will take that the probe's eager pass does not show (the
    whole logits of a compiled step)."""
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
        except RuntimeError as error:
            if not out_of_memory(error):
                raise
            return False
        finally:
            model.zero_grad(set_to_none=True)
            loss = None
            torch.cuda.empty_cache()
        return peak + optimizer_bytes + rows * extra_bytes_per_row <= MEMORY_FRACTION * total

    return fits
