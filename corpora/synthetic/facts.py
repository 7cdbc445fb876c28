"""Knowledge probes: cloze questions on the world's facts, in sentence frames no genre writes.

Each probe asks for one fact of the world ("The home town of Mira is" + " Hollyton") among
`K_DISTRACTORS` wrong values of the same type, in the multiple-choice format of
`lab.choices`. Training text states the facts only in its own sentences (`render_fact`,
`question_for`, the grammar's clauses); the probe frames below are none of those, so a model
answers from the fact it learned, not from a sentence it saw. Two-hop probes ask for a fact of
a person's friend ("The home town of the closest friend of Mira is"): the friendship and the
friend's fact are each stated in training text, never a sentence that joins them.
"""
from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from corpora.synthetic.lexicon import article
from corpora.synthetic.sampling import mix_seed, stable_code
from corpora.synthetic.world import (
    COLORS,
    DIETS,
    HABITATS,
    Fact,
    Person,
    World,
    build_world,
    render_fact,
)

K_DISTRACTORS = 3

# Relation -> cloze frame; "{s}" is the subject as the probe names it. Relations left out:
# "active" has two values (too few for three distractors) and "taste" is stated only by a
# lesson's occasional extra question, so a probe would measure chance more than knowledge.
FRAMES = {
    "lives_in": "The home town of {s} is",
    "occupation": "{s} earns a living as",
    "friend": "The closest friend of {s} is",
    "pet": "The animal kept at home by {s} is a",
    "color": "The usual color of {s} is",
    "habitat": "The natural home of {s} is the",
    "diet": "A meal that {s} would enjoy is",
    "material": "The material of {s} is",
    "purpose": "With {s} one can",
    "user": "The people who work with {s} are",
    "near": "Not far from {s} lies the",
    "known_for": "Visitors to {s} buy its",
    "town_size": "Described in one word, {s} is",
}
# Relations no probe asks about ("active", "taste": see FRAMES).
UNPROBED = ("active", "taste")
# The facts of a person's friend that two-hop probes ask for.
TWO_HOP_RELATIONS = ("lives_in", "occupation", "pet")
FRIEND_PHRASE = "the closest friend of {name}"


def cloze(relation: str, subject: str) -> str:
    context = FRAMES[relation].format(s=subject)
    return context[0].upper() + context[1:]


def answer_text(relation: str, value: str) -> str:
    """How a value continues its frame (with its leading space)."""
    if relation == "occupation":
        return f" {article(value)} {value}"
    return f" {value}"


def _person_values(person: Person, relation: str) -> tuple[str, ...]:
    match relation:
        case "lives_in":
            return (person.town,)
        case "occupation":
            return (person.occupation.singular,)
        case "friend":
            return (person.friend,)
        case "pet":
            return (person.pet.species.singular,) if person.pet else ()
    raise ValueError(relation)


@dataclass(frozen=True)
class Question:
    """One fact a one-hop probe asks for."""
    relation: str
    written: str  # the subject as the frame names it ("foxes", "a hammer", "Mira")
    subject: str  # the subject's name: a person or town, a species' or tool's singular noun
    values: tuple[str, ...]  # every true value (a species eats two foods, a tool has users)
    group: str  # subjects whose values a distractor is drawn from (a species: its class)
    options: tuple[str, ...]  # every value the group allows, for groups with few subjects


def questions(world: World) -> list[Question]:
    """The one-hop questions of the world, in a fixed order."""
    rows = []
    for person in world.people:
        for relation in ("lives_in", "occupation", "friend", "pet"):
            values = _person_values(person, relation)
            if values:
                rows.append(Question(relation, person.name, person.name, values, relation,
                                     world.domain(relation)))
    for species in world.species:
        singular, plural, cls = species.noun.singular, species.noun.plural, species.animal_class
        rows += [Question("color", plural, singular, (species.color,), f"color/{cls}", COLORS[cls]),
                 Question("habitat", plural, singular, (species.habitat,), f"habitat/{cls}",
                          HABITATS[cls]),
                 Question("diet", plural, singular, species.diet, f"diet/{cls}",
                          tuple(d for d in DIETS[cls] if d != plural))]
    for tool in world.tools:
        singular, plural = tool.noun.singular, tool.noun.plural
        rows += [Question("material", f"{article(singular)} {singular}", singular, (tool.material,),
                          "material", world.domain("material")),
                 Question("purpose", plural, singular, (tool.purpose,), "purpose",
                          world.domain("purpose")),
                 Question("user", plural, singular, tuple(u.plural for u in tool.users), "user",
                          world.domain("user"))]
    for town in world.towns:
        rows += [Question(relation, town.name, town.name, (value,), relation, world.domain(relation))
                 for relation, value in (("near", town.near), ("known_for", town.known_for),
                                         ("town_size", town.size))]
    return rows


def _distractors(rng: random.Random, excluded: tuple[str, ...], seen: list[str],
                 options: tuple[str, ...], forced: str | None = None) -> list[str] | None:
    """K_DISTRACTORS distinct values outside `excluded` (the true ones): values of other
    subjects of the group (`seen`, one entry per subject's value), so the answer and its
    distractors are equally common in the world and a model that knows only which values are
    frequent stays at chance. Topped up from `options` when the group holds too few; `forced`
    first when given. None if too few."""
    chosen = [forced] if forced is not None else []
    for _ in range(20 * K_DISTRACTORS):
        if len(chosen) == K_DISTRACTORS:
            return chosen
        value = seen[int(rng.random() * len(seen))]
        if value not in excluded and value not in chosen:
            chosen.append(value)
    rest = [v for v in options if v not in excluded and v not in chosen]
    if len(rest) < K_DISTRACTORS - len(chosen):
        return None
    return chosen + rng.sample(rest, K_DISTRACTORS - len(chosen))


def _probe(rng: random.Random, relation: str, context: str, answer: str,
           wrong: list[str]) -> dict:
    """The probe's choices in a shuffled order, and where the answer landed."""
    choices = [answer_text(relation, v) for v in [answer] + wrong]
    order = list(range(len(choices)))
    rng.shuffle(order)
    return {"context": context, "choices": [choices[i] for i in order], "answer": order.index(0)}


def fact_probes(seed: int) -> list[dict]:
    """The probes of the world of `seed`: one per (subject, relation), then the two-hop ones.

    Each is a `lab.choices` item with "hops" (1 or 2), "relation" ("friend.lives_in" for a
    friend's town) and "subject" (the person, species, tool or town asked about).
    """
    world = build_world(seed)
    rng = random.Random(mix_seed(seed, stable_code("facts")))
    rows = questions(world)
    seen: dict[str, list[str]] = {}
    for row in rows:
        seen.setdefault(row.group, []).extend(row.values)
    probes = []
    for row in rows:
        answer = row.values[int(rng.random() * len(row.values))]
        # No one is their own friend: the asker's name would be a giveaway distractor.
        excluded = row.values + ((row.subject,) if row.relation == "friend" else ())
        wrong = _distractors(rng, excluded, seen[row.group], row.options)
        if wrong is not None:
            probes.append({**_probe(rng, row.relation, cloze(row.relation, row.written), answer,
                                    wrong),
                           "hops": 1, "relation": row.relation, "subject": row.subject})
    for person in world.people:
        friend = world.person_by_name[person.friend]
        phrase = FRIEND_PHRASE.format(name=person.name)
        for relation in TWO_HOP_RELATIONS:
            values = _person_values(friend, relation)
            if not values:
                continue
            # The person's own value, when it differs, is always a distractor: answering the
            # one-hop fact instead of the friend's is then wrong, not a lucky guess.
            own = _person_values(person, relation)
            forced = own[0] if own and own[0] not in values else None
            wrong = _distractors(rng, values, seen[relation], world.domain(relation), forced)
            if wrong is not None:
                probes.append({**_probe(rng, relation, cloze(relation, phrase), values[0], wrong),
                               "hops": 2, "relation": f"friend.{relation}", "subject": person.name})
    return probes


def fact_documents(world: World, rng: random.Random, render: Callable[[Fact], str] = render_fact) -> str:
    """Training text made of nothing but the world's probed facts, for checking what a model
    learns from them (tests/corpora/test_facts.py, bench/fact_transfer.py): one pass over the
    facts, a subject's facts together like an encyclopedia entry, each sentence by `render`
    (default: the canonical sentence, never a probe frame), subjects and sentences shuffled."""
    by_subject = defaultdict(list)
    for fact in world.facts():
        if fact.relation not in UNPROBED:
            by_subject[fact.subject].append(render(fact))
    documents = []
    for sentences in by_subject.values():
        rng.shuffle(sentences)
        documents.append(" ".join(sentences))
    rng.shuffle(documents)
    return "\n".join(documents)
