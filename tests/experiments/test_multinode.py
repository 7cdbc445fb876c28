"""One run over two "nodes" as a SLURM job runs it, on CPU with gloo: two processes of the
callable submitit's jobs call (lab.sweep.launchers.RunJob), each with the SLURM_* variables srun
gives a task of a 2-node x 1-task step, meet on localhost and train the single-process losses.
A preempted job (submitit calls RunJob.checkpoint, SLURM requeues it) resumes from the run's
checkpoint, taking over the lock its killed first life left behind."""
import json
import os
import random
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lab.slurm_env import master_port
from tests.helpers import ROOT, TINY, rewind_checkpoints

pytest.importorskip("submitit")

COMMON = ["train.tokens=1536", "train.precision=fp32", "train.lr=1e-3", "train.checkpoint_every=4",
          "train.keep_checkpoints=100", "train.eval_every=6", "train.log_every=2"]  # 12 steps of 4 x 32 tokens

JOB = """import sys
from lab.sweep.launchers import RunJob
print("status", RunJob()(sys.argv[1]), flush=True)
"""
REQUEUED = """import sys
from submitit.helpers import DelayedSubmission
print("status", DelayedSubmission.load(sys.argv[1]).result(), flush=True)
"""


def _spec(run_dir: Path, corpus_cache: Path) -> None:
    """The run's directory as the grid runner leaves it for a launcher (spec.json)."""
    sys.path.insert(0, str(ROOT / "experiments"))
    from common.cli import compose
    from experiments.run import register
    from lab.sweep.runner import EntryConfig, base_run_config
    from lab.sweep.worker import write_spec

    entry = compose("config", [*TINY, *COMMON, f"corpus.cache_dir={corpus_cache}"], register, EntryConfig)
    write_spec(run_dir, base_run_config(entry), {}, eval_pairs=False)


def _env(**slurm) -> dict:
    """This environment without any distributed or SLURM variables, plus `slurm`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SUBMITIT_")) and k not in
           ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RUN_ID")}
    return {**env, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", **slurm}


def _free_job_id() -> str:
    """A job id whose rendezvous port (derived from it, as on a cluster) is free here."""
    for _ in range(100):
        job = str(random.randrange(100_000, 10_000_000))
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", master_port(job)))
                return job
            except OSError:
                continue
    raise RuntimeError("no free port")


def _task_env(job: str, rank: int, restart: int = 0) -> dict:
    """srun's variables for task `rank` of a step of two tasks, one on each of two nodes."""
    return _env(SLURM_JOB_ID=job, SLURM_STEP_ID="0", SLURM_NTASKS="2", SLURM_JOB_NUM_NODES="2",
                SLURM_PROCID=str(rank), SLURM_NODEID=str(rank), SLURM_LOCALID="0",
                SLURM_JOB_NODELIST="127.0.0.[1-2]", SLURM_RESTART_COUNT=str(restart))


def _start_job(script: str, arg: str, job: str, restart: int = 0) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", script, arg], cwd=ROOT, env=_task_env(job, rank, restart),
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for rank in (0, 1)]


def _finish(procs: list[subprocess.Popen], timeout: float = 240) -> list[str]:
    outs = []
    for proc in procs:
        try:
            outs.append(proc.communicate(timeout=timeout)[0])
        except subprocess.TimeoutExpired:
            for p in procs:
                p.kill()
            raise
    for proc, out in zip(procs, outs):
        assert proc.returncode == 0, out
    return outs


def _rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _losses(run_dir: Path) -> dict:
    final = json.loads((run_dir / "final.json").read_text())
    train = {r["step"]: r["loss"] for r in _rows(run_dir) if "loss" in r}
    return {"final": final, "train": train}


def test_two_slurm_nodes_train_the_single_process_losses_and_a_requeue_resumes(tmp_path, corpus_cache):
    one, two = tmp_path / "one" / "run", tmp_path / "two" / "run"
    _spec(one, corpus_cache)
    _spec(two, corpus_cache)

    # The reference (one process, no SLURM) and the two "nodes" run side by side.
    single = subprocess.Popen([sys.executable, "-c", JOB, str(one)], cwd=ROOT, env=_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    job = _free_job_id()
    outs = _finish([single, *_start_job(JOB, str(two), job)])[1:]
    reference = _losses(one)
    assert reference["final"]["world_size"] == 1
    assert all("status done" in out for out in outs), outs
    got = _losses(two)
    assert got["final"]["world_size"] == 2 and got["final"]["status"] == "done"
    assert sorted(got["train"]) == sorted(reference["train"]) and len(got["train"]) >= 3
    for step, loss in reference["train"].items():
        assert got["train"][step] == pytest.approx(loss, abs=1e-5), step
    for key in ("final_train_loss", "final_val_loss"):
        assert got["final"][key] == pytest.approx(reference["final"][key], abs=1e-5), key
    assert reference["train"][max(reference["train"])] < reference["train"][min(reference["train"])] - 0.2

    # Preemption: the job is killed mid-run (SLURM kills every task), after step 8's save, on
    # nodes the lock names (node-a is not this host: only the requeue rule can free the run).
    (two / "final.json").unlink()
    rewind_checkpoints(two, 8)
    lock = {"host": "node-a", "pid": 1, "started": None, "slurm_job": job, "slurm_restart": 0,
            "time": time.time(), "token": "first-life"}
    (two / "lock").write_text(json.dumps(lock))
    from submitit.helpers import DelayedSubmission

    from lab.sweep.launchers import RunJob

    requeued = RunJob().checkpoint(str(two))  # what submitit's task 0 calls on SIGUSR2
    assert isinstance(requeued, DelayedSubmission) and isinstance(requeued.function, RunJob)
    assert requeued.args == (str(two),) and not requeued.kwargs  # the same run, nothing else
    pickle = tmp_path / "submitted.pkl"
    requeued.dump(pickle)  # the job's pickle, which every task of the requeued job loads
    outs = _finish(_start_job(REQUEUED, str(pickle), job, restart=1))
    assert all("status done" in out for out in outs), outs
    assert "resumed from step 8 " in outs[0], outs[0]
    resumed = _losses(two)
    assert sorted(resumed["train"]) == sorted(reference["train"])
    for step, loss in reference["train"].items():
        assert resumed["train"][step] == pytest.approx(loss, abs=1e-5), step
    for key in ("final_train_loss", "final_val_loss"):
        assert resumed["final"][key] == pytest.approx(reference["final"][key], abs=1e-5), key
    assert not (two / "lock").exists()  # released by the requeued job, not left to go stale


def test_a_batch_script_with_a_stale_many_task_environment_trains_alone(tmp_path, corpus_cache):
    """Outside an srun step (an salloc shell, a batch script) SLURM_NTASKS is the allocation's:
    the process must train on its own instead of waiting for peers that never come."""
    run_dir = tmp_path / "run"
    _spec(run_dir, corpus_cache)
    env = _task_env(_free_job_id(), 0)
    del env["SLURM_STEP_ID"]
    done = subprocess.run([sys.executable, "-c", JOB, str(run_dir)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=240)
    assert done.returncode == 0 and "status done" in done.stdout, done.stdout + done.stderr
    assert json.loads((run_dir / "final.json").read_text())["world_size"] == 1


def test_a_rank_whose_peer_never_comes_fails_at_the_timeout_instead_of_hanging(tmp_path, corpus_cache):
    run_dir = tmp_path / "run"
    _spec(run_dir, corpus_cache)
    env = {**_task_env(_free_job_id(), 0), "LAB_DIST_TIMEOUT_S": "3"}
    start = time.perf_counter()
    alone = subprocess.run([sys.executable, "-c", JOB, str(run_dir)], cwd=ROOT, env=env, capture_output=True,
                           text=True, timeout=120)
    assert alone.returncode != 0 and time.perf_counter() - start < 60, alone.stdout + alone.stderr
    assert not (run_dir / "final.json").exists()


# The launcher's layout: nodes x tasks_per_node ranks per run, checked before any compute.
def _slurm(**fields):
    from lab.sweep.launchers import LauncherConfig, validate_launcher

    cfg = LauncherConfig(name="slurm", **fields)
    validate_launcher(cfg)
    return cfg.nodes, cfg.tasks_per_node, cfg.procs_per_run


@pytest.fixture
def sbatch_on_path(tmp_path, monkeypatch):
    (tmp_path / "sbatch").write_text("#!/bin/sh\n")
    (tmp_path / "sbatch").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")


def test_slurm_ranks_are_nodes_times_tasks_per_node(sbatch_on_path):
    assert _slurm(nodes=2, gpus_per_node=8) == (2, 8, 16)  # a rank per GPU: one run on 16 GPUs
    assert _slurm(gpus_per_node=1) == (1, 1, 1)  # the preset's default
    assert _slurm(nodes=2, procs_per_run=4) == (2, 2, 4)  # a world size split over the nodes
    assert _slurm(nodes=2, tasks_per_node=1, gpus_per_node=8) == (2, 1, 2)  # JAX: a process per node
    assert _slurm(nodes=3, tasks_per_node=2, procs_per_run=6) == (3, 2, 6)
    assert _slurm(nodes=2) == (2, 1, 2)  # CPU nodes


@pytest.mark.parametrize("fields, field, words", [
    ({"nodes": 0}, "launcher.nodes", ">= 1"),
    ({"nodes": 2, "procs_per_run": 3}, "launcher.procs_per_run", "over 2 nodes"),
    ({"nodes": 2, "tasks_per_node": 4, "procs_per_run": 6}, "launcher.procs_per_run", "2 x 4 = 8"),
    ({"gpus_per_node": 8, "tasks_per_node": 3}, "launcher.gpus_per_node", "3 tasks per node"),
    ({"tasks_per_node": 0}, "launcher.tasks_per_node", ">= 1"),
    ({"dist_timeout_s": 0}, "launcher.dist_timeout_s", "> 0"),
])
def test_a_slurm_layout_that_cannot_work_is_refused(sbatch_on_path, fields, field, words):
    from common.errors import ConfigError

    with pytest.raises(ConfigError) as e:
        _slurm(**fields)
    assert e.value.field == field and words in e.value.reason


@pytest.mark.parametrize("name", ["local", "submitit_local"])
def test_launchers_on_this_machine_refuse_several_nodes(name):
    from common.errors import ConfigError
    from lab.sweep.launchers import LauncherConfig, validate_launcher

    with pytest.raises(ConfigError) as e:
        validate_launcher(LauncherConfig(name=name, nodes=2))
    assert e.value.field == "launcher.nodes" and "launcher=slurm" in e.value.reason
    with pytest.raises(ConfigError) as e:
        validate_launcher(LauncherConfig(name=name, tasks_per_node=2))
    assert e.value.field == "launcher.tasks_per_node"
    validate_launcher(LauncherConfig(name=name, tasks_per_node=1))  # what procs_per_run says: accepted


def _entry_cfg(corpus_cache, out_dir, *extra):
    sys.path.insert(0, str(ROOT / "experiments"))
    from common.cli import compose
    from experiments.run import register
    from lab.sweep.runner import EntryConfig, base_run_config

    entry = compose("config", [*TINY, *COMMON, f"corpus.cache_dir={corpus_cache}", f"out_dir={out_dir}", *extra],
                    register, EntryConfig)
    return base_run_config(entry), entry.launcher


def test_one_run_without_a_grid_goes_out_as_one_job(tmp_path, corpus_cache, monkeypatch):
    """experiments/run.py with launcher=submitit_local (as with launcher=slurm) and no grid:
    run_one sends the run out as one job, submitit's local executor trains it in its directory,
    and a second call finds it finished."""
    from experiments.run import main
    from lab.single_run import resolve, run_dir_for

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    extra = ("launcher=submitit_local", "launcher.poll_s=0.2")
    cfg, _ = _entry_cfg(corpus_cache, tmp_path, *extra)
    argv = [*TINY, *COMMON, f"corpus.cache_dir={corpus_cache}", f"out_dir={tmp_path}", *extra]
    assert main(argv) == 0
    run_dir = run_dir_for(resolve(cfg))
    assert json.loads((run_dir / "final.json").read_text())["status"] == "done"
    assert (run_dir / "job_id").exists() and (tmp_path / "submitit").is_dir()
    jobs = lambda: [d.name for d in (tmp_path / "submitit").iterdir() if d.name.isdigit()]
    assert jobs() == [(run_dir / "job_id").read_text().strip()]
    assert main(argv) == 0 and len(jobs()) == 1  # finished: not submitted again
