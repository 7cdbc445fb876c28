"""Phrases and clauses of the synthetic English, with agreement by construction.

Each clause builder returns a `Clause`: its words (lower case, no final period) and the
index of its controlled slots (the agreeing verb, the reflexive, the determiner). The
textbook genres join clauses into sentences; the minimal pairs take the same clauses and
corrupt one slot, so a good pair sentence is a sentence the generator itself could produce.
It never does: pairs are drawn from a held-out slice of the clause space (`held_out`), and
the training genres redraw any clause that falls in it.

Selection is semantic as well as syntactic: verbs pick subjects and objects of fitting
classes (people cook food, animals eat what their species eats), adjectives fit their
noun's class. That is the learnable structure beyond agreement.
"""
from __future__ import annotations

import random
import zlib
from dataclasses import dataclass, field

from corpora.synthetic.lexicon import Lexicon, Noun, Verb, article
from corpora.synthetic.sampling import WeightedChoice, ZipfChoice
from corpora.synthetic.world import Person, World

PRESENT, PAST = "present", "past"

# Noun classes each adjective class may describe.
ADJECTIVE_CLASSES = {
    "person": ("height", "age", "person", "person"),
    "animal": ("size", "age", "color", "animal", "animal"),
    "tool": ("size", "age", "color", "artifact", "artifact"),
    "object": ("size", "age", "color", "artifact", "artifact"),
    "vehicle": ("size", "age", "color", "artifact"),
    "food": ("size", "food", "food"),
    "plant": ("size", "height", "age", "color"),
    "building": ("size", "age", "place", "place"),
    "landscape": ("size", "width", "place"),
    "creation": ("age", "length"),
}
# Object classes of each transitive frame, with weights.
FRAME_OBJECTS = {
    "perceive": (("animal", 3), ("person", 2), ("object", 3), ("tool", 1), ("building", 1),
                 ("vehicle", 1), ("plant", 1)),
    "handle": (("object", 4), ("tool", 3), ("food", 2)),
    "craft": (("object", 4), ("tool", 2), ("vehicle", 1)),
    "cook": (("food", 1),),
    "eat": (("food", 1),),
    "tend": (("animal", 1),),
    "social": (("person", 1),),
    "travel": (("building", 2), ("landscape", 2)),
    "create": (("creation", 1),),
    "operate": (("vehicle", 1),),
}
PERSON_FRAMES = (("perceive", 5), ("handle", 8), ("craft", 5), ("cook", 3), ("eat", 2),
                 ("tend", 3), ("social", 4), ("travel", 3), ("create", 3), ("operate", 1))
ANIMAL_FRAMES = (("perceive", 3), ("eat", 2))
# Intransitive verbs an animal can do; fly and swim depend on the animal's class.
ANIMAL_INTRANSITIVES = ("sleep", "yawn", "sneeze", "shiver", "fall", "wait", "vanish",
                        "appear", "tremble", "walk", "run", "jump", "rest", "play", "wander",
                        "climb", "sit")
ANIMAL_REFLEXIVES = ("see", "wash", "hide")
MOVERS = {"bird": ("fly",), "insect": ("fly", "climb"), "fish": ("swim",),
          "invertebrate": ("crawl", "climb")}

SINGULAR_DETERMINERS = WeightedChoice([("the", 52), ("a", 24), ("this", 7), ("that", 5),
                                       ("every", 2), ("each", 2), ("one", 2), ("POSS", 6)])
PLURAL_DETERMINERS = WeightedChoice([("the", 48), ("these", 9), ("those", 7), ("some", 11),
                                     ("many", 5), ("several", 4), ("NUMBER", 9), ("POSS", 7)])
MASS_DETERMINERS = WeightedChoice([("the", 4), ("some", 2), ("", 4), ("POSS", 1)])
EXISTENTIAL_SINGULAR = WeightedChoice([("a", 8), ("one", 1), ("no", 1)])
EXISTENTIAL_PLURAL = WeightedChoice([("some", 4), ("many", 3), ("several", 2), ("NUMBER", 4),
                                     ("no", 1)])
NUMBERS = ("two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
POSSESSIVES = ("my", "his", "her", "its", "our", "their")
ATTRACTOR_PREPOSITIONS = ("near", "behind", "beside", "under", "inside", "above")
ATTRACTOR_KINDS = (("object", 4), ("building", 2), ("plant", 1), ("vehicle", 1), ("tool", 1))
# Prepositions that fit each kind of place ("across the river", never "across the barn").
LOCATIVE_PREPOSITIONS = {
    "building": (("in", 4), ("near", 3), ("behind", 1), ("beside", 1)),
    "landscape": (("in", 2), ("near", 3), ("across", 1), ("along", 1), ("beside", 1)),
}
LOCATIVE_KINDS = (("building", 3), ("landscape", 3))
TIME_ADVERBIALS = ("in the morning", "in the evening", "at night", "every day",
                   "every morning", "in winter", "in summer", "in spring", "in autumn",
                   "after the rain", "every week", "once a year", "during the day")
# Short clauses ("A dog washed itself.") recur in any large split and make poor held-out pairs;
# pairs are at least this long, and only clauses this long are held out of training text.
MIN_PAIR_WORDS = 6
# One clause in HELD_OUT_BUCKETS (of those long enough) is reserved for minimal pairs. More
# buckets: fewer training clauses redrawn, but pairs take that many draws each to find.
HELD_OUT_BUCKETS = 8
DEMONSTRATIVE_FLIP = {"this": "these", "that": "those", "these": "this", "those": "that"}
PLURAL_DEMONSTRATIVES = ("these", "those")
SINGULAR_DEMONSTRATIVES = ("this", "that")


def be(tense: str, plural: bool) -> str:
    if tense == PRESENT:
        return "are" if plural else "is"
    return "were" if plural else "was"


def have(plural: bool) -> str:
    return "have" if plural else "has"


def conjugate(verb: Verb, tense: str, plural: bool) -> str:
    if tense == PRESENT:
        return verb.base if plural else verb.third_singular
    return verb.past


@dataclass(slots=True)
class NounPhrase:
    words: list[str]
    plural: bool
    reflexive: str  # the reflexive pronoun that agrees with this phrase
    kind: str  # semantic class of the head: person, animal, object, ...
    head: Noun | None = None  # None for names and pronouns
    person: Person | None = None  # the world's person it names, if any
    species: str | None = None  # animal class of the head, for verbs like "fly"


@dataclass(slots=True)
class Clause:
    words: list[str]
    slots: dict[str, int] = field(default_factory=dict)  # controlled slot -> word index
    subject: NounPhrase | None = None
    verb: Verb | None = None


def held_out(words: list[str]) -> bool:
    """Whether a clause belongs to the minimal pairs' slice of the clause space: a hash of its
    text, the same in every process, seed and split, so no training split can write a pair's
    good sentence (its bad one is ungrammatical: the grammar never writes it anyway)."""
    return (len(words) >= MIN_PAIR_WORDS
            and zlib.crc32(" ".join(words).encode()) % HELD_OUT_BUCKETS == 0)


def sentence(words: list[str], end: str = ".") -> str:
    """Join words into a sentence: capital first letter, final punctuation."""
    text = " ".join(words)
    return text[0].upper() + text[1:] + end


class Grammar:
    """Builds phrases and clauses for one world; all randomness comes from the caller's rng."""

    def __init__(self, lexicon: Lexicon, world: World):
        self.lexicon = lexicon
        self.world = world
        self.count_nouns = {kind: ZipfChoice([n for n in nouns if n.countable])
                            for kind, nouns in lexicon.nouns.items()
                            if any(n.countable for n in nouns)}
        self.mass_nouns = {kind: ZipfChoice([n for n in nouns if not n.countable])
                           for kind, nouns in lexicon.nouns.items()
                           if any(not n.countable for n in nouns)}
        self.people_nouns = {gender: ZipfChoice(nouns) for gender, nouns in lexicon.people.items()}
        self.adjectives = {cls: ZipfChoice(adjs, exponent=0.9)
                           for cls, adjs in lexicon.adjectives.items()}
        self.verbs = {frame: ZipfChoice(verbs, exponent=0.9)
                      for frame, verbs in lexicon.verbs.items()}
        self.reflexive_verbs = ZipfChoice(lexicon.reflexive_verbs)
        self.animal_reflexive_verbs = ZipfChoice(
            [lexicon.verb_by_base[v] for v in ANIMAL_REFLEXIVES])
        self.person_frames = WeightedChoice(PERSON_FRAMES)
        self.animal_frames = WeightedChoice(ANIMAL_FRAMES)
        self.frame_objects = {frame: WeightedChoice(kinds) for frame, kinds in
                              FRAME_OBJECTS.items()}
        self.attractor_kinds = WeightedChoice(ATTRACTOR_KINDS)
        self.town_names = frozenset(town.name for town in world.towns)
        self.locative_kinds = WeightedChoice(LOCATIVE_KINDS)
        self.locative_prepositions = {kind: WeightedChoice(prepositions) for kind, prepositions
                                      in LOCATIVE_PREPOSITIONS.items()}
        self.manner_adverbs = ZipfChoice(lexicon.manner_adverbs)
        self.frequency_adverbs = ZipfChoice(lexicon.frequency_adverbs)
        self.animal_intransitives = tuple(lexicon.verb_by_base[v] for v in ANIMAL_INTRANSITIVES)
        self.person_intransitives = ZipfChoice(
            lexicon.verbs["intransitive"] + lexicon.verbs["intransitive_strict"], exponent=0.8)
        self.movers = {cls: tuple(lexicon.verb_by_base[v] for v in verbs)
                       for cls, verbs in MOVERS.items()}
        self.irregular_transitives = tuple(
            v for v in lexicon.verb_by_base.values()
            if v.transitive and v.past != v.participle and "intransitive" not in v.frames)

    # --- noun phrases ------------------------------------------------------------------

    def adjective(self, rng: random.Random, kind: str, noun: Noun | None = None) -> str:
        classes = ADJECTIVE_CLASSES[kind]
        adjective_class = classes[int(rng.random() * len(classes))]
        if adjective_class == "color" and kind == "animal" and noun is not None:
            # The world fixes each species' color; text must not contradict it.
            return self.world.species_by_noun[noun.singular].color
        return self.adjectives[adjective_class](rng)

    def determiner(self, rng: random.Random, plural: bool) -> str:
        choice = (PLURAL_DETERMINERS if plural else SINGULAR_DETERMINERS)(rng)
        if choice == "POSS":
            return POSSESSIVES[int(rng.random() * len(POSSESSIVES))]
        if choice == "NUMBER":
            return NUMBERS[int(rng.random() * len(NUMBERS))]
        return choice

    def noun_phrase(self, rng: random.Random, noun: Noun, plural: bool,
                    determiner: str | None = None, adjective_rate: float = 0.25) -> NounPhrase:
        """Determiner, optional adjective, noun; number agreement inside the phrase."""
        if not noun.countable:
            plural = False
            determiner = MASS_DETERMINERS(rng) if determiner is None else determiner
            if determiner == "POSS":
                determiner = POSSESSIVES[int(rng.random() * len(POSSESSIVES))]
        elif determiner is None:
            determiner = self.determiner(rng, plural)
        head = noun.plural if plural else noun.singular
        words = [head]
        if noun.kind in ADJECTIVE_CLASSES and rng.random() < adjective_rate:
            words.insert(0, self.adjective(rng, noun.kind, noun))
        if determiner == "a":
            determiner = article(words[0])
        if determiner:
            words.insert(0, determiner)
        return NounPhrase(words, plural, self.reflexive_for(rng, noun, plural), noun.kind, noun,
                          species=noun.subclass if noun.kind == "animal" else None)

    def reflexive_for(self, rng: random.Random, noun: Noun, plural: bool) -> str:
        if plural:
            return "themselves"
        if noun.kind != "person":
            return "itself"
        gender = noun.subclass
        if gender == "p":
            gender = "f" if rng.random() < 0.5 else "m"
        return "herself" if gender == "f" else "himself"

    def random_noun(self, rng: random.Random, kind: str, mass_rate: float = 0.0) -> Noun:
        if kind in self.mass_nouns and (kind not in self.count_nouns or rng.random() < mass_rate):
            return self.mass_nouns[kind](rng)
        return self.count_nouns[kind](rng)

    def common_phrase(self, rng: random.Random, kind: str, plural: bool | None = None,
                      determiner: str | None = None, adjective_rate: float = 0.25,
                      mass_rate: float = 0.0) -> NounPhrase:
        noun = self.random_noun(rng, kind, mass_rate)
        if plural is None:
            plural = rng.random() < 0.4
        return self.noun_phrase(rng, noun, plural, determiner, adjective_rate)

    def person_phrase(self, rng: random.Random, person: Person) -> NounPhrase:
        return NounPhrase([person.name], False, person.reflexive, "person", None, person)

    def pronoun_phrase(self, person: Person) -> NounPhrase:
        return NounPhrase([person.pronoun], False, person.reflexive, "person", None, person)

    def animate_subject(self, rng: random.Random, name_rate: float = 0.25,
                        animal_rate: float = 0.4) -> NounPhrase:
        """A person (named or common noun) or an animal, the subjects of most verbs."""
        roll = rng.random()
        if roll < name_rate:
            return self.person_phrase(rng, self.world.person_choice(rng))
        if roll < name_rate + animal_rate:
            return self.common_phrase(rng, "animal")
        return self.common_phrase(rng, "person")

    def with_attractor(self, rng: random.Random, phrase: NounPhrase,
                       attractor_plural: bool | None = None) -> NounPhrase:
        """Subject with a prepositional modifier whose noun may differ in number:
        "the keys near the cabinet". The verb must still agree with the head."""
        if attractor_plural is None:
            attractor_plural = rng.random() < 0.5
        preposition = ATTRACTOR_PREPOSITIONS[int(rng.random() * len(ATTRACTOR_PREPOSITIONS))]
        attractor = self.common_phrase(rng, self.attractor_kinds(rng), attractor_plural, "the",
                                       adjective_rate=0.1)
        phrase.words = phrase.words + [preposition] + attractor.words
        return phrase

    def with_relative(self, rng: random.Random, phrase: NounPhrase, tense: str,
                      object_plural: bool | None = None) -> NounPhrase:
        """Subject with a subject relative clause: "the farmer who feeds the goats"."""
        frame = self._frame_for(rng, phrase)
        verb = self.verbs[frame](rng)
        obj = self.object_for(rng, frame, phrase, object_plural, determiner="the")
        pronoun = "who" if phrase.kind == "person" else "that"
        phrase.words = phrase.words + [pronoun, conjugate(verb, tense, phrase.plural)] + obj.words
        return phrase

    def modified_subject(self, rng: random.Random, tense: str, rate: float = 0.2,
                         **subject_options) -> NounPhrase:
        subject = self.animate_subject(rng, **subject_options)
        if subject.head is not None and rng.random() < rate:
            if rng.random() < 0.6:
                return self.with_attractor(rng, subject)
            return self.with_relative(rng, subject, tense)
        return subject

    def object_for(self, rng: random.Random, frame: str, subject: NounPhrase,
                   plural: bool | None = None, determiner: str | None = None) -> NounPhrase:
        if frame == "eat" and subject.kind == "animal":
            return self._diet_phrase(rng, subject)
        kind = self.frame_objects[frame](rng)
        return self.common_phrase(rng, kind, plural, determiner, mass_rate=0.3)

    def _diet_phrase(self, rng: random.Random, subject: NounPhrase) -> NounPhrase:
        """Animals eat what their species eats in this world (bare plural or mass noun)."""
        assert subject.head is not None
        species = self.world.species_by_noun[subject.head.singular]
        food = species.diet[int(rng.random() * 2)]
        noun = self.lexicon.noun_by_form[food]
        return NounPhrase([food], noun.countable, "themselves", noun.kind, noun)

    def locative(self, rng: random.Random) -> list[str]:
        if rng.random() < 0.15:
            return ["in", self.world.town_choice(rng).name]
        kind = self.locative_kinds(rng)
        preposition = self.locative_prepositions[kind](rng)
        place = self.common_phrase(rng, kind, False, "the", 0.15)
        return [preposition] + place.words

    def adverbial(self, rng: random.Random, rate: float = 0.3) -> list[str]:
        roll = rng.random()
        if roll >= rate:
            return []
        if roll < rate * 0.5:
            return self.locative(rng)
        if roll < rate * 0.8:
            return TIME_ADVERBIALS[int(rng.random() * len(TIME_ADVERBIALS))].split()
        return [self.manner_adverbs(rng)]

    # --- clauses -----------------------------------------------------------------------

    def _frame_for(self, rng: random.Random, subject: NounPhrase) -> str:
        if subject.kind == "animal":
            return self.animal_frames(rng)
        return self.person_frames(rng)

    def transitive(self, rng: random.Random, tense: str, subject: NounPhrase,
                   verb: Verb | None = None, frame: str | None = None) -> Clause:
        """Subject, verb agreeing with the subject's head, object, optional adverbial."""
        if frame is None:
            frame = self._frame_for(rng, subject)
        if verb is None:
            verb = self.verbs[frame](rng)
        obj = self.object_for(rng, frame, subject)
        words = subject.words + [conjugate(verb, tense, subject.plural)] + obj.words
        slots = {"verb": len(subject.words), "object": len(subject.words) + 1}
        return Clause(words + self.adverbial(rng), slots, subject, verb)

    def intransitive(self, rng: random.Random, tense: str, subject: NounPhrase) -> Clause:
        if subject.kind == "animal":
            movers = self.movers.get(subject.species or "", ())
            pool = self.animal_intransitives + movers + movers
            verb = pool[int(rng.random() * len(pool))]
        else:
            verb = self.person_intransitives(rng)
        words = subject.words + [conjugate(verb, tense, subject.plural)]
        adverbial = self.adverbial(rng, 0.6)
        if verb.base == "live" and subject.person is not None and adverbial[:1] == ["in"] \
                and adverbial[1:] and adverbial[1] in self.town_names:
            # "<Name> lives in <Town>." is a fact of the world: it must name her own town, or a
            # textbook page states a falsehood with no contradiction label. Same draws either
            # way, so no other sentence of the corpus moves.
            adverbial = ["in", subject.person.town]
        return Clause(words + adverbial, {"verb": len(subject.words)}, subject, verb)

    def copula(self, rng: random.Random, tense: str, subject: NounPhrase) -> Clause:
        words = subject.words + [be(tense, subject.plural)]
        if rng.random() < 0.15:
            words.append("very")
        kind = subject.kind if subject.kind in ADJECTIVE_CLASSES else "object"
        words.append(self.adjective(rng, kind, subject.head))
        return Clause(words, {"verb": len(subject.words)}, subject)

    def existential(self, rng: random.Random, tense: str, plural: bool | None = None) -> Clause:
        """"There is a cat in the garden." / "There are three cats near the barn."."""
        if plural is None:
            plural = rng.random() < 0.5
        kind = ("animal", "object", "person", "tool", "vehicle")[int(rng.random() * 5)]
        determiner = (EXISTENTIAL_PLURAL if plural else EXISTENTIAL_SINGULAR)(rng)
        if determiner == "NUMBER":
            determiner = NUMBERS[int(rng.random() * len(NUMBERS))]
        phrase = self.common_phrase(rng, kind, plural, determiner)
        words = ["there", be(tense, plural)] + phrase.words + self.locative(rng)
        return Clause(words, {"verb": 1}, phrase)

    def reflexive(self, rng: random.Random, tense: str, subject: NounPhrase) -> Clause:
        """"The girls admired themselves." The reflexive agrees with the subject."""
        if subject.kind == "animal":
            verb = self.animal_reflexive_verbs(rng)
        else:
            verb = self.reflexive_verbs(rng)
        words = subject.words + [conjugate(verb, tense, subject.plural), subject.reflexive]
        slots = {"verb": len(subject.words), "reflexive": len(subject.words) + 1}
        return Clause(words + self.adverbial(rng, 0.3), slots, subject, verb)

    def progressive(self, rng: random.Random, tense: str, subject: NounPhrase) -> Clause:
        frame = self._frame_for(rng, subject)
        verb = self.verbs[frame](rng)
        obj = self.object_for(rng, frame, subject)
        words = subject.words + [be(tense, subject.plural), verb.present_participle] + obj.words
        return Clause(words + self.adverbial(rng, 0.3), {"verb": len(subject.words)},
                      subject, verb)

    def perfect(self, rng: random.Random, tense: str, subject: NounPhrase) -> Clause:
        frame = self._frame_for(rng, subject)
        verb = self.verbs[frame](rng)
        obj = self.object_for(rng, frame, subject)
        auxiliary = have(subject.plural) if tense == PRESENT else "had"
        words = subject.words + [auxiliary, verb.participle] + obj.words
        return Clause(words, {"verb": len(subject.words)}, subject, verb)

    def negative_polarity(self, rng: random.Random, plural: bool | None = None) -> Clause:
        """"No farmer has ever seen a wolf.": "ever" needs the negative subject."""
        if plural is None:
            plural = rng.random() < 0.3
        kind = "person" if rng.random() < 0.6 else "animal"
        subject = self.common_phrase(rng, kind, plural, "no", adjective_rate=0.1)
        frame = self._frame_for(rng, subject)
        verb = self.verbs[frame](rng)
        obj = self.object_for(rng, frame, subject, determiner=None)
        words = subject.words + [have(plural), "ever", verb.participle] + obj.words
        return Clause(words, {"determiner": 0, "verb": len(subject.words)}, subject, verb)

    def modal(self, rng: random.Random, subject: NounPhrase) -> Clause:
        frame = self._frame_for(rng, subject)
        verb = self.verbs[frame](rng)
        obj = self.object_for(rng, frame, subject)
        modal = ("can", "will", "must", "could")[int(rng.random() * 4)]
        words = subject.words + [modal, verb.base] + obj.words
        return Clause(words + self.adverbial(rng, 0.3), {}, subject, verb)

    def negated(self, rng: random.Random, tense: str, subject: NounPhrase) -> Clause:
        frame = self._frame_for(rng, subject)
        verb = self.verbs[frame](rng)
        obj = self.object_for(rng, frame, subject)
        auxiliary = "did" if tense == PAST else ("do" if subject.plural else "does")
        words = subject.words + [auxiliary, "not", verb.base] + obj.words
        return Clause(words, {"verb": len(subject.words)}, subject, verb)

    def frequency(self, rng: random.Random, subject: NounPhrase) -> Clause:
        """Habitual present: "The dogs often chase the hens."."""
        clause = self.transitive(rng, PRESENT, subject)
        clause.words.insert(len(subject.words), self.frequency_adverbs(rng))
        return clause

    # --- the generic sentence mix ------------------------------------------------------

    def clause(self, rng: random.Random, tense: str, subject: NounPhrase | None = None) -> Clause:
        """A random clause of training text (never a held-out one); with `subject` given, one
        about that subject."""
        while True:
            drawn = self._any_clause(rng, tense, subject)
            if not held_out(drawn.words):
                return drawn

    def _any_clause(self, rng: random.Random, tense: str, subject: NounPhrase | None) -> Clause:
        roll = rng.random()
        if subject is None:
            if roll < 0.09:
                return self.existential(rng, tense)
            if roll < 0.12:
                return self.negative_polarity(rng)
            subject = self.modified_subject(rng, tense)
            roll = rng.random()
        if roll < 0.40:
            return self.transitive(rng, tense, subject)
        if roll < 0.55:
            return self.intransitive(rng, tense, subject)
        if roll < 0.70:
            return self.copula(rng, tense, subject)
        if roll < 0.77:
            return self.reflexive(rng, tense, subject)
        if roll < 0.83:
            return self.progressive(rng, tense, subject)
        if roll < 0.88:
            return self.perfect(rng, tense, subject)
        if roll < 0.93:
            return self.modal(rng, subject)
        if roll < 0.97:
            return self.negated(rng, tense, subject)
        if tense == PRESENT:
            return self.frequency(rng, subject)
        return self.transitive(rng, tense, subject)

    def generic_words(self, rng: random.Random, tense: str,
                      subject: NounPhrase | None = None) -> list[str]:
        """One sentence's words, sometimes two clauses joined by a conjunction."""
        first = self.clause(rng, tense, subject)
        roll = rng.random()
        if roll < 0.08:
            second = self.clause(rng, tense)
            conjunction = ("and", "but", "because", "so")[int(rng.random() * 4)]
            return first.words + [conjunction] + second.words
        if roll < 0.12:
            second = self.clause(rng, tense)
            opener = ("when", "after", "before", "while")[int(rng.random() * 4)]
            head = [opener] + second.words
            head[-1] += ","
            return head + first.words
        return first.words

    def generic_sentence(self, rng: random.Random, tense: str,
                         subject: NounPhrase | None = None) -> str:
        return sentence(self.generic_words(rng, tense, subject))
