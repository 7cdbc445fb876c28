"""Typed configuration of a corpus: which source, how much, and how it is tokenized."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from common.errors import ConfigError


@dataclass
class CorpusConfig:
    # Registry name: see corpora.sources.SOURCES ("synthetic" is the embedded default).
    name: str = "synthetic"
    # Fraction of textbook-grade documents (synthetic only): 1 = textbook, 0 = web.
    quality: float = 1.0
    # Size of the training split to prepare, in words (BabyLM's unit). For the synthetic
    # corpus this many words are generated; for real sources it caps what is read.
    # None reads the whole source.
    train_words: int | None = 2_000_000
    # Held-out validation split size in words (own distribution, and the clean split).
    val_words: int = 100_000
    # Minimal pairs per phenomenon generated for evaluation (synthetic only).
    pairs_per_phenomenon: int = 500
    # Byte-level BPE vocabulary (includes the special tokens bos/eos/pad).
    vocab_size: int = 4096
    # Seed of the generator and of any sampling in a loader.
    seed: int = 0
    # Local file or directory (name="local"), or a BabyLM directory (babylm_* with a path).
    path: str | None = None
    # Hugging Face dataset id / config / split overrides for hub sources (None: registry default).
    hub_id: str | None = None
    hub_config: str | None = None
    text_field: str | None = None
    # FineWeb-Edu: keep documents whose educational score is at least this.
    min_score: float | None = None
    # Local files: the column min_score is compared with (fineweb_edu reads its 'score').
    score_field: str | None = None
    # name="mix": the named parts, each a corpus config ({name: fineweb_edu, min_score: 3}), and
    # each part's share of the mixture's words (normalised; see corpora.mix).
    parts: dict = field(default_factory=dict)
    weights: dict = field(default_factory=dict)
    # Train the tokenizer on this corpus (a corpus config) instead of on this one, so that every
    # level of a data_quality grid shares one tokenizer. null: this corpus's own.
    tokenizer_from: dict | None = None
    # val_clean, the split every run is validated on, is this corpus's held-out split instead of
    # this one's own, so that every level of a data_quality grid is validated on the same tokens.
    heldout_from: dict | None = None
    # Where prepared corpora (tokenizer + token shards) are cached, keyed by this config.
    cache_dir: str = "cache/corpora"
    # Apply the quality filters and near-duplicate removal (corpora.quality) to the training
    # split before tokenizing; what was removed and why is printed and kept in the manifest.
    clean: bool = False
    # Worker processes for generation/tokenization (0 = all cores).
    workers: int = 0
    extra: dict = field(default_factory=dict)


# What a corpus derived from another (a mix's part, a shared tokenizer's or held-out set's corpus)
# takes from it unless its own config says otherwise.
INHERITED = ("train_words", "val_words", "vocab_size", "seed", "cache_dir", "workers")


def corpus_from(spec: dict, parent: CorpusConfig, field_name: str) -> CorpusConfig:
    """The corpus config `spec` (a dict of CorpusConfig fields) describes, with the INHERITED fields
    it leaves out taken from `parent`; ConfigError under `field_name` for a field that is none.
    The vocabulary is always the parent's: one tokenizer serves both."""
    if not isinstance(spec, dict):
        raise ConfigError(field_name, f"must be a corpus config (a mapping of corpus fields), got {spec!r}")
    known = {f.name for f in dataclasses.fields(CorpusConfig)}
    unknown = sorted(set(map(str, spec)) - known)
    if unknown:
        raise ConfigError(f"{field_name}.{unknown[0]}", "unknown corpus field")
    if spec.get("vocab_size", parent.vocab_size) != parent.vocab_size:
        raise ConfigError(f"{field_name}.vocab_size", f"must be the corpus's own ({parent.vocab_size}): "
                                                      "one tokenizer serves both")
    values = {name: getattr(parent, name) for name in INHERITED}
    values.update({str(k): (dict(v) if isinstance(v, dict) else v) for k, v in spec.items()})
    return CorpusConfig(**values)


def tokenizer_corpus(cfg: CorpusConfig) -> CorpusConfig:
    """The corpus whose training split trains the tokenizer of `cfg`."""
    if cfg.tokenizer_from is None:
        return cfg
    return tokenizer_corpus(corpus_from(cfg.tokenizer_from, cfg, "corpus.tokenizer_from"))


def heldout_corpus(cfg: CorpusConfig) -> CorpusConfig:
    """The corpus whose held-out split is the val_clean split of `cfg`."""
    if cfg.heldout_from is None:
        return cfg
    return corpus_from(cfg.heldout_from, cfg, "corpus.heldout_from")
