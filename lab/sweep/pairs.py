"""Minimal-pair accuracy of a finished run (or of one of its snapshots) on its corpus's pairs,
recorded next to it: final.json and pairs.json, or snapshots/<name>/pairs.json."""
from __future__ import annotations

from pathlib import Path

from common.errors import ConfigError
from lab.run_model import (
    RunModel,
    default_device,
    load_corpus,
    load_run_model,
    run_corpus_dir,
)
from lab.runs import write_json
from lab.scoring import evaluate_pairs_file, sentence_start_id


def _score(run: RunModel, device: str | None, batch_size: int) -> dict | None:
    """Pair scores with the run's own corpus, or None when the corpus has no pairs."""
    corpus_dir = run_corpus_dir(run)
    if not corpus_dir:
        raise ConfigError("corpus_dir", f"{run.weights.parent.parent} records no corpus_dir")
    corpus = load_corpus(corpus_dir)
    if getattr(corpus, "pairs_path", None) is None:
        return None
    device = device or default_device()
    run.model.to(device)
    scores = evaluate_pairs_file(run.model, corpus.tokenizer_path, corpus.pairs_path,
                                 bos_id=sentence_start_id(corpus), device=device,
                                 batch_size=batch_size, details=True)
    scores.update(run_id=run.run_config.get("run_id"), snapshot=run.snapshot, step=run.step,
                  tokens=run.tokens, pairs_file=str(corpus.pairs_path))
    return scores


def by_phenomenon(scores: dict) -> dict[str, float | None]:
    return {name: row["accuracy"] for name, row in scores["by_phenomenon"].items()}


def evaluate_run_pairs(run_dir: str | Path, final: dict, *, device: str | None = None,
                       batch_size: int = 64) -> dict:
    """Score the run's final weights on its corpus's pairs; returns final (updated and rewritten
    to final.json when the corpus has pairs, unchanged otherwise).

    Called by the sweep worker once a run is done. final.json gains "pairs" (overall accuracy),
    "pairs_macro" (mean over phenomena), "pairs_norm" (length-normalised accuracy), "pairs_ties"
    (tied pairs, not counted as correct) and "pairs_by_phenomenon" ({phenomenon: accuracy});
    pairs.json gets the counts and every pair's two log-probabilities.
    """
    run_dir = Path(run_dir)
    run = load_run_model(run_dir)
    if not final.get("corpus_dir") and run.final:
        final = {**final, "corpus_dir": run.final.get("corpus_dir")}
    run.final = final
    scores = _score(run, device, batch_size)
    if scores is None:
        return final
    write_json(run_dir / "pairs.json", scores)
    final = {**final, "pairs": scores["accuracy"], "pairs_by_phenomenon": by_phenomenon(scores),
             "pairs_macro": scores["macro_accuracy"], "pairs_norm": scores["accuracy_norm"],
             "pairs_ties": scores["n_ties"]}
    write_json(run_dir / "final.json", final)
    return final


def evaluate_snapshot_pairs(run_dir: str | Path, snapshot: str, *, device: str | None = None,
                            batch_size: int = 64, write: bool = True) -> dict | None:
    """Score snapshots/<snapshot> on the run's pairs; the full scores (None without pairs),
    written to snapshots/<snapshot>/pairs.json when `write` (the snapshot's checksummed files
    are left untouched)."""
    run_dir = Path(run_dir)
    run = load_run_model(run_dir, snapshot=snapshot)
    scores = _score(run, device, batch_size)
    if scores is not None and write:
        write_json(run.weights / "pairs.json", scores)
    return scores
