"""The text a corpus is made of: each split's documents (generated or read, optionally cleaned)
and the stream its tokenizer is trained on."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from corpora import sources
from corpora.config import CorpusConfig
from corpora.keys import SYNTHETIC_TOKENIZER_QUALITY, tokenizer_words
from corpora.sources import count_words


@dataclass
class SplitDocs:
    # A list, or for a real source's split a stream read once: a large source (or an uncapped
    # one, train_words=None) is tokenized as it is read, never held in memory whole.
    texts: list[str] | Iterator[str]
    labels: list[dict] | None = None  # per-document ground truth (synthetic only)
    parts: list[tuple[str, int]] | None = None  # a mix: (part, words) of each document (corpora.mix)


def split_documents(cfg: CorpusConfig, split: str, progress: bool) -> SplitDocs:
    """The documents of `split` (train, val or val_clean) as the config asks for them."""
    if split == "val_clean" and cfg.heldout_from is not None:  # a grid's one held-out set
        from corpora.config import heldout_corpus

        return split_documents(heldout_corpus(cfg), "val", progress)
    if cfg.name == "mix":
        from corpora.mix import mixed_split

        texts, parts = mixed_split(cfg, "train" if split == "train" else "val",
                                   cfg.train_words if split == "train" else cfg.val_words)
        return SplitDocs(texts, parts=parts)
    if cfg.name == "synthetic":
        words = cfg.train_words if split == "train" else cfg.val_words
        return _synthetic_split(cfg, split, words, progress)
    source_split = "train" if split == "train" else "val"
    words = cfg.train_words if split == "train" else cfg.val_words
    return SplitDocs(sources.take_words(sources.iter_documents(cfg, source_split), words))


def _synthetic_split(cfg: CorpusConfig, split: str, words: int, progress: bool) -> SplitDocs:
    from corpora.synthetic import generate_documents

    docs = generate_documents(cfg.quality, words, cfg.seed, split=split, workers=cfg.workers,
                              progress=progress)
    labels = [{"doc_id": d.doc_id, "grade": d.grade, "defects": list(d.defects)} for d in docs]
    return SplitDocs([d.text for d in docs], labels)


def tokenizer_texts(cfg: CorpusConfig, progress: bool) -> Iterator[str]:
    """What the tokenizer of `cfg` is trained on: never a validation document."""
    if cfg.name == "synthetic":
        from corpora.synthetic import generate_documents

        docs = generate_documents(SYNTHETIC_TOKENIZER_QUALITY, tokenizer_words(cfg), cfg.seed,
                                  split="tokenizer", workers=cfg.workers, progress=progress)
        return (d.text for d in docs)
    return sources.take_words(sources.iter_documents(cfg, "train"), tokenizer_words(cfg))


def clean(docs: SplitDocs, log) -> tuple[SplitDocs, dict]:
    """The documents the quality filters and deduplication keep, with a report for the manifest."""
    from corpora.quality import clean_documents

    texts = list(docs.texts)  # near-duplicate removal compares every document with every other
    kept = clean_documents(texts, log=log)
    report = {"documents_before": len(texts), "documents_after": len(kept),
              "words_before": sum(map(count_words, texts)),
              "words_after": sum(count_words(texts[i]) for i in kept)}
    labels = [docs.labels[i] for i in kept] if docs.labels is not None else None
    return SplitDocs([texts[i] for i in kept], labels), report
