"""The shared tokenizer of a corpus family: trained once under `tokenizers/<key>/`, reused by every
quality level and size its key covers, retrained when its cache is damaged."""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Iterable, Iterator

from common.errors import ConfigError
from common.files import sha256_file
from corpora import tokenizer as bpe
from corpora.config import CorpusConfig, tokenizer_corpus
from corpora.documents import tokenizer_texts
from corpora.keys import SYNTHETIC_TOKENIZER_QUALITY, tokenizer_key, tokenizer_words
from corpora.publish import file_lock, fresh_temporary, publish, write_durably
from corpora.sources import count_words


def ensure_tokenizer(cfg: CorpusConfig, progress: bool = False, log=print, *,
                     content: dict | None = None) -> Path:
    """The shared tokenizer of this corpus family, trained once and cached."""
    if cfg.tokenizer_from is not None:  # a grid's levels share one corpus's tokenizer
        cfg, content = tokenizer_corpus(cfg), None
    root = Path(cfg.cache_dir) / "tokenizers"
    final = root / tokenizer_key(cfg, content)
    with file_lock(root / f".{final.name}.lock"):
        if final.exists():
            problem = _tokenizer_cache_problem(final)
            if problem is None:
                return final / "tokenizer.json"
            log(f"tokenizer cache {final} is damaged ({problem}); retraining it")
        tmp = fresh_temporary(final)
        meta = _train(cfg, tmp, final.name, progress)
        publish(tmp, final)
        log(f"tokenizer: trained {meta['vocab_size']} tokens on {meta['trained_on']} in {meta['seconds']}s")
        return final / "tokenizer.json"


def _train(cfg: CorpusConfig, tmp: Path, key: str, progress: bool) -> dict:
    """Train the tokenizer into `tmp` with its metadata beside it; the metadata."""
    start = time.perf_counter()
    seen = {"documents": 0, "words": 0}

    def counted(texts: Iterable[str]) -> Iterator[str]:
        # What the trainer really read: a small source can hold less than the budget.
        for text in texts:
            seen["documents"] += 1
            seen["words"] += count_words(text)
            yield text

    tok = bpe.train_bpe(counted(tokenizer_texts(cfg, progress)), cfg.vocab_size,
                        tmp / "tokenizer.json", progress=progress)
    if seen["words"] == 0:  # nothing to learn from: publish nothing a later run would reuse
        shutil.rmtree(tmp, ignore_errors=True)
        raise ConfigError("corpus.path" if cfg.path else "corpus.name",
                          f"the training split of {cfg.name} holds no text to train a tokenizer on")
    meta = {"sha256": sha256_file(tmp / "tokenizer.json"), "vocab_size": tok.get_vocab_size(),
            "requested_vocab_size": cfg.vocab_size, "key": key,
            "budget_words": tokenizer_words(cfg), **seen,
            "trained_on": _description(cfg, seen["words"]),
            "seconds": round(time.perf_counter() - start, 2)}
    write_durably(tmp / "tokenizer.meta.json", json.dumps(meta, indent=2) + "\n")
    return meta


def _tokenizer_cache_problem(directory: Path) -> str | None:
    """None if the cached tokenizer is intact, else what is wrong with it."""
    try:
        meta = json.loads((directory / "tokenizer.meta.json").read_text())
        if sha256_file(directory / "tokenizer.json") != meta["sha256"]:
            return "checksum mismatch"
    except (OSError, ValueError, KeyError, TypeError) as e:  # missing or unreadable files
        return f"{e.__class__.__name__}: {e}"
    return None


def tokenizer_meta(tokenizer_path: Path) -> dict:
    """What a cached tokenizer was trained on, written beside it when it was built."""
    return json.loads((Path(tokenizer_path).parent / "tokenizer.meta.json").read_text())


def _description(cfg: CorpusConfig, words: int) -> str:
    if cfg.name == "synthetic":
        return (f"{words} words of the synthetic 'tokenizer' stream "
                f"(quality {SYNTHETIC_TOKENIZER_QUALITY}, seed {cfg.seed}; no validation document)")
    return f"the first {words} words of the training split"
