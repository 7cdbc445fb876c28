"""The embedded corpus: deterministic, a working quality dial, honest labels, clean pairs."""
import collections
import math
import re

import numpy as np
import pytest

from corpora.synthetic import WEB_DEFECT_RATES, count_words, generate_documents, minimal_pairs
from corpora.synthetic.web import BOILERPLATE_LINES, TAG_PATTERN
from lab.errors import ConfigError


@pytest.fixture(scope="module")
def web_docs():
    return generate_documents(0.0, 60_000, seed=3, workers=1)


def test_same_seed_same_documents_for_any_worker_count():
    one = generate_documents(0.4, 20_000, seed=7, workers=1)
    two = generate_documents(0.4, 20_000, seed=7, workers=2)
    assert one == two
    other = generate_documents(0.4, 20_000, seed=8, workers=1)
    assert [d.text for d in other[:20]] != [d.text for d in one[:20]]


def test_word_budget_is_reached_and_not_overshot_by_more_than_a_document():
    docs = generate_documents(0.5, 30_000, seed=0, workers=1)
    total = sum(count_words(d.text) for d in docs)
    assert 30_000 <= total < 30_000 + count_words(docs[-1].text)


@pytest.mark.parametrize("quality", [0.0, 0.3, 0.75, 1.0])
def test_quality_dial_sets_the_textbook_fraction(quality):
    docs = generate_documents(quality, 40_000, seed=1, workers=1)
    fraction = sum(d.grade == "textbook" for d in docs) / len(docs)
    assert abs(fraction - quality) < 0.02
    assert all(not d.defects for d in docs if d.grade == "textbook")


def test_raising_quality_only_turns_web_documents_into_textbook_ones():
    low = generate_documents(0.3, 20_000, seed=2, workers=1)
    high = generate_documents(0.6, 20_000, seed=2, workers=1)
    for a, b in zip(low, high):
        if a.grade == "textbook":
            assert b.grade == "textbook" and a.text == b.text


def test_val_clean_is_textbook_and_disjoint_from_train():
    train = {d.text for d in generate_documents(0.5, 40_000, seed=4, workers=1)}
    clean = generate_documents(0.0, 5_000, seed=4, split="val_clean", workers=1)
    assert all(d.grade == "textbook" for d in clean)
    assert not train & {d.text for d in clean}


def test_each_defect_label_shows_in_the_text(web_docs):
    seen = collections.Counter(name for d in web_docs for name in d.defects)
    assert set(seen) == set(WEB_DEFECT_RATES)  # every defect occurs
    for d in web_docs:
        lines = {TAG_PATTERN.sub("", line) for line in d.text.splitlines()}
        assert ("boilerplate" in d.defects) == bool(lines & BOILERPLATE_LINES)
        if "markup" in d.defects:
            assert TAG_PATTERN.search(d.text)
    # Rates are near their configured probabilities (independent draws per document).
    n = len(web_docs)
    for name in ("boilerplate", "markup", "typos"):
        assert abs(seen[name] / n - WEB_DEFECT_RATES[name]) < 4 * math.sqrt(0.25 / n) + 0.05


def test_a_near_duplicate_repeats_most_of_an_earlier_document(web_docs):
    def shingles(text):
        words = TAG_PATTERN.sub(" ", text).lower().split()
        return {tuple(words[k:k + 3]) for k in range(len(words) - 2)}

    def best_overlap(i):
        mine = shingles(web_docs[i].text)
        # Containment, not Jaccard: the source may be truncated or wrapped in other chrome.
        return max(len(mine & (theirs := shingles(web_docs[j].text))) / min(len(mine), len(theirs))
                   for j in range(max(0, i - 40), i))

    dups = [i for i, d in enumerate(web_docs) if "near_duplicate" in d.defects][:20]
    others = [i for i, d in enumerate(web_docs) if "near_duplicate" not in d.defects][40:60]
    assert dups
    assert min(best_overlap(i) for i in dups) > 0.5
    assert np.median([best_overlap(i) for i in others]) < 0.25  # unrelated pages share only chrome


def test_defect_rates_can_be_switched_off():
    docs = generate_documents(0.0, 10_000, seed=0, workers=1, defect_rates={})
    assert all(d.grade == "web" and not d.defects for d in docs)


def test_word_frequencies_are_zipfian():
    docs = generate_documents(1.0, 80_000, seed=0, workers=1)
    counts = collections.Counter(w.strip(".,?!").lower() for d in docs for w in d.text.split())
    freq = np.array(sorted(counts.values(), reverse=True), dtype=float)
    assert len(freq) > 1500  # a lexicon of a few thousand words in use
    ranks = np.arange(1, len(freq) + 1)
    mid = slice(10, 1000)
    slope = np.polyfit(np.log(ranks[mid]), np.log(freq[mid]), 1)[0]
    assert -1.6 < slope < -0.7


def test_minimal_pairs_differ_in_exactly_one_word():
    pairs = minimal_pairs(seed=0, per_phenomenon=500)
    per = collections.Counter(p["phenomenon"] for p in pairs)
    assert len(per) >= 6 and min(per.values()) == 500
    assert len({(p["phenomenon"], p["sentence_good"]) for p in pairs}) == len(pairs)
    for p in pairs:
        good, bad = p["sentence_good"].split(), p["sentence_bad"].split()
        assert len(good) == len(bad)
        assert sum(a != b for a, b in zip(good, bad)) == 1


def test_minimal_pairs_are_held_out_from_training_text():
    pairs = minimal_pairs(seed=0, per_phenomenon=100)
    text = "\n".join(d.text for d in generate_documents(0.5, 300_000, seed=0, workers=2))
    leaked = sum(p["sentence_good"] in text for p in pairs)
    assert leaked / len(pairs) < 0.02


def test_bad_quality_is_refused():
    with pytest.raises(ConfigError) as e:
        generate_documents(1.5, 100, seed=0)
    assert e.value.field == "corpus.quality"
