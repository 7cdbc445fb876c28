"""SLURM's task variables read as torch.distributed ranks (lab.slurm_env), checked against
submitit's own reading of the same variables."""
import pytest

from lab.slurm_env import (
    PORT_BASE,
    PORT_SPAN,
    expand_hostlist,
    export_torch_env,
    master_port,
    task_from_environment,
)

HOSTLISTS = {
    "node[01-03,07],gpu5": ["node01", "node02", "node03", "node07", "gpu5"],
    "localhost": ["localhost"],
    "127.0.0.[1-2]": ["127.0.0.1", "127.0.0.2"],
    "a[8-11]": ["a8", "a9", "a10", "a11"],
    "a[08-11]": ["a08", "a09", "a10", "a11"],
    "cn[1-2]-ib,login": ["cn1-ib", "cn2-ib", "login"],
    "r[1-2]n[1,3]": ["r1n1", "r1n3", "r2n1", "r2n3"],
}


@pytest.mark.parametrize("text", HOSTLISTS)
def test_host_lists_expand_as_slurm_writes_them(text):
    assert expand_hostlist(text) == HOSTLISTS[text]


@pytest.mark.parametrize("text", [t for t in HOSTLISTS if t.count("[") <= 1])
def test_host_lists_expand_as_submitit_reads_them(text):
    from submitit.slurm.slurm import _parse_node_list

    assert expand_hostlist(text) == _parse_node_list(text)


@pytest.mark.parametrize("bad", ["node[01-03", "node01]", "node[a-b]"])
def test_a_host_list_that_cannot_be_read_is_an_error(bad):
    with pytest.raises(ValueError):
        expand_hostlist(bad)


# What srun gives task 5 of a 2-node x 4-task step (task 5 = second node, local task 1).
STEP = {"SLURM_JOB_ID": "81234", "SLURM_STEP_ID": "0", "SLURM_PROCID": "5", "SLURM_LOCALID": "1",
        "SLURM_NODEID": "1", "SLURM_NTASKS": "8", "SLURM_STEP_NUM_TASKS": "8", "SLURM_JOB_NUM_NODES": "2",
        "SLURM_JOB_NODELIST": "gpu[07-08]", "SLURM_STEP_NODELIST": "gpu[07-08]"}


def test_a_task_of_a_step_is_a_rank():
    task = task_from_environment(STEP)
    assert (task.rank, task.world, task.local_rank, task.node) == (5, 8, 1, 1)
    assert task.master_addr == "gpu07" and task.master_port == master_port("81234")


def test_the_same_ranks_and_address_as_submitit(monkeypatch):
    import submitit

    for key in [k for k in __import__("os").environ if k.startswith(("SLURM_", "SUBMITIT_"))]:
        monkeypatch.delenv(key)
    # As submitit's sbatch script sets them; submitit draws its own port, so it is pinned.
    for key, value in {**STEP, "MASTER_PORT": "23456", "SUBMITIT_EXECUTOR": "slurm"}.items():
        monkeypatch.setenv(key, value)
    theirs = submitit.helpers.TorchDistributedEnvironment()
    ours = task_from_environment(dict(STEP, MASTER_PORT="23456"))
    assert (ours.rank, ours.world, ours.local_rank, ours.master_addr, ours.master_port) == \
        (theirs.rank, theirs.world_size, theirs.local_rank, theirs.master_addr, theirs.master_port)


def test_the_step_wins_over_the_allocation():
    # A step on part of the allocation: its own task count and nodes, not the job's.
    task = task_from_environment({**STEP, "SLURM_NTASKS": "16", "SLURM_JOB_NODELIST": "gpu[01-08]",
                                  "SLURM_STEP_NUM_TASKS": "8", "SLURM_STEP_NODELIST": "gpu[05-06]"})
    assert task.world == 8 and task.master_addr == "gpu05"


@pytest.mark.parametrize("change", [
    {"SLURM_STEP_ID": None},  # an salloc shell or a batch script: one process, whatever SLURM_NTASKS says
    {"SLURM_NTASKS": "1", "SLURM_STEP_NUM_TASKS": "1", "SLURM_PROCID": "0"},  # a step of one task
    {"SLURM_JOB_ID": None},  # not SLURM
], ids=["allocation-only", "one-task", "no-job"])
def test_not_a_task_of_several_is_a_single_process(change):
    env = {k: v for k, v in {**STEP, **change}.items() if v is not None}
    assert task_from_environment(env) is None
    assert export_torch_env(env) is None and "WORLD_SIZE" not in env


def test_exported_variables_are_torchs_and_set_ones_win():
    env = dict(STEP)
    export_torch_env(env)
    assert {k: env[k] for k in ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE", "LOCAL_RANK")} == \
        {"MASTER_ADDR": "gpu07", "MASTER_PORT": str(master_port("81234")), "RANK": "5", "WORLD_SIZE": "8",
         "LOCAL_RANK": "1"}
    torchrun = {**STEP, "WORLD_SIZE": "2", "RANK": "1"}  # torchrun (or a user) set them: left alone
    assert export_torch_env(torchrun) is None and torchrun["WORLD_SIZE"] == "2"
    pinned = {**STEP, "MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "29500"}
    export_torch_env(pinned)
    assert (pinned["MASTER_ADDR"], pinned["MASTER_PORT"]) == ("10.0.0.1", "29500")


def test_a_rank_outside_the_step_is_an_error():
    with pytest.raises(RuntimeError, match="SLURM_PROCID=8"):
        task_from_environment({**STEP, "SLURM_PROCID": "8"})


def test_ports_differ_between_consecutive_jobs_and_stay_below_the_ephemeral_range():
    ports = [master_port(str(job)) for job in range(4_000_000, 4_000_000 + PORT_SPAN)]
    assert len(set(ports)) == PORT_SPAN
    assert PORT_BASE <= min(ports) and max(ports) < 32768
    assert master_port("81234") == master_port("81234")
