"""The embedded corpus is learnable at small scale: a ~100k-parameter model beats the unigram
baseline by a wide margin, and minimal-pair accuracy rises with model size and tokens."""
import json
from pathlib import Path

from corpora.prepare import load_prepared
from corpora.stats import unigram_cross_entropy
from lab.sweep.pairs import evaluate_run_pairs
from tests.helpers import run_entry

SETTINGS = ["scale=smoke", "model.vocab_size=512", "corpus.train_words=300000", "corpus.val_words=20000",
            "corpus.pairs_per_phenomenon=100", "train.seq_len=64", "train.batch_size=16", "train.lr=3e-3",
            "train.eval_tokens=16384", "train.threads=1", "train.progress=none", "train.max_epochs=2"]


def _train(tmp_path: Path, cache: Path, name: str, *overrides: str) -> tuple[dict, Path]:
    out = tmp_path / name
    done = run_entry([*SETTINGS, f"corpus.cache_dir={cache}", f"out_dir={out}", *overrides], cwd=tmp_path,
                     timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    (run_dir,) = [p.parent for p in out.glob("*/final.json")]
    return evaluate_run_pairs(run_dir, json.loads((run_dir / "final.json").read_text())), run_dir


def test_small_model_beats_unigram_and_pairs_rise_with_scale(tmp_path, corpus_cache):
    tiny, _ = _train(tmp_path, corpus_cache, "tiny", "model.d_model=32", "model.n_layers=1", "model.n_heads=1",
                     "model.n_kv_heads=1", "train.tokens=20000")
    small, run_dir = _train(tmp_path, corpus_cache, "small", "model.d_model=64", "model.n_layers=2",
                            "model.n_heads=2", "model.n_kv_heads=1", "train.tokens=600000")
    corpus = load_prepared(small["corpus_dir"])
    unigram = unigram_cross_entropy(corpus.tokens("train"), corpus.tokens("val_clean"), 512)
    print(f"unigram {unigram:.3f}; tiny: val {tiny['final_val_loss']:.3f} pairs {tiny['pairs']:.3f} "
          f"({tiny['params']} params, {tiny['tokens']} tokens); small: val {small['final_val_loss']:.3f} "
          f"pairs {small['pairs']:.3f} ({small['params']} params, {small['tokens']} tokens)")
    assert 60_000 < small["params"] < 150_000
    assert small["final_val_loss"] < unigram - 1.0  # nats/token: far more than word frequencies
    # Measured here: tiny 0.53 (chance is 0.5), small 0.62; subject-verb agreement 0.5 -> 0.8.
    assert small["pairs"] > tiny["pairs"] + 0.05
    assert small["pairs"] > 0.58
    by = small["pairs_by_phenomenon"], tiny["pairs_by_phenomenon"]
    assert by[0]["subject_verb_agreement"] > by[1]["subject_verb_agreement"] + 0.1
