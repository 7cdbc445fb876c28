"""BabyLM submissions at the smoke scale: words budget, checkpoint schedule, HF folders that load
offline, results, skipping finished work on rerun, and the 10-epoch cap."""
import json
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT, TINY, run_entry

# TINY's corpus.train_words is replaced by the grid's corpus size (10K words at smoke).
ARGS = [*TINY, "grid=babylm_strict_small", "launcher.poll_s=0.2"]
SMOKE_NAMES = [f"chck_{k}K" for k in range(1, 11)] + ["chck_20K", "main"]


def _compose(args):
    sys.path.insert(0, str(ROOT / "experiments"))
    from common.cli import compose
    from experiments.run import register
    from lab.sweep.runner import EntryConfig

    return compose("config", args, register, EntryConfig)


def _expand(args):
    from lab.sweep.runner import base_run_config
    from lab.sweep.spec import expand

    entry = _compose(args)
    return expand(base_run_config(entry), entry.grid, entry.scale)


def test_checkpoint_names_and_schedules_at_scale_gpu():
    from lab.sweep.spec import babylm_checkpoints, checkpoint_name

    assert [checkpoint_name(w) for w in (1e6, 2e7, 1e9, 3e3, 2e5, 1234)] == \
        ["chck_1M", "chck_20M", "chck_1000M", "chck_3K", "chck_200K", "chck_1234"]
    assert list(babylm_checkpoints(3.5e6, 1e6)) == ["chck_1M", "chck_2M", "chck_3M"]

    (small,) = _expand(["grid=babylm_strict_small", "scale=gpu"])
    millions = [*range(1, 11), *range(20, 101, 10)]
    assert small.cfg.train.words == 1e8 and small.cfg.corpus.train_words == 10_000_000
    assert small.cfg.train.snapshots == {f"chck_{m}M": m * 1e6 for m in millions}
    (strict,) = _expand(["grid=babylm_strict", "scale=gpu"])
    assert strict.cfg.train.words == 1e9 and strict.cfg.corpus.train_words == 100_000_000
    assert list(strict.cfg.train.snapshots) == [f"chck_{m}M" for m in [*millions, *range(200, 1001, 100)]]
    # a smaller budget keeps only the checkpoints it reaches; the real corpus is accepted too
    (five,) = _expand(["grid=babylm_strict_small", "scale=gpu", "grid.epochs=[0.5]", "corpus=babylm_strict_small"])
    assert five.cfg.train.words == 5e6 and list(five.cfg.train.snapshots) == [f"chck_{m}M" for m in range(1, 6)]
    assert five.cfg.corpus.name == "babylm_strict_small"


def test_epoch_cap_and_wrong_corpus_are_refused_before_compute(tmp_path):
    from common.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        _expand(["grid=babylm_strict", "scale=gpu", "train.words=1.5e9"])
    assert info.value.field == "train.words" and "at most 10 epochs" in info.value.reason
    with pytest.raises(ConfigError) as info:
        _expand(["grid=babylm_strict_small", "scale=smoke", "corpus=tinystories"])
    assert info.value.field == "corpus.name"
    # the real command line: exit 2, one line, nothing written
    result = run_entry([*ARGS, "grid.epochs=[11]", f"out_dir={tmp_path / 'runs'}",
                        f"corpus.cache_dir={tmp_path / 'cache'}"], cwd=tmp_path, timeout=120)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.startswith("error: grid.epochs: ") and result.stderr.count("\n") == 1, result.stderr
    assert "at most 10 epochs" in result.stderr
    assert not (tmp_path / "runs").exists() and not (tmp_path / "cache").exists()


def test_babylm_strict_small_trains_exports_evaluates_and_skips_on_rerun(tmp_path, corpus_cache, monkeypatch):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    args = [*ARGS, f"corpus.cache_dir={corpus_cache}", f"out_dir={tmp_path / 'runs'}"]
    first = run_entry(args, cwd=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    grid_dir = tmp_path / "runs" / "babylm_strict_small-smoke"
    sub = grid_dir / "submission"
    assert sorted(p.name for p in sub.iterdir() if p.is_dir()) == sorted(SMOKE_NAMES)
    assert "12 exported, 0 already there" in first.stdout

    results = json.loads((sub / "results.json").read_text())
    assert [row["name"] for row in results["checkpoints"]] == SMOKE_NAMES  # training order
    assert results["data"]["offline_stand_in"] and results["data"]["corpus"] == "synthetic"
    assert results["budget"]["words"] == 20_000 and results["budget"]["epochs"] == 2
    # the corpus is 10K words requested (2 epochs); the generator keeps its last document whole
    manifest = json.loads((Path(results["data"]["corpus_dir"]) / "manifest.json").read_text())
    assert results["data"]["train_words_requested"] == 10_000
    assert results["data"]["train_words_prepared"] == manifest["splits"]["train"]["words"] >= 10_000
    words_per_step = 4 * 32 / results["data"]["tokens_per_word"]
    for row in results["checkpoints"][:-1]:
        nominal = float(row["name"][len("chck_"):-1]) * 1000
        if nominal < results["budget"]["words"]:
            assert nominal <= row["words"] < nominal + words_per_step + 1e-6  # the first step that reaches it
        else:  # the budget itself: rounded down to whole steps, never above the cap
            assert nominal - words_per_step < row["words"] <= nominal
        assert 0.0 <= row["corpus_pairs"]["accuracy"] <= 1.0 and row["corpus_pairs"]["n"] > 0
        assert "n_ties" in row["corpus_pairs"] and row["corpus_pairs"]["macro_accuracy"] is not None
    main = results["checkpoints"][-1]
    assert main["words"] == pytest.approx(results["budget"]["words_trained"]) and main["final_val_loss"] > 0
    # the worker scored the final weights through our model; the submission through the HF folder
    (run_dir,) = (grid_dir / "runs").iterdir()
    final = json.loads((run_dir / "final.json").read_text())
    assert main["corpus_pairs"]["accuracy"] == pytest.approx(final["pairs"])
    # every checkpoint's validation loss through its folder; the final one matches training's
    assert all(row["val_loss"] > 0 for row in results["checkpoints"])
    assert main["val_loss"] == pytest.approx(final["final_val_loss"], rel=0.02)
    assert results["checkpoints"][0]["val_loss"] > main["val_loss"]
    card = (sub / "README.md").read_text()
    for text in ("Offline stand-in", "## Architecture", "20,000 words seen", "`chck_20K`", "`main`", "Scale `smoke`",
                 f"{results['data']['train_words_prepared']:,} generated words",
                 f"warmup {json.loads((run_dir / 'config.json').read_text())['config']['train']['warmup_tokens']:,.0f} tokens"):
        assert text in card, text

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for name in ("chck_1K", "chck_20K", "main"):
        model = AutoModelForCausalLM.from_pretrained(sub / name, local_files_only=True)
        tok = AutoTokenizer.from_pretrained(sub / name, local_files_only=True)
        assert model.config.architectures == ["LlamaForCausalLM"] and tok.bos_token == "</s>"
        assert json.loads((sub / name / "lab_export.json").read_text())["snapshot"] == (None if name == "main" else name)
    for name in SMOKE_NAMES:  # every folder is complete
        assert {"config.json", "model.safetensors", "tokenizer.json", "README.md"} <= {p.name for p in (sub / name).iterdir()}

    stamp = (sub / "main" / "model.safetensors").stat().st_mtime_ns
    second = run_entry(args, cwd=tmp_path)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "1 finished, 0 to train" in second.stdout and "0 exported, 12 already there" in second.stdout
    assert (sub / "main" / "model.safetensors").stat().st_mtime_ns == stamp
    assert json.loads((sub / "results.json").read_text())["checkpoints"] == results["checkpoints"]

    # A corrupt checkpoint is refused by name, its earlier export kept: never a shorter submission.
    from lab.checkpoint import list_snapshots

    (victim,) = [p for p in list_snapshots(run_dir) if p.name == "chck_2K"]
    (victim / "model.safetensors").write_bytes(b"torn")
    third = run_entry(args, cwd=tmp_path)
    assert third.returncode == 1, third.stdout + third.stderr
    assert "lacks intact snapshots chck_2K" in third.stdout
    assert (sub / "chck_2K" / "model.safetensors").is_file()


def _fake_babylm_run(tmp_path, train_words: dict, cleaning: dict | None = None):
    """A finished-looking run dir (config.json) and a corpus dir holding only a manifest."""
    import dataclasses

    from lab.config import RunConfig
    from lab.runs import record_start

    cfg = RunConfig()
    cfg = dataclasses.replace(cfg, corpus=dataclasses.replace(cfg.corpus, name="babylm_strict_small",
                                                              train_words=10_000_000, path="/data/babylm"),
                              train=dataclasses.replace(cfg.train, words=1e8, snapshots={"chck_1M": 1e6}))
    corpus_dir = tmp_path / "corpus"
    corpus_dir.mkdir()
    manifest = {"splits": {"train": {"words": train_words["prepared"], "tokens": 2 * train_words["prepared"]}}}
    if cleaning:
        manifest["cleaning"] = cleaning
    (corpus_dir / "manifest.json").write_text(json.dumps(manifest))
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    record_start(run_dir, cfg, {"corpus_dir": str(corpus_dir)})
    final = {"status": "done", "corpus_dir": str(corpus_dir), "tokens_per_word": 2.0, "tokens": 199_999_488,
             "words": 99_999_744.0, "epochs": 10.0, "params": 1000, "non_embedding_params": 500,
             "precision": "bf16", "device": "cuda", "wall_s": 10.0}
    axes = {"epochs": 10.0, "corpus_words": 1e7, "word_unit": 1e6, "max_epochs": 10.0}
    return run_dir, final, axes


@pytest.mark.parametrize("case", ["short_source", "cleaned", "exact"])
def test_submission_reports_the_words_really_prepared(tmp_path, case):
    """train_words_prepared comes from the prepared corpus's manifest, not the requested size,
    and the model card says so in one sentence when the two differ."""
    from lab.sweep.submission import _results, model_card

    prepared, cleaning = {"short_source": (9_400_000, None),
                          "cleaned": (9_700_000, {"words_before": 10_000_000, "words_after": 9_700_000}),
                          "exact": (10_000_000, None)}[case]
    run_dir, final, axes = _fake_babylm_run(tmp_path, {"prepared": prepared}, cleaning)
    results = _results(run_dir, final, "babylm_strict_small", "gpu", "babylm_strict_small", axes, [], [])
    data = results["data"]
    assert data["train_words_prepared"] == prepared  # before the fix: the requested 10,000,000
    assert data["train_words_requested"] == 10_000_000
    card = model_card(results)
    assert f"its first {prepared:,} words." in card
    if case == "exact":
        assert "The prepared training split" not in card
        return
    sentence = (f"The prepared training split holds {prepared:,} words, fewer than the 10,000,000 requested "
                + {"short_source": "(the source holds only 9,400,000 words)",
                   "cleaned": "(cleaning removed 300,000)"}[case]
                + f", so the 100,000,000-word budget is {1e8 / prepared:.2f} passes over it.")
    assert sentence in card, card.split("## Budget")[0]


def test_trainer_epoch_guard_counts_the_prepared_train_shard():
    """The grid checks the 10-epoch cap against the requested corpus size; the trainer checks it
    again against the windows of the train shard really prepared (grid.max_epochs * 1.01), so a
    corpus prepared short of the requested size cannot be trained past the cap."""
    import numpy as np

    from common.errors import ConfigError
    from lab.config import TrainConfig
    from lab.data import WindowSampler
    from lab.plan import make_plan

    t = TrainConfig(words=100_000.0, tokens=100_000.0, batch_size=4, seq_len=32, max_epochs=10.0 * 1.01)
    full = WindowSampler(np.zeros(20_001, dtype=np.uint16), t.seq_len, seed=0)  # 10,000 words at 2 tokens/word
    assert make_plan(t, full, tokens_per_word=2.0).epochs <= 10.0
    short = WindowSampler(np.zeros(18_001, dtype=np.uint16), t.seq_len, seed=0)  # 9,000 words prepared
    with pytest.raises(ConfigError) as info:
        make_plan(t, short, tokens_per_word=2.0)
    assert info.value.field == "train.tokens" and "above train.max_epochs=10.1" in info.value.reason


def test_a_word_budget_is_refused_by_token_grids():
    """train.words overrides every point's budget: a token grid silently trained one run per
    size, the same for every budget, and recorded them under different budgets."""
    from common.errors import ConfigError

    for grid in ("token_budget", "isoflop", "data_quality"):
        with pytest.raises(ConfigError) as info:
            _expand([f"grid={grid}", "scale=smoke", "train.words=1e4"])
        assert info.value.field == "train.words", grid
    assert _expand(["grid=token_budget", "scale=smoke"])  # without it, the grid expands


@pytest.mark.parametrize("name", ["", "x/../../y", "..", "a/b"])
def test_a_grid_name_is_one_plain_directory_name(name):
    from common.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        _expand(["grid=token_budget", "scale=smoke", f"grid.name='{name}'"])
    assert info.value.field == "grid.name"


@pytest.mark.parametrize("budgets", ["[10]", "[100,5120]"])
def test_a_token_budget_below_one_step_names_the_grid_field(budgets):
    """It blamed train.tokens (or, beside a larger budget, was silently dropped)."""
    from common.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        _expand(["grid=token_budget", "scale=smoke", f"grid.budgets={budgets}"])
    assert info.value.field == "grid.budgets" and "below one optimizer step" in info.value.reason
