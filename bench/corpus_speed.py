"""Generation speed of the embedded corpus: time to produce 10M tokens of each grade.

    python bench/corpus_speed.py [--tokens 1e7] [--workers 0]

Words are generated (the generator's unit); the number of words that make 10M tokens is taken
from the shared synthetic tokenizer's measured tokens per word on a sample, and the generated
text is tokenized afterwards to report the tokens actually produced. Goal: under 60 s per grade
on a 2-core machine.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from corpora import tokenizer as bpe  # noqa: E402
from corpora.config import CorpusConfig  # noqa: E402
from corpora.synthetic import generate_documents  # noqa: E402
from corpora.tokenizer_cache import ensure_tokenizer  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=float, default=1e7)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--vocab", type=int, default=2048)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as cache:
        tok = bpe.load(ensure_tokenizer(CorpusConfig(vocab_size=args.vocab, cache_dir=cache), log=lambda m: None))
        for quality, grade in ((1.0, "textbook"), (0.0, "web")):
            sample = generate_documents(quality, 50_000, seed=1, workers=1)
            ids = sum(len(e.ids) + 1 for e in tok.encode_batch([d.text for d in sample]))
            per_word = ids / sum(len(d.text.split()) for d in sample)
            words = int(1.06 * args.tokens / per_word)  # the small sample runs a little long per word
            start = time.perf_counter()
            docs = generate_documents(quality, words, seed=0, workers=args.workers, progress=sys.stderr.isatty())
            generated = time.perf_counter() - start
            start = time.perf_counter()
            tokens = sum(len(ids) for ids, _ in bpe.encode_documents(tok, (d.text for d in docs), 2))
            tokenized = time.perf_counter() - start
            print(f"{grade:>8}: {words:,} words -> {tokens:,} tokens; generated in {generated:.1f}s, "
                  f"tokenized in {tokenized:.1f}s (goal: generation < 60 s)", flush=True)


if __name__ == "__main__":
    main()
