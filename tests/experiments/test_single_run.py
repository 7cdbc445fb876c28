"""The single-run entry point for real: bad input, resume after SIGKILL, skip when finished,
divergence recorded."""
import json
from pathlib import Path

import pytest

from common.cli import compose
from common.errors import ConfigError
from experiments.run import register
from lab.sweep.runner import EntryConfig
from tests.helpers import TINY, kill_entry_after, rewind_checkpoints, run_entry


def _args(cache, out, *extra):
    return [*TINY, f"corpus.cache_dir={cache}", f"out_dir={out}", *extra]


@pytest.mark.parametrize("override,field", [
    ("model.not_a_field=3", "model.not_a_field"),
    ("model.n_kv_heads=3", "model.n_kv_heads"),        # 4 heads are not a multiple of 3
    ("model.d_model=36", "model.d_model"),             # head dim 9 is odd
    ("train.tokens=100", "train.tokens"),              # below one batch of 4 x 32
    ("train.schedule=linear", "train.schedule"),
    ("corpus.quality=1.5", "corpus.quality"),
    ("corpus=local", "corpus.path"),                   # a local corpus needs a path
    ("train.eval_every=-1", "train.eval_every"),
    ("grid.sizes=[1e5]", "grid"),                      # a grid axis without grid=...
    ("model.d_model=[64", "overrides"),                # unparsable: Hydra's reason, not "None"
    ("+model.d_modl=64", "model.d_modl"),              # "+" adds keys Hydra would refuse otherwise
])
def test_bad_config_fails_before_compute_with_one_line(tmp_path, corpus_cache, override, field):
    result = run_entry(_args(corpus_cache, tmp_path / "runs", override), cwd=tmp_path, timeout=120)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: {field}:"), result.stderr
    assert not lines[0].endswith(": None"), result.stderr
    assert not (tmp_path / "runs").exists()  # nothing was trained or written


@pytest.mark.parametrize("overrides,field", [
    (["grid=token_budget", "+grid.foo=1"], "grid.foo"),
    (["grid=token_budget", "+grid.scales.cpu.sizez=[1e5]"], "grid.scales.cpu.sizez"),
    (["+launcher.partitio=gpu"], "launcher.partitio"),
])
def test_an_added_key_outside_the_schema_is_refused(overrides, field):
    with pytest.raises(ConfigError) as e:
        compose("config", overrides, register, EntryConfig)
    assert e.value.field == field and "unknown field" in e.value.reason
    # keys of free-form mappings stay addable
    assert compose("config", ["+train.snapshots.w1M=1e6"], register, EntryConfig).train.snapshots == {"w1M": 1e6}


def test_a_held_out_split_shorter_than_one_window_is_refused_before_training(tmp_path, corpus_cache):
    # It used to train to the end and then fail at the final evaluation, on every resume again.
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.txt").write_text("".join(f"line {i} : the dog ran to the park and sat .\n\n" for i in range(3000)))
    (data / "valid.txt").write_text("a short held out file .\n")
    result = run_entry(_args(corpus_cache, tmp_path / "runs", "corpus=local", f"corpus.path={data}",
                             "train.tokens=6400"), cwd=tmp_path, timeout=120)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith("tokenizer:")]
    assert lines[-1].startswith("error: corpus.val_words: the val_clean split holds"), result.stderr
    assert not list((tmp_path / "runs").rglob("final.json")) and not list((tmp_path / "runs").rglob("step_*"))


def test_missing_local_corpus_path(tmp_path, corpus_cache):
    result = run_entry(_args(corpus_cache, tmp_path / "runs", "corpus=local", f"corpus.path={tmp_path}/nope.txt"),
                       cwd=tmp_path, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: corpus.path:")


def _final(out: Path) -> dict:
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    return json.loads((run_dir / "final.json").read_text())


def test_sigkill_then_rerun_resumes_to_the_same_final_loss(tmp_path, corpus_cache):
    # Checkpoints every 7 steps fall inside 5-step logging windows: the resumed run must still
    # log the same windows (the open window's losses travel in the checkpoint). Validation every
    # 12 steps lands on the first logged step past each multiple: 15, 25, 40, ...
    common = ["train.tokens=12800", "train.checkpoint_every=7", "train.keep_checkpoints=100", "train.log_every=5",
              "train.precision=fp32", "train.eval_every=12"]
    straight = run_entry(_args(corpus_cache, tmp_path / "a", *common), cwd=tmp_path)
    assert straight.returncode == 0, straight.stderr
    reference = _final(tmp_path / "a")
    assert reference["status"] == "done" and reference["steps"] == 100

    # Kill the second run hard, mid-way, at an arbitrary point after some checkpoints exist.
    kill_entry_after(_args(corpus_cache, tmp_path / "b", *common), tmp_path, " step 35/")
    (run_dir,) = [p for p in (tmp_path / "b").iterdir() if p.is_dir()]
    assert not (run_dir / "final.json").exists()
    # Where the kill lands is up to the scheduler; pin the resume point inside a logging window
    # (steps 26-28 of the window 26-30 done), as if it had landed right after step 28's save.
    # Entries are step_<8 digits>, or .tmp-step_<8 digits>-<pid> while being written (a kill can
    # land mid-write: that one is half-written and goes too).
    entries = rewind_checkpoints(run_dir, 28)
    assert 28 in entries.values(), sorted(entries)

    resumed = run_entry(_args(corpus_cache, tmp_path / "b", *common), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from step 28 " in resumed.stdout + resumed.stderr
    final = _final(tmp_path / "b")
    for key in ("final_train_loss", "final_val_loss", "final_val_own_loss"):
        assert final[key] == pytest.approx(reference[key], abs=1e-6), key
    # metrics.jsonl reads as if never interrupted: one row per logged step, in order, with the
    # uninterrupted run's losses (validation rows included)
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    (ref_dir,) = [p for p in (tmp_path / "a").iterdir() if p.is_dir()]
    ref_rows = [json.loads(line) for line in (ref_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(5, 101, 5))
    assert [r["loss"] for r in rows] == pytest.approx([r["loss"] for r in ref_rows], abs=1e-6)
    assert [r["step"] for r in rows if "val_loss" in r] == [15, 25, 40, 50, 60, 75, 85]
    assert [r["val_loss"] for r in rows if "val_loss" in r] == pytest.approx(
        [r["val_loss"] for r in ref_rows if "val_loss" in r], abs=1e-6)

    # Rerunning a finished run trains nothing.
    again = run_entry(_args(corpus_cache, tmp_path / "b", *common), cwd=tmp_path)
    assert again.returncode == 0 and "already finished" in again.stdout
    assert _final(tmp_path / "b") == final


def test_a_resume_with_another_log_every_is_refused(tmp_path, corpus_cache):
    # log_every is not in the run id, yet it cuts the windows the resumed rows continue.
    common = ["train.tokens=6400", "train.checkpoint_every=20", "train.precision=fp32"]
    first = run_entry(_args(corpus_cache, tmp_path / "runs", *common, "train.log_every=5"), cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    (run_dir,) = [p for p in (tmp_path / "runs").iterdir() if p.is_dir()]
    (run_dir / "final.json").unlink()  # as if killed after the last checkpoint
    other = run_entry(_args(corpus_cache, tmp_path / "runs", *common, "train.log_every=10"), cwd=tmp_path)
    assert other.returncode == 2 and other.stderr.strip().splitlines()[-1].startswith(
        "error: train.log_every: this run was started with log_every=5"), other.stderr
    same = run_entry(_args(corpus_cache, tmp_path / "runs", *common, "train.log_every=5"), cwd=tmp_path)
    assert same.returncode == 0 and "resumed from step" in same.stdout + same.stderr


def test_divergence_is_recorded_not_a_traceback(tmp_path, corpus_cache):
    result = run_entry(_args(corpus_cache, tmp_path / "runs", "train.tokens=6400", "train.lr=1e6",
                             "train.grad_clip=0", "train.warmup=0"), cwd=tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    final = _final(tmp_path / "runs")
    assert final["status"] == "diverged" and "non-finite" in final["reason"]  # loss or gradient norm


def test_compiled_training_matches_eager_and_keeps_the_run_id(tmp_path, corpus_cache):
    common = ["train.tokens=2560", "train.precision=fp32", "train.log_every=5"]
    eager = run_entry(_args(corpus_cache, tmp_path / "eager", *common), cwd=tmp_path)
    compiled = run_entry(_args(corpus_cache, tmp_path / "compiled", *common, "train.compile=true"), cwd=tmp_path)
    assert eager.returncode == 0 and compiled.returncode == 0, compiled.stderr
    a, b = _final(tmp_path / "eager"), _final(tmp_path / "compiled")
    assert a["steps"] == b["steps"] == 20
    # Inductor reorders float sums, so the two agree to rounding, not bit for bit.
    for key in ("final_train_loss", "final_val_loss"):
        assert b[key] == pytest.approx(a[key], rel=1e-3), key
    # Compiling changes how a run is computed, not what: same id, so either skips the other.
    names = {p.name for p in (tmp_path / "eager").iterdir()} | {p.name for p in (tmp_path / "compiled").iterdir()}
    assert len(names) == 1


def test_a_run_held_by_another_process_is_one_line_and_exit_3(capsys):
    """Not a traceback: the run is being trained elsewhere (as the grid worker reports it)."""
    from common.cli import main_guard
    from common.errors import RunLocked

    def held():
        raise RunLocked("runs/d128-x is being trained by another process")

    with pytest.raises(SystemExit) as e:
        main_guard(held)
    assert e.value.code == 3
    err = capsys.readouterr().err
    assert err == "skipped: runs/d128-x is being trained by another process\n"
