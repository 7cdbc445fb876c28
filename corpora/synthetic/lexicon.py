"""The lexicon: inflected word forms with their features, parsed from `words.py`.

Every word form gets exactly one *tag* (its class with the features agreement cares about:
number, gender, animacy, verb form, transitivity). Closed-class words are their own tag.
The generator, the minimal pairs and the tests all read features from here, so an agreement
check in a test uses the same number feature the generator used.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

from corpora.synthetic import words

INTRANSITIVE_FRAMES = frozenset({"intransitive", "intransitive_strict"})


@dataclass(frozen=True)
class Noun:
    singular: str
    plural: str | None  # None for a mass noun ("honey")
    kind: str  # semantic class: animal, person, tool, object, food, plant, building, ...
    subclass: str  # animal class ("bird"), person gender ("f", "m", "p"), or ""

    @property
    def countable(self) -> bool:
        return self.plural is not None

    @property
    def invariant(self) -> bool:
        """Same form in singular and plural ("sheep"): useless for number agreement pairs."""
        return self.plural == self.singular


@dataclass(frozen=True)
class Verb:
    base: str
    third_singular: str
    past: str
    participle: str
    present_participle: str
    frames: tuple[str, ...]

    @property
    def transitive(self) -> bool:
        return any(frame not in INTRANSITIVE_FRAMES for frame in self.frames)

    def present(self, plural: bool) -> str:
        return self.base if plural else self.third_singular


@dataclass(frozen=True)
class Lexicon:
    nouns: dict[str, tuple[Noun, ...]]  # by kind
    animals: dict[str, tuple[Noun, ...]]  # by animal class
    people: dict[str, tuple[Noun, ...]]  # by gender f / m / p
    occupations: tuple[Noun, ...]
    noun_by_form: dict[str, Noun]  # singular and plural forms
    verbs: dict[str, tuple[Verb, ...]]  # by frame
    verb_by_base: dict[str, Verb]
    verb_by_form: dict[str, Verb]
    reflexive_verbs: tuple[Verb, ...]
    adjectives: dict[str, tuple[str, ...]]  # by the noun classes they describe
    manner_adverbs: tuple[str, ...]
    frequency_adverbs: tuple[str, ...]
    female_names: tuple[str, ...]
    male_names: tuple[str, ...]
    pet_names: tuple[str, ...]
    town_names: tuple[str, ...]  # every possible town name; a world uses a few
    function_words: tuple[str, ...]
    tags: dict[str, str]  # word form -> tag

    def tag(self, word: str) -> str:
        """Tag of a bare word form; "UNK" for a word outside the lexicon (a typo, markup)."""
        return self.tags.get(word, "UNK")

    @property
    def size(self) -> int:
        """Distinct word forms, town names counted once each although a world uses a few."""
        return len(self.tags)


# --- inflection ----------------------------------------------------------------------

_VOWELS = "aeiou"


def article(word: str) -> str:
    """"a" or "an" before `word`; the lexicon avoids the silent-h and /ju/ exceptions
    except "useful", handled here."""
    return "an" if word[0] in _VOWELS and not word.startswith("use") else "a"


def plural_of(noun: str) -> str:
    if noun.endswith(("s", "x", "z", "ch", "sh")):
        return noun + "es"
    if noun.endswith("y") and noun[-2] not in _VOWELS:
        return noun[:-1] + "ies"
    return noun + "s"


def third_singular_of(verb: str) -> str:
    if verb.endswith(("s", "x", "z", "ch", "sh", "o")):
        return verb + "es"
    if verb.endswith("y") and verb[-2] not in _VOWELS:
        return verb[:-1] + "ies"
    return verb + "s"


def regular_past_of(verb: str, double: bool) -> str:
    if double:
        return verb + verb[-1] + "ed"
    if verb.endswith("e"):
        return verb + "d"
    if verb.endswith("y") and verb[-2] not in _VOWELS:
        return verb[:-1] + "ied"
    return verb + "ed"


def present_participle_of(verb: str, double: bool) -> str:
    if double:
        return verb + verb[-1] + "ing"
    if verb.endswith("ie"):
        return verb[:-2] + "ying"
    if verb.endswith("e") and not verb.endswith(("ee", "ye", "oe")):
        return verb[:-1] + "ing"
    return verb + "ing"


# --- parsing -------------------------------------------------------------------------


def _parse_noun(entry: str, kind: str, subclass: str) -> Noun:
    singular, sep, plural = entry.partition(":")
    if not sep:
        return Noun(singular, plural_of(singular), kind, subclass)
    return Noun(singular, plural or None, kind, subclass)


def _parse_verb(entry: str, frame: str) -> Verb:
    double = entry.endswith("+")
    forms = entry.rstrip("+").split("/")
    base = forms[0]
    past = forms[1] if len(forms) > 1 else regular_past_of(base, double)
    participle = forms[2] if len(forms) > 2 else past
    return Verb(base, third_singular_of(base), past, participle,
                present_participle_of(base, double), (frame,))


def _merge_frames(verbs: list[Verb]) -> dict[str, Verb]:
    """One Verb per base form; a verb listed under several frames keeps all of them."""
    merged: dict[str, Verb] = {}
    for verb in verbs:
        known = merged.get(verb.base)
        if known is None:
            merged[verb.base] = verb
        elif verb.frames[0] not in known.frames:
            merged[verb.base] = Verb(known.base, known.third_singular, known.past,
                                     known.participle, known.present_participle,
                                     known.frames + verb.frames)
    return merged


def _noun_tags(noun: Noun) -> dict[str, str]:
    if not noun.countable:
        return {noun.singular: "N_MASS"}
    if noun.kind == "person":
        singular_feature, plural_feature = noun.subclass.upper(), "P"
    elif noun.kind == "animal":
        singular_feature = plural_feature = "A"
    elif noun.kind == "time":
        singular_feature = plural_feature = "T"  # "every day" is an adverbial, not an object
    else:
        singular_feature = plural_feature = "O"
    if noun.invariant:
        return {noun.singular: f"N_SGPL_{singular_feature}"}
    return {noun.singular: f"N_SG_{singular_feature}", noun.plural: f"N_PL_{plural_feature}"}


_VERB_ROLES = ("BASE", "3SG", "PAST", "PART", "ING")


def _verb_tags(verb: Verb) -> dict[str, str]:
    prefix = "VT" if verb.transitive else "VI"
    roles: dict[str, list[str]] = {}
    forms = (verb.base, verb.third_singular, verb.past, verb.participle,
             verb.present_participle)
    for role, form in zip(_VERB_ROLES, forms):
        roles.setdefault(form, []).append(role)
    return {form: f"{prefix}_{'+'.join(form_roles)}" for form, form_roles in roles.items()}


def _add_tags(tags: dict[str, str], new: dict[str, str], source: str) -> None:
    for form, tag in new.items():
        known = tags.get(form)
        if known is not None and known != tag:
            # One tag per form keeps sentence shapes unambiguous (see words.py).
            raise ValueError(f"word form {form!r} is both {known} and {tag} ({source})")
        tags[form] = tag


def _town_names() -> tuple[str, ...]:
    return tuple(first + second for first in words.TOWN_FIRST_PARTS.split()
                 for second in words.TOWN_SECOND_PARTS.split())


@functools.cache
def load_lexicon() -> Lexicon:
    """Parse the word lists once per process (the lexicon is immutable)."""
    tags: dict[str, str] = {}  # filled in turn: names last, to be checked against every common word
    nouns, animals, people = _parse_nouns()
    noun_by_form = _index_nouns(nouns, tags)
    by_base, verbs = _parse_verbs(tags)
    adjectives, manner, frequency, function_words = _parse_modifiers(tags)
    female, male, pets, towns = _parse_names(tags)
    occupations = tuple(noun_by_form[w] for w in words.OCCUPATIONS.split())
    reflexive = tuple(by_base[w] for w in words.REFLEXIVE_VERBS.split())
    return Lexicon(
        nouns={k: tuple(v) for k, v in nouns.items()}, animals=animals, people=people,
        occupations=occupations, noun_by_form=noun_by_form,
        verbs={k: tuple(v) for k, v in verbs.items()}, verb_by_base=by_base,
        verb_by_form={form: verb for verb in by_base.values() for form in (
            verb.base, verb.third_singular, verb.past, verb.participle,
            verb.present_participle)},
        reflexive_verbs=reflexive, adjectives=adjectives, manner_adverbs=manner,
        frequency_adverbs=frequency, female_names=female, male_names=male, pet_names=pets,
        town_names=towns, function_words=function_words, tags=tags)


def _parse_nouns() -> tuple[dict[str, list[Noun]], dict[str, tuple[Noun, ...]], dict[str, tuple[Noun, ...]]]:
    """(nouns by kind, animals by class, people by gender)."""
    nouns: dict[str, list[Noun]] = {}
    animals = {cls: tuple(_parse_noun(e, "animal", cls) for e in entries.split())
               for cls, entries in words.ANIMAL_NOUNS.items()}
    people = {gender: tuple(_parse_noun(e, "person", gender) for e in entries.split())
              for gender, entries in words.PERSON_NOUNS.items()}
    nouns["animal"] = [n for group in animals.values() for n in group]
    nouns["person"] = [n for group in people.values() for n in group]
    for kind, entries in (("tool", words.TOOL_NOUNS), ("object", words.OBJECT_NOUNS),
                          ("food", words.FOOD_NOUNS), ("plant", words.PLANT_NOUNS),
                          ("building", words.BUILDING_NOUNS),
                          ("landscape", words.LANDSCAPE_NOUNS),
                          ("vehicle", words.VEHICLE_NOUNS), ("creation", words.CREATION_NOUNS),
                          ("material", words.MATERIAL_NOUNS), ("time", words.TIME_NOUNS),
                          ("hypernym", words.HYPERNYM_NOUNS)):
        nouns[kind] = [_parse_noun(e, kind, "") for e in entries.split()]
    return nouns, animals, people


def _index_nouns(nouns: dict[str, list[Noun]], tags: dict[str, str]) -> dict[str, Noun]:
    """Every noun by its singular and plural form; tags the forms."""
    noun_by_form: dict[str, Noun] = {}
    for group in nouns.values():
        for noun in group:
            if noun.singular in noun_by_form and noun_by_form[noun.singular] != noun:
                raise ValueError(f"noun {noun.singular!r} listed twice")
            noun_by_form[noun.singular] = noun
            if noun.plural:
                noun_by_form[noun.plural] = noun
            _add_tags(tags, _noun_tags(noun), f"noun {noun.singular}")
    return noun_by_form


def _parse_verbs(tags: dict[str, str]) -> tuple[dict[str, Verb], dict[str, list[Verb]]]:
    """(verbs by base form, verbs by frame); tags their forms."""
    by_base = _merge_frames([_parse_verb(entry, frame) for frame, entries in words.VERBS.items()
                             for entry in entries.split()])
    for verb in by_base.values():
        _add_tags(tags, _verb_tags(verb), f"verb {verb.base}")
    verbs: dict[str, list[Verb]] = {}
    for verb in by_base.values():
        for frame in verb.frames:
            verbs.setdefault(frame, []).append(verb)
    return by_base, verbs


def _parse_modifiers(tags: dict[str, str]) -> tuple[dict[str, tuple[str, ...]], tuple[str, ...],
                                                     tuple[str, ...], tuple[str, ...]]:
    """(adjectives by noun class, manner adverbs, frequency adverbs, function words); tagged."""
    adjectives = {cls: tuple(dict.fromkeys(entries.split()))
                  for cls, entries in words.ADJECTIVES.items()}
    for group in adjectives.values():
        _add_tags(tags, dict.fromkeys(group, "ADJ"), "adjective")
    manner = tuple(words.MANNER_ADVERBS.split())
    frequency = tuple(words.FREQUENCY_ADVERBS.split())
    _add_tags(tags, dict.fromkeys(manner, "ADV_MANNER"), "adverb")
    _add_tags(tags, dict.fromkeys(frequency, "ADV_FREQ"), "adverb")
    function_words = tuple(words.FUNCTION_WORDS.split())
    _add_tags(tags, {w: w for w in function_words}, "function word")
    return adjectives, manner, frequency, function_words


def _parse_names(tags: dict[str, str]) -> tuple[tuple[str, ...], ...]:
    """(female, male, pet and town names), tagged after every common word is."""
    female, male = tuple(words.FEMALE_NAMES.split()), tuple(words.MALE_NAMES.split())
    pets, towns = tuple(words.PET_NAMES.split()), _town_names()
    for group, tag in ((female, "NAME_F"), (male, "NAME_M"), (pets, "NAME_PET"),
                       (towns, "NAME_TOWN")):
        # A capitalised name must not read as a common word at the start of a sentence.
        clashes = [name for name in group if name.lower() in tags]
        if clashes:
            raise ValueError(f"names that are also words: {clashes}")
        _add_tags(tags, dict.fromkeys(group, tag), tag)
    return female, male, pets, towns
