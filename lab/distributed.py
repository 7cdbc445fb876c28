"""Data-parallel setup from the environment torchrun (or submitit under SLURM) exports, and
jax.distributed for the JAX backend.

Every entry that trains a run calls ``from_environment()``: with WORLD_SIZE unset or 1 it is a
single process and nothing is initialised; otherwise it joins the process group (NCCL on GPUs,
gloo on CPU) and returns how to wrap the model in DistributedDataParallel.
"""
from __future__ import annotations

import os
from contextlib import contextmanager


def from_environment() -> tuple[int, int, object]:
    """(rank, world size, DDP wrapper or None) from torchrun/SLURM environment variables."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, None
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend)
    rank = dist.get_rank()
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return rank, world, lambda m: DistributedDataParallel(m, device_ids=[local])
    return rank, world, lambda m: DistributedDataParallel(m)


@contextmanager
def process_group(backend: str = "torch"):
    """(rank, world size, DDP wrapper or None) for the duration of a with block; the group is
    torn down after it. The JAX backend joins jax.distributed instead when this is one of several
    processes (SLURM tasks, a TPU pod, or JAX_NUM_PROCESSES > 1): world is then JAX's process count."""
    if backend == "jax":
        if "TORCHELASTIC_RUN_ID" in os.environ and int(os.environ.get("WORLD_SIZE", "1")) > 1:  # torchrun's
            from common.errors import ConfigError

            raise ConfigError("train.backend", "torchrun starts a process per device, each of which would train "
                                               "the whole run; the JAX backend drives all of a host's devices from "
                                               "one process (train.mesh): run it without torchrun")
        from lab.jax.sharding import initialize_distributed

        rank, world = initialize_distributed()
        yield rank, world, None
        return
    rank, world, wrap = from_environment()
    try:
        yield rank, world, wrap
    finally:
        if world > 1:
            import torch.distributed as dist

            dist.destroy_process_group()
