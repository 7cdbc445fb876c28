"""Knowledge probes (facts.jsonl): true answers recomputed from the world, distractors of the
same type, sentence frames no split writes, and a score that moves only with knowledge: a
model trained on the facts beats chance, an untrained one sits at it."""
import collections
import json
import random
import re
import shutil

import pytest
import torch

from corpora import tokenizer as bpe
from corpora.cache import load_prepared, prepare_corpus
from corpora.config import CorpusConfig
from corpora.stats import corpus_stats, format_stats
from corpora.synthetic import generate_documents
from corpora.synthetic.facts import FRAMES, K_DISTRACTORS, fact_documents, fact_probes
from corpora.synthetic.genres import question_for
from corpora.synthetic.lexicon import article, load_lexicon
from corpora.synthetic.world import (
    COLORS,
    DIETS,
    HABITATS,
    PET_SPECIES,
    TOOL_MATERIALS,
    build_world,
    fact_sentence_table,
)
from lab.choices import read_choices, score_choices
from lab.config import ModelConfig
from lab.model import Llama


@pytest.fixture(scope="module")
def probes():
    return fact_probes(0)


def _value(choice: str) -> str:
    """A choice's world value: " Hollyton" -> "Hollyton", " an archer" -> "archer"."""
    text = choice.strip()
    return text.split(" ", 1)[1] if text.startswith(("a ", "an ")) else text


def test_probes_are_multiple_choice_items_fixed_by_the_seed(probes, tmp_path):
    assert probes == fact_probes(0) and probes != fact_probes(1)
    path = tmp_path / "facts.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in probes))
    assert read_choices(path) == probes
    hops = collections.Counter(p["hops"] for p in probes)
    assert hops[1] >= 1000 and hops[2] >= 250  # every subject's facts; each person's friend's
    for p in probes:
        assert len(p["choices"]) == K_DISTRACTORS + 1 == len(set(p["choices"]))
        assert all(c.startswith(" ") and not c.startswith("  ") for c in p["choices"])
    # The answer's position is shuffled: each of the four slots holds about a quarter.
    positions = collections.Counter(p["answer"] for p in probes)
    assert all(abs(positions[i] / len(probes) - 0.25) < 0.04 for i in range(4))


def _truth(world, relation: str, subject: str) -> set[str]:
    """The true values, read off the world's objects (not through corpora.synthetic.facts)."""
    if relation.startswith("friend."):
        return _truth(world, relation.split(".")[1], world.person_by_name[subject].friend)
    person = world.person_by_name.get(subject)
    species = world.species_by_noun.get(subject)
    tool = next((t for t in world.tools if t.noun.singular == subject), None)
    town = next((t for t in world.towns if t.name == subject), None)
    table = {
        "lives_in": lambda: {person.town}, "occupation": lambda: {person.occupation.singular},
        "friend": lambda: {person.friend}, "pet": lambda: {person.pet.species.singular},
        "color": lambda: {species.color}, "habitat": lambda: {species.habitat},
        "diet": lambda: set(species.diet), "material": lambda: {tool.material},
        "purpose": lambda: {tool.purpose}, "user": lambda: {u.plural for u in tool.users},
        "near": lambda: {town.near}, "known_for": lambda: {town.known_for}, "town_size": lambda: {town.size},
    }
    return table[relation]()


def _same_type(world, relation: str, subject: str) -> set[str]:
    """Every value a fact of this relation may take for this subject."""
    relation = relation.split(".")[-1]
    species = world.species_by_noun.get(subject)
    names = {p.name for p in world.people}
    return {
        "lives_in": {t.name for t in world.towns}, "friend": names - {subject}, "pet": set(PET_SPECIES),
        "occupation": {o.singular for o in load_lexicon().occupations},
        "user": {o.plural for o in load_lexicon().occupations},
        "color": set(COLORS[species.animal_class]) if species else set(),
        "habitat": set(HABITATS[species.animal_class]) if species else set(),
        "diet": set(DIETS[species.animal_class]) if species else set(),
        "material": set(TOOL_MATERIALS),
    }.get(relation) or set(world.domain(relation))


def test_each_answer_is_the_worlds_fact_among_wrong_values_of_its_type(probes):
    world = build_world(0)
    for p in probes:
        values = [_value(c) for c in p["choices"]]
        truth = _truth(world, p["relation"], p["subject"])
        assert values[p["answer"]] in truth, p
        wrong = values[:p["answer"]] + values[p["answer"] + 1:]
        assert not truth & set(wrong), p
        assert set(values) <= _same_type(world, p["relation"], p["subject"]), p
        nouns = [x.noun for x in world.species + world.tools if x.noun.singular == p["subject"]]
        assert any(name in p["context"] for name in [p["subject"]] + [n.plural for n in nouns]), p
        if p["relation"] == "occupation":  # the article agrees with the word it comes before
            assert p["choices"][p["answer"]] == f" {article(values[p['answer']])} {values[p['answer']]}"
        if p["hops"] == 2:
            # The asker's own fact, where it differs, is a distractor: the one-hop answer is wrong.
            own = _truth(world, p["relation"].split(".")[1], p["subject"]) if not (
                p["relation"] == "friend.pet" and world.person_by_name[p["subject"]].pet is None) else set()
            assert own <= truth or own & set(wrong), p


@pytest.fixture(scope="module")
def training_text():
    """Every grade of training text (textbook and web) for seed 0."""
    return "\n".join(d.text for d in generate_documents(0.5, 300_000, seed=0, workers=2))


def test_no_probe_and_no_probe_frame_occurs_in_training_text(probes, training_text):
    lowered = training_text.lower()
    for p in probes:
        answer = p["choices"][p["answer"]]
        assert p["context"] not in training_text and (p["context"] + answer) not in training_text
        assert p["context"].lower() not in lowered
    # Stronger: no sentence of the text fits a frame, whatever its subject.
    for relation, frame in FRAMES.items():
        pattern = re.escape(frame).replace(re.escape("{s}"), r"[^.?!\n]+")
        assert not re.search(pattern, training_text, flags=re.IGNORECASE), relation


def test_probes_are_not_part_of_any_sentence_that_states_or_asks_for_a_fact():
    # Independent of sampling: every canonical fact sentence the world can form, true or false
    # (what textbook and contradicting web pages write), and every lesson question.
    world = build_world(0)
    stated = "\n".join(fact_sentence_table(world)).lower()
    asked = "\n".join(question_for(f) or "" for f in world.facts()).lower()
    for p in fact_probes(0):
        assert p["context"].lower() not in stated and p["context"].lower() not in asked, p


def test_prepared_corpus_carries_the_probes_and_an_older_one_still_loads(corpus_cache, tmp_path):
    cfg = CorpusConfig(train_words=12_000, val_words=2_000, pairs_per_phenomenon=10, vocab_size=320,
                       cache_dir=str(corpus_cache), workers=1, quality=0.5)
    corpus = prepare_corpus(cfg, log=lambda m: None)
    assert read_choices(corpus.facts_path) == fact_probes(0)
    entry = corpus.manifest["facts"]
    assert entry == {"file": "facts.jsonl", "n": len(fact_probes(0)),
                     "n_two_hop": sum(p["hops"] == 2 for p in fact_probes(0))}
    assert "facts.jsonl" in corpus.manifest["files"]
    assert "knowledge probes" in format_stats(corpus_stats(corpus))
    # A corpus prepared before the probes existed: no entry, no file; it loads, without probes.
    old = tmp_path / corpus.path.name
    shutil.copytree(corpus.path, old)
    manifest = json.loads((old / "manifest.json").read_text())
    del manifest["facts"], manifest["files"]["facts.jsonl"]
    (old / "facts.jsonl").unlink()
    (old / "manifest.json").write_text(json.dumps(manifest))
    assert load_prepared(old).facts_path is None
    # Damage is still caught: the probes are checksummed like every other file.
    (corpus.path / "facts.jsonl").write_text("{}\n")
    with pytest.raises(ValueError, match="facts.jsonl"):
        load_prepared(corpus.path)
    shutil.rmtree(corpus.path)  # the shared cache must not keep a damaged corpus


# --- the score moves with knowledge only ---------------------------------------------------


# About 30 s of one core for the whole test; accuracy rises with steps (0.342 after 800).
STEPS, MARGIN = 400, 0.03


def test_a_model_trained_on_the_facts_beats_chance_and_an_untrained_one_does_not(tmp_path):
    world = build_world(0)
    one_hop = [p for p in fact_probes(0) if p["hops"] == 1]
    # A tokenizer of the corpus's own kind (its stream mixes both grades), not of the facts alone:
    # one trained on the facts would give every true value fewer tokens than a distractor.
    stream = [d.text for d in generate_documents(0.5, 40_000, seed=0, split="tokenizer", workers=1)]
    tokenizer = bpe.train_bpe(stream, 1024, tmp_path / "tokenizer.json")
    bos = bpe.special_ids(tokenizer)["bos_id"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the same arithmetic, so the same result, on every run
    try:
        torch.manual_seed(0)
        model = Llama(ModelConfig(d_model=64, n_layers=2, n_heads=2, n_kv_heads=1,
                                  vocab_size=tokenizer.get_vocab_size()))
        untrained = score_choices(model, tokenizer, one_hop, bos_id=bos)
        _train(model, tokenizer, world, steps=STEPS)
        trained = score_choices(model, tokenizer, one_hop, bos_id=bos)
    finally:
        torch.set_num_threads(threads)
    print(f"untrained {untrained['accuracy']:.3f} {untrained['accuracy_ci']}, "
          f"trained {trained['accuracy']:.3f} {trained['accuracy_ci']}, chance {trained['chance']:.3f}")
    assert trained["chance"] == pytest.approx(0.25)
    low, high = untrained["accuracy_ci"]
    assert low <= 0.25 <= high
    # Measured: 0.306 [0.280, 0.332] after 400 steps (28 s of one core), 0.342 after 800;
    # untrained 0.241 [0.218, 0.266].
    assert trained["accuracy_ci"][0] > 0.25 and trained["accuracy"] > 0.25 + MARGIN


def _train(model, tokenizer, world, steps: int, seq_len: int = 64, batch: int = 32) -> None:
    rng = random.Random(0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-3, weight_decay=0.0)
    done = 0
    while done < steps:
        data = torch.tensor(tokenizer.encode(fact_documents(world, rng)).ids)
        starts = torch.randperm((len(data) - 1) // seq_len) * seq_len
        for i in range(0, len(starts) - batch + 1, batch):
            if done == steps:
                return
            rows = starts[i:i + batch]
            inputs = torch.stack([data[j:j + seq_len] for j in rows])  # (B, T)
            targets = torch.stack([data[j + 1:j + seq_len + 1] for j in rows])
            loss = model(inputs, targets)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            done += 1
