"""Typed configuration of a corpus: which source, how much, and how it is tokenized."""
from __future__ import annotations

from dataclasses import dataclass, field


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
    # Where prepared corpora (tokenizer + token shards) are cached, keyed by this config.
    cache_dir: str = "cache/corpora"
    # Apply the quality filters and near-duplicate removal (corpora.quality) to the training
    # split before tokenizing; what was removed and why is printed and kept in the manifest.
    clean: bool = False
    # Worker processes for generation/tokenization (0 = all cores).
    workers: int = 0
    extra: dict = field(default_factory=dict)
