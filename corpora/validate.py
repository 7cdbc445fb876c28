"""The rules of a corpus config that need no data: a bad field is refused before anything is
generated, read or written."""
from __future__ import annotations

from common.errors import ConfigError
from corpora import sources
from corpora import tokenizer as bpe
from corpora.config import CorpusConfig


def validate_corpus_config(cfg: CorpusConfig) -> None:
    """Every check that needs no data; raises ConfigError naming the field."""
    known = ("synthetic",) + tuple(sources.SOURCES)
    if cfg.name not in known:
        raise ConfigError("corpus.name", f"unknown corpus {cfg.name!r}; choose one of {', '.join(known)}")
    if not 0.0 <= cfg.quality <= 1.0:
        raise ConfigError("corpus.quality", f"must be in [0, 1], got {cfg.quality}")
    if cfg.name != "synthetic" and cfg.quality != 1.0:
        raise ConfigError("corpus.quality", f"only the synthetic corpus has a quality dial; "
                                            f"{cfg.name} is used as it is (leave quality at 1.0)")
    if cfg.vocab_size < bpe.MIN_VOCAB:
        raise ConfigError("corpus.vocab_size", f"{cfg.vocab_size} is too small for the byte alphabet: "
                                               f"byte-level BPE needs at least {bpe.MIN_VOCAB} "
                                               f"(256 bytes + {len(bpe.SPECIAL_TOKENS)} special tokens)")
    if cfg.vocab_size > 2**32:
        raise ConfigError("corpus.vocab_size", "must fit uint32")
    if cfg.train_words is not None and cfg.train_words < 1:
        raise ConfigError("corpus.train_words", f"must be >= 1 (or null for the whole source), got {cfg.train_words}")
    if cfg.val_words < 1:
        raise ConfigError("corpus.val_words", f"must be >= 1, got {cfg.val_words}")
    if cfg.pairs_per_phenomenon < 0:
        raise ConfigError("corpus.pairs_per_phenomenon", f"must be >= 0, got {cfg.pairs_per_phenomenon}")
    if cfg.seed < 0:
        raise ConfigError("corpus.seed", f"must be >= 0, got {cfg.seed}")
    if cfg.workers < 0:
        raise ConfigError("corpus.workers", f"must be >= 0 (0 = all cores), got {cfg.workers}")
    if cfg.name == "synthetic":
        if cfg.train_words is None:
            raise ConfigError("corpus.train_words", "the synthetic corpus is generated: give a size in words")
        for field in ("path", "hub_id", "min_score"):
            if getattr(cfg, field) is not None:
                raise ConfigError(f"corpus.{field}", "does not apply to the synthetic corpus")
    else:
        sources.validate_source(cfg)
