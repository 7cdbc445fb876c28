"""Precision and recall of the quality filters and deduplication against the synthetic
corpus's ground-truth defect labels.

    python -m corpora.quality.evaluate --words 300000 --quality 0.0 --seed 0

precision = removed documents that carry any defect / removed documents (the base rate, the
fraction of documents with a defect, is printed beside it: at quality 0 most web pages
carry some defect, so precision must be read against that). Per rule, "target precision"
is the fraction of the documents a rule fires on that carry the defect the rule is meant
for. recall per defect = documents with that defect that were removed / documents with it;
"alone" restricts to documents whose only defect is that one, which shows what the
heuristics catch by themselves rather than through a co-occurring defect. Typos and
contradictions are not targeted by any heuristic: their recall comes from co-occurring
defects (and is ~0 alone), reported as is.

Dedup's near-duplicate recall is bounded by the generator: a repost and its source carry
independent defects (chrome, markup, spam lines, typos) on short pages, so their shingle
Jaccard is often 0.4-0.6 rather than the ~0.9 of a web repost. In the combined pipeline a
repost whose source was removed by the filters is kept (nothing left to match), which is
why near_duplicate "both.alone" recall is lower than "dedup.alone".
"""
from __future__ import annotations

import argparse
import time
from collections import Counter
from dataclasses import dataclass
from typing import Sequence

from corpora.quality.dedup import DedupConfig, DedupReport, deduplicate
from corpora.quality.filters import RULES, FilterConfig, FilterReport, apply_filters

# The defect each rule is designed to catch (None: a general quality rule).
RULE_TARGETS: dict[str, str | None] = {
    "markup_ratio": "markup", "boilerplate": "boilerplate", "spam_line": "keyword_spam",
    "final_punct": "truncated",
}


@dataclass
class Evaluation:
    docs: list
    filters: FilterReport
    dedup: DedupReport            # dedup of the whole corpus, alone
    combined_kept: list[int]      # filters, then dedup of what the filters kept
    combined_dedup: DedupReport
    filter_seconds: float
    dedup_seconds: float

    def removed(self, stage: str) -> set[int]:
        n = len(self.docs)
        if stage == "filters":
            return set(self.filters.removed)
        if stage == "dedup":
            return set(self.dedup.removed)
        return set(range(n)) - set(self.combined_kept)

    def precision(self, stage: str) -> float:
        removed = self.removed(stage)
        return sum(bool(self.docs[i].defects) for i in removed) / max(1, len(removed))

    def recall(self, stage: str, defect: str, alone: bool = False) -> float | None:
        having = [i for i, d in enumerate(self.docs) if defect in d.defects
                  and (not alone or len(d.defects) == 1)]
        if not having:
            return None
        removed = self.removed(stage)
        return sum(i in removed for i in having) / len(having)

    def clean_removed(self, stage: str) -> float:
        clean = [i for i, d in enumerate(self.docs) if not d.defects]
        removed = self.removed(stage)
        return sum(i in removed for i in clean) / max(1, len(clean))


def evaluate(docs: Sequence, filter_cfg: FilterConfig | None = None,
             dedup_cfg: DedupConfig | None = None) -> Evaluation:
    texts = [d.text for d in docs]
    t0 = time.perf_counter()
    filters = apply_filters(texts, filter_cfg, all_rules=True)
    t1 = time.perf_counter()
    dedup = deduplicate(texts, dedup_cfg)
    t2 = time.perf_counter()
    after = filters.texts if filters.texts is not None else texts
    combined = deduplicate([after[i] for i in filters.kept], dedup_cfg)
    combined_kept = [filters.kept[j] for j in combined.kept]
    return Evaluation(list(docs), filters, dedup, combined_kept, combined, t1 - t0, t2 - t1)


def _fmt(x: float | None) -> str:
    return "   -" if x is None else f"{x:4.2f}"


def format_table(ev: Evaluation) -> str:
    docs = ev.docs
    n = len(docs)
    defects = Counter(x for d in docs for x in d.defects)
    alone = Counter(d.defects[0] for d in docs if len(d.defects) == 1)
    n_defective = sum(bool(d.defects) for d in docs)
    out = [f"{n} documents, {sum(len(d.text.split()) for d in docs):,} words; "
           f"{n_defective} ({n_defective / max(1, n):.1%}) carry at least one defect "
           f"(the precision of removing documents at random)", ""]

    out.append("Filter rules (all rules evaluated on every document; 'first' = documents "
               "for which it is the reason given)")
    out.append(f"  {'rule':<18} {'fires':>6} {'first':>6} {'precision':>9} "
               f"{'target':>13} {'target prec':>11}")
    first = ev.filters.counts()
    for rule in RULES:
        fired = [i for i, rules in ev.filters.fired.items() if rule in rules]
        if not fired and not first[rule]:
            continue
        prec = sum(bool(docs[i].defects) for i in fired) / max(1, len(fired))
        target = RULE_TARGETS.get(rule)
        tprec = (sum(target in docs[i].defects for i in fired) / max(1, len(fired))
                 if target else None)
        out.append(f"  {rule:<18} {len(fired):>6} {first[rule]:>6} {prec:>9.3f} "
                   f"{target or '-':>13} {_fmt(tprec):>11}")
    if ev.filters.lines_dropped:
        out.append(f"  (drop_lines mode: {sum(ev.filters.lines_dropped.values())} boilerplate "
                   f"lines dropped from {len(ev.filters.lines_dropped)} documents)")
    out.append("")

    out.append("Removal by stage")
    out.append(f"  {'stage':<22} {'removed':>8} {'precision':>9} {'clean docs removed':>19}")
    stages = (("filters", "filters"), ("dedup", "dedup (alone)"),
              ("combined", "filters + dedup"))
    for stage, label in stages:
        out.append(f"  {label:<22} {len(ev.removed(stage)):>8} {ev.precision(stage):>9.3f} "
                   f"{ev.clean_removed(stage):>19.1%}")
    dc = ev.dedup.counts()
    out.append(f"  dedup alone: {dc['exact']} exact, {dc['near']} near duplicates")
    out.append("")

    out.append("Recall per defect (all = every document with the defect; "
               "alone = documents with only that defect)")
    out.append(f"  {'defect':<15} {'docs':>5} {'alone':>5} | {'filters':>7} {'dedup':>6} "
               f"{'both':>6} | {'filt.alone':>10} {'dedup.alone':>11} {'both.alone':>10}")
    from corpora.synthetic import WEB_DEFECT_RATES
    for defect in WEB_DEFECT_RATES:
        if not defects[defect]:
            continue
        r = [ev.recall(s, defect) for s in ("filters", "dedup", "combined")]
        a = [ev.recall(s, defect, alone=True) for s in ("filters", "dedup", "combined")]
        out.append(f"  {defect:<15} {defects[defect]:>5} {alone[defect]:>5} | "
                   f"{_fmt(r[0]):>7} {_fmt(r[1]):>6} {_fmt(r[2]):>6} | "
                   f"{_fmt(a[0]):>10} {_fmt(a[1]):>11} {_fmt(a[2]):>10}")
    out.append("")
    out.append(f"time: filters {ev.filter_seconds:.2f}s (all rules), "
               f"dedup {ev.dedup_seconds:.2f}s for {n} documents")
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--words", type=int, default=300_000)
    parser.add_argument("--quality", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--split", default="train")
    parser.add_argument("--threshold", type=float, default=DedupConfig.threshold,
                        help="near-duplicate Jaccard threshold")
    parser.add_argument("--boilerplate-mode", choices=("flag", "drop_lines"),
                        default=FilterConfig.boilerplate_mode)
    parser.add_argument("--clean-words", type=int, default=100_000,
                        help="also report how much of a textbook-only corpus (quality=1) "
                             "of this many words is kept (0: skip)")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)

    from corpora.synthetic import generate_documents
    filter_cfg = FilterConfig(boilerplate_mode=args.boilerplate_mode)
    dedup_cfg = DedupConfig(threshold=args.threshold)
    docs = generate_documents(quality=args.quality, n_words=args.words, seed=args.seed,
                              split=args.split, workers=args.workers)
    print(f"synthetic corpus: quality={args.quality} words={args.words} seed={args.seed} "
          f"split={args.split}; near-dup threshold={dedup_cfg.threshold}, "
          f"boilerplate_mode={filter_cfg.boilerplate_mode}")
    ev = evaluate(docs, filter_cfg, dedup_cfg)
    print(format_table(ev))
    print()
    print(ev.filters.summary())
    print(ev.dedup.summary())
    if args.clean_words:
        clean = generate_documents(quality=1.0, n_words=args.clean_words, seed=args.seed,
                                   split=args.split, workers=args.workers)
        texts = [d.text for d in clean]
        f = apply_filters(texts, filter_cfg)
        kept = [texts[i] for i in f.kept]
        d = deduplicate(kept, dedup_cfg)
        print()
        print(f"textbook-only corpus (quality=1.0, {len(clean)} documents): filters keep "
              f"{len(f.kept) / max(1, len(clean)):.1%}, then dedup keeps "
              f"{len(d.kept) / max(1, len(kept)):.1%} "
              f"(removed by rule: {dict(f.counts()) or 'none'})")


if __name__ == "__main__":
    main()
