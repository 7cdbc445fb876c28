"""grid=data_quality over any corpora: the four quality axes (synthetic dial, sources, min_score
thresholds, mixtures) expanded at the smoke scale, their labels and values, the one tokenizer and
the one held-out set every level shares, a prepared pair of levels checked token for token, a tiny
grid trained end to end, and the refusals of bad combinations.

The real corpora are small local files in their sources' formats (tests/corpora/test_mix.py)."""
import csv
import dataclasses

import numpy as np
import pytest

from common.cli import compose
from common.errors import ConfigError
from corpora import tokenizer as bpe
from corpora.cache import prepare_corpus
from corpora.config import CorpusConfig, heldout_corpus
from corpora.keys import corpus_content, corpus_key, tokenizer_key
from corpora.sources import iter_documents, take_words
from lab.sweep.runner import EntryConfig, plan_grid
from tests.corpora.test_mix import write_parts

SMALL = ["grid=data_quality", "scale=smoke", "model.vocab_size=300", "corpus.train_words=6000",
         "corpus.val_words=1500", "corpus.workers=1"]


def entry(tmp_path, *overrides) -> EntryConfig:
    from experiments.run import register

    return compose("config", [*SMALL, f"out_dir={tmp_path / 'runs'}", f"corpus.cache_dir={tmp_path / 'cache'}",
                              *overrides], register, EntryConfig)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return write_parts(tmp_path_factory.mktemp("parts"), n_edu=600, n_web=2000)


def sources(files):
    edu, web = files
    return f"grid.sources=[{{name:fineweb_edu,path:{edu}}},{{name:local,path:{web},label:web}}]"


def mixture(files):
    edu, web = files
    return ["corpus=mix", f"corpus.parts.edu.path={edu}", "corpus.parts.web.name=local",
            f"corpus.parts.web.path={web}", "grid.mixtures=[0.1,{edu:1,web:1},0.9]"]


def levels(planned) -> dict:
    """label -> (value, val_level, corpus) of each level, from the planned runs' grid coordinates."""
    out = {}
    for plan in planned:
        row = (plan.axes["quality_value"], plan.axes["val_level"], plan.cfg.corpus)
        assert out.setdefault(plan.axes["quality_label"], row) == row  # one corpus per level
    return out


def axis_cases(files):
    edu, _ = files
    return {
        "qualities": ([], {"quality 1": 1.0, "quality 0": 0.0}, "clean split"),
        "sources": ([sources(files)], {"fineweb_edu": None, "web": None}, "fineweb_edu"),
        "min_scores": (["corpus=fineweb_edu", f"corpus.path={edu}", "grid.min_scores=[1,3.5,2]"],
                       {"min_score>=1": 1.0, "min_score>=3.5": 3.5, "min_score>=2": 2.0}, "min_score>=3.5"),
        "mixtures": (mixture(files), {"mix edu 0.1": 0.1, "mix edu 0.5": 0.5, "mix edu 0.9": 0.9}, "mix edu 0.9"),
    }


@pytest.mark.parametrize("axis", ["qualities", "sources", "min_scores", "mixtures"])
def test_each_axis_expands_into_labelled_levels_sharing_one_tokenizer_and_one_held_out_set(files, tmp_path, axis):
    overrides, expected, val_label = axis_cases(files)[axis]
    planned, _ = plan_grid(entry(tmp_path, *overrides))
    found = levels(planned)
    assert {label: value for label, (value, _, _) in found.items()} == expected
    assert len(planned) == len(expected) * 2  # smoke: one size, two budgets
    assert {val for _, val, _ in found.values()} == {val_label}
    corpora = [corpus for _, _, corpus in found.values()]
    assert len({corpus_key(c) for c in corpora}) == len(corpora)  # each level its own data
    assert len({tokenizer_key(c) for c in corpora}) == 1  # ... one tokenizer
    if axis == "qualities":  # the dial as before: its clean split, the same at every quality
        from corpora.synthetic import generate_documents

        assert all(c.heldout_from is None and c.tokenizer_from is None for c in corpora)
        assert [c.quality for c in corpora] == [1.0, 0.0]
        clean = [[d.text for d in generate_documents(c.quality, 1500, c.seed, split="val_clean", workers=1)]
                 for c in corpora]
        assert clean[0] == clean[1]
        return
    held = [corpus_content(heldout_corpus(c)) for c in corpora]
    assert all(h == held[0] for h in held)  # ... one held-out set
    # The held-out set is the reference level's own corpus (the highest value, the first source).
    reference = found[val_label][2]
    assert held[0] == corpus_content(dataclasses.replace(reference, heldout_from=None, tokenizer_from=None))
    if axis == "min_scores":  # the tokenizer: the lowest threshold, every other level a subset of it
        assert tokenizer_key(corpora[0]) == tokenizer_key(dataclasses.replace(found["min_score>=1"][2], tokenizer_from=None))
    if axis == "mixtures":  # the tokenizer: the mix at equal weights
        equal = dataclasses.replace(corpora[0], tokenizer_from=None, heldout_from=None, weights={"edu": 1.0, "web": 1.0})
        assert tokenizer_key(corpora[0]) == tokenizer_key(equal)
        assert found["mix edu 0.1"][2].weights == pytest.approx({"edu": 0.1, "web": 0.9})


def test_val_level_names_another_level_by_label_or_value(files, tmp_path):
    found = levels(plan_grid(entry(tmp_path, sources(files), "grid.val_level=web"))[0])
    assert {val for _, val, _ in found.values()} == {"web"}
    assert heldout_corpus(found["fineweb_edu"][2]).name == "local"
    found = levels(plan_grid(entry(tmp_path, *mixture(files), "grid.val_level=0.1"))[0])
    assert {val for _, val, _ in found.values()} == {"mix edu 0.1"}
    assert heldout_corpus(found["mix edu 0.9"][2]).weights == pytest.approx({"edu": 0.1, "web": 0.9})
    found = levels(plan_grid(entry(tmp_path, "grid.val_level=0"))[0])  # the dial: quality 0's held-out split
    assert heldout_corpus(found["quality 1"][2]) == dataclasses.replace(found["quality 0"][2], heldout_from=None)


def test_prepared_levels_share_the_tokenizer_and_the_held_out_tokens(files, tmp_path):
    planned, _ = plan_grid(entry(tmp_path, sources(files)))
    found = levels(planned)
    prepared = {label: prepare_corpus(corpus, log=lambda msg: None) for label, (_, _, corpus) in found.items()}
    edu, web = prepared["fineweb_edu"], prepared["web"]
    assert edu.manifest["tokenizer"]["sha256"] == web.manifest["tokenizer"]["sha256"]
    # val_clean: the first source's held-out split, tokenized with the shared tokenizer (reference:
    # its documents read and encoded here, each followed by EOS).
    reference = CorpusConfig(name="fineweb_edu", path=str(files[0]), seed=0)
    tok = bpe.load(edu.tokenizer_path)
    ids = [np.append(tok.encode(t, add_special_tokens=False).ids, edu.eos_id)
           for t in take_words(iter_documents(reference, "val"), 1500)]
    assert np.array_equal(np.asarray(web.tokens("val_clean")), np.concatenate(ids))
    assert np.array_equal(np.asarray(edu.tokens("val_clean")), np.asarray(web.tokens("val_clean")))
    # Each level keeps its own held-out split as val.
    assert not np.array_equal(np.asarray(web.tokens("val")), np.asarray(web.tokens("val_clean")))
    # The tokenizer was trained on the sources mixed equally (the mix's own manifest-free stream).
    assert "mix" in web.manifest["config"]["tokenizer_from"]["name"]


def test_results_csv_carries_each_level_and_the_held_out_level(files, tmp_path):
    from lab.sweep.results import COLUMNS, collect, write_csv

    planned, run_dirs = plan_grid(entry(tmp_path, *mixture(files)))
    write_csv(tmp_path / "results.csv", collect(planned, run_dirs))  # runs not trained: rows pending
    with open(tmp_path / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == COLUMNS
    assert sorted((r["quality_label"], float(r["quality_value"])) for r in rows) == [
        ("mix edu 0.1", 0.1), ("mix edu 0.1", 0.1), ("mix edu 0.5", 0.5), ("mix edu 0.5", 0.5),
        ("mix edu 0.9", 0.9), ("mix edu 0.9", 0.9)]
    assert {r["val_level"] for r in rows} == {"mix edu 0.9"} and {r["corpus"] for r in rows} == {"mix"}
    planned, run_dirs = plan_grid(entry(tmp_path, sources(files)))
    rows = collect(planned, run_dirs)
    assert {r["quality_value"] for r in rows} == {""}  # sources have a label, no number
    assert {r["quality_label"] for r in rows} == {"fineweb_edu", "web"}


@pytest.mark.parametrize("overrides, field", [
    (["grid.qualities=[1.0,0.0]", "grid.min_scores=[1,2]"], "grid.min_scores"),
    (["grid.min_scores=[1,2]"], "grid.min_scores"),  # the synthetic corpus has no score
    (["corpus=fineweb", "grid.min_scores=[1,2]"], "grid.min_scores"),
    (["corpus=fineweb_edu", "grid.min_scores=[3]"], "grid.min_scores"),
    (["corpus=fineweb_edu", "grid.min_scores=[3,3.0]"], "grid.min_scores"),
    (["corpus=fineweb_edu", "corpus.min_score=2", "grid.min_scores=[3,4]"], "corpus.min_score"),
    (["grid.mixtures=[0.1,0.9]"], "grid.mixtures"),  # not a mix
    (["corpus=mix", "grid.mixtures=[0.1,1.5]"], "grid.mixtures[1]"),
    (["corpus=mix", "grid.mixtures=[0.1,{edu:1}]"], "grid.mixtures[1]"),
    (["grid.sources=[fineweb,synthetic]"], "grid.sources[1].name"),
    (["grid.sources=[fineweb,no_such_preset]"], "grid.sources[1]"),
    (["grid.sources=[fineweb,fineweb]"], "grid.sources"),  # two levels, one label
    (["grid.sources=[fineweb,{name:fineweb,min_score:3,label:x}]"], "grid.sources[1].min_score"),
    (["grid.sources=[fineweb,c4]", "grid.val_level=tinystories"], "grid.val_level"),
    (["corpus=fineweb"], "grid.qualities"),  # the dial is the synthetic corpus's
    (["grid=token_budget", "grid.sources=[fineweb,c4]"], "grid.sources"),
])
def test_bad_combinations_are_refused_naming_the_field(tmp_path, overrides, field):
    with pytest.raises(ConfigError) as e:
        plan_grid(entry(tmp_path, *overrides))
    assert e.value.field == field, e.value.reason
