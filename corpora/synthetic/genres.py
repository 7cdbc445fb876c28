"""Textbook-grade documents: encyclopedia entries, stories, scenes and review questions.

A document is first built as a `Draft` (title, paragraphs of sentences, and where each
world fact was stated) so the web-grade defects can edit it structurally before it is
rendered to text. Facts are always stated truthfully here; `web.py` is what lies.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

from corpora.synthetic.grammar import (
    PAST,
    PRESENT,
    Grammar,
    NounPhrase,
    conjugate,
    held_out,
    sentence,
)
from corpora.synthetic.lexicon import Noun, article
from corpora.synthetic.sampling import WeightedChoice
from corpora.synthetic.world import Fact, Person, Species, Tool, Town, render_fact

# Share of each genre among documents; stories and scenes carry most of the grammar,
# entries and questions most of the world knowledge.
GENRE_WEIGHTS = (("story", 30), ("scene", 20), ("animal", 15), ("lesson", 13), ("tool", 11),
                 ("town", 11))
MATERIAL_PROPERTIES = {"wood": "light", "iron": "heavy", "steel": "hard", "stone": "heavy",
                       "copper": "shiny", "bronze": "heavy", "brass": "shiny", "bone": "light",
                       "tin": "light", "clay": "fragile", "glass": "fragile", "leather": "soft"}
# What a species is called in its definition ("A fox is a small mammal.").
DEFINITION_HYPERNYMS = {"invertebrate": "animal"}
CONNECTIVES = ("then", "later", "after that", "soon", "next")
STORY_STARTS = ("one morning", "one day", "one evening", "once upon a time", "last winter",
                "last summer")
PROCEDURE_STEPS = ("first", "next", "then", "finally")


@dataclass(slots=True)
class Sentence:
    text: str
    fact: Fact | None = None  # the world fact this sentence states, if any
    keep: bool = False  # carries a defect's evidence: truncation must not cut it


@dataclass
class Draft:
    title: str
    paragraphs: list[list[Sentence]] = field(default_factory=list)

    def add(self, text: str) -> None:
        self.paragraphs[-1].append(Sentence(text))

    def add_fact(self, fact: Fact, prefix: str = "") -> None:
        self.paragraphs[-1].append(Sentence(prefix + render_fact(fact), fact))

    def new_paragraph(self) -> None:
        self.paragraphs.append([])

    def sentences(self) -> list[Sentence]:
        return [s for paragraph in self.paragraphs for s in paragraph]

    def render(self) -> str:
        lines = [self.title] + [" ".join(s.text for s in p) for p in self.paragraphs if p]
        return "\n".join(lines)


def _capitalize(text: str) -> str:
    return text[0].upper() + text[1:]


class TextbookWriter:
    """Writes one textbook-grade document per call from a random stream."""

    def __init__(self, grammar: Grammar):
        self.grammar = grammar
        self.world = grammar.world
        self.lexicon = grammar.lexicon
        self.genres = WeightedChoice(GENRE_WEIGHTS)
        self.pet_owners: dict[str, list[Person]] = {}
        for person in self.world.people:
            if person.pet:
                self.pet_owners.setdefault(person.pet.species.singular, []).append(person)
        self._writers = {"story": self.story, "scene": self.scene, "animal": self.animal_entry,
                         "lesson": self.lesson, "tool": self.tool_entry, "town": self.town_entry}

    def document(self, rng: random.Random) -> Draft:
        return self._writers[self.genres(rng)](rng)

    # --- helpers -----------------------------------------------------------------------

    def _generic(self, rng: random.Random, draft: Draft, count: int, tense: str,
                 subject_factory=None) -> None:
        for _ in range(count):
            subject = subject_factory(rng) if subject_factory else None
            draft.add(self.grammar.generic_sentence(rng, tense, subject))

    def _species_subject(self, species: Species):
        def make(rng: random.Random) -> NounPhrase:
            phrase = self.grammar.noun_phrase(rng, species.noun, rng.random() < 0.5)
            if rng.random() < 0.15:
                phrase = self.grammar.with_attractor(rng, phrase)
            return phrase
        return make

    def _person_subject(self, person: Person, pronoun_rate: float = 0.6):
        def make(rng: random.Random) -> NounPhrase:
            if rng.random() < pronoun_rate:
                return self.grammar.pronoun_phrase(person)
            return self.grammar.person_phrase(rng, person)
        return make

    def _about_thing(self, rng: random.Random, noun: Noun, tense: str) -> str:
        """A sentence with `noun` as subject (a property) or object (someone handles it).
        Built outside `Grammar.clause`, so it redraws held-out clauses itself."""
        while True:
            words = self._thing_words(rng, noun, tense)
            if not held_out(words):
                return sentence(words)

    def _thing_words(self, rng: random.Random, noun: Noun, tense: str) -> list[str]:
        grammar = self.grammar
        phrase = grammar.noun_phrase(rng, noun, rng.random() < 0.4)
        if rng.random() < 0.4:
            return grammar.copula(rng, tense, phrase).words
        subject = grammar.animate_subject(rng, name_rate=0.4, animal_rate=0.0)
        frame = ("handle", "craft", "perceive")[int(rng.random() * 3)]
        verb = grammar.verbs[frame](rng)
        words = subject.words + [conjugate(verb, tense, subject.plural)] + phrase.words
        return words + grammar.adverbial(rng, 0.4)

    # --- genres ------------------------------------------------------------------------

    def animal_entry(self, rng: random.Random) -> Draft:
        species = self.world.species_choice(rng)
        noun = species.noun
        draft = Draft(_capitalize(noun.plural))
        draft.new_paragraph()
        hypernym = DEFINITION_HYPERNYMS.get(species.animal_class, species.animal_class)
        if hypernym == noun.singular:  # "A fish is a small animal.", not "... a fish."
            hypernym = "animal"
        draft.add(sentence([article(species.size), species.size, noun.singular, "is", "a",
                            hypernym]))
        facts = [Fact("color", noun.plural, species.color),
                 Fact("habitat", noun.plural, species.habitat),
                 Fact("diet", noun.plural, species.diet[0]),
                 Fact("diet", noun.plural, species.diet[1]),
                 Fact("active", noun.plural, species.active)]
        rng.shuffle(facts)
        for fact in facts[:3 + int(rng.random() * 3)]:
            draft.add_fact(fact)
        if rng.random() < 0.5:
            rest = "at night" if species.active == "during the day" else "during the day"
            draft.add(sentence([noun.plural, "rest", rest, "because", "they", "are", "active",
                                species.active]))
        draft.new_paragraph()
        self._generic(rng, draft, 4 + int(rng.random() * 4), PRESENT,
                      self._species_subject(species))
        owners = self.pet_owners.get(noun.singular)
        if owners and rng.random() < 0.6:
            owner = owners[int(rng.random() * len(owners))]
            draft.new_paragraph()
            draft.add_fact(Fact("pet", owner.name, noun.singular))
            draft.add(sentence(["its", "name", "is", owner.pet.name]))  # type: ignore[union-attr]
            self._generic(rng, draft, 1 + int(rng.random() * 3), PRESENT,
                          self._person_subject(owner))
        draft.new_paragraph()
        draft.add(sentence(["in", "the", species.habitat + ",", "there", "are", "many",
                            noun.plural]))
        self._generic(rng, draft, 2 + int(rng.random() * 4), PRESENT)
        return draft

    def tool_entry(self, rng: random.Random) -> Draft:
        tool: Tool = self.world.tool_choice(rng)
        noun = tool.noun
        draft = Draft(_capitalize(noun.singular) if rng.random() < 0.5
                      else f"How to use {article(noun.singular)} {noun.singular}")
        draft.new_paragraph()
        draft.add(sentence([article(noun.singular), noun.singular, "is", "a", "tool"]))
        draft.add_fact(Fact("material", noun.singular, tool.material))
        if rng.random() < 0.6:
            draft.add(sentence(["because", article(noun.singular), noun.singular, "is", "made",
                                "of", tool.material + ",", "it", "is",
                                MATERIAL_PROPERTIES[tool.material]]))
        draft.add_fact(Fact("purpose", noun.plural, tool.purpose))
        for user in tool.users:
            draft.add_fact(Fact("user", noun.plural, user.plural))
        draft.new_paragraph()
        for _ in range(4 + int(rng.random() * 4)):
            draft.add(self._about_thing(rng, noun, PRESENT))
        if rng.random() < 0.6:
            draft.new_paragraph()
            for step in PROCEDURE_STEPS[:2 + int(rng.random() * 3)]:
                verb = self.grammar.verbs[("handle", "craft")[int(rng.random() * 2)]](rng)
                obj = self.grammar.noun_phrase(rng, noun, False, "the", 0.0)
                draft.add(sentence([step + ",", verb.base] + obj.words
                                   + [self.grammar.manner_adverbs(rng)]))
        draft.new_paragraph()
        for _ in range(2 + int(rng.random() * 3)):
            user = tool.users[int(rng.random() * len(tool.users))]
            subject = self.grammar.noun_phrase(rng, user, rng.random() < 0.5)
            draft.add(self.grammar.generic_sentence(rng, PRESENT, subject))
        return draft

    def town_entry(self, rng: random.Random) -> Draft:
        town: Town = self.world.town_choice(rng)
        draft = Draft(town.name)
        draft.new_paragraph()
        facts = [Fact("town_size", town.name, town.size), Fact("near", town.name, town.near),
                 Fact("known_for", town.name, town.known_for)]
        rng.shuffle(facts)
        for fact in facts:
            draft.add_fact(fact)
        draft.add(sentence(["there", "is", article(town.landmark), town.landmark, "in",
                            town.name]))
        residents = self.world.residents[town.name]
        if residents:
            draft.new_paragraph()
            for person in rng.sample(residents, min(len(residents), 2 + int(rng.random() * 3))):
                draft.add_fact(Fact("lives_in", person.name, town.name))
                if rng.random() < 0.5:
                    draft.add_fact(Fact("occupation", person.name, person.occupation.singular))
                self._generic(rng, draft, 1 + int(rng.random() * 2), PRESENT,
                              self._person_subject(person))
        draft.new_paragraph()
        draft.add(sentence(["in", town.name + ",", "the", "people", "are",
                            self.grammar.adjective(rng, "person")]))
        self._generic(rng, draft, 4 + int(rng.random() * 4), PRESENT)
        return draft

    def story(self, rng: random.Random) -> Draft:
        person: Person = self.world.person_choice(rng)
        thing = self.grammar.random_noun(rng, ("object", "tool", "animal")[int(rng.random() * 3)])
        adjective = self.grammar.adjective(rng, thing.kind)
        draft = Draft(f"{person.name} and the {adjective} {thing.singular}")
        draft.new_paragraph()
        draft.add_fact(Fact("lives_in", person.name, person.town))
        draft.add_fact(Fact("occupation", person.name, person.occupation.singular))
        if person.pet and rng.random() < 0.6:
            draft.add_fact(Fact("pet", person.name, person.pet.species.singular))
            draft.add(sentence(["its", "name", "is", person.pet.name]))
        if rng.random() < 0.5:
            draft.add_fact(Fact("friend", person.name, person.friend))
        draft.new_paragraph()
        start = STORY_STARTS[int(rng.random() * len(STORY_STARTS))]
        town = next(t for t in self.world.towns if t.name == person.town)
        draft.add(sentence([start + ",", person.name, "went", "to", "the", town.landmark]))
        protagonist = self._person_subject(person)
        draft.add(sentence([person.pronoun, "found", article(adjective), adjective,
                            thing.singular] + self.grammar.locative(rng)))
        friend = self.world.person_by_name[person.friend]
        for _ in range(8 + int(rng.random() * 9)):
            roll = rng.random()
            if roll < 0.55:
                words = self.grammar.generic_words(rng, PAST, protagonist(rng))
            elif roll < 0.65:
                words = [friend.name, "visited", person.object_pronoun]
            else:
                words = self.grammar.generic_words(rng, PAST)
            if rng.random() < 0.25:
                words = [CONNECTIVES[int(rng.random() * len(CONNECTIVES))] + ","] + words
            draft.add(sentence(words))
        draft.add(sentence(["in", "the", "evening,", person.pronoun, "went", "home"]))
        return draft

    def scene(self, rng: random.Random) -> Draft:
        tense = PRESENT if rng.random() < 0.6 else PAST
        if rng.random() < 0.5:
            place = self.grammar.random_noun(rng, "building")
            draft = Draft(f"At the {place.singular}")
        else:
            draft = Draft(f"A {('day', 'morning', 'week')[int(rng.random() * 3)]} in "
                          f"{self.world.town_choice(rng).name}")
        for _ in range(2 + int(rng.random() * 3)):
            draft.new_paragraph()
            self._generic(rng, draft, 4 + int(rng.random() * 4), tense)
        return draft

    def lesson(self, rng: random.Random) -> Draft:
        """A short reading about one subject of the world, then questions on its facts."""
        roll = rng.random()
        if roll < 0.4:
            person = self.world.person_choice(rng)
            subject, topic = person.name, self._person_subject(person)
        elif roll < 0.7:
            species = self.world.species_choice(rng)
            subject, topic = species.noun.plural, self._species_subject(species)
        else:
            town = self.world.town_choice(rng)
            subject, topic = town.name, None
        draft = Draft(f"Lesson: {subject}" if rng.random() < 0.5 else "Review questions")
        draft.new_paragraph()
        self._generic(rng, draft, 3 + int(rng.random() * 3), PRESENT, topic)
        facts = list(self.world.facts_by_subject[subject])
        rng.shuffle(facts)
        others = self.world.facts()
        facts += [others[int(rng.random() * len(others))] for _ in range(2)]
        for fact in facts[:3 + int(rng.random() * 4)]:
            question = question_for(fact)
            if question is not None:
                draft.new_paragraph()
                draft.add("Question: " + question)
                draft.add_fact(fact, prefix="Answer: ")
        return draft


def question_for(fact: Fact) -> str | None:
    """The question a canonical fact answers (None where the language has no neat one)."""
    s = fact.subject
    return {
        "lives_in": f"Where does {s} live?",
        "occupation": f"What does {s} do?",
        "friend": f"Who is a friend of {s}?",
        "pet": f"What pet does {s} have?",
        "color": f"What color are {s}?",
        "habitat": f"Where do {s} live?",
        "diet": f"What do {s} eat?",
        "active": f"When are {s} active?",
        "material": f"What is {article(s)} {s} made of?",
        "purpose": f"Why do people use {s}?",
        "user": f"Who uses {s}?",
        "taste": f"How do {s} taste?",
        "near": f"Where is {s}?",
        "known_for": f"What is {s} known for?",
    }.get(fact.relation)
