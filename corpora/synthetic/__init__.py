"""The embedded synthetic corpus: textbook-grade and web-grade English from our own grammar.

Generated deterministically from a seed, so a new user gets a corpus in seconds with no
download. See the README section "The synthetic corpus" for what is in it.
"""
from __future__ import annotations

from typing import Mapping

from common.errors import ConfigError
from corpora.synthetic.generate import (
    GENERATOR_REVISION,
    SPLITS,
    Document,
    StreamSpec,
    count_words,
    defect_rates_tuple,
    generate_stream,
    resolve_workers,
)
from corpora.synthetic.pairs import minimal_pairs
from corpora.synthetic.web import WEB_DEFECT_RATES

__all__ = ["GENERATOR_REVISION", "Document", "WEB_DEFECT_RATES", "generate_documents", "minimal_pairs",
           "count_words"]


def generate_documents(quality: float, n_words: int, seed: int, split: str = "train",
                       workers: int = 0, progress: bool = False,
                       defect_rates: Mapping[str, float] | None = None) -> list[Document]:
    """Documents of `split` until `n_words` whitespace-separated words are reached.

    quality: fraction of textbook-grade documents (1 = textbook, 0 = web); ignored for
        "val_clean", which is always textbook. Each document's grade is fixed by its index.
    split: "train", "val", "val_clean" or "tokenizer", disjoint random streams over one
        world (the world depends on `seed` only).
    workers: processes (0 = all cores); the output does not depend on it.
    defect_rates: per-document defect probabilities of web documents (default
        WEB_DEFECT_RATES); a key left out is never applied.
    """
    if not 0.0 <= quality <= 1.0:
        raise ConfigError("corpus.quality", f"must be in [0, 1], got {quality}")
    if split not in SPLITS:
        raise ConfigError("corpus.split", f"must be one of {', '.join(SPLITS)}, got {split!r}")
    if n_words < 0:
        raise ConfigError("corpus.train_words", f"must be non-negative, got {n_words}")
    if defect_rates is not None:
        unknown = set(defect_rates) - set(WEB_DEFECT_RATES)
        bad = [k for k, v in defect_rates.items() if not 0.0 <= v <= 1.0]
        if unknown or bad:
            raise ConfigError("corpus.defect_rates",
                              f"keys must be in {sorted(WEB_DEFECT_RATES)} with rates in [0, 1]")
    spec = StreamSpec(seed=seed, split=split, quality=float(quality),
                      defect_rates=defect_rates_tuple(defect_rates))
    return generate_stream(spec, n_words, resolve_workers(workers), progress)
