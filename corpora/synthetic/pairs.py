"""BLiMP-style minimal pairs generated from the corpus grammar.

Each pair is a clause the textbook generator itself builds (same `Grammar` methods, same
lexicon, same surface style) and a copy with exactly one word replaced in its controlled
slot, which makes it ungrammatical by construction: a flipped determiner, verb number,
reflexive, tense form, verb valency or licensor. Pairs come from their own random stream
and only from the held-out slice of the clause space (`grammar.held_out`), which no split
ever writes: a good pair sentence never occurs in training text, and a bad one is
ungrammatical. Pairs share the world of the seed.
"""
from __future__ import annotations

import random
from typing import Callable

from corpora.synthetic.grammar import (
    DEMONSTRATIVE_FLIP,
    FRAME_OBJECTS,
    HELD_OUT_BUCKETS,
    PAST,
    PLURAL_DEMONSTRATIVES,
    PRESENT,
    SINGULAR_DEMONSTRATIVES,
    Clause,
    Grammar,
    NounPhrase,
    conjugate,
    held_out,
    sentence,
)
from corpora.synthetic.lexicon import Lexicon, Noun, load_lexicon
from corpora.synthetic.sampling import mix_seed, stable_code
from corpora.synthetic.world import build_world

NUMBER_FLIP = {"is": "are", "are": "is", "was": "were", "were": "was", "has": "have",
               "have": "has"}
# Wrong reflexives: a number mismatch for plurals and itself, gender for himself/herself.
REFLEXIVE_FLIP = {"himself": ("herself", "themselves"), "herself": ("himself", "themselves"),
                  "itself": ("themselves",), "themselves": ("himself", "herself", "itself")}

# (good clause, slot index, wrong word) or None when this draw cannot make a clean pair.
PairDraft = tuple[Clause, int, str] | None


class PairMaker:
    """One builder per phenomenon; each returns a clause and the word that breaks it."""

    def __init__(self, grammar: Grammar):
        self.grammar = grammar
        self.lexicon: Lexicon = grammar.lexicon
        self.strict_intransitives = grammar.lexicon.verbs["intransitive_strict"]
        self.irregular = [v for v in grammar.irregular_transitives
                          if any(f in FRAME_OBJECTS for f in v.frames)]
        self.builders: dict[str, Callable[[random.Random], PairDraft]] = {
            "determiner_noun_agreement": self.determiner_noun,
            "subject_verb_agreement": self.subject_verb,
            "agreement_across_attractor": self.attractor,
            "anaphor_agreement": self.anaphor,
            "irregular_past_tense": self.irregular_past,
            "transitivity": self.transitivity,
            "existential_there": self.existential,
            "npi_licensing": self.npi,
        }

    # --- helpers -----------------------------------------------------------------------

    def _tense(self, rng: random.Random) -> str:
        return PRESENT if rng.random() < 0.5 else PAST

    def _number_noun(self, rng: random.Random, kind: str) -> Noun:
        """A countable noun whose singular and plural differ, so number is visible."""
        while True:
            noun = self.grammar.count_nouns[kind](rng)
            if not noun.invariant:
                return noun

    def _common_subject(self, rng: random.Random) -> NounPhrase:
        kind = "person" if rng.random() < 0.5 else "animal"
        return self.grammar.noun_phrase(rng, self._number_noun(rng, kind), rng.random() < 0.5)

    def _flip_verb(self, word: str) -> str:
        if word in NUMBER_FLIP:
            return NUMBER_FLIP[word]
        verb = self.lexicon.verb_by_form[word]
        return verb.base if word == verb.third_singular else verb.third_singular

    def _agreeing_clause(self, rng: random.Random, subject: NounPhrase) -> Clause:
        """A present-tense (or copular past) clause whose verb agrees with `subject`."""
        roll = rng.random()
        grammar = self.grammar
        if roll < 0.3:
            return grammar.copula(rng, self._tense(rng), subject)
        if roll < 0.6:
            return grammar.transitive(rng, PRESENT, subject)
        if roll < 0.75:
            return grammar.intransitive(rng, PRESENT, subject)
        if roll < 0.9:
            return grammar.progressive(rng, self._tense(rng), subject)
        return grammar.perfect(rng, PRESENT, subject)

    # --- phenomena ---------------------------------------------------------------------

    def determiner_noun(self, rng: random.Random) -> PairDraft:
        """"Mira found these baskets." / "Mira found this baskets."."""
        grammar = self.grammar
        subject = grammar.animate_subject(rng, name_rate=0.4, animal_rate=0.0)
        frame = grammar.person_frames(rng)
        kind = grammar.frame_objects[frame](rng)
        if kind not in grammar.count_nouns:
            return None
        plural = rng.random() < 0.5
        demonstratives = PLURAL_DEMONSTRATIVES if plural else SINGULAR_DEMONSTRATIVES
        determiner = demonstratives[int(rng.random() * 2)]
        obj = grammar.noun_phrase(rng, self._number_noun(rng, kind), plural, determiner)
        verb = grammar.verbs[frame](rng)
        tense = self._tense(rng)
        words = subject.words + [conjugate(verb, tense, subject.plural)] + obj.words
        slot = len(subject.words) + 1
        return Clause(words, {"determiner": slot}), slot, DEMONSTRATIVE_FLIP[determiner]

    def subject_verb(self, rng: random.Random) -> PairDraft:
        """"The dogs are hungry." / "The dogs is hungry."."""
        clause = self._agreeing_clause(rng, self._common_subject(rng))
        slot = clause.slots["verb"]
        return clause, slot, self._flip_verb(clause.words[slot])

    def attractor(self, rng: random.Random) -> PairDraft:
        """"The keys near the cabinet are old." / "... cabinet is old."."""
        subject = self._common_subject(rng)
        tense = PRESENT
        if subject.kind == "person" and rng.random() < 0.4:
            subject = self.grammar.with_relative(rng, subject, tense,
                                                 object_plural=not subject.plural)
        else:
            subject = self.grammar.with_attractor(rng, subject,
                                                  attractor_plural=not subject.plural)
        # The attractor's number must show and differ from the head's.
        attractor_tag = self.lexicon.tag(subject.words[-1])
        wanted = "N_SG_" if subject.plural else "N_PL_"
        if not attractor_tag.startswith(wanted):
            return None
        roll = rng.random()
        if roll < 0.5:
            clause = self.grammar.copula(rng, tense, subject)
        elif roll < 0.8:
            clause = self.grammar.transitive(rng, tense, subject)
        else:
            clause = self.grammar.intransitive(rng, tense, subject)
        slot = clause.slots["verb"]
        return clause, slot, self._flip_verb(clause.words[slot])

    def anaphor(self, rng: random.Random) -> PairDraft:
        """"The girls admired themselves." / "The girls admired herself."."""
        grammar = self.grammar
        roll = rng.random()
        if roll < 0.3:
            subject = grammar.person_phrase(rng, grammar.world.person_choice(rng))
        elif roll < 0.55:
            gender = "f" if rng.random() < 0.5 else "m"
            noun = grammar.people_nouns[gender](rng)
            if noun.invariant:
                return None
            subject = grammar.noun_phrase(rng, noun, False)
        elif roll < 0.8:
            subject = self._common_subject(rng)
            if not subject.plural:
                return None  # a singular "doctor" takes himself or herself: no clean pair
        else:
            subject = grammar.noun_phrase(rng, self._number_noun(rng, "animal"), False)
        clause = grammar.reflexive(rng, self._tense(rng), subject)
        slot = clause.slots["reflexive"]
        wrong = REFLEXIVE_FLIP[clause.words[slot]]
        return clause, slot, wrong[int(rng.random() * len(wrong))]

    def irregular_past(self, rng: random.Random) -> PairDraft:
        """"Mira wrote a letter." / "Mira written a letter."."""
        verb = self.irregular[int(rng.random() * len(self.irregular))]
        frames = [f for f in verb.frames if f in FRAME_OBJECTS]
        frame = frames[int(rng.random() * len(frames))]
        subject = self.grammar.animate_subject(rng, name_rate=0.4, animal_rate=0.0)
        clause = self.grammar.transitive(rng, PAST, subject, verb=verb, frame=frame)
        slot = clause.slots["verb"]
        return clause, slot, verb.participle

    def transitivity(self, rng: random.Random) -> PairDraft:
        """"Mira found the key." / "Mira arrived the key."."""
        subject = self.grammar.animate_subject(rng, name_rate=0.4, animal_rate=0.2)
        tense = self._tense(rng)
        clause = self.grammar.transitive(rng, tense, subject)
        slot = clause.slots["verb"]
        intransitive = self.strict_intransitives[int(rng.random()
                                                     * len(self.strict_intransitives))]
        return clause, slot, conjugate(intransitive, tense, subject.plural)

    def existential(self, rng: random.Random) -> PairDraft:
        """"There are three cats in the garden." / "There is three cats in the garden."."""
        clause = self.grammar.existential(rng, self._tense(rng))
        assert clause.subject is not None and clause.subject.head is not None
        if clause.subject.head.invariant:
            return None
        slot = clause.slots["verb"]
        return clause, slot, NUMBER_FLIP[clause.words[slot]]

    def npi(self, rng: random.Random) -> PairDraft:
        """"No farmer has ever seen a wolf." / "The farmer has ever seen a wolf."."""
        clause = self.grammar.negative_polarity(rng)
        return clause, clause.slots["determiner"], "the"


def minimal_pairs(seed: int, per_phenomenon: int = 500) -> list[dict]:
    """`per_phenomenon` distinct pairs for each phenomenon, as BLiMP-style dicts:
    sentence_good, sentence_bad, phenomenon, UID (= phenomenon), pair_id."""
    maker = PairMaker(Grammar(load_lexicon(), build_world(seed)))
    pairs: list[dict] = []
    for phenomenon, build in maker.builders.items():
        rng = random.Random(mix_seed(seed, stable_code("pairs"), stable_code(phenomenon)))
        seen: set[str] = set()
        attempts = 0
        while len(seen) < per_phenomenon:
            attempts += 1
            if attempts > (50 * per_phenomenon + 1000) * HELD_OUT_BUCKETS:
                raise RuntimeError(f"could not make {per_phenomenon} distinct pairs of "
                                   f"{phenomenon}")
            drafted = build(rng)
            if drafted is None:
                continue
            clause, slot, wrong = drafted
            good = sentence(clause.words)
            if not held_out(clause.words) or good in seen or clause.words[slot] == wrong:
                continue
            bad_words = list(clause.words)
            bad_words[slot] = wrong
            seen.add(good)
            pairs.append({"sentence_good": good, "sentence_bad": sentence(bad_words),
                          "phenomenon": phenomenon, "UID": phenomenon,
                          "pair_id": f"{phenomenon}-{len(seen) - 1}"})
    return pairs
