"""Minimal-pair accuracy of a finished run (or of one of its snapshots) on its corpus's pairs, and
its accuracy on the corpus's knowledge probes (facts), recorded next to it: final.json, pairs.json
and facts.json, or snapshots/<name>/pairs.json and facts.json."""
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


def _score(run: RunModel, device: str | None, batch_size: int) -> tuple[dict | None, dict | None]:
    """(pair scores, fact scores) with the run's own corpus; each None when the corpus has no
    such file."""
    corpus_dir = run_corpus_dir(run)
    if not corpus_dir:
        raise ConfigError("corpus_dir", f"{run.weights.parent.parent} records no corpus_dir")
    corpus = load_corpus(corpus_dir)
    pairs_path, facts_path = getattr(corpus, "pairs_path", None), getattr(corpus, "facts_path", None)
    if pairs_path is None and facts_path is None:
        return None, None
    device = device or default_device()
    run.model.to(device)
    where = {"run_id": run.run_config.get("run_id"), "snapshot": run.snapshot, "step": run.step,
             "tokens": run.tokens}
    pairs = facts = None
    if pairs_path is not None:
        pairs = evaluate_pairs_file(run.model, corpus.tokenizer_path, pairs_path, bos_id=sentence_start_id(corpus),
                                    device=device, batch_size=batch_size, details=True)
        pairs.update(where, pairs_file=str(pairs_path))
    if facts_path is not None:
        from lab.choices import evaluate_choices_file

        facts = evaluate_choices_file(run.model, corpus.tokenizer_path, facts_path, bos_id=sentence_start_id(corpus),
                                      device=device, batch_size=batch_size, details=True)
        facts.update(where, facts_file=str(facts_path))
    return pairs, facts


def fact_summary(facts: dict) -> dict:
    """final.json's fact columns: accuracy, length-normalised accuracy, and the two-hop probes'
    accuracy (None when the file has no two-hop probes)."""
    two_hop = facts.get("by_group", {}).get("2")
    return {"fact_acc": facts["accuracy"], "fact_acc_norm": facts["accuracy_norm"],
            "fact_acc_2hop": None if two_hop is None else two_hop["accuracy"]}


def by_phenomenon(scores: dict) -> dict[str, float | None]:
    return {name: row["accuracy"] for name, row in scores["by_phenomenon"].items()}


def evaluate_run_pairs(run_dir: str | Path, final: dict, *, device: str | None = None,
                       batch_size: int = 64) -> dict:
    """Score the run's final weights on its corpus's pairs and facts; returns final (updated and
    rewritten to final.json when the corpus has either, unchanged otherwise).

    Called by the sweep worker once a run is done. With pairs, final.json gains "pairs" (overall
    accuracy), "pairs_macro" (mean over phenomena), "pairs_norm" (length-normalised accuracy),
    "pairs_ties" (tied pairs, not counted as correct) and "pairs_by_phenomenon" ({phenomenon:
    accuracy}); pairs.json gets the counts and every pair's two log-probabilities. With facts
    (multiple-choice knowledge probes, lab.choices), final.json gains "fact_acc", "fact_acc_norm"
    and "fact_acc_2hop" (see fact_summary); facts.json gets the full scores, per probe.
    """
    run_dir = Path(run_dir)
    run = load_run_model(run_dir)
    if not final.get("corpus_dir") and run.final:
        final = {**final, "corpus_dir": run.final.get("corpus_dir")}
    run.final = final
    scores, facts = _score(run, device, batch_size)
    if scores is None and facts is None:
        return final
    if scores is not None:
        write_json(run_dir / "pairs.json", scores)
        final = {**final, "pairs": scores["accuracy"], "pairs_by_phenomenon": by_phenomenon(scores),
                 "pairs_macro": scores["macro_accuracy"], "pairs_norm": scores["accuracy_norm"],
                 "pairs_ties": scores["n_ties"]}
    if facts is not None:
        write_json(run_dir / "facts.json", facts)
        final = {**final, **fact_summary(facts)}
    write_json(run_dir / "final.json", final)
    return final


def evaluate_snapshot_pairs(run_dir: str | Path, snapshot: str, *, device: str | None = None,
                            batch_size: int = 64, write: bool = True) -> dict | None:
    """Score snapshots/<snapshot> on the run's pairs; the full scores (None without pairs),
    written to snapshots/<snapshot>/pairs.json when `write` (the snapshot's checksummed files
    are left untouched). The corpus's facts, if any, are scored too and written to facts.json
    there."""
    run_dir = Path(run_dir)
    run = load_run_model(run_dir, snapshot=snapshot)
    scores, facts = _score(run, device, batch_size)
    if scores is not None and write:
        write_json(run.weights / "pairs.json", scores)
    if facts is not None and write:
        write_json(run.weights / "facts.json", facts)
    return scores
