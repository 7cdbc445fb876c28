"""Whole runs on the JAX backend: the torch backend's numbers from the same weights and data,
exact resume after SIGKILL, a rerun that trains nothing, and a run directory that the rest of
the lab (results.csv, lab.export, lab.evaluate) reads as it reads a torch run's."""
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from common.cli import compose
from experiments.run import register
from lab.single_run import resolve, run_single
from lab.sweep.runner import EntryConfig, base_run_config
from tests.helpers import ROOT, TINY, kill_entry_after, rewind_checkpoints, run_entry

# TINY without train.threads (a torch setting the JAX backend refuses).
JAX_TINY = [a for a in TINY if not a.startswith("train.threads")]
COMMON = ["train.precision=fp32", "train.log_every=5", "train.eval_every=20", "train.progress=lines"]


def _cfg(cache: Path, out: Path, *extra: str):
    entry = compose("config", [*JAX_TINY, f"corpus.cache_dir={cache}", f"out_dir={out}", *COMMON, *extra],
                    register, EntryConfig)
    return resolve(base_run_config(entry))


def _run_dir(out: Path) -> Path:
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    return run_dir


def _rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _train_jax_from(cfg, state_dict: dict) -> tuple[dict, Path]:
    """A JAX run through lab.trainer's Loop, started from the given torch weights."""
    from corpora.cache import prepare_corpus
    from lab.jax.train import JaxBackend
    from lab.plan import plan_run
    from lab.runs import record_start
    from lab.single_run import run_dir_for
    from lab.trainer import Loop

    corpus = prepare_corpus(cfg.corpus)
    run_dir = run_dir_for(cfg)
    run_dir.mkdir(parents=True)
    record_start(run_dir, cfg, {"corpus_dir": str(corpus.path)})
    sampler, plan, tokens_per_word = plan_run(cfg, corpus, 1)
    backend = JaxBackend(cfg, corpus, sampler, plan, initial_weights=state_dict)
    final = Loop(cfg, run_dir, backend, plan, tokens_per_word).run()
    assert backend.train_step.traces == 1  # one compilation for the whole run
    return final, run_dir


def test_a_jax_run_logs_the_torch_runs_losses_from_the_same_weights_and_data(tmp_path, corpus_cache):
    # At lr 1e-3 this run has no loss spike: a spike (gradient norm ~40 at the smoke rule's rate)
    # amplifies the backends' 1e-7 rounding differences chaotically, which says nothing of either.
    steps = 200
    torch_cfg = _cfg(corpus_cache, tmp_path / "torch", f"train.tokens={steps * 4 * 32}", "train.lr=1e-3")
    jax_cfg = dataclasses.replace(torch_cfg, out_dir=str(tmp_path / "jax"),
                                  train=dataclasses.replace(torch_cfg.train, backend="jax"))
    torch_final = run_single(torch_cfg, log=lambda *_: None)
    torch.manual_seed(torch_cfg.seed)  # the torch backend's initial weights (lab.torch_backend)
    from lab.model import Llama

    initial = Llama(torch_cfg.model).state_dict()
    jax_final, jax_dir = _train_jax_from(jax_cfg, initial)

    assert torch_final["steps"] == jax_final["steps"] == steps and jax_final["backend"] == "jax"
    torch_rows, jax_rows = _rows(_run_dir(tmp_path / "torch")), _rows(jax_dir)
    assert [r["step"] for r in jax_rows] == [r["step"] for r in torch_rows] == list(range(5, steps + 1, 5))
    for key in ("loss", "val_loss"):
        ours = [r[key] for r in jax_rows if key in r]
        assert ours == pytest.approx([r[key] for r in torch_rows if key in r], rel=1e-4), key
    assert [r["lr"] for r in jax_rows] == [r["lr"] for r in torch_rows]  # the one schedule, to the bit
    assert jax_final["final_val_loss"] == pytest.approx(torch_final["final_val_loss"], rel=1e-4)
    assert jax_final["final_val_own_loss"] == pytest.approx(torch_final["final_val_own_loss"], rel=1e-4)
    # The loss fell: the comparison is between two runs that learned, not two stuck ones.
    assert jax_rows[-1]["loss"] < jax_rows[0]["loss"] - 1.0


def _jax_args(cache, out, *extra):
    return [*JAX_TINY, f"corpus.cache_dir={cache}", f"out_dir={out}", "train.backend=jax", *COMMON, *extra]


def test_sigkill_then_rerun_resumes_a_jax_run_to_the_same_numbers(tmp_path, corpus_cache):
    common = ["train.tokens=12800", "train.checkpoint_every=7", "train.keep_checkpoints=100",
              "train.eval_every=12"]
    straight = run_entry(_jax_args(corpus_cache, tmp_path / "a", *common), cwd=tmp_path)
    assert straight.returncode == 0, straight.stderr
    ref_dir = _run_dir(tmp_path / "a")
    reference = json.loads((ref_dir / "final.json").read_text())
    assert reference["status"] == "done" and reference["steps"] == 100 and reference["backend"] == "jax"

    # Saves are asynchronous, and each waits for the one before: by step 40 (logged after step
    # 35's save began) the save of step 28 is on disk.
    kill_entry_after(_jax_args(corpus_cache, tmp_path / "b", *common), tmp_path, " step 40/")
    run_dir = _run_dir(tmp_path / "b")
    assert not (run_dir / "final.json").exists()
    # Resume from inside a logging window (steps 26-28 of 26-30), as if the kill had landed
    # right after step 28's save; anything newer, finished or half-written, goes.
    entries = rewind_checkpoints(run_dir, 28)
    assert (run_dir / "checkpoints" / "step_00000028").is_dir(), sorted(entries)

    resumed = run_entry(_jax_args(corpus_cache, tmp_path / "b", *common), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from step 28 " in resumed.stdout + resumed.stderr
    final = json.loads((run_dir / "final.json").read_text())
    for key in ("final_train_loss", "final_val_loss", "final_val_own_loss"):
        assert final[key] == pytest.approx(reference[key], abs=1e-6), key
    rows, ref_rows = _rows(run_dir), _rows(ref_dir)
    assert [r["step"] for r in rows] == list(range(5, 101, 5))
    for key in ("loss", "grad_norm", "val_loss"):
        assert [r.get(key) for r in rows] == pytest.approx([r.get(key) for r in ref_rows], abs=1e-6), key

    again = run_entry(_jax_args(corpus_cache, tmp_path / "b", *common), cwd=tmp_path)
    assert again.returncode == 0 and "already finished" in again.stdout
    assert json.loads((run_dir / "final.json").read_text()) == final


@pytest.fixture(scope="module")
def jax_run(tmp_path_factory, corpus_cache):
    """A finished JAX run with a snapshot (run in process: the test reads its model too)."""
    out = tmp_path_factory.mktemp("jax-run")
    cfg = _cfg(corpus_cache, out, "train.backend=jax", "train.tokens=6400", "+train.snapshots.t3k=3200")
    final = run_single(cfg, log=lambda *_: None)
    assert final["status"] == "done"
    return cfg, _run_dir(out)


def test_a_jax_runs_id_differs_from_the_torch_runs_and_torch_ids_are_unchanged(tmp_path):
    from lab.runs import identity, run_id

    cfg = _cfg(tmp_path, tmp_path)
    as_jax = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, backend="jax"))
    assert run_id(as_jax) != run_id(cfg)
    assert "backend" not in identity(cfg)["train"] and identity(as_jax)["train"]["backend"] == "jax"
    sharded = dataclasses.replace(as_jax, train=dataclasses.replace(as_jax.train, mesh={"data": 1}))
    assert run_id(sharded) == run_id(as_jax)  # how devices are used is not what is computed


def test_a_jax_run_directory_reads_like_a_torch_one(jax_run, tmp_path):
    from lab.export import export_hf
    from lab.jax.weights import from_torch_state_dict
    from lab.run_model import load_run_model
    from lab.scorable import evaluate_path
    from lab.sweep.results import collect, write_csv
    from lab.sweep.spec import PlannedRun

    cfg, run_dir = jax_run
    final = json.loads((run_dir / "final.json").read_text())
    assert final["backend"] == "jax" and final["run_id"] == run_dir.name
    assert json.loads((run_dir / "config.json").read_text())["config"]["train"]["backend"] == "jax"

    # The final weights load into the torch model; the exported HF model computes the JAX model's logits.
    run = load_run_model(run_dir)
    assert run.step == final["steps"]
    out = export_hf(run_dir, tmp_path / "hf")
    from transformers import LlamaForCausalLM

    hf = LlamaForCausalLM.from_pretrained(out).eval()
    tokens = np.random.default_rng(0).integers(0, cfg.model.vocab_size, (2, 16))
    with torch.no_grad():
        hf_logits = hf(torch.from_numpy(tokens)).logits.numpy()
    jax_model = from_torch_state_dict(cfg.model, run.model.state_dict())
    assert np.abs(np.asarray(jax_model(tokens)) - hf_logits).max() < 1e-4

    snapshot = load_run_model(run_dir, snapshot="t3k")
    assert 0 < snapshot.step < final["steps"]

    # lab.evaluate scores the run directory as it scores its HF export.
    pairs = Path(final["corpus_dir"]) / "pairs.jsonl"
    from_run, from_hf = evaluate_path(run_dir, pairs, device="cpu"), evaluate_path(out, pairs, device="cpu")
    assert from_run["accuracy"] == from_hf["accuracy"] and from_run["n"] == from_hf["n"] > 0

    # results.csv records the backend, and the analysis reads the row like any other.
    from analysis.table import read_table

    rows = collect([PlannedRun(cfg, {"size": cfg.model.params, "budget_tokens": cfg.train.tokens})], [run_dir])
    write_csv(tmp_path / "results.csv", rows)
    assert rows[0]["backend"] == "jax" and rows[0]["status"] == "done"
    table = read_table(tmp_path / "results.csv")
    assert table.runs.run_ids == (run_dir.name,) and not table.excluded
    assert table.runs.loss[0] == pytest.approx(final["final_val_loss"])


@pytest.mark.parametrize("overrides,field", [
    (["train.backend=jax", "train.compile=true"], "train.compile"),  # torch.compile is torch's
    (["train.backend=jax", "train.threads=2"], "train.threads"),
    (["train.mesh={data:2}"], "train.mesh"),                         # a mesh on the torch backend
    (["train.backend=jax", "train.mesh={data:2,model:2}"], "train.mesh"),
    (["train.backend=tpu"], "train.backend"),
    # torchrun would start two whole JAX runs; one JAX process drives every device of a host
    (["grid=token_budget", "train.backend=jax", "launcher.procs_per_run=2"], "launcher.procs_per_run"),
])
def test_a_setting_the_backend_lacks_fails_before_compute_naming_the_field(tmp_path, overrides, field):
    result = run_entry([*JAX_TINY, f"corpus.cache_dir={tmp_path}/cache", f"out_dir={tmp_path}/runs", *overrides],
                       cwd=tmp_path, timeout=120)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: {field}:"), result.stderr
    assert not (tmp_path / "runs").exists()


def test_without_jax_installed_the_jax_backend_names_the_extra(tmp_path):
    # sys.modules[name] = None is how Python marks a module as not importable.
    hide = ("import runpy, sys; sys.modules['jax'] = None; sys.argv = sys.argv[1:]; "
            "runpy.run_path(sys.argv[0], run_name='__main__')")
    args = [*JAX_TINY, f"corpus.cache_dir={tmp_path}/cache", f"out_dir={tmp_path}/runs", "train.backend=jax"]
    result = subprocess.run([sys.executable, "-c", hide, str(ROOT / "experiments" / "run.py"), *args],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: train.backend:"), result.stderr
    assert "pip install -e '.[jax]'" in lines[0] and not (tmp_path / "runs").exists()


def test_a_jax_cooldown_branch_equals_the_independent_jax_run(tmp_path, corpus_cache):
    """A branch adopts its trunk's orbax checkpoint (lab.jax.checkpoint.copy_step) and then reads
    as the run trained from scratch: the method issue's cooldown branches on this backend."""
    step_tokens = 4 * 32
    wsd = ["train.backend=jax", "train.schedule=wsd", "train.cooldown=0.2", f"train.warmup_tokens={5 * step_tokens}",
           "train.checkpoint_every=7", "train.keep_checkpoints=1"]
    trunk_final = run_single(_cfg(corpus_cache, tmp_path / "trunk", *wsd, "train.schedule=constant",
                                  f"train.tokens={40 * step_tokens}", "train.keep_steps=[40]"), log=lambda *_: None)
    trunk = _run_dir(tmp_path / "trunk")
    assert trunk_final["status"] == "done" and (trunk / "checkpoints" / "step_00000040").is_dir()
    budget = f"train.tokens={50 * step_tokens}"
    independent = run_single(_cfg(corpus_cache, tmp_path / "a", *wsd, budget), log=lambda *_: None)
    branch = run_single(_cfg(corpus_cache, tmp_path / "b", *wsd, budget, f"train.branch_from={trunk}",
                             "train.branch_step=40"), log=lambda *_: None)
    assert branch["parent"] == {"trunk": str(trunk), "step": 40} and "parent" not in independent
    assert branch["run_id"] == independent["run_id"]
    for key in ("final_train_loss", "final_val_loss", "final_val_own_loss"):
        assert branch[key] == pytest.approx(independent[key], abs=1e-6, rel=0), key
    rows_a, rows_b = _rows(_run_dir(tmp_path / "a")), _rows(_run_dir(tmp_path / "b"))
    assert [r["step"] for r in rows_b] == [r["step"] for r in rows_a]
    for key in ("loss", "lr", "grad_norm", "val_loss"):
        assert [r.get(key) for r in rows_b] == pytest.approx([r.get(key) for r in rows_a], abs=1e-6, rel=0), key


def test_a_kill_between_the_final_checkpoint_and_its_weights_is_repaired_on_rerun(tmp_path, corpus_cache):
    """The final orbax checkpoint lands first and the torch-format weights after it: a rerun that
    finds the first without the second writes them from the restored state, trains nothing, and
    leaves a run lab.export can read (else final.json would point at unreadable weights)."""
    from lab.run_model import load_run_model

    cfg = _cfg(corpus_cache, tmp_path, "train.backend=jax", "train.tokens=3200")
    first = run_single(cfg, log=lambda *_: None)
    run_dir = _run_dir(tmp_path)
    final_dir = run_dir / "checkpoints" / f"step_{first['steps']:08d}"
    reference = load_run_model(run_dir).model.state_dict()
    (run_dir / "final.json").unlink()  # as if killed right after orbax's rename
    (final_dir / "meta.json").unlink()
    (final_dir / "model.safetensors").unlink()
    again = run_single(cfg, log=lambda *_: None)
    assert again["final_val_loss"] == pytest.approx(first["final_val_loss"], abs=1e-6)
    repaired = load_run_model(run_dir).model.state_dict()
    assert all(torch.equal(repaired[name], value) for name, value in reference.items())
    assert _rows(run_dir)[-1]["step"] == first["steps"]  # nothing trained again: no new rows
    assert [r["step"] for r in _rows(run_dir)] == list(range(5, first["steps"] + 1, 5))
