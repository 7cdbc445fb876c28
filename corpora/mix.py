"""corpus=mix: named corpora interleaved into one, each part's share of the words set by its weight.

Interleave. Each split is drawn document by document: the next document comes from part i with
probability proportional to weight_i / mean_words_i, its mean document length so far (from its
first document on), so each part's expected share of the *words* is its normalised weight,
whatever its documents' lengths. The draws come from a generator seeded by (corpus.seed, split):
the same config gives the same mixture, document for document. Each part is read as it would be
alone (its own hold-out, min_score, files), so a mix's val split is the parts' val splits mixed.
The mixture ends when a drawn part runs out, so a short part never lets the others crowd it out.

The stream does not depend on the word budget, so the tokenizer (trained on the stream's start)
is the same for every training size. What each part realised of a split (documents, words,
tokens and their shares) goes into the manifest (`realized_shares`).
"""
from __future__ import annotations

import random
from pathlib import Path
from typing import Iterator

from common.errors import ConfigError
from corpora.config import CorpusConfig, corpus_from

# Fields of a mix that belong to its parts: set them in corpus.parts.<name>.
_PART_FIELDS = ("path", "hub_id", "hub_config", "text_field", "min_score", "score_field")


def parts_of(cfg: CorpusConfig) -> dict[str, CorpusConfig]:
    """Each named part as a corpus config (seed, vocabulary and cache as the mix's). Its sizes are
    not the mix's: the mix takes what its own budgets need of each part's stream."""
    parts = {}
    for name, spec in cfg.parts.items():
        part = corpus_from(spec, cfg, f"corpus.parts.{name}")
        part.train_words, part.val_words = None, CorpusConfig.val_words  # read as the mix's budgets need
        parts[str(name)] = part
    return parts


def shares(cfg: CorpusConfig) -> dict[str, float]:
    """Each part's weight over the sum of the weights: its expected share of the words."""
    total = sum(float(cfg.weights[name]) for name in cfg.parts)
    return {str(name): float(cfg.weights[name]) / total for name in cfg.parts}


def validate_mix(cfg: CorpusConfig) -> None:
    """A mix's own rules, then each part's (its errors named corpus.parts.<name>.<field>)."""
    from corpora.validate import validate_corpus_config

    if len(cfg.parts) < 2:
        raise ConfigError("corpus.parts", f"a mix needs at least two named parts, got {len(cfg.parts)}")
    if set(map(str, cfg.weights)) != set(map(str, cfg.parts)):
        raise ConfigError("corpus.weights", f"must give one weight per part ({', '.join(map(str, cfg.parts))}), "
                                            f"got {', '.join(map(str, cfg.weights)) or 'none'}")
    for name, weight in cfg.weights.items():
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0:
            raise ConfigError(f"corpus.weights.{name}", f"must be a number >= 0, got {weight!r}")
    if sum(cfg.weights.values()) <= 0:
        raise ConfigError("corpus.weights", "at least one weight must be > 0")
    for field_name in _PART_FIELDS:
        if getattr(cfg, field_name) is not None:
            raise ConfigError(f"corpus.{field_name}", "belongs to a part of a mix: set corpus.parts.<name>."
                                                      f"{field_name}")
    if cfg.clean:
        raise ConfigError("corpus.clean", "not applied to a mix (its record of which part each document "
                                          "came from would no longer line up): clean the parts' files first")
    for name, spec in cfg.parts.items():
        for field_name in ("train_words", "val_words", "clean"):  # the mix's, or not applied: never ignored silently
            if isinstance(spec, dict) and spec.get(field_name) not in (None, False):
                raise ConfigError(f"corpus.parts.{name}.{field_name}", f"a part takes its share of the mix's "
                                                                       f"corpus.{field_name}, not one of its own")
    for name, part in parts_of(cfg).items():
        if part.name in ("mix", "synthetic"):
            raise ConfigError(f"corpus.parts.{name}.name", f"a part of a mix is a real corpus, not {part.name!r} "
                                                           "(the synthetic corpus mixes its grades with corpus.quality)")
        try:
            validate_corpus_config(part)
        except ConfigError as e:
            raise ConfigError(f"corpus.parts.{name}.{e.field.removeprefix('corpus.')}", e.reason) from None


def iter_mixed(cfg: CorpusConfig, split: str, seen: list[str] | None = None) -> Iterator[str]:
    """The documents of `split` ("train" or "val") of the mix, in their seeded order; the part
    of each is appended to `seen` (when given) as it is yielded."""
    from corpora.sources import count_words, iter_documents

    weights = shares(cfg)
    streams = {name: iter_documents(part, split) for name, part in parts_of(cfg).items() if weights[name] > 0}
    heads: dict[str, str] = {}
    for name, stream in streams.items():
        head = next(stream, None)
        if head is None:
            return  # a part with no document: no mixture at these weights
        heads[name] = head
    # Each part's mean document length, in words: of its first document until it has been drawn.
    words = {name: count_words(head) for name, head in heads.items()}
    docs = {name: 1 for name in heads}
    drawn: dict[str, bool] = {}  # the prior is the first document itself
    names = sorted(streams)  # a fixed order for the draws, whatever the config's key order
    rng = random.Random(f"mix:{cfg.seed}:{split}")
    while True:
        # Expected words per draw from part i are its mean length: dividing by it makes the
        # expected share of words, not of documents, follow the weights.
        rates = [weights[n] * docs[n] / max(1, words[n]) for n in names]
        pick = rng.random() * sum(rates)
        name = names[-1]
        for n, rate in zip(names, rates):
            if pick < rate:
                name = n
                break
            pick -= rate
        text = heads[name]
        if drawn.get(name):
            docs[name] += 1
            words[name] += count_words(text)
        drawn[name] = True
        if seen is not None:
            seen.append(name)
        yield text
        nxt = next(streams[name], None)
        if nxt is None:
            return
        heads[name] = nxt


def mixed_split(cfg: CorpusConfig, split: str, n_words: int | None) -> tuple[Iterator[str], list[tuple[str, int]]]:
    """(the split's documents cut to n_words words, a list filled as they stream: (part, words)
    of each document yielded, in order)."""
    from corpora.sources import count_words, take_words

    drawn: list[str] = []
    record: list[tuple[str, int]] = []

    def texts() -> Iterator[str]:
        for text in take_words(iter_mixed(cfg, split, drawn), n_words):
            record.append((drawn[-1], count_words(text)))  # take_words yields the document it just drew
            yield text

    return texts(), record


def realized_shares(record: list[tuple[str, int]], directory: Path, info: dict, eos_id: int) -> dict:
    """{part: documents, words, tokens, and their shares} of a tokenized split, the tokens read off
    its shard (each document ends with EOS, and EOS occurs nowhere else)."""
    import numpy as np

    from corpora.shards import open_shard

    tokens = open_shard(directory, info)
    ends = np.flatnonzero(np.asarray(tokens) == eos_id)
    if len(ends) != len(record):
        raise ValueError(f"{info['file']}: {len(ends)} documents in the shard, {len(record)} drawn")
    lengths = np.diff(np.concatenate([[-1], ends]))  # tokens per document, its EOS included
    out: dict = {}
    for (name, n_words), n_tokens in zip(record, lengths.tolist()):
        part = out.setdefault(name, {"documents": 0, "words": 0, "tokens": 0})
        part["documents"] += 1
        part["words"] += n_words
        part["tokens"] += n_tokens
    totals = {key: max(1, sum(p[key] for p in out.values())) for key in ("documents", "words", "tokens")}
    for part in out.values():
        for key, total in totals.items():
            part[f"share_{key}"] = round(part[key] / total, 6)
    return dict(sorted(out.items()))
