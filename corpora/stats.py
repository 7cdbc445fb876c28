"""What a prepared corpus holds: counts per split, tokenizer, ground-truth quality, baselines.

    python -m corpora.stats <prepared dir>
"""
from __future__ import annotations

import collections
import json
import sys
from pathlib import Path

import numpy as np

from common.errors import ConfigError
from corpora.cache import PreparedCorpus, load_prepared


def unigram_entropy(tokens: np.ndarray, vocab_size: int) -> float:
    """Entropy (nats/token) of the split's own token frequencies."""
    counts = np.bincount(np.asarray(tokens, dtype=np.int64), minlength=vocab_size).astype(np.float64)
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def unigram_cross_entropy(train: np.ndarray, held_out: np.ndarray, vocab_size: int) -> float:
    """Loss (nats/token) on `held_out` of the best context-free model fit on `train`
    (add-one smoothed): the bar a language model must clear to have learned any context."""
    counts = np.bincount(np.asarray(train, dtype=np.int64), minlength=vocab_size).astype(np.float64) + 1.0
    logp = np.log(counts / counts.sum())
    return float(-logp[np.asarray(held_out, dtype=np.int64)].mean())


def corpus_stats(corpus: PreparedCorpus) -> dict:
    m = corpus.manifest
    stats: dict = {"path": str(corpus.path), "config": m["config"], "tokenizer": m["tokenizer"],
                   "splits": {}, "cleaning": m.get("cleaning")}
    for split, info in m["splits"].items():
        stats["splits"][split] = {**{k: info[k] for k in ("documents", "words", "tokens", "bytes")},
                                  "tokens_per_word": info["tokens"] / max(1, info["words"]),
                                  "bytes_per_token": info["bytes"] / max(1, info["tokens"])}
    vocab = max(corpus.vocab_size, int(m["tokenizer"].get("requested_vocab_size", 0)))
    train = corpus.tokens("train")
    stats["unigram_entropy_train"] = unigram_entropy(train, vocab)
    stats["unigram_loss_val_clean"] = unigram_cross_entropy(train, corpus.tokens("val_clean"), vocab)
    if m.get("documents"):
        stats["quality"] = document_quality(corpus.path / m["documents"]["file"])
    if m.get("pairs"):
        per = collections.Counter(json.loads(line)["phenomenon"]
                                  for line in open(corpus.pairs_path) if line.strip())
        stats["pairs"] = dict(sorted(per.items()))
    if m.get("facts"):
        stats["facts"] = {"n": m["facts"]["n"], "n_two_hop": m["facts"]["n_two_hop"]}
    return stats


def document_quality(labels_path: Path) -> dict:
    """Grade fractions and per-defect document counts from the generator's ground truth."""
    grades: collections.Counter = collections.Counter()
    defects: collections.Counter = collections.Counter()
    clean_web = 0
    for line in open(labels_path):
        label = json.loads(line)
        grades[label["grade"]] += 1
        defects.update(label["defects"])
        clean_web += label["grade"] == "web" and not label["defects"]
    total = sum(grades.values())
    return {"documents": total, "grades": dict(grades),
            "textbook_fraction": grades["textbook"] / max(1, total),
            "defects": dict(sorted(defects.items())), "web_without_defect": clean_web}


def format_stats(stats: dict) -> str:
    c = stats["config"]
    lines = [f"corpus {c['name']} (quality {c['quality']:g}, seed {c['seed']}) at {stats['path']}",
             f"tokenizer: {stats['tokenizer']['vocab_size']} tokens, trained on {stats['tokenizer']['trained_on']}",
             f"{'split':<10} {'documents':>10} {'words':>12} {'tokens':>12} {'tok/word':>9} {'bytes/tok':>9}"]
    for split, s in stats["splits"].items():
        lines.append(f"{split:<10} {s['documents']:>10,} {s['words']:>12,} {s['tokens']:>12,} "
                     f"{s['tokens_per_word']:>9.3f} {s['bytes_per_token']:>9.3f}")
    lines.append(f"unigram entropy of train: {stats['unigram_entropy_train']:.4f} nats/token; "
                 f"unigram model on val_clean: {stats['unigram_loss_val_clean']:.4f} nats/token")
    if stats.get("cleaning"):
        cl = stats["cleaning"]
        lines.append(f"cleaning kept {cl['documents_after']:,} of {cl['documents_before']:,} documents "
                     f"({cl['words_after']:,} of {cl['words_before']:,} words)")
    if "quality" in stats:
        q = stats["quality"]
        lines.append(f"grades: {q['grades']} (textbook fraction {q['textbook_fraction']:.3f}); "
                     f"web documents with no defect: {q['web_without_defect']}")
        for name, count in q["defects"].items():
            lines.append(f"  defect {name:<16} {count:>8,} documents ({count / max(1, q['documents']):.1%})")
    if "pairs" in stats:
        lines.append(f"minimal pairs: {sum(stats['pairs'].values())} in {len(stats['pairs'])} phenomena: "
                     + ", ".join(f"{k} {v}" for k, v in stats["pairs"].items()))
    if "facts" in stats:
        lines.append(f"knowledge probes: {stats['facts']['n']} ({stats['facts']['n_two_hop']} two-hop)")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        raise ConfigError("path", "usage: python -m corpora.stats <prepared corpus directory>")
    path = Path(argv[0])
    if not (path / "manifest.json").exists():
        raise ConfigError("path", f"{path} is not a prepared corpus (no manifest.json)")
    try:
        corpus = load_prepared(path)
    except ValueError as e:
        raise ConfigError("path", str(e)) from None
    print(format_stats(corpus_stats(corpus)))
    return 0


if __name__ == "__main__":
    from common.cli import main_guard

    main_guard(lambda: main(sys.argv[1:]))
