"""Branching grids on SLURM: trunks first, each cell a job that depends on its trunk's job
(afterany), through the real entry point against a fake sbatch/squeue/sacct on PATH; and
submitit's local executor, which has no dependencies, starting each cell once its trunk ended."""
import json
import os
import sys
from pathlib import Path

import pytest

from tests.helpers import TINY, run_entry

pytest.importorskip("submitit")

# Two models x two budgets: two trunks, four cells.
GRID = [*TINY, "grid=token_budget", "grid.sizes=[3.0e4,1.3e5]", "grid.budgets=[2560,5120]",
        "grid.report=false", "grid.eval_pairs=false", "launcher.poll_s=0.2"]

# The fake cluster: sbatch records its argv and the script's #SBATCH lines and hands out job ids
# from 1000; squeue lists every submitted job (array tasks included) as PENDING unless its id is
# in gone.txt; sacct reports every submitted job as COMPLETED. Each call is logged in order.
SBATCH = """
lines = [l for l in Path(sys.argv[-1]).read_text().splitlines() if l.startswith("#SBATCH")]
array = [l.split("=", 1)[1] for l in lines if l.startswith("#SBATCH --array=")]
job = str(1000 + len(records()))
tasks = int(array[0].split("%")[0].split("-")[1]) + 1 if array else 0
log({"call": "sbatch", "job": job, "tasks": tasks, "argv": sys.argv[1:], "sbatch": lines})
print(f"Submitted batch job {job}")
"""
SQUEUE = """
job = sys.argv[sys.argv.index("-j") + 1]
gone = (STATE / "gone.txt").read_text().split() if (STATE / "gone.txt").exists() else []
if job.split("_")[0] in {r["job"] for r in records()} and job not in gone:
    print("PENDING")
"""
SACCT = """
log({"call": "sacct"})
asked = {sys.argv[i + 1] for i, arg in enumerate(sys.argv) if arg == "-j"}
print("JobID|State|NodeList")
for r in records():
    if r["job"] in asked:
        for job in [f"{r['job']}_{i}" for i in range(r["tasks"])] or [r["job"]]:
            print(f"{job}|COMPLETED|node1")
"""
COMMON = """import json, sys
from pathlib import Path
STATE = Path({state!r})
def records():
    path = STATE / "calls.jsonl"
    rows = [json.loads(l) for l in path.read_text().splitlines()] if path.exists() else []
    return [r for r in rows if r["call"] == "sbatch"]
def log(row):
    with open(STATE / "calls.jsonl", "a") as f:
        f.write(json.dumps(row) + "\\n")
"""


@pytest.fixture
def fake_slurm(tmp_path, monkeypatch) -> Path:
    """A directory of fake SLURM commands, first on PATH; returns where they keep their state."""
    bin_dir, state = tmp_path / "bin", tmp_path / "slurm"
    bin_dir.mkdir()
    state.mkdir()
    for name, body in (("sbatch", SBATCH), ("squeue", SQUEUE), ("sacct", SACCT), ("srun", ""), ("scancel", "")):
        script = bin_dir / name
        script.write_text(f"#!{sys.executable}\n" + COMMON.format(state=str(state)) + body)
        script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return state


def _calls(state: Path, kind: str = "sbatch") -> list[dict]:
    path = state / "calls.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    return [r for r in rows if r["call"] == kind]


def _submission_of(job_id: str, submissions: list[dict]) -> int:
    """Index of the sbatch call that created `job_id` (an array task "1000_1" or a job "1000")."""
    return next(i for i, s in enumerate(submissions) if s["job"] == job_id.split("_")[0])


def _dependencies(submission: dict) -> list[str]:
    return [line.split("=", 1)[1] for line in submission["sbatch"] if line.startswith("#SBATCH --dependency=")]


def _trunk_of(cell: Path) -> Path:
    return Path(json.loads((cell / "spec.json").read_text())["config"]["train"]["branch_from"])


def test_wait_false_submits_trunks_then_cells_that_depend_on_them_and_never_twice(tmp_path, corpus_cache, fake_slurm):
    args = [*GRID, "launcher=slurm", "launcher.wait=false", f"corpus.cache_dir={corpus_cache}",
            f"out_dir={tmp_path / 'runs'}"]
    first = run_entry(args, cwd=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "submitted 6 runs" in first.stdout
    grid = tmp_path / "runs" / "token_budget-smoke"
    trunks, cells = sorted((grid / "trunks").iterdir()), sorted((grid / "runs").iterdir())
    assert len(trunks) == 2 and len(cells) == 4
    submissions = _calls(fake_slurm)
    job_of = {d: (d / "job_id").read_text().strip() for d in trunks + cells}
    for run_dir, job in job_of.items():  # each run names its job and its job's log folder
        assert job and (run_dir / "job_log").read_text().strip() == str(grid / "submitit" / job)
    assert len(set(job_of.values())) == 6
    for trunk in trunks:
        assert _dependencies(submissions[_submission_of(job_of[trunk], submissions)]) == []
    for cell in cells:
        trunk = _trunk_of(cell)
        assert trunk in trunks
        submission = _submission_of(job_of[cell], submissions)
        assert _dependencies(submissions[submission]) == [f"afterany:{job_of[trunk]}"], cell.name
        assert submission > _submission_of(job_of[trunk], submissions)  # the trunk's id existed first

    # A rerun while everything is queued submits nothing.
    again = run_entry(args, cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "6 runs are still pending from an earlier submission" in again.stdout
    assert "submitted 0 runs" in again.stdout and len(_calls(fake_slurm)) == len(submissions)

    # A cell whose job left the queue (cancelled) is submitted alone, after its still-queued trunk.
    lost = cells[0]
    (fake_slurm / "gone.txt").write_text(job_of[lost] + "\n")
    third = run_entry(args, cwd=tmp_path)
    assert third.returncode == 0, third.stdout + third.stderr
    assert "submitted 1 runs" in third.stdout
    (resubmitted,) = _calls(fake_slurm)[len(submissions):]
    assert _dependencies(resubmitted) == [f"afterany:{job_of[_trunk_of(lost)]}"]
    assert (lost / "job_id").read_text().strip() == resubmitted["job"]


def test_wait_true_submits_everything_at_once_then_waits(tmp_path, corpus_cache, fake_slurm):
    """No wave of trunks first: the cells go in the same submission, held by their dependencies,
    before the first status poll. The fake jobs never train, so the grid ends without results."""
    args = [*GRID, "launcher=slurm", f"corpus.cache_dir={corpus_cache}", f"out_dir={tmp_path / 'runs'}"]
    result = run_entry(args, cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    calls = [json.loads(line) for line in (fake_slurm / "calls.jsonl").read_text().splitlines()]
    first_poll = next(i for i, c in enumerate(calls) if c["call"] == "sacct")
    submitted = [c for c in calls[:first_poll] if c["call"] == "sbatch"]
    assert len(_calls(fake_slurm)) == len(submitted)  # nothing submitted after waiting began
    assert sum(c["tasks"] or 1 for c in submitted) == 6
    assert sorted(len(_dependencies(c)) for c in submitted) == [0, 1, 1]  # trunks, then each trunk's cells
    assert "note: trunk" in result.stdout  # no trunk finished: the runner says so


def test_submitit_local_starts_each_cell_after_its_trunk_and_branches_off_it(tmp_path, corpus_cache):
    """With two slots a cell could start beside its trunk; it must wait, then adopt the trunk's
    checkpoint instead of training from step 0."""
    args = [*GRID, "grid.sizes=[3.0e4]", "launcher=submitit_local", "launcher.workers=2",
            f"corpus.cache_dir={corpus_cache}", f"out_dir={tmp_path / 'runs'}"]
    result = run_entry(args, cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    grid = tmp_path / "runs" / "token_budget-smoke"
    (trunk,) = (grid / "trunks").iterdir()
    cells = sorted((grid / "runs").iterdir())
    assert len(cells) == 2
    trunk_ended = (trunk / "final.json").stat().st_mtime_ns
    for cell in cells:
        assert json.loads((cell / "final.json").read_text())["status"] == "done"
        assert (cell / "config.json").stat().st_mtime_ns >= trunk_ended, cell.name
        assert json.loads((cell / "parent.json").read_text())["trunk"] == str(trunk), cell.name
    # The ledger: trunk 32 steps (0.8 x 40) + cooldowns 0.2 x (20 + 40) = 44 of 60 steps.
    assert result.stdout.strip().splitlines()[-1].endswith("0.73x of independent runs")


def test_submitit_local_without_waiting_still_refuses_branching(tmp_path):
    result = run_entry([*GRID, "launcher=submitit_local", "launcher.wait=false", f"out_dir={tmp_path}"], cwd=tmp_path)
    assert result.returncode == 2
    assert "launcher=submitit_local" in result.stderr and "launcher.wait=true" in result.stderr


def test_a_run_over_several_nodes_is_one_job_of_nodes_x_tasks_and_checked_for_that_world(tmp_path, corpus_cache,
                                                                                        fake_slurm):
    """launcher.nodes and gpus_per_node reach sbatch (a task, a rank, per GPU), and the plan
    checks count the run's ranks over all its nodes before anything is submitted."""
    args = [*GRID, "grid.sizes=[3.0e4]", "grid.budgets=[2560]", "launcher=slurm", "launcher.wait=false",
            "launcher.nodes=2", "launcher.gpus_per_node=2", f"corpus.cache_dir={corpus_cache}",
            f"out_dir={tmp_path / 'runs'}"]
    result = run_entry(args, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    submissions = _calls(fake_slurm)
    assert submissions
    for submission in submissions:
        lines = set(submission["sbatch"])
        assert {"#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=2", "#SBATCH --gpus-per-node=2"} <= lines, lines
        assert any(line.startswith("#SBATCH --signal=USR2@") for line in lines)  # preemption warning: requeue
    # 4 ranks cannot split a batch of 2 sequences: refused before submission.
    refused = run_entry([*args, "train.batch_size=2", f"out_dir={tmp_path / 'other'}"], cwd=tmp_path)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert len(_calls(fake_slurm)) == len(submissions) and "over 4 processes" in refused.stderr
