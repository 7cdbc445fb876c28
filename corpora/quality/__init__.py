"""Document-level quality tools: heuristic filters (Gopher/C4 style) and deduplication
(exact hashes + MinHash-LSH), with an evaluation against the synthetic corpus's labels
(`python -m corpora.quality.evaluate`)."""
from __future__ import annotations

from typing import Callable, Sequence

from corpora.quality.dedup import DedupConfig, DedupReport, deduplicate
from corpora.quality.filters import FilterConfig, FilterReport, apply_filters

__all__ = ["FilterConfig", "FilterReport", "apply_filters", "DedupConfig", "DedupReport",
           "deduplicate", "clean_documents"]


def clean_documents(texts: Sequence[str], filter_cfg: FilterConfig | None = None,
                    dedup_cfg: DedupConfig | None = None,
                    log: Callable[[str], object] | None = print) -> list[int]:
    """Indices of `texts` kept by the quality filters and then deduplication (in order),
    logging both summaries. Indices only: in boilerplate_mode="drop_lines" the edited texts
    are in apply_filters(...).texts, which callers wanting them should use directly."""
    texts = list(texts)
    filters = apply_filters(texts, filter_cfg)
    after = filters.texts if filters.texts is not None else texts
    dedup = deduplicate([after[i] for i in filters.kept], dedup_cfg)
    kept = [filters.kept[j] for j in dedup.kept]
    if log is not None:
        log(filters.summary())
        log(dedup.summary())
    return kept
