"""Grids for real, at the smoke scale: expansion, parallel workers, results table, idempotent
rerun, submitit's local executor, data-parallel training, and the run lock."""
import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from lab.runs import run_lock
from tests.helpers import ROOT, TINY, run_entry

GRID = [*TINY, "grid=token_budget", "grid.sizes=[3.0e4,1.3e5]", "grid.budgets=[2560,5120]",
        "grid.report=false", "launcher.poll_s=0.2"]


def _rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_token_budget_grid_trains_collects_and_skips_on_rerun(tmp_path, corpus_cache):
    args = [*GRID, f"corpus.cache_dir={corpus_cache}", f"out_dir={tmp_path / 'runs'}"]
    first = run_entry(args, cwd=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "estimated wall time: ~" in first.stdout  # the plan, printed before the first run
    rows = _rows(tmp_path / "runs" / "token_budget-smoke" / "results.csv")
    assert len(rows) == 4 and {r["status"] for r in rows} == {"done"}
    assert sorted({int(r["tokens"]) for r in rows}) == [2560, 5120]
    assert len({r["params"] for r in rows}) == 2
    for r in rows:  # every number traceable to its run directory
        final = json.loads((tmp_path / "runs" / "token_budget-smoke" / "runs" / r["run_id"] / "final.json").read_text())
        assert float(r["final_val_loss"]) == pytest.approx(final["final_val_loss"])
        assert float(r["flops"]) == pytest.approx(final["flops"])

    start = time.perf_counter()
    second = run_entry(args, cwd=tmp_path)
    assert second.returncode == 0
    assert "4 finished, 0 to train" in second.stdout
    assert time.perf_counter() - start < 30  # generous: the promise is "seconds", not a benchmark
    assert _rows(tmp_path / "runs" / "token_budget-smoke" / "results.csv") == rows

    # Another grid under the same out_dir with the same points copies the finished runs in
    # (same run id = same result) instead of training them again.
    twin = run_entry([*args, "grid.name=twin"], cwd=tmp_path)
    assert twin.returncode == 0, twin.stdout + twin.stderr
    assert "reused 4 finished runs" in twin.stdout and "4 finished, 0 to train" in twin.stdout
    twin_rows = _rows(tmp_path / "runs" / "twin-smoke" / "results.csv")
    assert [r["final_val_loss"] for r in twin_rows] == [r["final_val_loss"] for r in rows]
    source = json.loads((tmp_path / "runs" / "twin-smoke" / "runs" / rows[0]["run_id"] / "reused_from.json").read_text())
    assert source["source"].endswith(f"token_budget-smoke/runs/{rows[0]['run_id']}")


def test_a_diverged_run_is_a_result_and_does_not_fail_the_grid_or_its_reruns(tmp_path, corpus_cache):
    args = [*GRID, "grid.sizes=[3.0e4]", "grid.budgets=[6400]", "train.lr=1e6", "train.grad_clip=0",
            "train.warmup=0", f"corpus.cache_dir={corpus_cache}", f"out_dir={tmp_path / 'runs'}"]
    for attempt in ("first", "rerun"):
        result = run_entry(args, cwd=tmp_path)
        assert result.returncode == 0, (attempt, result.stdout + result.stderr)
        (row,) = _rows(tmp_path / "runs" / "token_budget-smoke" / "results.csv")
        assert row["status"] == "diverged" and "non-finite" in row["reason"]
        assert f"note: {row['run_id']} is diverged: non-finite" in result.stdout
    assert "1 finished, 0 to train" in result.stdout  # the rerun trained nothing


def test_a_run_that_does_not_fit_its_corpus_stops_the_grid_before_any_training(tmp_path, corpus_cache):
    # Checks that need the prepared corpus (here: more warmup steps than the 5-step run has) ran in
    # each worker, which recorded the run as failed and left the grid to exit 1.
    args = [*GRID, "grid.sizes=[3.0e4]", "grid.budgets=[640]", "train.warmup=500", "grid.warmup_tokens_per_param=null",
            "grid.branching=false",
            f"corpus.cache_dir={corpus_cache}", f"out_dir={tmp_path / 'runs'}"]
    result = run_entry(args, cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: train.warmup: 500 warmup steps exceed")
    assert not list((tmp_path / "runs").rglob("final.json")) and not list((tmp_path / "runs").rglob("worker.log"))


def test_submitit_local_launcher_runs_the_same_worker(tmp_path, corpus_cache):
    pytest.importorskip("submitit")
    args = [*GRID, "grid.sizes=[3.0e4]", "grid.budgets=[2560,5120]", "launcher=submitit_local",
            "launcher.workers=1", f"corpus.cache_dir={corpus_cache}", f"out_dir={tmp_path / 'runs'}"]
    result = run_entry(args, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = _rows(tmp_path / "runs" / "token_budget-smoke" / "results.csv")
    assert [r["status"] for r in rows] == ["done", "done"]
    run_dirs = [tmp_path / "runs" / "token_budget-smoke" / "runs" / r["run_id"] for r in rows]
    for run_dir in run_dirs:
        job = (run_dir / "job_id").read_text().strip()
        assert job and (run_dir / "job_log").read_text().strip() == str(tmp_path / "runs" / "token_budget-smoke" / "submitit" / job)
        assert (tmp_path / "runs" / "token_budget-smoke" / "submitit" / job).is_dir()
    # One slot: the second run started (config.json) after the first one ended (final.json).
    first, second = sorted(run_dirs, key=lambda d: (d / "config.json").stat().st_mtime_ns)
    assert (second / "config.json").stat().st_mtime_ns >= (first / "final.json").stat().st_mtime_ns


def test_data_parallel_two_processes_match_one(tmp_path, corpus_cache):
    """DDP over 2 gloo processes with the same global batch gives the single-process losses,
    with gradient accumulation on (micro batches of 1: 4 per process per step, 8 alone)."""
    # lr pinned: at the smoke rule's 3.67e-3 this tiny model trains at the edge of stability, where
    # the rounding of two summation orders (one process, or gloo's all-reduce) grows to ~1e-3 in
    # the loss within 10 steps; at 3e-3 and 3.64e-3 the two agree within 1e-4 (checked 2026-12-07).
    common = [*GRID, "grid.sizes=[3.0e4]", "grid.budgets=[5120]", "train.precision=fp32", "train.lr=3e-3",
              "train.micro_batch_size=1", "grid.eval_pairs=false", f"corpus.cache_dir={corpus_cache}"]
    single = run_entry([*common, f"out_dir={tmp_path / 'one'}"], cwd=tmp_path)
    assert single.returncode == 0, single.stdout + single.stderr
    ddp = run_entry([*common, f"out_dir={tmp_path / 'two'}", "launcher.procs_per_run=2"], cwd=tmp_path)
    assert ddp.returncode == 0, ddp.stdout + ddp.stderr
    (a,) = _rows(tmp_path / "one" / "token_budget-smoke" / "results.csv")
    (b,) = _rows(tmp_path / "two" / "token_budget-smoke" / "results.csv")
    assert a["run_id"] == b["run_id"]  # same config: the process count is not part of the result
    assert float(b["final_train_loss"]) == pytest.approx(float(a["final_train_loss"]), abs=1e-4)
    assert float(b["final_val_loss"]) == pytest.approx(float(a["final_val_loss"]), abs=1e-4)
    final = json.loads((tmp_path / "two" / "token_budget-smoke" / "runs" / b["run_id"] / "final.json").read_text())
    assert final["world_size"] == 2
    assert a["pairs_acc"] == b["pairs_acc"] == ""  # grid.eval_pairs=false: no pairs scored
    # Rerun without the flag: nothing trains, the finished run gets its pairs scored.
    again = run_entry([c for c in common if c != "grid.eval_pairs=false"] + [f"out_dir={tmp_path / 'one'}"],
                      cwd=tmp_path)
    assert again.returncode == 0 and "1 finished, 0 to train" in again.stdout, again.stdout + again.stderr
    (scored,) = _rows(tmp_path / "one" / "token_budget-smoke" / "results.csv")
    assert 0.0 <= float(scored["pairs_acc"]) <= 1.0


def test_torchrun_trains_one_run_data_parallel(tmp_path, corpus_cache):
    """The single-run entry under torchrun: one run in one directory, the single-process losses."""
    common = [*TINY, "train.tokens=5120", "train.precision=fp32", "train.micro_batch_size=1",
              f"corpus.cache_dir={corpus_cache}"]
    single = run_entry([*common, f"out_dir={tmp_path / 'one'}"], cwd=tmp_path)
    assert single.returncode == 0, single.stdout + single.stderr
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                          str(ROOT / "experiments" / "run.py"), *common, f"out_dir={tmp_path / 'two'}"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
    assert ddp.returncode == 0, ddp.stdout + ddp.stderr
    assert ddp.stdout.count("done: val loss") == 1  # rank 0 reports; rank 1 stays quiet
    (one,), (two,) = [list((tmp_path / d).iterdir()) for d in ("one", "two")]
    assert one.name == two.name
    a, b = (json.loads((d / "final.json").read_text()) for d in (one, two))
    assert b["world_size"] == 2 and a["world_size"] == 1
    assert b["final_train_loss"] == pytest.approx(a["final_train_loss"], abs=1e-4)
    assert b["final_val_loss"] == pytest.approx(a["final_val_loss"], abs=1e-4)


def test_a_locked_run_is_left_to_its_owner(tmp_path, corpus_cache):
    args = [*GRID, "grid.sizes=[3.0e4]", "grid.budgets=[2560]", f"corpus.cache_dir={corpus_cache}",
            f"out_dir={tmp_path / 'runs'}"]
    # Plan the grid (writes spec.json) without training: expand it in-process.
    sys.path.insert(0, str(ROOT / "experiments"))
    from common.cli import compose
    from experiments.run import register
    from lab.runs import run_id
    from lab.sweep.runner import EntryConfig, base_run_config, grid_dir_of
    from lab.sweep.spec import expand
    from lab.sweep.worker import write_spec

    entry = compose("config", args, register, EntryConfig)
    (plan,) = expand(base_run_config(entry), entry.grid, entry.scale)
    run_dir = grid_dir_of(entry) if grid_dir_of(entry).is_absolute() else tmp_path / grid_dir_of(entry)
    run_dir = run_dir / "runs" / run_id(plan.cfg)
    write_spec(run_dir, plan.cfg, plan.axes)
    with run_lock(run_dir):
        worker = subprocess.run([sys.executable, "-m", "lab.sweep.worker", str(run_dir)], cwd=ROOT,
                                capture_output=True, text=True, timeout=120)
    assert worker.returncode == 3 and "being trained by another process" in worker.stderr
    assert not (run_dir / "final.json").exists()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_a_stopped_grid_takes_its_workers_with_it(tmp_path, corpus_cache, sig):
    """SIGTERM (a scheduler, `timeout`) stops the workers as Ctrl-C does, and a SIGKILLed grid's
    workers follow it (PR_SET_PDEATHSIG): before, they trained on unsupervised, holding their runs'
    locks, and a rerun reported those runs as having no result."""
    from common.errors import RunLocked

    args = [*GRID, "grid.sizes=[3.0e4]", "grid.budgets=[2e6]", "train.max_epochs=1000",
            "launcher.workers=1", f"corpus.cache_dir={corpus_cache}", f"out_dir={tmp_path / 'runs'}"]
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    grid = subprocess.Popen([sys.executable, str(ROOT / "experiments" / "run.py"), *args], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        logs = []
        while time.time() < deadline and not any("step" in log.read_text() for log in logs):
            time.sleep(0.5)
            logs = list((tmp_path / "runs").glob("*/runs/*/worker.log"))
        assert logs, "the worker never started training"
        run_dir = logs[0].parent
        grid.send_signal(sig)
        grid.wait(timeout=30)
        deadline = time.time() + 30
        while True:  # the worker (minutes of training left) must let go of its run
            try:
                with run_lock(run_dir):
                    break
            except RunLocked:
                assert time.time() < deadline, "the worker kept training after its grid stopped"
                time.sleep(0.5)
        assert not (run_dir / "final.json").exists()
    finally:
        grid.kill()
        grid.wait()


def test_submitit_jobs_get_this_checkout_and_the_thread_count(monkeypatch):
    """submitit jobs inherit the submitting environment: during submission it names this
    checkout first on PYTHONPATH (else a job imports whichever `lab` is installed) and the
    launcher's thread count; afterwards the process's own environment is back as it was."""
    from lab.sweep.launchers import _submission_env

    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    with _submission_env(3):
        assert os.environ["PYTHONPATH"].split(os.pathsep) == [str(ROOT), "/elsewhere"]
        assert os.environ["OMP_NUM_THREADS"] == "3"
    assert os.environ["PYTHONPATH"] == "/elsewhere" and "OMP_NUM_THREADS" not in os.environ


def test_local_workers_get_one_thread_for_torch_and_xla_and_the_allocator_settings(monkeypatch):
    from lab.sweep.launchers import WORKER_MALLOC, _project_env

    monkeypatch.delenv("XLA_FLAGS", raising=False)
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")  # the user's own value stays
    env = _project_env(1)
    assert env["OMP_NUM_THREADS"] == "1" and "--xla_cpu_multi_thread_eigen=false" in env["XLA_FLAGS"]
    assert env["MALLOC_ARENA_MAX"] == "4"
    assert all(env[name] == value for name, value in WORKER_MALLOC.items() if name != "MALLOC_ARENA_MAX")
    assert "XLA_FLAGS" not in _project_env(2)  # several threads: XLA's own pool as it is


def test_a_rerun_does_not_rescore_runs_whose_corpus_has_no_pairs(tmp_path, monkeypatch):
    """A real corpus has no minimal pairs: its runs never get a "pairs" entry, and every rerun
    verified the corpus and the final checkpoint to find that out again."""
    import lab.sweep.worker as worker
    from lab.sweep.runner import score_unscored_pairs

    scored = []
    monkeypatch.setattr(worker, "evaluate_pairs", lambda run_dir, final: scored.append(run_dir.name))
    for name, pairs in (("real", None), ("synthetic", {"file": "pairs.jsonl"})):
        corpus = tmp_path / f"corpus-{name}"
        corpus.mkdir()
        (corpus / "manifest.json").write_text(json.dumps({"pairs": pairs}))
        run_dir = tmp_path / name
        run_dir.mkdir()
        (run_dir / "final.json").write_text(json.dumps({"status": "done", "corpus_dir": str(corpus)}))
    score_unscored_pairs([tmp_path / "real", tmp_path / "synthetic"])
    assert scored == ["synthetic"]


def test_a_finished_twin_fills_a_run_that_was_only_planned(tmp_path):
    """An interrupted grid leaves a spec.json in every run it planned; such a run still takes
    a finished twin's result (it was retrained), while one with training of its own resumes."""
    from lab.sweep.runner import reuse_finished_twins

    run = "d32-l1-t3e03-q1-0123456789"
    twin = tmp_path / "other" / "runs" / run
    twin.mkdir(parents=True)
    (twin / "final.json").write_text(json.dumps({"status": "done", "final_val_loss": 4.0}))
    planned, started = tmp_path / "grid" / "runs" / run, tmp_path / "grid2" / "runs" / run
    for run_dir in (planned, started):
        run_dir.mkdir(parents=True)
        (run_dir / "spec.json").write_text("{}")
    (started / "checkpoints").mkdir()
    assert reuse_finished_twins([planned, started], tmp_path) == [planned]
    assert json.loads((planned / "final.json").read_text())["final_val_loss"] == 4.0
    assert (planned / "reused_from.json").exists() and not (started / "final.json").exists()


def test_two_sizes_of_one_shape_are_refused_before_compute(tmp_path):
    """The size picker maps nearby targets to one shape: trained twice under two ids, the fits
    would have counted one model as two points."""
    result = run_entry([*GRID, "grid.sizes=[3.0e4,3.3e4]", "grid.budgets=[2560]", f"out_dir={tmp_path / 'runs'}",
                        f"corpus.cache_dir={tmp_path / 'cache'}"], cwd=tmp_path, timeout=120)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.startswith("error: grid.sizes: sizes 30000 and 33000 pick the same model shape")
    assert not (tmp_path / "runs").exists() and not (tmp_path / "cache").exists()


def test_a_run_without_result_says_whether_it_is_training_elsewhere_and_where_its_log_is(tmp_path):
    from lab.sweep.results import missing_result

    grid = tmp_path / "token_budget-smoke"
    run_dir = grid / "runs" / "d32-l1-t3e03-q1-0123456789"
    run_dir.mkdir(parents=True)
    assert missing_result(run_dir) == ("pending", f"no result: see {run_dir / 'worker.log'}")
    with run_lock(run_dir):  # what a worker holds while it trains
        assert missing_result(run_dir) == ("running", "being trained by another process")
    (run_dir / "job_id").write_text("4242\n")  # a submitit job keeps its log in the grid's folder
    assert missing_result(run_dir) == ("pending", f"no result: see {grid / 'submitit' / '4242'}/")
    (run_dir / "job_log").write_text("/scratch/logs/4242\n")  # ... or where launcher.folder put it
    assert missing_result(run_dir) == ("pending", "no result: see /scratch/logs/4242/")


def test_slurm_without_sbatch_is_refused_before_compute(tmp_path, monkeypatch):
    from common.errors import ConfigError
    from lab.sweep.launchers import LauncherConfig, validate_launcher

    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch here
    with pytest.raises(ConfigError) as e:
        validate_launcher(LauncherConfig(name="slurm"))
    assert e.value.field == "launcher.name" and "sbatch" in e.value.reason
    (tmp_path / "sbatch").write_text("#!/bin/sh\n")
    (tmp_path / "sbatch").chmod(0o755)
    validate_launcher(LauncherConfig(name="slurm"))  # a login node: accepted


def test_a_rerun_leaves_queued_or_running_jobs_alone(tmp_path, monkeypatch):
    """With launcher.wait=false, "rerun to collect" submitted every unfinished run again: on
    SLURM a second allocation per queued run."""
    from lab.sweep.runner import submitted_job_state

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    squeue = bin_dir / "squeue"  # SLURM's view: job 7 is queued, anything else is gone
    squeue.write_text('#!/bin/sh\n[ "$3" = 7 ] && echo PENDING\nexit 0\n')
    squeue.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    queued, gone, held = (tmp_path / name for name in ("queued", "gone", "held"))
    for run_dir, job in ((queued, "7"), (gone, "8"), (held, "9")):
        run_dir.mkdir()
        (run_dir / "job_id").write_text(f"{job}\n")
    assert submitted_job_state(queued) == "pending"
    assert submitted_job_state(gone) is None
    with run_lock(held):
        assert submitted_job_state(held) == "running"
