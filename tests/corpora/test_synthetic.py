"""The embedded corpus: deterministic, a working quality dial, honest labels, clean pairs."""
import collections
import math
import random
import re

import numpy as np
import pytest

from common.errors import ConfigError
from corpora.synthetic import (
    WEB_DEFECT_RATES,
    count_words,
    generate_documents,
    minimal_pairs,
)
from corpora.synthetic.generate import NEAR_DUPLICATE_WINDOW
from corpora.synthetic.grammar import PRESENT, Grammar
from corpora.synthetic.lexicon import load_lexicon
from corpora.synthetic.web import BOILERPLATE_LINES, SPAM_WORDS, TAG_PATTERN
from corpora.synthetic.world import build_world, fact_sentence_table


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


# --- what each defect label leaves in the text ---------------------------------------------
# One check per label, read off the rendered text only (never the generator's internals), so
# it holds for exactly the documents carrying the label: every labeled web page shows it, no
# unlabeled web page and no textbook page does.


def _text_lines(text):
    """Lines without tags, spacing normalised; "&amp;" read back as the "and" it replaced."""
    lines = (" ".join(TAG_PATTERN.sub(" ", line.replace("&amp;", "and")).split()) for line in text.splitlines())
    return [line for line in lines if line]


def _is_spam_line(line):
    """keyword_spam's line: one word alternating with shopping words, a dozen words or more."""
    words = line.split()
    return (len(words) >= 12 and len(words) % 2 == 0 and len(set(words[0::2])) == 1
            and all(w in SPAM_WORDS for w in words[1::2]))


def _ends_mid_sentence(text):
    return not text.rstrip().endswith((".", "?", "!", "</html>"))


def _prose(text):
    """The page's own sentences: chrome, spam lines and the title (which spam may extend) left out."""
    lines = [line for line in _text_lines(text) if line not in BOILERPLATE_LINES and not _is_spam_line(line)]
    return lines[1:]


def _unknown_words(text, lexicon):
    """Words of the prose outside the lexicon (as add_typos tells a slip from a word). A page
    cut mid-word ends in a fragment, which is truncation's evidence, not a typo."""
    words = [w for line in _prose(text) for w in re.findall(r"[A-Za-z]+", line)]
    if _ends_mid_sentence(text):
        words = words[:-1]
    return [w for w in words if w not in lexicon.tags and w.lower() not in lexicon.tags]


def _false_claims(text, claims):
    """Sentences (or their ends, after "Answer: " and the like) that state a fact the world
    says is false: `claims` maps every canonical fact sentence to its truth."""
    found = []
    for line in _text_lines(text):
        for unit in re.split(r"(?<=[.?!]) ", line):
            words = unit.split()
            found += [" ".join(words[k:]) for k in range(len(words)) if claims.get(" ".join(words[k:])) is False]
    return found



def test_a_named_person_who_lives_in_a_town_lives_in_her_own():
    # Generator revision 2: "live" + the town locative once named a random town, a false fact
    # on 3 of 47,000 pages (seed 4's val_clean said "Harriet lives in Hollyton.").
    world = build_world(4)
    grammar = Grammar(load_lexicon(), world)
    towns = {town.name for town in world.towns}
    rng = random.Random(0)
    seen = 0
    for _ in range(40_000):
        person = world.person_choice(rng)
        clause = grammar.intransitive(rng, PRESENT, grammar.person_phrase(rng, person))
        if clause.words[1:3] == ["lives", "in"] and clause.words[3] in towns:
            assert clause.words[3] == person.town, " ".join(clause.words)
            seen += 1
    assert seen >= 20


@pytest.fixture(scope="module")
def textbook_docs():
    return generate_documents(1.0, 30_000, seed=3, workers=1)


@pytest.fixture(scope="module")
def evidence():
    """label -> text -> whether the text shows that defect (all but near_duplicate, whose
    evidence lies across documents: test_a_near_duplicate_repeats_most_of_an_earlier_document).
    Seed 3, the seed of web_docs and textbook_docs."""
    lexicon, claims = load_lexicon(), fact_sentence_table(build_world(3))
    return {
        "boilerplate": lambda text: any(TAG_PATTERN.sub("", line) in BOILERPLATE_LINES for line in text.splitlines()),
        "markup": lambda text: TAG_PATTERN.search(text) is not None,
        "keyword_spam": lambda text: any(_is_spam_line(line) for line in _text_lines(text)),
        "typos": lambda text: bool(_unknown_words(text, lexicon)),
        "truncated": _ends_mid_sentence,
        "contradiction": lambda text: bool(_false_claims(text, claims)),
    }


def test_every_defect_label_has_a_text_check(evidence):
    assert set(evidence) | {"near_duplicate"} == set(WEB_DEFECT_RATES)


@pytest.mark.parametrize("name", [n for n in WEB_DEFECT_RATES if n != "near_duplicate"])
def test_each_defect_label_shows_in_the_text_of_exactly_its_documents(name, web_docs, textbook_docs, evidence):
    shows = evidence[name]
    assert any(name in d.defects for d in web_docs)
    wrong = [(d.doc_id, d.defects) for d in web_docs if (name in d.defects) != shows(d.text)]
    assert not wrong, f"{name}: label and text disagree on {len(wrong)} pages, e.g. {wrong[:3]}"
    assert not [d.doc_id for d in textbook_docs if shows(d.text)]


def test_defect_rates_are_near_their_configured_probabilities(web_docs):
    seen = collections.Counter(name for d in web_docs for name in d.defects)
    assert set(seen) == set(WEB_DEFECT_RATES)  # every defect occurs
    # Independent draws per document; a few defects cannot always apply (a page too short to
    # cut, a first page with nothing to repost), so they fall a little below their rate.
    n = len(web_docs)
    for name, rate in WEB_DEFECT_RATES.items():
        assert abs(seen[name] / n - rate) < 4 * math.sqrt(0.25 / n) + 0.05, name


def test_a_near_duplicate_repeats_most_of_an_earlier_document(web_docs, textbook_docs):
    def pairs(text):
        words = " ".join(_prose(text)).split()
        return set(zip(words, words[1:]))

    def best_overlaps(docs):
        """Per page: the largest share of word pairs it has in common with one of the pages
        a repost may copy, relative to the shorter of the two (either may be cut short)."""
        sets = [pairs(d.text) for d in docs]
        return [max((len(mine & sets[j]) / max(1, min(len(mine), len(sets[j])))
                     for j in range(max(0, i - NEAR_DUPLICATE_WINDOW), i)), default=0.0)
                for i, mine in enumerate(sets)]

    overlap = best_overlaps(web_docs)
    dups = [x for x, d in zip(overlap, web_docs) if "near_duplicate" in d.defects]
    others = [x for x, d in zip(overlap, web_docs) if "near_duplicate" not in d.defects]
    assert dups and min(dups) > 0.65  # a copy, edited by its own defects
    # Pages on one subject share templates (a town's facts, a lesson's questions): a short one
    # can come close, rarely, but not as close as an unedited repost.
    assert max(others) < 0.8 and sum(x > 0.65 for x in others) <= 0.01 * len(others)
    assert np.median(others) < 0.25
    clean = best_overlaps(textbook_docs)
    assert max(clean) < 0.8 and sum(x > 0.65 for x in clean) <= 0.01 * len(clean)


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
    # Web pages only (reposts, contradictions, typos...); the default size, every split and two
    # seeds: tests/corpora/test_pair_leak.py.
    pairs = minimal_pairs(seed=0, per_phenomenon=100)
    text = "\n".join(d.text for d in generate_documents(0.0, 150_000, seed=0, workers=2))
    assert not [p["sentence_good"] for p in pairs if p["sentence_good"] in text]
    assert not [p["sentence_bad"] for p in pairs if p["sentence_bad"] in text]


def test_bad_quality_is_refused():
    with pytest.raises(ConfigError) as e:
        generate_documents(1.5, 100, seed=0)
    assert e.value.field == "corpus.quality"
