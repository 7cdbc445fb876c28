"""The rules of a corpus config that need no data: a bad field is refused before anything is
generated, read or written."""
from __future__ import annotations

from common.errors import ConfigError
from corpora import sources
from corpora import tokenizer as bpe
from corpora.config import CorpusConfig, heldout_corpus, tokenizer_corpus


def validate_corpus_config(cfg: CorpusConfig) -> None:
    """Every check that needs no data; raises ConfigError naming the field."""
    known = ("synthetic", "mix") + tuple(sources.SOURCES)
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
        for field in ("path", "hub_id", "min_score", "score_field"):
            if getattr(cfg, field) is not None:
                raise ConfigError(f"corpus.{field}", "does not apply to the synthetic corpus")
    elif cfg.name == "mix":
        from corpora.mix import validate_mix

        validate_mix(cfg)
    else:
        sources.validate_source(cfg)
    if cfg.name != "mix" and (cfg.parts or cfg.weights):
        raise ConfigError("corpus.parts" if cfg.parts else "corpus.weights", "only a mix has parts (corpus=mix)")
    _validate_borrowed(cfg)


def _validate_borrowed(cfg: CorpusConfig) -> None:
    """The corpora whose tokenizer and held-out split this one borrows, checked as corpora of their
    own (errors named corpus.tokenizer_from.<field>, corpus.heldout_from.<field>)."""
    for field, derive in (("tokenizer_from", tokenizer_corpus), ("heldout_from", heldout_corpus)):
        if getattr(cfg, field) is None:
            continue
        other = derive(cfg)  # ConfigError for a field that is not a corpus field
        try:
            validate_corpus_config(other)
        except ConfigError as e:
            raise ConfigError(f"corpus.{field}.{e.field.removeprefix('corpus.')}", e.reason) from None
