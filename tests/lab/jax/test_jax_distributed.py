"""Two processes through jax.distributed (issue 17, test 7): the one-process run's losses.

Both processes run on this machine with one CPU device each, joined by lab.jax.sharding's
initialize_distributed from the JAX_* variables, CPU collectives over gloo. The mesh puts the
2 global devices on fsdp, so parameters are split across the processes (all-gathers and
reduce-scatters between them) as well as the batch (each process places only its rows).
"""
import numpy as np
import pytest

pytest.importorskip("jax")

from lab.jax import sharding
from tests.lab.jax._worker_launch import (assert_trained_alike, free_port, params, read, reference_done, start,
                                         start_reference, wait_all, worker_env)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    two = tmp_path_factory.mktemp("distributed") / "two"
    one, reference = start_reference(tmp_path_factory)
    address = f"127.0.0.1:{free_port()}"
    procs = [start({"fsdp": 2}, two, worker_env(1, JAX_COORDINATOR_ADDRESS=address, JAX_NUM_PROCESSES="2",
                                                JAX_PROCESS_ID=str(i))) for i in range(2)]
    wait_all(procs + reference)
    reference_done(one)
    return two, one


def test_two_processes_train_as_one(runs):
    two, one = runs
    first, second, single = read(two, 0), read(two, 1), read(one)
    assert [first["process"], second["process"]] == [0, 1] and first["processes"] == second["processes"] == 2
    assert first["devices"] == 2 and first["local_devices"] == 1 and first["mesh"] == {"data": 1, "fsdp": 2}
    assert single["processes"] == 1 and single["devices"] == 1
    assert first["specs"] == first["expected_specs"] and first["opt_specs_match"]
    assert first["shard_shapes"]["['embed']['embedding'].value"] == [[32, 32]]  # half of (64, 32) here
    assert first["batch_shard_shapes"] == second["batch_shard_shapes"] == [[4, 2, 16]]  # half the rows each
    assert first["losses"] == second["losses"] and first["donated"] and second["donated"]  # metrics replicated
    assert first["losses"] == pytest.approx(single["losses"], rel=1e-6, abs=0)
    initial_two, initial_one = params(two, "initial"), params(one, "initial")
    final_two, final_one = params(two, "final"), params(one, "final")
    for name, value in initial_one.items():
        assert np.array_equal(initial_two[name], value), name
    assert_trained_alike(final_two, final_one, single["lr"])


def test_a_single_process_initialises_nothing(monkeypatch):
    import jax

    for var in ("JAX_NUM_PROCESSES", "JAX_PROCESS_ID", "JAX_COORDINATOR_ADDRESS", "SLURM_JOB_ID", "SLURM_NTASKS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("SLURM_NTASKS", "1")  # a one-task SLURM job is a single process too
    monkeypatch.setenv("SLURM_JOB_ID", "7")
    assert sharding.initialize_distributed() == (0, 1)
    assert sharding.initialize_distributed() == (0, 1)
    assert not jax.distributed.is_initialized()


def test_several_processes_without_a_coordinator_are_refused(monkeypatch):
    import jax

    monkeypatch.setenv("JAX_NUM_PROCESSES", "2")
    monkeypatch.delenv("JAX_COORDINATOR_ADDRESS", raising=False)
    monkeypatch.delenv("JAX_PROCESS_ID", raising=False)
    with pytest.raises(RuntimeError, match="JAX_COORDINATOR_ADDRESS"):
        sharding.initialize_distributed()
    assert not jax.distributed.is_initialized()
