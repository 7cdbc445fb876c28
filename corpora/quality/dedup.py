"""Exact and near-duplicate removal: hashes of normalised text, then MinHash-LSH.

Exact duplicates: documents whose normalised text (NFKC, lower case, HTML tags and
punctuation removed, whitespace collapsed) hashes the same as an earlier document's.
Near duplicates: MinHash signatures of word 5-gram shingles (Broder 1997; as in GPT-3,
Gopher and FineWeb), indexed in a `datasketch.MinHashLSH`; a document whose candidates
include an earlier kept document with shingle Jaccard similarity >= `threshold` is removed
as a near duplicate of it. The first document of each cluster is kept. Candidates from the
LSH are verified with the exact Jaccard of the shingle sets, so the LSH only decides which
pairs are compared (a false positive of the LSH never removes a document).
"""
from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable

from datasketch import MinHash, MinHashLSH

from corpora.quality.filters import FilterConfig, drop_boilerplate_lines

_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9]*(?:\s[^<>]*)?/?>|&[A-Za-z]+;|&#\d+;")
_NON_WORD = re.compile(r"[^\w]+")


@dataclass
class DedupConfig:
    exact: bool = True
    near: bool = True
    # Jaccard similarity of word-5-gram shingle sets above which two documents are near
    # duplicates. 0.8 is the usual value for web text (e.g. GPT-3's fuzzy dedup, FineWeb's
    # 0.75-0.8); our reposted copies also carry their own page chrome and markup (a short
    # page plus a different header and footer), so pairs sit lower: 0.5 keeps recall while
    # distinct synthetic pages stay far below it (see evaluate.py).
    threshold: float = 0.5
    ngram: int = 5          # words per shingle
    num_perm: int = 128     # MinHash permutations
    seed: int = 1           # MinHash seed
    # Drop boilerplate lines (filters.is_boilerplate_line: cookie banners, navigation bars,
    # "powered by" footers) before hashing: site chrome is the same on every page of a site
    # and is not what makes two pages copies of each other. Without it, a short reposted
    # page with a different site's header and footer falls to Jaccard ~0.3-0.5.
    strip_boilerplate: bool = True
    lsh_margin: float = 0.1  # LSH candidate threshold = threshold - lsh_margin


def normalise(text: str) -> str:
    """NFKC, lower case, no HTML tags/entities or punctuation, single spaces."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = _TAG.sub(" ", text)
    return _NON_WORD.sub(" ", text).strip()


def text_hash(text: str) -> bytes:
    return hashlib.blake2b(normalise(text).encode("utf-8"), digest_size=16).digest()


def shingles(normalised: str, n: int = 5) -> set[bytes]:
    """Word n-grams of a normalised text (the whole text if it has fewer than n words)."""
    words = normalised.split()
    if len(words) < n:
        return {" ".join(words).encode("utf-8")} if words else set()
    return {" ".join(words[i:i + n]).encode("utf-8") for i in range(len(words) - n + 1)}


def jaccard(a: set, b: set) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


@dataclass
class DedupReport:
    n_docs: int
    kept: list[int]
    # doc index -> (kind "exact" | "near", index of the kept document it duplicates, jaccard)
    removed: dict[int, tuple[str, int, float]] = field(default_factory=dict)

    def reason(self, index: int) -> str | None:
        if index not in self.removed:
            return None
        kind, of, sim = self.removed[index]
        if kind == "exact":
            return f"exact duplicate of doc {of}"
        return f"near duplicate of doc {of} (jaccard ~{sim:.2f})"

    def counts(self) -> Counter:
        return Counter(kind for kind, _, _ in self.removed.values())

    def summary(self) -> str:
        n = max(1, self.n_docs)
        counts = self.counts()
        lines = [f"deduplication: kept {len(self.kept)}/{self.n_docs} documents "
                 f"({len(self.kept) / n:.1%}), removed {len(self.removed)}"]
        for kind, label in (("exact", "exact duplicates"), ("near", "near duplicates")):
            if counts[kind]:
                example = next(i for i, r in self.removed.items() if r[0] == kind)
                lines.append(f"  {label:<18} {counts[kind]:>7}  ({counts[kind] / n:6.1%})  "
                             f"e.g. doc {example}: {self.reason(example)}")
        return "\n".join(lines)


def content_text(text: str, cfg: DedupConfig) -> str:
    """The text deduplication compares: without boilerplate lines if cfg.strip_boilerplate."""
    if not cfg.strip_boilerplate:
        return text
    return drop_boilerplate_lines(text, _BOILERPLATE_CFG)[0]


_BOILERPLATE_CFG = FilterConfig()  # default phrase list and navigation rule


def deduplicate(texts: Iterable[str], cfg: DedupConfig | None = None) -> DedupReport:
    """Keep the first document of each exact or near-duplicate cluster, in input order."""
    cfg = cfg or DedupConfig()
    # The LSH bands are tuned a little below the threshold so that pairs just above it are
    # rarely missed; the exact Jaccard of the candidates then decides.
    lsh = (MinHashLSH(threshold=max(0.05, cfg.threshold - cfg.lsh_margin), num_perm=cfg.num_perm)
           if cfg.near else None)
    # One MinHash object reused for its permutations; each document gets a fresh copy.
    template = MinHash(num_perm=cfg.num_perm, seed=cfg.seed)
    seen: dict[bytes, int] = {}
    kept_shingles: dict[int, set[bytes]] = {}
    kept: list[int] = []
    removed: dict[int, tuple[str, int, float]] = {}
    n = 0
    for index, text in enumerate(texts):
        n += 1
        norm = normalise(content_text(text, cfg))
        if cfg.exact:
            digest = hashlib.blake2b(norm.encode("utf-8"), digest_size=16).digest()
            if digest in seen:
                removed[index] = ("exact", seen[digest], 1.0)
                continue
            seen[digest] = index
        if lsh is not None:
            grams = shingles(norm, cfg.ngram)
            m = template.copy()
            if grams:
                m.update_batch(list(grams))
            best, best_sim = -1, -1.0
            for candidate in lsh.query(m):
                sim = jaccard(grams, kept_shingles[candidate])
                if sim > best_sim or (sim == best_sim and candidate < best):
                    best, best_sim = candidate, sim
            if best >= 0 and best_sim >= cfg.threshold:
                removed[index] = ("near", best, best_sim)
                continue
            lsh.insert(index, m)
            kept_shingles[index] = grams
        kept.append(index)
    return DedupReport(n, kept, removed)


__all__ = ["DedupConfig", "DedupReport", "deduplicate", "normalise", "shingles", "jaccard",
           "text_hash"]
