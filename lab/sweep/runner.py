"""The main job: expand a grid, train what is missing, collect results, fit and report.

Runs are addressed by stable ids under <out_dir>/<grid>/runs/<run_id>, so rerunning the same
command skips finished runs, resumes killed ones from their checkpoints, and never collides.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from common.errors import ConfigError, RunLocked
from lab.accounting import flops_per_token
from lab.config import RunConfig
from lab.runs import is_finished, is_locked, run_id, run_lock, write_json
from lab.sweep.display import GridDisplay
from lab.sweep.launchers import (
    LauncherConfig,
    can_order_runs,
    queued_job,
    run_local,
    run_submitit,
    validate_launcher,
)
from lab.sweep.results import JOB_LOG_FILE, collect, summary_table, write_csv
from lab.sweep.grid_plan import print_plan_and_check
from lab.sweep.branching import as_branch_cell, compute_ledger, ledger_line, plan_trunks
from lab.sweep.spec import GridConfig, PlannedRun, expand
from lab.sweep.worker import write_spec


@dataclass
class EntryConfig(RunConfig):
    """What experiments/run.py accepts: one run's fields, plus an optional grid to sweep."""
    grid: GridConfig | None = None
    launcher: LauncherConfig = field(default_factory=LauncherConfig)
    # Scale preset of the grid: "smoke" (seconds, for tests), "cpu" (minutes), "gpu".
    scale: str = "cpu"


def base_run_config(entry: EntryConfig) -> RunConfig:
    fields = {f.name: getattr(entry, f.name) for f in dataclasses.fields(RunConfig)}
    return RunConfig(**fields)


def _refuse_sizes_of_one_shape(planned: list) -> None:
    """Two target sizes that the size picker maps to one shape would train the same model twice
    under two ids (the target stays in the config), and the fits would count it twice."""
    seen: dict[str, float] = {}
    for plan in planned:
        cfg = plan.cfg
        same = run_id(dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, params=None)))
        size = plan.axes.get("size")
        if same in seen and seen[same] != size:
            m = cfg.model
            raise ConfigError("grid.sizes", f"sizes {seen[same]:g} and {size:g} pick the same model shape "
                                            f"(d_model {m.d_model}, {m.n_layers} layers): give sizes further apart")
        seen.setdefault(same, size)


def grid_dir_of(entry: EntryConfig) -> Path:
    assert entry.grid is not None
    suffix = "" if entry.scale == "cpu" else f"-{entry.scale}"
    return Path(entry.out_dir) / f"{entry.grid.name}{suffix}"


def reuse_finished_twins(missing: list[Path], out_dir: Path) -> list[Path]:
    """Copy in runs that another grid under out_dir already finished with the same id.

    A run id hashes everything that determines the result, so a twin's result is this run's
    result (papers draw several grids that share points). Only run directories that hold no
    training yet are filled (none, or only the plan an interrupted grid wrote ahead): a partial
    run here resumes from its own checkpoints instead. The copy lands under a temporary name and
    is renamed into place, and records where it came from.
    """
    reused = []
    for run_dir in missing:
        if run_dir.exists() and not _never_started(run_dir):
            continue
        twins = [d for d in sorted(out_dir.glob(f"*/runs/{run_dir.name}")) if d != run_dir and is_finished(d)]
        if not twins:
            continue
        if run_dir.exists():
            try:
                with run_lock(run_dir):  # nobody is starting it right now
                    shutil.rmtree(run_dir)
            except RunLocked:
                continue
        staging = run_dir.parent / f".{run_dir.name}.copying"
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(twins[0], staging, ignore=shutil.ignore_patterns("lock"))
        (staging / "reused_from.json").write_text(json.dumps({"source": str(twins[0].resolve())}) + "\n")
        os.replace(staging, run_dir)
        reused.append(run_dir)
    return reused


# What a run directory holds before its training starts: the plan, the launcher's log and job id.
_BEFORE_TRAINING = {"spec.json", "worker.log", "job_id", JOB_LOG_FILE, "lock"}


def _never_started(run_dir: Path) -> bool:
    return {entry.name for entry in run_dir.iterdir()} <= _BEFORE_TRAINING


def plan_grid(entry: EntryConfig) -> tuple[list, list[Path]]:
    """The grid's runs and their directories, refused before any compute when two are one."""
    assert entry.grid is not None
    validate_launcher(entry.launcher)
    planned = expand(base_run_config(entry), entry.grid, entry.scale)
    if entry.grid.branching:  # cells train with a WSD schedule: that enters their run ids
        planned = [dataclasses.replace(p, cfg=as_branch_cell(p.cfg)) for p in planned]
    run_dirs = [grid_dir_of(entry) / "runs" / run_id(p.cfg) for p in planned]
    if len(set(run_dirs)) != len(run_dirs):
        raise ConfigError("grid", "two grid points resolve to the same run (duplicate sizes or budgets?)")
    _refuse_sizes_of_one_shape(planned)
    return planned, run_dirs


def _unfinished_longest_first(planned: list, run_dirs: list[Path]) -> list[Path]:
    # Longest first, so parallel workers finish together instead of waiting on one big run.
    cost = {d: p.cfg.train.tokens * flops_per_token(p.cfg.model, p.cfg.train.seq_len) for p, d in zip(planned, run_dirs)}
    return sorted((d for d in run_dirs if not is_finished(d)), key=lambda d: -cost[d])


def run_grid(entry: EntryConfig) -> int:
    planned, run_dirs = plan_grid(entry)
    grid_dir = grid_dir_of(entry)
    planned, trunks = branch_cells(entry, planned, run_dirs)
    if entry.grid.plan_only:  # nothing is written: no twins copied, no specs, no training
        pending = _unfinished_longest_first(planned, run_dirs)
        print(f"grid {entry.grid.name} (scale {entry.scale}), plan only: {len(planned)} runs, "
              f"{len(planned) - len(pending)} finished, {len(pending)} to train -> {grid_dir}", flush=True)
        print_plan_and_check(entry, *_with_trunks(planned, run_dirs, pending, trunks))
        return 0
    reused = reuse_finished_twins([d for d in run_dirs if not is_finished(d)], Path(entry.out_dir))
    pending = _unfinished_longest_first(planned, run_dirs)
    if reused:
        print(f"reused {len(reused)} finished runs of other grids under {entry.out_dir} (same run id, "
              f"so the same result): {', '.join(sorted(d.name for d in reused)[:3])}"
              f"{' ...' if len(reused) > 3 else ''}", flush=True)
    print(f"grid {entry.grid.name} (scale {entry.scale}): {len(planned)} runs, {len(planned) - len(pending)} "
          f"finished, {len(pending)} to train -> {grid_dir}", flush=True)
    started = time.perf_counter()
    if pending and not _train(entry, planned, run_dirs, pending, trunks, grid_dir):
        return 0  # submitted only (launcher.wait=false)
    ledger = compute_ledger([t.run_dir for t in trunks], run_dirs)
    write_json(grid_dir / "compute.json", ledger)  # before the report, which states it
    code = _collect_and_report(entry, planned, run_dirs, grid_dir, started)
    print(ledger_line(ledger), flush=True)  # the grid's last line: what branching saved
    return code


def _train(entry: EntryConfig, planned: list, run_dirs: list[Path], pending: list[Path], trunks: list,
           grid_dir: Path) -> bool:
    """Plan, check and train the pending runs, and the trunks they branch off first; False when
    the launcher only submitted them."""
    all_planned, all_dirs, all_pending = _with_trunks(planned, run_dirs, pending, trunks)
    print_plan_and_check(entry, all_planned, all_dirs, all_pending)
    for plan, run_dir in zip(all_planned, all_dirs):
        if run_dir in all_pending:
            write_spec(run_dir, plan.cfg, plan.axes, eval_pairs=entry.grid.eval_pairs and run_dir in pending,
                       grid={"name": entry.grid.name, "scale": entry.scale})
    trunks_todo = all_pending[:len(all_pending) - len(pending)]
    # One launch: each cell follows its own trunk (a local launcher starts it once the trunk has
    # ended, SLURM holds it with a dependency on the trunk's job); the other runs go meanwhile.
    after = {cell: t.run_dir for t in trunks if t.run_dir in trunks_todo for cell in t.cells if cell in pending}
    if not _launch(entry, all_pending, len(planned) - len(pending), grid_dir, after):
        return False
    for trunk in (d for d in trunks_todo if not is_finished(d)):  # failed, or held by another process
        print(f"note: trunk {trunk.name} did not finish: its cells started from step 0 (same results, "
              "more compute)", flush=True)
    return True


def branch_cells(entry: EntryConfig, planned: list, run_dirs: list[Path]) -> tuple[list, list]:
    """With grid.branching, the cells as branches of one trunk per model (lab.sweep.branching);
    (planned, []) otherwise. Refused where the launcher could not order a branch after its trunk."""
    if not entry.grid.branching:
        return planned, []
    if not can_order_runs(entry.launcher):
        raise ConfigError("grid.branching", f"launcher.wait=false cannot start branches after their trunks with "
                                            f"launcher={entry.launcher.name} (its executor has no job dependencies): "
                                            "use launcher.wait=true, launcher=slurm, or grid.branching=false")
    cells, trunks = plan_trunks([p.cfg for p in planned], run_dirs, grid_dir_of(entry))
    return [dataclasses.replace(p, cfg=c) for p, c in zip(planned, cells)], trunks


def _with_trunks(planned: list, run_dirs: list[Path], pending: list[Path], trunks: list) -> tuple:
    """The plan with the trunks that pending cells need, ahead of the cells."""
    pending_set = set(pending)
    needed = [t for t in trunks if any(c in pending_set for c in t.cells) and not is_finished(t.run_dir)]
    needed.sort(key=lambda t: -t.cfg.train.tokens * flops_per_token(t.cfg.model, t.cfg.train.seq_len))  # longest first
    extra = [PlannedRun(t.cfg, {"size": p.axes.get("size"), "quality": p.axes.get("quality"),
                                **{k: p.axes[k] for k in ("quality_label", "val_level") if k in p.axes},
                                "role": "trunk"})
             for t in needed for p in [planned[run_dirs.index(t.cells[0])]]]
    return extra + planned, [t.run_dir for t in needed] + run_dirs, [t.run_dir for t in needed] + pending


def _launch(entry: EntryConfig, pending: list[Path], done: int, grid_dir: Path,
            after: dict[Path, Path]) -> bool:
    """Train the pending runs through the launcher, each run in `after` after the run it maps
    to; False when the launcher only submitted them."""
    display = GridDisplay(pending, already_done=done)
    if entry.launcher.name == "local":
        run_local(pending, entry.launcher, display, after=after)
        return True
    live = {d: state for d in pending if (state := submitted_job_state(d))}
    if live:  # a rerun to collect results must not submit the same runs again
        print(f"{len(live)} runs are still {'/'.join(sorted(set(live.values())))} from an earlier "
              f"submission; not submitted again", flush=True)
    submit = [d for d in pending if d not in live]
    if submit:  # a cell resubmitted while its trunk is still queued depends on the trunk's recorded job
        run_submitit(submit, entry.launcher, grid_dir, display, after={d: after[d] for d in submit if d in after})
    if not entry.launcher.wait:
        print(f"submitted {len(submit)} runs; rerun the same command to collect results", flush=True)
        return False
    return True


def _collect_and_report(entry: EntryConfig, planned: list, run_dirs: list[Path], grid_dir: Path,
                        started: float) -> int:
    if entry.grid.eval_pairs:
        score_unscored_pairs(run_dirs)
    rows = collect(planned, run_dirs)
    write_csv(grid_dir / "results.csv", rows)
    print(summary_table(rows))
    bad = [r for r in rows if r["status"] != "done"]
    for r in bad:
        print(f"note: {r['run_id']} is {r['status']}: {r['reason'] or 'see its worker.log'}")
    # A diverged run is a result (recorded, never retrained, left out of the fits), so it does not
    # fail the grid: exiting 1 would fail every rerun for good. Failed and missing runs do.
    unfinished = [r for r in bad if r["status"] != "diverged"]
    print(f"results: {grid_dir / 'results.csv'}  ({time.perf_counter() - started:.0f}s)")
    failed_submissions = 0
    if entry.grid.kind == "babylm" and entry.grid.submission:
        failed_submissions = _submissions(entry, planned, run_dirs, grid_dir)
    if entry.grid.report:
        from lab.sweep.report_step import write_or_reuse_report

        if not write_or_reuse_report(grid_dir, kind=entry.grid.kind):
            return 1  # a sweep whose rule was refused (the line above says which size)
    return 0 if not unfinished and not failed_submissions else 1


def submitted_job_state(run_dir: Path) -> str | None:
    """"running" when a process holds the run's lock, SLURM's state of its recorded job while
    squeue still lists it (pending, running, ...), else None (free to submit)."""
    if is_locked(run_dir):
        return "running"
    job = queued_job(run_dir)
    return job[1].lower() if job else None


def score_unscored_pairs(run_dirs: list[Path]) -> None:
    """Finished runs that were never scored on the minimal pairs (trained, or reused from a grid
    trained, with grid.eval_pairs=false) are scored now, so every row gets its accuracy."""
    from lab.runs import read_final
    from lab.sweep.worker import evaluate_pairs, unscored

    for run_dir in run_dirs:
        final = read_final(run_dir) or {}
        if final.get("status") == "done" and "pairs_error" not in final and unscored(final):
            evaluate_pairs(run_dir, final)


def _submissions(entry: EntryConfig, planned: list, run_dirs: list[Path], grid_dir: Path) -> int:
    """Export, evaluate and describe every finished run (lab.sweep.submission); failures counted."""
    from lab.runs import read_final
    from lab.sweep.submission import build_submission

    failed = 0
    for plan, run_dir in zip(planned, run_dirs):
        if (read_final(run_dir) or {}).get("status") != "done":
            continue
        out = grid_dir / "submission" if len(planned) == 1 else grid_dir / "submission" / run_dir.name
        axes = {**plan.axes, "max_epochs": entry.grid.max_epochs, "snapshots": dict(plan.cfg.train.snapshots)}
        try:
            build_submission(run_dir, out, grid=entry.grid.name, scale=entry.scale,
                             track_corpus=entry.grid.track_corpus, axes=axes, extra_pairs=entry.grid.pairs)
        except Exception as e:  # the runs stay done; rerun the command to retry the submission
            failed += 1
            print(f"note: submission of {run_dir.name} failed: {e.__class__.__name__}: {str(e).splitlines()[0] if str(e) else ''}",
                  flush=True)
    return failed
