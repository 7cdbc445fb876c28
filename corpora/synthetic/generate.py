"""The document stream: per-document seeds, grade choice, defects, and parallel chunks.

Document ``i`` of a split is a pure function of (seed, split, i, quality, defect rates): its
content, its grade and its defects each come from a stream seeded by those alone. Workers
produce fixed chunks of consecutive documents and the parent keeps them in order, so the
output is the same for any number of workers.
"""
from __future__ import annotations

import functools
import math
import multiprocessing
import os
import random
from dataclasses import dataclass
from typing import Mapping

from tqdm import tqdm

from corpora.synthetic import web
from corpora.synthetic.genres import Draft, TextbookWriter
from corpora.synthetic.grammar import Grammar
from corpora.synthetic.lexicon import load_lexicon
from corpora.synthetic.sampling import mix_seed, stable_code
from corpora.synthetic.world import build_world

# Bumped whenever the text generated for a seed changes: it is part of the corpus and tokenizer
# cache keys and of run ids, so caches and finished runs of older text are not reused.
# 1: the first corpus. 2: "<Name> lives in <Town>." names the person's own town. 3: training
# text redraws the clauses held out for minimal pairs (grammar.held_out), and facts.jsonl.
GENERATOR_REVISION = 3
SPLITS = ("train", "val", "val_clean", "tokenizer")
DOCS_PER_CHUNK = 64
NEAR_DUPLICATE_WINDOW = 32  # a near-duplicate copies one of the previous 32 documents
_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0


@dataclass(frozen=True)
class Document:
    text: str
    grade: str  # "textbook" | "web"
    defects: tuple[str, ...]  # ground-truth labels, () if clean; keys of WEB_DEFECT_RATES
    doc_id: str  # unique and stable: f"{split}-{index}"


def count_words(text: str) -> int:
    """Words as BabyLM counts them: whitespace-separated."""
    return len(text.split())


@dataclass(frozen=True)
class StreamSpec:
    """Everything a document depends on besides its index."""
    seed: int
    split: str
    quality: float
    defect_rates: tuple[tuple[str, float], ...]


@functools.lru_cache(maxsize=4)
def _writer(seed: int) -> TextbookWriter:
    return TextbookWriter(Grammar(load_lexicon(), build_world(seed)))


def _content_seed(spec: StreamSpec, index: int) -> int:
    return mix_seed(spec.seed, stable_code(spec.split), index)


def is_textbook(spec: StreamSpec, index: int) -> bool:
    """Grade of document `index`: a golden-ratio sequence, so any run of documents has a
    textbook fraction within O(log n / n) of `quality`, and raising quality only turns
    web documents into textbook ones (never the reverse)."""
    if spec.split == "val_clean":
        return True
    offset = mix_seed(spec.seed, stable_code(spec.split), 0x6772616465) / 2.0**64
    return (offset + index * _GOLDEN) % 1.0 < spec.quality


def _draft(writer: TextbookWriter, spec: StreamSpec, index: int) -> Draft:
    return writer.document(random.Random(_content_seed(spec, index)))


def _topic_keyword(draft: Draft) -> str:
    words = [w.strip(".,?").lower() for w in draft.title.split()]
    return max(words, key=len)


def _defect_plan(spec: StreamSpec, index: int) -> tuple[random.Random, dict[str, bool], int | None]:
    """The defects web document `index` draws, and the earlier document it reposts, if any."""
    rng = random.Random(mix_seed(_content_seed(spec, index), stable_code("defects")))
    rates = dict(spec.defect_rates)
    wanted = {name: rng.random() < rates.get(name, 0.0) for name in web.WEB_DEFECT_RATES}
    source = None
    if wanted["near_duplicate"] and index > 0:
        source = index - 1 - int(rng.random() * min(index, NEAR_DUPLICATE_WINDOW))
    return rng, wanted, source


def _shown_draft(writer: TextbookWriter, spec: StreamSpec, index: int
                 ) -> tuple[Draft, random.Random, dict[str, bool], bool]:
    """The draft document `index` displays: its own, or a perturbed copy of what an earlier
    document displays (a repost of a repost copies the repost, as a crawl would show it)."""
    if is_textbook(spec, index):
        return _draft(writer, spec, index), random.Random(0), {}, False
    rng, wanted, source = _defect_plan(spec, index)
    if source is not None:
        copied = _shown_draft(writer, spec, source)[0]
        if _perturb(copied, rng):
            return copied, rng, wanted, True
    return _draft(writer, spec, index), rng, wanted, False


def _web_document(writer: TextbookWriter, spec: StreamSpec, index: int) -> tuple[str, tuple]:
    draft, rng, wanted, reposted = _shown_draft(writer, spec, index)
    applied = ["near_duplicate"] if reposted else []
    page = web.WebPage(draft)
    if wanted["contradiction"] and web.add_contradiction(page, rng, writer.world):
        applied.append("contradiction")
    if wanted["typos"] and web.add_typos(page, rng, writer.lexicon):
        applied.append("typos")
    if wanted["keyword_spam"] and web.add_keyword_spam(page, rng, _topic_keyword(draft)):
        applied.append("keyword_spam")
    if wanted["boilerplate"] and web.add_boilerplate(page, rng):
        applied.append("boilerplate")
    if wanted["markup"] and web.add_markup(page, rng):
        applied.append("markup")
    if wanted["truncated"] and web.truncate(page, rng):
        applied.append("truncated")
    order = list(web.WEB_DEFECT_RATES)
    return page.render(), tuple(sorted(applied, key=order.index))


def _perturb(draft: Draft, rng: random.Random) -> bool:
    """A reposted copy: one sentence dropped and two neighbours swapped."""
    long_paragraphs = [p for p in draft.paragraphs if len(p) >= 2]
    if not long_paragraphs:
        return False
    paragraph = long_paragraphs[int(rng.random() * len(long_paragraphs))]
    del paragraph[int(rng.random() * len(paragraph))]
    if len(paragraph) >= 2:
        i = int(rng.random() * (len(paragraph) - 1))
        paragraph[i], paragraph[i + 1] = paragraph[i + 1], paragraph[i]
    return True


def make_document(spec: StreamSpec, index: int) -> Document:
    writer = _writer(spec.seed)
    doc_id = f"{spec.split}-{index}"
    if is_textbook(spec, index):
        return Document(_draft(writer, spec, index).render(), "textbook", (), doc_id)
    text, defects = _web_document(writer, spec, index)
    return Document(text, "web", defects, doc_id)


def make_chunk(task: tuple[StreamSpec, int]) -> list[Document]:
    spec, chunk = task
    start = chunk * DOCS_PER_CHUNK
    return [make_document(spec, index) for index in range(start, start + DOCS_PER_CHUNK)]


def generate_stream(spec: StreamSpec, n_words: int, workers: int, progress: bool
                    ) -> list[Document]:
    """Documents 0, 1, 2, ... of the stream until `n_words` words are reached."""
    documents: list[Document] = []
    total = 0
    next_chunk = 0
    bar = tqdm(total=n_words, unit="word", unit_scale=True, disable=not progress,
               desc=f"synthetic {spec.split}")
    pool = None
    words_per_chunk = 150.0 * DOCS_PER_CHUNK  # first guess; refined from what is made
    try:
        while total < n_words:
            batch = max(1, math.ceil((n_words - total) / words_per_chunk * 1.05))
            if workers > 1 and batch > 1 and pool is None:
                pool = multiprocessing.get_context().Pool(workers)
            tasks = [(spec, c) for c in range(next_chunk, next_chunk + batch)]
            next_chunk += batch
            results = pool.imap(make_chunk, tasks) if pool else map(make_chunk, tasks)
            for chunk in results:
                for document in chunk:
                    words = count_words(document.text)
                    documents.append(document)
                    total += words
                    bar.update(words)
                    if total >= n_words:
                        break
                if total >= n_words:
                    break
            words_per_chunk = max(1.0, total / (len(documents) / DOCS_PER_CHUNK))
    finally:
        bar.close()
        if pool is not None:
            pool.terminate()
    return documents


def resolve_workers(workers: int) -> int:
    return workers if workers > 0 else (os.cpu_count() or 1)


def defect_rates_tuple(rates: Mapping[str, float] | None) -> tuple[tuple[str, float], ...]:
    rates = dict(web.WEB_DEFECT_RATES if rates is None else rates)
    return tuple((name, float(rates.get(name, 0.0))) for name in web.WEB_DEFECT_RATES)
