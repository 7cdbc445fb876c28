"""Why the knowledge probes sit at chance at scale=cpu: a small model learns a fact in the sentence
frame it read it in, and hardly at all in a frame it never saw that fact in.

A tiny Llama is trained on nothing but the world's fact sentences (seed 0), then every one-hop
probe of facts.jsonl is scored two ways: in its own frame (never written by any genre, as the
probes ship) and in the fact's training frame (render_fact's sentence cut before its value).
With --paraphrase the training text states each fact in one of two frames, the training one or
the probe one, chosen per fact by a hash; each fact is then asked in the frame it was *not*
trained in, which the model did see with other facts: knowledge moved between paraphrases.
Only facts with both frames count (relations "user" and "town_size" have no training frame
to cut: see training_frame), so both columns hold the same probes.

Usage: python bench/fact_transfer.py [--steps 800] [--d-model 64] [--layers 2] [--paraphrase]
Measured figures are in bench/RESULTS.md (issue 18).
"""
from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
import zlib
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from corpora import tokenizer as bpe
from corpora.synthetic import generate_documents
from corpora.synthetic.facts import UNPROBED, answer_text, cloze, fact_documents, fact_probes
from corpora.synthetic.lexicon import article
from corpora.synthetic.world import Fact, build_world, render_fact
from lab.choices import score_choices
from lab.config import ModelConfig
from lab.model import Llama

PLACEHOLDER = "qqq"


def probe_key(world, fact: Fact) -> tuple[str, str]:
    """(relation, subject as a probe names it): species and tools by their singular noun."""
    if fact.relation in ("color", "habitat", "diet"):
        return fact.relation, next(s.noun.singular for s in world.species if s.noun.plural == fact.subject)
    if fact.relation in ("purpose", "user"):
        return fact.relation, next(t.noun.singular for t in world.tools if t.noun.plural == fact.subject)
    return fact.relation, fact.subject


def training_frame(fact: Fact) -> str | None:
    """render_fact's sentence cut before the value ("Mira lives in"); None where no such cut
    exists: the value comes first ("Farmers use hammers.") or its article varies with it
    ("Fernby is an old town." against "Fernby is a busy town.")."""
    if fact.relation == "town_size":
        return None
    sentence = render_fact(Fact(fact.relation, fact.subject, PLACEHOLDER))
    cut = f" {article(PLACEHOLDER)} {PLACEHOLDER}" if fact.relation == "occupation" else f" {PLACEHOLDER}"
    return sentence.split(cut)[0] if cut in sentence else None


def written_subject(fact: Fact) -> str:
    """The subject as the probe frame writes it (a tool's material is asked of "a hammer")."""
    return f"{article(fact.subject)} {fact.subject}" if fact.relation == "material" else fact.subject


def probe_sentence(fact: Fact) -> str:
    """The fact stated in its probe frame, as training text would state it under --paraphrase."""
    return cloze(fact.relation, written_subject(fact)) + answer_text(fact.relation, fact.value) + "."


def in_probe_frame(fact: Fact, paraphrase: bool) -> bool:
    """Whether training text states this fact in its probe frame (only under --paraphrase, for
    half the facts by a hash; facts without a training frame are left out of the comparison)."""
    if not paraphrase:
        return False
    return zlib.crc32(f"{fact.relation}|{fact.subject}".encode()) % 2 == 1


def train(model, tokenizer, world, steps: int, paraphrase: bool, seq_len: int = 64, batch: int = 32) -> None:
    rng = random.Random(0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-3, weight_decay=0.0)
    done = 0
    def render(fact: Fact) -> str:
        return probe_sentence(fact) if in_probe_frame(fact, paraphrase) else render_fact(fact)

    while done < steps:
        data = torch.tensor(tokenizer.encode(fact_documents(world, rng, render)).ids)
        starts = torch.randperm((len(data) - 1) // seq_len) * seq_len
        for i in range(0, len(starts) - batch + 1, batch):
            if done == steps:
                return
            rows = starts[i:i + batch]
            loss = model(torch.stack([data[j:j + seq_len] for j in rows]),
                         torch.stack([data[j + 1:j + seq_len + 1] for j in rows]))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            done += 1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=800)
    ap.add_argument("--d-model", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--paraphrase", action="store_true")
    args = ap.parse_args()

    world = build_world(0)
    facts = {probe_key(world, f): f for f in world.facts() if f.relation not in UNPROBED}
    seen, unseen = [], []  # probes asked in a frame the fact was / was not trained in
    for probe in (p for p in fact_probes(0) if p["hops"] == 1):
        fact = facts[(probe["relation"], probe["subject"])]
        frame = training_frame(fact)
        if frame is None:
            continue  # the same probes in both columns: only those askable in both frames
        if in_probe_frame(fact, args.paraphrase):
            seen.append(dict(probe))  # stated in the probe frame: the probe itself is seen
            unseen.append({**probe, "context": frame})
        else:
            unseen.append(dict(probe))
            seen.append({**probe, "context": frame})

    stream = [d.text for d in generate_documents(0.5, 40_000, seed=0, split="tokenizer", workers=1)]
    with tempfile.TemporaryDirectory() as scratch:
        tokenizer = bpe.train_bpe(stream, 1024, Path(scratch) / "tokenizer.json")
    bos = bpe.special_ids(tokenizer)["bos_id"]
    torch.set_num_threads(1)  # the same arithmetic on every machine, as the test
    torch.manual_seed(0)
    model = Llama(ModelConfig(d_model=args.d_model, n_layers=args.layers, n_heads=max(1, args.d_model // 32),
                              n_kv_heads=1, vocab_size=tokenizer.get_vocab_size()))
    start = time.perf_counter()
    train(model, tokenizer, world, args.steps, args.paraphrase)
    print(f"d_model {args.d_model}, {args.layers} layers, {args.steps} steps of 32 x 64 tokens "
          f"({time.perf_counter() - start:.0f} s), paraphrase={args.paraphrase}; chance 0.25")
    for name, items in (("frame the fact was trained in", seen), ("frame the fact was never in", unseen)):
        scores = score_choices(model, tokenizer, items, bos_id=bos)
        low, high = scores["accuracy_ci"]
        print(f"  {name:32s} {scores['accuracy']:.3f} [{low:.3f}, {high:.3f}]  ({len(items)} probes)")


if __name__ == "__main__":
    main()
