"""The small world the corpus talks about: people, towns, animal species, tools and foods,
with attributes and relations sampled once from the seed.

Every split of one seed shares the world, so facts recur across documents and a model can
learn them; web-grade "contradiction" documents state facts that disagree with it. Facts
have one canonical sentence each (`render_fact`), which is how the tests check that clean
text never contradicts the world and that contradiction labels are honest.
"""
from __future__ import annotations

import functools
import random
from dataclasses import dataclass

from corpora.synthetic.lexicon import Lexicon, Noun, article, load_lexicon
from corpora.synthetic.sampling import ZipfChoice, mix_seed, stable_code

N_PEOPLE = 120  # even: everyone has exactly one friend
N_TOWNS = 30

HABITATS = {
    "mammal": ("forest", "meadow", "hills", "mountains", "valley", "marsh", "desert"),
    "bird": ("forest", "meadow", "marsh", "hills", "valley", "mountains"),
    "fish": ("river", "lake", "sea", "stream", "pond"),
    "reptile": ("desert", "marsh", "forest", "meadow"),
    "amphibian": ("marsh", "pond", "stream", "forest"),
    "insect": ("meadow", "forest", "marsh", "garden"),
    "invertebrate": ("garden", "forest", "marsh", "meadow", "cave"),
}
COLORS = {
    "mammal": ("brown", "black", "white", "grey", "red", "golden"),
    "bird": ("brown", "black", "white", "grey", "red", "blue", "yellow", "green"),
    "fish": ("grey", "green", "blue", "yellow", "red", "brown"),
    "reptile": ("green", "brown", "grey", "yellow", "black"),
    "amphibian": ("green", "brown", "yellow", "grey"),
    "insect": ("black", "red", "yellow", "green", "brown", "blue"),
    "invertebrate": ("black", "brown", "grey", "pink", "yellow"),
}
DIETS = {
    "mammal": ("grass", "leaves", "berries", "nuts", "seeds", "apples", "acorns", "carrots",
               "clover", "mice", "rabbits", "frogs", "fish", "worms", "beetles", "honey"),
    "bird": ("seeds", "berries", "worms", "beetles", "fish", "mice", "frogs", "snails",
             "grain", "ants"),
    "fish": ("worms", "insects", "minnows", "snails", "moss", "beetles"),
    "reptile": ("mice", "insects", "frogs", "eggs", "leaves", "snails"),
    "amphibian": ("insects", "worms", "beetles", "snails", "ants"),
    "insect": ("leaves", "grass", "seeds", "clover", "moss", "honey"),
    "invertebrate": ("leaves", "moss", "gnats", "beetles", "ants", "lettuce"),
}
ACTIVE_TIMES = ("at night", "during the day")
SPECIES_SIZES = {"insect": ("tiny", "small"), "amphibian": ("small", "tiny"),
                 "invertebrate": ("tiny", "small")}
DEFAULT_SIZES = ("small", "large", "big", "little")
PET_SPECIES = ("dog", "cat", "rabbit", "hamster", "parrot", "pony", "goat", "duck", "hen",
               "tortoise", "ferret", "pig", "donkey", "horse", "lamb", "mouse")
TOOL_MATERIALS = ("wood", "iron", "steel", "stone", "copper", "bronze", "brass", "bone", "tin",
                  "clay", "glass", "leather")
TOOL_PURPOSES = ("cut wood", "split logs", "dig holes", "carry water", "sweep floors",
                 "catch fish", "trim hedges", "cut grass", "shape clay", "mend nets",
                 "sew cloth", "stir soup", "measure boards", "fix roofs", "polish silver",
                 "weigh flour", "pull weeds", "sow seeds", "lift logs", "carve bowls",
                 "bake bread", "clean windows", "pick apples", "sharpen knives",
                 "chop onions", "peel potatoes", "boil water", "paint fences", "wash plates",
                 "open barrels")
TASTES = ("sweet", "sour", "salty", "bitter", "spicy", "delicious")
TOWN_SIZES = ("small", "large", "quiet", "busy", "old", "famous", "peaceful")
TOWN_FEATURES = ("river", "sea", "forest", "hills", "lake", "mountains", "marsh", "coast")
TOWN_PRODUCTS = ("cheese", "bread", "honey", "cider", "butter", "jam", "tea", "wool", "linen",
                 "apples", "pears", "plums", "cherries", "onions", "cabbages", "pumpkins",
                 "melons", "boats", "bells", "baskets", "clocks", "violins", "blankets")
LANDMARKS = ("mill", "bridge", "tower", "church", "castle", "market", "library", "school",
             "harbor", "inn", "chapel", "palace", "orchard", "station")


@dataclass(frozen=True)
class Pet:
    species: Noun
    name: str


@dataclass(frozen=True)
class Person:
    name: str
    gender: str  # "f" or "m"
    occupation: Noun
    town: str
    pet: Pet | None
    friend: str
    favorite_food: Noun

    @property
    def pronoun(self) -> str:
        return "she" if self.gender == "f" else "he"

    @property
    def object_pronoun(self) -> str:
        return "her" if self.gender == "f" else "him"

    @property
    def possessive(self) -> str:
        return "her" if self.gender == "f" else "his"

    @property
    def reflexive(self) -> str:
        return "herself" if self.gender == "f" else "himself"


@dataclass(frozen=True)
class Species:
    noun: Noun
    animal_class: str
    size: str
    color: str
    habitat: str
    diet: tuple[str, str]
    active: str


@dataclass(frozen=True)
class Tool:
    noun: Noun
    material: str
    purpose: str
    users: tuple[Noun, ...]  # occupations


@dataclass(frozen=True)
class Town:
    name: str
    size: str
    near: str
    known_for: str
    landmark: str


@dataclass(frozen=True)
class Food:
    noun: Noun
    taste: str


@dataclass(frozen=True)
class Fact:
    relation: str
    subject: str  # the subject as it is written in the canonical sentence
    value: str


@dataclass(frozen=True, eq=False)
class World:
    seed: int
    people: tuple[Person, ...]  # in order of salience: earlier ones are mentioned more
    towns: tuple[Town, ...]  # in order of salience
    species: tuple[Species, ...]  # in lexicon order (common animals first)
    tools: tuple[Tool, ...]
    foods: tuple[Food, ...]
    person_by_name: dict[str, Person]
    species_by_noun: dict[str, Species]
    residents: dict[str, tuple[Person, ...]]  # town name -> people living there

    @functools.cached_property
    def person_choice(self) -> ZipfChoice[Person]:
        return ZipfChoice(self.people, exponent=1.0, offset=5.0)

    @functools.cached_property
    def town_choice(self) -> ZipfChoice[Town]:
        return ZipfChoice(self.towns, exponent=1.0, offset=3.0)

    @functools.cached_property
    def species_choice(self) -> ZipfChoice[Species]:
        return ZipfChoice(self.species, exponent=1.0, offset=3.0)

    @functools.cached_property
    def tool_choice(self) -> ZipfChoice[Tool]:
        return ZipfChoice(self.tools, exponent=1.0, offset=3.0)

    @functools.cached_property
    def food_choice(self) -> ZipfChoice[Food]:
        return ZipfChoice(self.foods, exponent=1.0, offset=3.0)

    @functools.cached_property
    def facts_by_subject(self) -> dict[str, tuple[Fact, ...]]:
        grouped: dict[str, list[Fact]] = {}
        for fact in self.facts():
            grouped.setdefault(fact.subject, []).append(fact)
        return {subject: tuple(facts) for subject, facts in grouped.items()}

    def facts_about(self, subject: str, relation: str) -> list[Fact]:
        return [f for f in self.facts_by_subject.get(subject, ()) if f.relation == relation]

    def facts(self) -> list[Fact]:
        """Every true fact of the world, one per canonical sentence."""
        facts: list[Fact] = []
        for person in self.people:
            facts += [Fact("lives_in", person.name, person.town),
                      Fact("occupation", person.name, person.occupation.singular),
                      Fact("friend", person.name, person.friend)]
            if person.pet:
                facts.append(Fact("pet", person.name, person.pet.species.singular))
        for species in self.species:
            subject = species.noun.plural
            facts += [Fact("color", subject, species.color),
                      Fact("habitat", subject, species.habitat),
                      Fact("active", subject, species.active)]
            facts += [Fact("diet", subject, food) for food in species.diet]
        for tool in self.tools:
            facts += [Fact("material", tool.noun.singular, tool.material),
                      Fact("purpose", tool.noun.plural, tool.purpose)]
            facts += [Fact("user", tool.noun.plural, user.plural) for user in tool.users]
        for food in self.foods:
            facts.append(Fact("taste", food.noun.plural, food.taste))
        for town in self.towns:
            facts += [Fact("near", town.name, town.near),
                      Fact("known_for", town.name, town.known_for),
                      Fact("town_size", town.name, town.size)]
        return facts

    def domain(self, relation: str) -> tuple[str, ...]:
        """The values a fact of `relation` could take: a contradiction picks a wrong one."""
        lexicon = load_lexicon()
        return {
            "lives_in": tuple(town.name for town in self.towns),
            "occupation": tuple(noun.singular for noun in lexicon.occupations),
            "friend": tuple(person.name for person in self.people),
            "pet": PET_SPECIES,
            "color": tuple(dict.fromkeys(c for group in COLORS.values() for c in group)),
            "habitat": tuple(dict.fromkeys(h for group in HABITATS.values() for h in group)),
            "active": ACTIVE_TIMES,
            "diet": tuple(dict.fromkeys(d for group in DIETS.values() for d in group)),
            "material": TOOL_MATERIALS,
            "purpose": TOOL_PURPOSES,
            "user": tuple(noun.plural for noun in lexicon.occupations),
            "taste": TASTES,
            "near": TOWN_FEATURES,
            "known_for": TOWN_PRODUCTS,
            "town_size": TOWN_SIZES,
        }[relation]


def render_fact(fact: Fact) -> str:
    """The canonical sentence of a fact. Textbook text states facts only in true form."""
    subject, value = fact.subject, fact.value
    capitalized = subject[0].upper() + subject[1:]
    match fact.relation:
        case "lives_in":
            return f"{subject} lives in {value}."
        case "occupation":
            return f"{subject} is {article(value)} {value}."
        case "friend":
            return f"{subject} is a friend of {value}."
        case "pet":
            return f"{subject} has a pet {value}."
        case "color" | "taste":
            return f"{capitalized} are {value}."
        case "habitat":
            return f"{capitalized} live in the {value}."
        case "active":
            return f"{capitalized} are active {value}."
        case "diet":
            return f"{capitalized} eat {value}."
        case "material":
            return f"{article(subject).capitalize()} {subject} is made of {value}."
        case "purpose":
            return f"People use {subject} to {value}."
        case "user":
            return f"{value.capitalize()} use {subject}."
        case "near":
            return f"{subject} is near the {value}."
        case "known_for":
            return f"{subject} is known for its {value}."
        case "town_size":
            return f"{subject} is {article(value)} {value} town."
    raise ValueError(f"unknown relation {fact.relation!r}")


def fact_sentence_table(world: World) -> dict[str, bool]:
    """Every canonical sentence the world's relations can form, true or false.

    A sentence of a document found in this table is a checkable claim about the world.
    """
    true_facts = set(world.facts())
    subjects: dict[str, set[str]] = {}
    for fact in true_facts:
        subjects.setdefault(fact.relation, set()).add(fact.subject)
    table: dict[str, bool] = {}
    for relation, relation_subjects in subjects.items():
        for subject in relation_subjects:
            for value in world.domain(relation):
                fact = Fact(relation, subject, value)
                table[render_fact(fact)] = fact in true_facts
    return table


def contradict(world: World, fact: Fact, rng: random.Random) -> Fact:
    """The same subject and relation with a value the world says is false."""
    true_values = {f.value for f in world.facts_about(fact.subject, fact.relation)}
    wrong = [v for v in world.domain(fact.relation) if v not in true_values and v != fact.subject]
    return Fact(fact.relation, fact.subject, rng.choice(wrong))


# --- sampling the world --------------------------------------------------------------


def _sample_species(noun: Noun, animal_class: str, rng: random.Random) -> Species:
    diet_options = [food for food in DIETS[animal_class] if food != noun.plural]
    return Species(noun=noun, animal_class=animal_class,
                   size=rng.choice(SPECIES_SIZES.get(animal_class, DEFAULT_SIZES)),
                   color=rng.choice(COLORS[animal_class]),
                   habitat=rng.choice(HABITATS[animal_class]),
                   diet=tuple(rng.sample(diet_options, 2)),  # type: ignore[arg-type]
                   active=rng.choice(ACTIVE_TIMES))


def _sample_people(lexicon: Lexicon, towns: tuple[Town, ...], rng: random.Random
                   ) -> tuple[Person, ...]:
    named = ([(name, "f") for name in lexicon.female_names]
             + [(name, "m") for name in lexicon.male_names])
    chosen = rng.sample(named, N_PEOPLE)
    # Pair people up so friendship is symmetric and everyone has exactly one friend.
    order = list(range(N_PEOPLE))
    rng.shuffle(order)
    friend_of = {}
    for a, b in zip(order[0::2], order[1::2]):
        friend_of[a], friend_of[b] = b, a
    pick_occupation = ZipfChoice(lexicon.occupations, exponent=1.0, offset=4.0)
    pick_town = ZipfChoice(towns, exponent=1.0, offset=2.0)
    pet_names = list(lexicon.pet_names)
    foods = [noun for noun in lexicon.nouns["food"] if noun.countable]
    people = []
    for index, (name, gender) in enumerate(chosen):
        pet = None
        if rng.random() < 0.5:
            pet = Pet(lexicon.noun_by_form[rng.choice(PET_SPECIES)], rng.choice(pet_names))
        people.append(Person(name=name, gender=gender, occupation=pick_occupation(rng),
                             town=pick_town(rng).name, pet=pet,
                             friend=chosen[friend_of[index]][0],
                             favorite_food=rng.choice(foods)))
    return tuple(people)


@functools.lru_cache(maxsize=8)
def build_world(seed: int) -> World:
    """The world of `seed` (pure function of the seed; cached per process)."""
    lexicon = load_lexicon()
    rng = random.Random(mix_seed(seed, stable_code("world")))
    town_names = rng.sample(lexicon.town_names, N_TOWNS)
    towns = tuple(Town(name=name, size=rng.choice(TOWN_SIZES), near=rng.choice(TOWN_FEATURES),
                       known_for=rng.choice(TOWN_PRODUCTS), landmark=rng.choice(LANDMARKS))
                  for name in town_names)
    people = _sample_people(lexicon, towns, rng)
    species = tuple(_sample_species(noun, cls, rng)
                    for cls, nouns in lexicon.animals.items() for noun in nouns)
    species = tuple(sorted(species, key=lambda s: lexicon.nouns["animal"].index(s.noun)))
    occupations = lexicon.occupations
    tools = tuple(Tool(noun=noun, material=rng.choice(TOOL_MATERIALS),
                       purpose=rng.choice(TOOL_PURPOSES),
                       users=tuple(rng.sample(occupations, rng.choice((1, 2)))))
                  for noun in lexicon.nouns["tool"])
    foods = tuple(Food(noun, rng.choice(TASTES))
                  for noun in lexicon.nouns["food"] if noun.countable)
    residents: dict[str, list[Person]] = {town.name: [] for town in towns}
    for person in people:
        residents[person.town].append(person)
    return World(seed=seed, people=people, towns=towns, species=species, tools=tools,
                 foods=foods, person_by_name={p.name: p for p in people},
                 species_by_noun={s.noun.singular: s for s in species},
                 residents={name: tuple(group) for name, group in residents.items()})
