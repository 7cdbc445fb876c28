"""What a prepared corpus and its tokenizer are keyed by: their cache directory names, and the
corpus part of every run id (lab.runs), so this module stays free of tokenizers, numpy and torch."""
from __future__ import annotations

import dataclasses
import hashlib
import json
from functools import lru_cache
from pathlib import Path

from corpora import sources
from corpora.config import CorpusConfig
from corpora.synthetic.generate import GENERATOR_REVISION

# In every cache key and manifest. 2: special-token strings in document text ("</s>", "<pad>",
# "<s>") are encoded as plain text; before, a web page quoting "</s>" got a false document end.
FORMAT_VERSION = 2
# The synthetic tokenizer is trained on its own stream (never a validation document) mixing both
# grades equally, so one tokenizer serves every quality level and every training size.
SYNTHETIC_TOKENIZER_WORDS = 400_000
SYNTHETIC_TOKENIZER_QUALITY = 0.5
# Real sources train the tokenizer on the start of their training split, at most this much.
REAL_TOKENIZER_WORDS = 20_000_000
# In a real source's tokenizer and corpus keys; raised when what the tokenizer key covers
# changes. Keys before 2 left out the words the tokenizer reads, so a tokenizer cached by a small
# run was reused by larger ones: neither such tokenizers nor corpora prepared with them may match
# again. The synthetic key always covered its fixed training stream; it carries the generator's
# own revision instead (GENERATOR_REVISION), raised when the generated text changes.
REAL_TOKENIZER_KEY_REVISION = 2
# Fields that say where or how fast a corpus is built, not what it contains.
_NOT_CONTENT = ("cache_dir", "workers")


def corpus_content(cfg: CorpusConfig) -> dict:
    """What the prepared corpus contains: the config, and for local files their fingerprint.
    Hashes the local data, so a caller that needs it twice computes it once and passes it on."""
    d = dataclasses.asdict(cfg)
    for field in _NOT_CONTENT:
        d.pop(field)
    if cfg.path is not None:
        d["path"] = str(Path(cfg.path).resolve())
        d["data"] = local_data_fingerprint(cfg)
    if cfg.name == "synthetic":
        d["generator"] = GENERATOR_REVISION
    for field in ("quality", "min_score"):  # 1 and 1.0 are one corpus (Python callers pass either)
        if d[field] is not None:
            d[field] = float(d[field])
    _nested_content(cfg, d)
    return d


def _nested_content(cfg: CorpusConfig, d: dict) -> None:
    """A mix's parts and the corpora lending a tokenizer or held-out split enter by their content
    (local data by fingerprint); these fields are left out at their defaults, so that corpora
    keyed before they existed keep their keys."""
    from corpora.config import corpus_from
    from corpora.mix import parts_of

    for field in ("score_field", "parts", "weights", "tokenizer_from", "heldout_from"):
        if d[field] in (None, {}):
            d.pop(field)
    if cfg.parts:
        d["parts"] = {name: corpus_content(part) for name, part in parts_of(cfg).items()}
        d["weights"] = {str(name): float(w) for name, w in cfg.weights.items()}
    for field in ("tokenizer_from", "heldout_from"):
        if getattr(cfg, field) is not None:
            d[field] = corpus_content(corpus_from(getattr(cfg, field), cfg, f"corpus.{field}"))


def local_data_fingerprint(cfg: CorpusConfig) -> str:
    """A digest of the files read under cfg.path: each one's relative path, size and content.

    In the corpus and tokenizer keys, and in run ids (lab.runs), because the path alone let an
    edited or replaced file silently reuse the stale corpus, tokenizer and finished runs.
    Contents are hashed, not trusted by mtime (copies and restores can keep it): ~2 s per GB on
    one core, once per file version and process (`_file_digest`), so a grid's many run ids cost
    one pass over the data.
    """
    root, files = sources.local_files(cfg)
    digest = hashlib.blake2b(digest_size=16)
    for file in files:
        stat = file.stat()
        entry = [file.relative_to(root).as_posix(), stat.st_size,
                 _file_digest(str(file.resolve()), stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino)]
        digest.update((json.dumps(entry) + "\n").encode())
    return digest.hexdigest()


@lru_cache(maxsize=4096)
def _file_digest(path: str, size: int, mtime_ns: int, ctime_ns: int, inode: int) -> str:
    """The content hash of one file; the stat fields are in the cache key only, so an edited file
    is hashed again. ctime and inode catch what size and mtime miss: a same-size copy that keeps
    the old mtime (cp -p, rsync -a) still changes ctime, or the inode when renamed into place."""
    content = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            content.update(chunk)
    return content.hexdigest()


def _digest(data: dict) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]


def corpus_key(cfg: CorpusConfig, content: dict | None = None) -> str:
    """Everything the prepared corpus depends on, its tokenizer's key included (a constant that
    changes the tokenizer changes every corpus built with it). Run ids carry it (lab.runs).
    `content`: `corpus_content(cfg)` if the caller already has it (spares hashing local data again)."""
    content = corpus_content(cfg) if content is None else content
    d = {"format": FORMAT_VERSION, **content, "tokenizer": tokenizer_key(cfg, content)}
    if cfg.name != "synthetic":  # a real corpus prepared with a wrongly shared tokenizer must not match
        d["tokenizer_revision"] = REAL_TOKENIZER_KEY_REVISION
    return f"{cfg.name}-q{cfg.quality:g}-{_digest(d)}"


def content_key(cfg: CorpusConfig) -> str:
    """The corpus key without where local data lies: what run ids carry (lab.runs). The files'
    fingerprint (names relative to corpus.path, sizes, contents) stays, so a directory moved,
    copied or mounted elsewhere names the same runs, and an edited one new runs."""
    return corpus_key(cfg, _located_nowhere(corpus_content(cfg)))


def _located_nowhere(content: dict) -> dict:
    """`content` with every local path (its own, its parts', its lenders') set to None."""
    out = {**content, "path": None}
    for field in ("tokenizer_from", "heldout_from"):
        if field in out:
            out[field] = _located_nowhere(out[field])
    if "parts" in out:
        out["parts"] = {name: _located_nowhere(part) for name, part in out["parts"].items()}
    return out


def tokenizer_key(cfg: CorpusConfig, content: dict | None = None) -> str:
    """Everything the tokenizer depends on. Quality, split sizes and cleaning are left out on
    purpose: every run of a grid must share one tokenizer so its losses compare. The training
    size enters only through the words the tokenizer reads (`tokenizer_words`): fixed for the
    synthetic corpus, capped for a real one, so train_words above the cap share a tokenizer.
    `content` as for `corpus_key`. A corpus with tokenizer_from has that corpus's tokenizer."""
    if cfg.tokenizer_from is not None:
        from corpora.config import tokenizer_corpus

        return tokenizer_key(tokenizer_corpus(cfg))
    d = dict(corpus_content(cfg) if content is None else content)
    for field in ("quality", "train_words", "val_words", "pairs_per_phenomenon", "clean"):
        d.pop(field)
    d.pop("heldout_from", None)  # validation data never trains the tokenizer
    d.update(format=FORMAT_VERSION, words=tokenizer_words(cfg))
    if cfg.name != "synthetic":
        d["revision"] = REAL_TOKENIZER_KEY_REVISION
    else:
        d["mix"] = SYNTHETIC_TOKENIZER_QUALITY
    return f"{cfg.name}-v{cfg.vocab_size}-{_digest(d)}"


def tokenizer_words(cfg: CorpusConfig) -> int:
    """The word budget the tokenizer of `cfg` is trained on (a small source may hold fewer)."""
    if cfg.name == "synthetic":
        return SYNTHETIC_TOKENIZER_WORDS  # its own stream, whatever the training split's size
    return min(REAL_TOKENIZER_WORDS, cfg.train_words or REAL_TOKENIZER_WORDS)
