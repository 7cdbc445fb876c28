"""No minimal-pair sentence, good or bad, occurs in any split of the default synthetic corpus.

Generator revision 2 wrote 1.4% of seed 0's good pair sentences verbatim in its default
training split (55 of 4,000), which inflated pair accuracy; revision 3 draws pairs from a
slice of the clause space that training text never writes (corpora.synthetic.grammar.held_out).
"""
import random
import re

import pytest

from corpora.config import CorpusConfig
from corpora.keys import SYNTHETIC_TOKENIZER_QUALITY, SYNTHETIC_TOKENIZER_WORDS
from corpora.synthetic import generate_documents, minimal_pairs
from corpora.synthetic.grammar import MIN_PAIR_WORDS, PAST, PRESENT, Grammar, held_out
from corpora.synthetic.lexicon import load_lexicon
from corpora.synthetic.world import build_world

# A pair sentence starts with a capital and ends at its one period; an occurrence in text then
# starts at a capital letter and runs to the first sentence end after it.
SENTENCE_SHAPE = re.compile(r"[A-Z][^.?!\n]*\.")
CANDIDATES = re.compile(r"(?=([A-Z][^.?!\n]*\.))")


def occurring(sentences: set[str], text: str) -> set[str]:
    """The members of `sentences` (each of SENTENCE_SHAPE) that occur in `text` as substrings:
    `s in text` for each, in one pass over the text instead of one per sentence."""
    assert all(SENTENCE_SHAPE.fullmatch(s) for s in sentences)
    return {m.group(1) for m in CANDIDATES.finditer(text)} & sentences


def test_occurring_agrees_with_substring_search():
    text = ("Title line\nThe dog ran. When it rained, Mira found these keys. A cat sat?\n"
            "Answer: Foxes are red. <b>The hen slept.</b> the cow ate.")
    candidates = {"The dog ran.", "Mira found these keys.", "A cat sat.", "Foxes are red.",
                  "The hen slept.", "The cow ate.", "When it rained, Mira found these keys.",
                  "Title line The dog ran.", "Mira found these."}
    assert occurring(candidates, text) == {s for s in candidates if s in text}
    assert len(occurring(candidates, text)) == 5


def _splits(seed: int) -> dict[str, str]:
    """Every split the default corpus generates (the tokenizer's stream included)."""
    cfg = CorpusConfig(seed=seed)
    sizes = {"train": (cfg.quality, cfg.train_words), "val": (cfg.quality, cfg.val_words),
             "val_clean": (1.0, cfg.val_words),
             "tokenizer": (SYNTHETIC_TOKENIZER_QUALITY, SYNTHETIC_TOKENIZER_WORDS)}
    return {split: "\n".join(d.text for d in generate_documents(quality, words, seed, split, workers=0))
            for split, (quality, words) in sizes.items()}


@pytest.mark.parametrize("seed", [0, 1])
def test_no_pair_sentence_occurs_in_any_split_at_the_default_size(seed):
    cfg = CorpusConfig(seed=seed)
    pairs = minimal_pairs(seed, cfg.pairs_per_phenomenon)
    good = {p["sentence_good"] for p in pairs}
    bad = {p["sentence_bad"] for p in pairs}
    for split, text in _splits(seed).items():
        assert not occurring(good, text), f"good pair sentences in {split}"
        assert not occurring(bad, text), f"bad pair sentences in {split}"
        # The search finds what is there: sentences of the split itself (a check on the check).
        own = random.Random(seed).sample(SENTENCE_SHAPE.findall(text), 200)
        assert occurring(set(own), text) == set(own)


def test_pairs_come_from_the_held_out_slice_and_training_clauses_never_do():
    for p in minimal_pairs(seed=2, per_phenomenon=50):
        words = p["sentence_good"][:-1].split(" ")
        as_drawn = [words, [words[0].lower()] + words[1:]]  # the clause's first word, before capitals
        assert any(held_out(w) for w in as_drawn), p["sentence_good"]
    grammar = Grammar(load_lexicon(), build_world(2))
    rng = random.Random(0)
    clauses = [grammar.clause(rng, PRESENT if i % 2 else PAST).words for i in range(4000)]
    assert not [c for c in clauses if held_out(c)]
    assert sum(len(c) >= MIN_PAIR_WORDS for c in clauses) > 1000  # long enough to be held out
