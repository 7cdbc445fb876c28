"""Data-parallel setup from the environment torchrun (or submitit under SLURM) exports, and
jax.distributed for the JAX backend.

Every entry that trains a run calls ``from_environment()``: with WORLD_SIZE unset or 1 it is a
single process and nothing is initialised; otherwise it joins the process group (NCCL on GPUs,
gloo on CPU) and returns how to wrap the model in DistributedDataParallel.

train.parallel=fsdp shards the model instead (shard_model, FSDP2's fully_shard); its checkpoints
are gathered whole (full_model_state, full_optimizer_state) into the files a DDP run writes.
"""
from __future__ import annotations

import os
from contextlib import contextmanager

# How long a collective (and the rendezvous) may wait for a peer before the job fails instead of
# hanging: launcher.dist_timeout_s, which the launchers export to their workers.
TIMEOUT_ENV, DEFAULT_TIMEOUT_S = "LAB_DIST_TIMEOUT_S", 1800.0


def from_environment() -> tuple[int, int, object]:
    """(rank, world size, DDP wrapper or None) from torchrun/SLURM environment variables."""
    from datetime import timedelta

    from lab.slurm_env import export_torch_env

    export_torch_env()  # a task of a multi-task srun step: the variables torchrun would have set
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, None
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if not dist.is_initialized():
        timeout = timedelta(seconds=float(os.environ.get(TIMEOUT_ENV) or DEFAULT_TIMEOUT_S))
        dist.init_process_group(backend, timeout=timeout)
    rank = dist.get_rank()
    if torch.cuda.is_available():
        # One GPU per rank: SLURM may show a task all of its node's GPUs or only its own.
        local = int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count()
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


def shard_model(model, world: int, device_type: str) -> None:
    """FSDP2 (train.parallel=fsdp): each block's parameters, gradients and optimizer state split
    over the `world` processes, gathered for the block's forward and backward only. The root call
    takes what is left (embedding, tied output projection, final norm). In place: the optimizer
    must be built afterwards, over the sharded parameters."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    mesh = init_device_mesh(device_type, (world,))
    for block in model.blocks:
        fully_shard(block, mesh=mesh)
    fully_shard(model, mesh=mesh)


def is_sharded(model) -> bool:
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


def _full_options(**extra):
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, **extra)


def _optimizer_names(model, optimizer) -> list[str]:
    """Parameter names in the optimizer's own order: index i of optimizer.state_dict() is name i."""
    names = {id(p): name for name, p in model.named_parameters()}
    return [names[id(p)] for group in optimizer.param_groups for p in group["params"]]


def full_model_state(model) -> dict:
    """A sharded model's weights, whole and on the CPU, keyed as model.state_dict() is.
    Collective: every process calls it; only rank 0's copy is filled in."""
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    return get_model_state_dict(model, options=_full_options(cpu_offload=True))


def full_optimizer_state(model, optimizer) -> dict:
    """The optimizer state of a sharded model, whole and on the CPU, in optimizer.state_dict()'s
    layout (parameters by index): the checkpoint files are the same as an unsharded run's.
    Collective, as full_model_state."""
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

    by_name = get_optimizer_state_dict(model, optimizer, options=_full_options(cpu_offload=True))
    if not by_name:  # not rank 0
        return {}
    indexed = optimizer.state_dict()  # the param groups by index; the state replaced below
    names = _optimizer_names(model, optimizer)
    indexed["state"] = {i: by_name["state"][name] for i, name in enumerate(names) if name in by_name["state"]}
    return indexed


def load_full_state(model, optimizer, model_state: dict, optimizer_state: dict) -> None:
    """Load whole states (a checkpoint's: full_model_state and full_optimizer_state's layout) into
    a sharded model and its optimizer: every process reads the same files and keeps its shard."""
    from torch.distributed.checkpoint.state_dict import set_model_state_dict, set_optimizer_state_dict

    model_state = dict(model_state)
    if model.cfg.tie_embeddings:  # stored once (lab.checkpoint); the module has both names
        model_state.setdefault("lm_head.weight", model_state["embed.weight"])
    set_model_state_dict(model, model_state, options=_full_options())
    names = _optimizer_names(model, optimizer)
    by_name = {"state": {names[i]: s for i, s in optimizer_state["state"].items()},
               "param_groups": [{**g, "params": [names[i] for i in g["params"]]}
                                for g in optimizer_state["param_groups"]]}
    set_optimizer_state_dict(model, optimizer, by_name, options=_full_options())
