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

    for var in ("JAX_NUM_PROCESSES", "JAX_PROCESS_ID", "JAX_COORDINATOR_ADDRESS", "SLURM_JOB_ID", "SLURM_NTASKS",
                "SLURM_STEP_NUM_TASKS"):
        monkeypatch.delenv(var, raising=False)
    # A lone process in a batch script of a 4-task allocation (no srun step of several tasks)
    # is a single process: it must not wait for three peers that never come.
    monkeypatch.setenv("SLURM_NTASKS", "4")
    monkeypatch.setenv("SLURM_JOB_ID", "7")
    assert sharding.initialize_distributed() == (0, 1)
    monkeypatch.setenv("SLURM_STEP_NUM_TASKS", "1")  # a one-task step too
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


def test_two_processes_train_one_run_through_the_entry_point_and_only_process_0_writes(tmp_path, corpus_cache):
    """experiments/run.py in two processes joined by jax.distributed: one run directory, written
    once (process 0), with the one-process run's numbers; the run lock is taken by process 0
    for both (lab.single_run.claim_run through JAX's broadcast)."""
    import json
    import subprocess
    import sys

    from tests.helpers import ROOT, TINY

    args = [a for a in TINY if not a.startswith("train.threads")] + [
        f"corpus.cache_dir={corpus_cache}", "train.backend=jax", "train.precision=fp32", "train.lr=1e-3",
        "train.tokens=6400", "train.log_every=5", "train.eval_every=20", "train.checkpoint_every=20",
        "train.progress=lines"]

    def command(out):
        return [sys.executable, str(ROOT / "experiments" / "run.py"), *args, f"out_dir={out}"]

    address = f"127.0.0.1:{free_port()}"
    logs = [(tmp_path / f"p{i}.log").open("w") for i in range(2)]
    procs = [subprocess.Popen(command(tmp_path / "two"), cwd=tmp_path, stdout=logs[i], stderr=subprocess.STDOUT,
                              env=worker_env(1, JAX_COORDINATOR_ADDRESS=address, JAX_NUM_PROCESSES="2",
                                             JAX_PROCESS_ID=str(i)))
             for i in range(2)]
    single = subprocess.run(command(tmp_path / "one"), cwd=tmp_path, env=worker_env(1), capture_output=True,
                            text=True, timeout=300)
    for i, proc in enumerate(procs):
        try:
            proc.wait(timeout=300)
        finally:
            proc.kill()
            logs[i].close()
    output = [(tmp_path / f"p{i}.log").read_text() for i in range(2)]
    assert single.returncode == 0, single.stderr
    assert [p.returncode for p in procs] == [0, 0], output

    (run_two,) = (tmp_path / "two").iterdir()
    (run_one,) = (tmp_path / "one").iterdir()
    assert run_two.name == run_one.name  # the mesh and the process count are not in the run id
    two, one = (json.loads((d / "final.json").read_text()) for d in (run_two, run_one))
    assert two["world_size"] == 2 and one["world_size"] == 1 and two["backend"] == "jax"
    for key in ("final_train_loss", "final_val_loss", "final_val_own_loss"):
        assert two[key] == pytest.approx(one[key], rel=1e-5), key
    rows = [json.loads(line) for line in (run_two / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(5, 51, 5))  # written once, not once per process
    assert "done: val loss" in output[0] and "done: val loss" not in output[1]  # process 1 stays quiet
