"""Every finished grid run is scored on its corpus's knowledge probes: a tiny run through the
sweep worker (spec.json -> train -> score) gets fact_acc in final.json, facts.json and its
results.csv row, equal to scoring the final weights directly with score_choices."""
import json
import sys

import pytest
from test_export import make_run

from lab.choices import read_choices, score_choices
from lab.run_model import load_corpus, load_run_model
from lab.runs import read_final
from lab.scoring import load_tokenizer, sentence_start_id
from tests.helpers import ROOT, TINY


def _planned_run(tmp_path, cache):
    """One run of a smoke grid, planned as the grid runner plans it (spec.json written)."""
    sys.path.insert(0, str(ROOT / "experiments"))
    from common.cli import compose
    from experiments.run import register
    from lab.runs import run_id
    from lab.sweep.runner import EntryConfig, base_run_config
    from lab.sweep.spec import expand
    from lab.sweep.worker import write_spec

    args = [*TINY, "grid=token_budget", "grid.sizes=[3.0e4]", "grid.budgets=[2560]", "grid.report=false",
            f"corpus.cache_dir={cache}", f"out_dir={tmp_path / 'runs'}"]
    entry = compose("config", args, register, EntryConfig)
    (plan,) = expand(base_run_config(entry), entry.grid, entry.scale)
    run_dir = tmp_path / "runs" / run_id(plan.cfg)
    write_spec(run_dir, plan.cfg, plan.axes)
    return plan, run_dir


def test_a_finished_run_records_its_fact_accuracy(tmp_path, corpus_cache):
    from lab.sweep.results import collect
    from lab.sweep.worker import run_from_dir

    plan, run_dir = _planned_run(tmp_path, corpus_cache)
    final = run_from_dir(run_dir)
    assert final["status"] == "done" and read_final(run_dir) == final
    corpus = load_corpus(final["corpus_dir"])
    assert getattr(corpus, "facts_path", None) is not None, "the synthetic corpus writes facts.jsonl"
    items = read_choices(corpus.facts_path)
    assert {item["hops"] for item in items} == {1, 2}

    # the final weights, loaded afresh and scored directly
    run = load_run_model(run_dir)
    direct = score_choices(run.model, load_tokenizer(corpus.tokenizer_path), items,
                           bos_id=sentence_start_id(corpus), device="cpu", details=True)
    assert final["fact_acc"] == direct["accuracy"] and final["fact_acc_norm"] == direct["accuracy_norm"]
    assert final["fact_acc_2hop"] == direct["by_group"]["2"]["accuracy"]
    assert 0.0 <= final["fact_acc"] <= 1.0 and "pairs" in final  # pairs are scored alongside

    facts = json.loads((run_dir / "facts.json").read_text())
    assert facts["n"] == len(items) == len(facts["items"]) and facts["step"] == run.step
    assert facts["facts_file"] == str(corpus.facts_path) and facts["bos_id"] == corpus.eos_id
    for recorded, fresh in zip(facts["items"], direct["items"]):
        assert recorded["logprobs"] == pytest.approx(fresh["logprobs"], abs=1e-6)

    (row,) = collect([plan], [run_dir])
    assert row["fact_acc"] == final["fact_acc"] and row["fact_acc_2hop"] == final["fact_acc_2hop"]


def _add_facts(corpus_dir, items):
    """Give a hand-built prepared corpus a facts file, listed and checksummed in its manifest."""
    from common.files import sha256_file

    (corpus_dir / "facts.jsonl").write_text("".join(json.dumps(item) + "\n" for item in items))
    manifest = json.loads((corpus_dir / "manifest.json").read_text())
    manifest["facts"] = {"file": "facts.jsonl", "count": len(items)}
    manifest["files"]["facts.jsonl"] = sha256_file(corpus_dir / "facts.jsonl")
    (corpus_dir / "manifest.json").write_text(json.dumps(manifest))


def test_facts_without_pairs_and_a_snapshot(tmp_path):
    from lab import checkpoint
    from lab.sweep.pairs import evaluate_run_pairs, evaluate_snapshot_pairs

    run_dir, _, _ = make_run(tmp_path, with_pairs=False, tie=False)  # final weights overfit on these sentences
    items = [{"context": "the dog", "choices": [" runs .", " run ."], "answer": 0, "hops": 1},
             {"context": "the dogs", "choices": [" runs .", " run ."], "answer": 1, "hops": 1},
             {"context": "a bird", "choices": [" sing .", " sings ."], "answer": 1, "hops": 1}]
    _add_facts(tmp_path / "corpus-run", items)
    final = evaluate_run_pairs(run_dir, read_final(run_dir), device="cpu")
    assert final["fact_acc"] == 1.0 and final["fact_acc_norm"] == 1.0
    assert final["fact_acc_2hop"] is None and "pairs" not in final  # no two-hop probes, no pairs
    assert read_final(run_dir) == final and not (run_dir / "pairs.json").exists()
    trained = json.loads((run_dir / "facts.json").read_text())
    assert trained["n"] == 3 and trained["step"] == 7

    # the untrained snapshot gets its own facts.json; its checksummed files stay intact
    assert evaluate_snapshot_pairs(run_dir, "chck_1", device="cpu") is None  # no pairs to return
    snap = json.loads((run_dir / "snapshots" / "chck_1" / "facts.json").read_text())
    assert snap["step"] == 1 and snap["n"] == 3
    assert all(a["logprobs"] != b["logprobs"] for a, b in zip(snap["items"], trained["items"]))
    assert checkpoint.verify(run_dir / "snapshots" / "chck_1") is None
