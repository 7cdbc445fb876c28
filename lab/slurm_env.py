"""One task of a SLURM job step as a torch.distributed rank: rank, world size, local rank and
rendezvous address from the SLURM_* variables srun sets for every task.

submitit's launcher runs `srun` with one task per rank (launcher.nodes x launcher.tasks_per_node);
each task calls the same worker, which calls ``export_torch_env()`` (through
lab.distributed.from_environment) before joining the process group with env://, exactly as
under torchrun.

submitit ships the same mapping (submitit.helpers.TorchDistributedEnvironment). It is not used
here because it must not be needed to train (`srun python -m lab.sweep.worker DIR` works
without it), it reads the allocation (SLURM_JOB_NODELIST, SLURM_NTASKS) instead of the step,
and it trusts any SLURM_JOB_ID: a shell of an `salloc` allocation would wait for peers that
never come. tests/lab/test_slurm_env.py checks that both agree on the same variables.
"""
from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

# The rendezvous port is derived from the job id, so every task of the job computes the same one
# without talking to the others. Below Linux's ephemeral range (32768-60999), which outgoing
# connections draw from: a port there may be taken by any client on the node.
PORT_BASE, PORT_SPAN = 15000, 15000


@dataclass(frozen=True)
class SlurmTask:
    rank: int
    world: int
    local_rank: int
    node: int
    master_addr: str
    master_port: int
    job_id: str


def expand_hostlist(text: str) -> list[str]:
    """SLURM's compact host list, e.g. "node[01-03,07],gpu5" -> node01 node02 node03 node07 gpu5
    (zero padding kept; several bracket groups in one name expand as a product)."""
    hosts: list[str] = []
    for name in _split_top_level(text.strip()):
        hosts.extend(_expand_name(name))
    return hosts


def _split_top_level(text: str) -> list[str]:
    """Split at the commas outside brackets."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
            if depth < 0:
                raise ValueError(f"unbalanced ']' in host list {text!r}")
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    if depth:
        raise ValueError(f"unbalanced '[' in host list {text!r}")
    parts.append(text[start:])
    return [p for p in parts if p]


def _expand_name(name: str) -> list[str]:
    match = re.search(r"\[([^\]]*)\]", name)
    if match is None:
        return [name]
    head, tail = name[:match.start()], name[match.end():]
    return [head + value + rest for value in _expand_ranges(match.group(1), name) for rest in _expand_name(tail)]


def _expand_ranges(body: str, name: str) -> list[str]:
    values = []
    for item in body.split(","):
        low, _, high = item.partition("-")
        if not low.isdigit() or (high and not high.isdigit()):
            raise ValueError(f"cannot read {item!r} in host list entry {name!r}")
        if not high:
            values.append(low)
            continue
        width = len(low)  # "01-03" keeps two digits: node01, not node1
        values.extend(str(i).zfill(width) for i in range(int(low), int(high) + 1))
    return values


def master_port(job_id: str) -> int:
    """The job's rendezvous port: consecutive jobs (sharing a node) get different ones."""
    return PORT_BASE + int(re.sub(r"\D", "", job_id) or 0) % PORT_SPAN


def task_from_environment(env: Mapping[str, str] = os.environ) -> SlurmTask | None:
    """This process as one of several tasks of an srun step, or None: outside SLURM, in a step of
    one task, or where only the allocation's variables are set (a batch script or an salloc
    shell: those are one process, whatever SLURM_NTASKS says)."""
    if "SLURM_JOB_ID" not in env or "SLURM_STEP_ID" not in env or "SLURM_PROCID" not in env:
        return None
    world = int(env.get("SLURM_STEP_NUM_TASKS") or env.get("SLURM_NTASKS") or 1)
    if world <= 1:
        return None
    rank = int(env["SLURM_PROCID"])
    if not 0 <= rank < world:
        raise RuntimeError(f"SLURM_PROCID={rank} is not a task of a step of {world}")
    nodelist = env.get("SLURM_STEP_NODELIST") or env.get("SLURM_JOB_NODELIST") or ""
    hosts = expand_hostlist(nodelist)
    if not hosts:
        raise RuntimeError("a SLURM step of several tasks without SLURM_STEP_NODELIST or SLURM_JOB_NODELIST")
    job = env["SLURM_JOB_ID"]
    port = int(env["MASTER_PORT"]) if env.get("MASTER_PORT") else master_port(job)
    # Task 0 runs on the step's first node (SLURM places tasks in node-list order): it hosts the
    # rendezvous store.
    return SlurmTask(rank=rank, world=world, local_rank=int(env.get("SLURM_LOCALID", "0")),
                     node=int(env.get("SLURM_NODEID", "0")), master_addr=env.get("MASTER_ADDR") or hosts[0],
                     master_port=port, job_id=job)


def export_torch_env(env: os._Environ | dict = os.environ) -> SlurmTask | None:
    """Set torch.distributed's env:// variables (MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE,
    LOCAL_RANK) from SLURM's when this is a task of a multi-task step and WORLD_SIZE is not set
    already (torchrun's, or a user's, win). Returns the task, or None when nothing was set."""
    if "WORLD_SIZE" in env:
        return None
    task = task_from_environment(env)
    if task is None:
        return None
    env.update(MASTER_ADDR=task.master_addr, MASTER_PORT=str(task.master_port), RANK=str(task.rank),
               WORLD_SIZE=str(task.world), LOCAL_RANK=str(task.local_rank))
    return task
