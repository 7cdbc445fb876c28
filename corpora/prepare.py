"""Prepare a corpus once: documents -> tokenizer -> token shards + manifest, cached by config.

    python -m corpora.prepare corpus=synthetic corpus.quality=0.3

Layout under `corpus.cache_dir`:
    tokenizers/<name>-v<vocab>-<hash>/tokenizer.json   shared by every quality level of a corpus
    <name>-q<quality>-<hash>/                          one prepared corpus (self-contained):
        train.bin val.bin val_clean.bin   uint16/uint32 token ids, documents joined by EOS
        tokenizer.json  pairs.jsonl  documents.jsonl (per-document ground truth, synthetic)
        manifest.json   config, counts, sha256 of every file; written last
A corpus directory is built under a temporary name and renamed into place, so a crash leaves
nothing that looks finished; on load every file's checksum is verified and a damaged corpus is
rebuilt (with a message), never used.
"""
from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import os
import shutil
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from common.errors import ConfigError
from common.files import fsync_path, sha256_file
from corpora import tokenizer as bpe
from corpora.config import CorpusConfig
from corpora.shards import ShardInfo, open_shard, write_shard
from corpora.synthetic.generate import GENERATOR_REVISION

# In every cache key and manifest. 2: special-token strings in document text ("</s>", "<pad>",
# "<s>") are encoded as plain text; before, a web page quoting "</s>" got a false document end.
FORMAT_VERSION = 2
# Formats a prepared corpus may have and still be read (finished runs point at their corpus for
# evaluation, export and submissions): format 1's layout is the same, only its encoding of those
# strings differs, and the key keeps new preparations from ever reusing it.
READABLE_FORMATS = (1, 2)
SPLITS = ("train", "val", "val_clean")
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


@dataclass
class PreparedCorpus:
    """A prepared corpus on disk: what the trainer, evaluation and export read."""
    path: Path
    manifest: dict

    @property
    def tokenizer_path(self) -> Path:
        return self.path / "tokenizer.json"

    @property
    def pairs_path(self) -> Path | None:
        pairs = self.manifest.get("pairs")
        return self.path / pairs["file"] if pairs else None

    @property
    def vocab_size(self) -> int:
        return self.manifest["tokenizer"]["vocab_size"]

    @property
    def bos_id(self) -> int:
        return self.manifest["special"]["bos_id"]

    @property
    def eos_id(self) -> int:
        return self.manifest["special"]["eos_id"]

    @property
    def pad_id(self) -> int:
        return self.manifest["special"]["pad_id"]

    def tokens(self, split: str) -> np.ndarray:
        """Token ids of a split (train, val or val_clean) as a read-only memmap."""
        return open_shard(self.path, self.manifest["splits"][split])

    def bytes_per_token(self, split: str = "val_clean") -> float:
        info = self.manifest["splits"][split]
        return info["bytes"] / max(1, info["tokens"])


# --- validation -----------------------------------------------------------------------------

def validate_corpus_config(cfg: CorpusConfig) -> None:
    """Every check that needs no data; raises ConfigError naming the field."""
    known = ("synthetic",) + tuple(_sources().SOURCES)
    if cfg.name not in known:
        raise ConfigError("corpus.name", f"unknown corpus {cfg.name!r}; choose one of {', '.join(known)}")
    if not 0.0 <= cfg.quality <= 1.0:
        raise ConfigError("corpus.quality", f"must be in [0, 1], got {cfg.quality}")
    if cfg.name != "synthetic" and cfg.quality != 1.0:
        raise ConfigError("corpus.quality", f"only the synthetic corpus has a quality dial; "
                                            f"{cfg.name} is used as it is (leave quality at 1.0)")
    if cfg.vocab_size < bpe.MIN_VOCAB:
        raise ConfigError("corpus.vocab_size", f"{cfg.vocab_size} is too small for the byte alphabet: "
                                               f"byte-level BPE needs at least {bpe.MIN_VOCAB} "
                                               f"(256 bytes + {len(bpe.SPECIAL_TOKENS)} special tokens)")
    if cfg.vocab_size > 2**32:
        raise ConfigError("corpus.vocab_size", "must fit uint32")
    if cfg.train_words is not None and cfg.train_words < 1:
        raise ConfigError("corpus.train_words", f"must be >= 1 (or null for the whole source), got {cfg.train_words}")
    if cfg.val_words < 1:
        raise ConfigError("corpus.val_words", f"must be >= 1, got {cfg.val_words}")
    if cfg.pairs_per_phenomenon < 0:
        raise ConfigError("corpus.pairs_per_phenomenon", f"must be >= 0, got {cfg.pairs_per_phenomenon}")
    if cfg.seed < 0:
        raise ConfigError("corpus.seed", f"must be >= 0, got {cfg.seed}")
    if cfg.workers < 0:
        raise ConfigError("corpus.workers", f"must be >= 0 (0 = all cores), got {cfg.workers}")
    if cfg.name == "synthetic":
        if cfg.train_words is None:
            raise ConfigError("corpus.train_words", "the synthetic corpus is generated: give a size in words")
        for field in ("path", "hub_id", "min_score"):
            if getattr(cfg, field) is not None:
                raise ConfigError(f"corpus.{field}", "does not apply to the synthetic corpus")
    else:
        _sources().validate_source(cfg)


def _sources():
    from corpora import sources  # the registry of real corpora

    return sources


# --- cache keys -----------------------------------------------------------------------------

def _content(cfg: CorpusConfig) -> dict:
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
    return d


def local_data_fingerprint(cfg: CorpusConfig) -> str:
    """A digest of the files read under cfg.path: each one's relative path, size and content.

    In the corpus and tokenizer keys, and in run ids (lab.runs), because the path alone let an
    edited or replaced file silently reuse the stale corpus, tokenizer and finished runs.
    Contents are hashed, not trusted by mtime (copies and restores can keep it): ~2 s per GB on
    one core, once per file version and process (`_file_digest`), so a grid's many run ids cost
    one pass over the data.
    """
    root, files = _sources().local_files(cfg)
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
    `content`: `_content(cfg)` if the caller already has it (spares hashing local data again)."""
    content = _content(cfg) if content is None else content
    d = {"format": FORMAT_VERSION, **content, "tokenizer": tokenizer_key(cfg, content)}
    if cfg.name != "synthetic":  # a real corpus prepared with a wrongly shared tokenizer must not match
        d["tokenizer_revision"] = REAL_TOKENIZER_KEY_REVISION
    return f"{cfg.name}-q{cfg.quality:g}-{_digest(d)}"


def content_key(cfg: CorpusConfig) -> str:
    """The corpus key without where local data lies: what run ids carry (lab.runs). The files'
    fingerprint (names relative to corpus.path, sizes, contents) stays, so a directory moved,
    copied or mounted elsewhere names the same runs, and an edited one new runs."""
    content = _content(cfg)
    content["path"] = None
    return corpus_key(cfg, content)


def tokenizer_key(cfg: CorpusConfig, content: dict | None = None) -> str:
    """Everything the tokenizer depends on. Quality, split sizes and cleaning are left out on
    purpose: every run of a grid must share one tokenizer so its losses compare. The training
    size enters only through the words the tokenizer reads (`tokenizer_words`): fixed for the
    synthetic corpus, capped for a real one, so train_words above the cap share a tokenizer.
    `content` as for `corpus_key`."""
    d = dict(_content(cfg) if content is None else content)
    for field in ("quality", "train_words", "val_words", "pairs_per_phenomenon", "clean"):
        d.pop(field)
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


# --- documents ------------------------------------------------------------------------------

@dataclass
class SplitDocs:
    # A list, or for a real source's split a stream read once: a large source (or an uncapped
    # one, train_words=None) is tokenized as it is read, never held in memory whole.
    texts: list[str] | Iterator[str]
    labels: list[dict] | None = None  # per-document ground truth (synthetic only)


def _synthetic_split(cfg: CorpusConfig, split: str, words: int, progress: bool) -> SplitDocs:
    from corpora.synthetic import generate_documents

    docs = generate_documents(cfg.quality, words, cfg.seed, split=split, workers=cfg.workers,
                              progress=progress)
    labels = [{"doc_id": d.doc_id, "grade": d.grade, "defects": list(d.defects)} for d in docs]
    return SplitDocs([d.text for d in docs], labels)


def _documents(cfg: CorpusConfig, split: str, progress: bool) -> SplitDocs:
    if cfg.name == "synthetic":
        words = cfg.train_words if split == "train" else cfg.val_words
        return _synthetic_split(cfg, split, words, progress)
    sources = _sources()
    source_split = "train" if split == "train" else "val"
    words = cfg.train_words if split == "train" else cfg.val_words
    return SplitDocs(sources.take_words(sources.iter_documents(cfg, source_split), words))


def _tokenizer_texts(cfg: CorpusConfig, progress: bool) -> Iterator[str]:
    if cfg.name == "synthetic":
        from corpora.synthetic import generate_documents

        docs = generate_documents(SYNTHETIC_TOKENIZER_QUALITY, tokenizer_words(cfg), cfg.seed,
                                  split="tokenizer", workers=cfg.workers, progress=progress)
        return (d.text for d in docs)
    sources = _sources()
    return sources.take_words(sources.iter_documents(cfg, "train"), tokenizer_words(cfg))


def _words(text: str) -> int:
    return len(text.split())


# --- building -------------------------------------------------------------------------------

@contextmanager
def _file_lock(path: Path):
    """Serialise preparation of one key across processes (a grid's workers, DDP ranks)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _publish(tmp: Path, final: Path) -> None:
    """Move a finished temporary directory into place (the old one, if any, goes aside first)."""
    fsync_path(tmp)
    if final.exists():
        aside = final.with_name(f".{final.name}.old{os.getpid()}")
        os.replace(final, aside)
        shutil.rmtree(aside, ignore_errors=True)
    os.replace(tmp, final)
    fsync_path(final.parent)


def _write_text_file(path: Path, text: str) -> str:
    with open(path, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    return sha256_file(path)


def ensure_tokenizer(cfg: CorpusConfig, progress: bool = False, log=print, *,
                     content: dict | None = None) -> Path:
    """The shared tokenizer of this corpus family, trained once and cached."""
    root = Path(cfg.cache_dir) / "tokenizers"
    final = root / tokenizer_key(cfg, content)
    with _file_lock(root / f".{final.name}.lock"):
        if final.exists():
            problem = _tokenizer_cache_problem(final)
            if problem is None:
                return final / "tokenizer.json"
            log(f"tokenizer cache {final} is damaged ({problem}); retraining it")
        tmp = root / f".{final.name}.tmp{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        start = time.perf_counter()
        seen = {"documents": 0, "words": 0}

        def counted(texts: Iterable[str]) -> Iterator[str]:
            # What the trainer really read: a small source can hold less than the budget.
            for text in texts:
                seen["documents"] += 1
                seen["words"] += _words(text)
                yield text

        tok = bpe.train_bpe(counted(_tokenizer_texts(cfg, progress)), cfg.vocab_size,
                            tmp / "tokenizer.json", progress=progress)
        if seen["words"] == 0:  # nothing to learn from: publish nothing a later run would reuse
            shutil.rmtree(tmp, ignore_errors=True)
            raise ConfigError("corpus.path" if cfg.path else "corpus.name",
                              f"the training split of {cfg.name} holds no text to train a tokenizer on")
        meta = {"sha256": sha256_file(tmp / "tokenizer.json"), "vocab_size": tok.get_vocab_size(),
                "requested_vocab_size": cfg.vocab_size, "key": final.name,
                "budget_words": tokenizer_words(cfg), **seen,
                "trained_on": _tokenizer_description(cfg, seen["words"]),
                "seconds": round(time.perf_counter() - start, 2)}
        _write_text_file(tmp / "tokenizer.meta.json", json.dumps(meta, indent=2) + "\n")
        _publish(tmp, final)
        log(f"tokenizer: trained {meta['vocab_size']} tokens on {meta['trained_on']} in {meta['seconds']}s")
        return final / "tokenizer.json"


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


def _tokenizer_description(cfg: CorpusConfig, words: int) -> str:
    if cfg.name == "synthetic":
        return (f"{words} words of the synthetic 'tokenizer' stream "
                f"(quality {SYNTHETIC_TOKENIZER_QUALITY}, seed {cfg.seed}; no validation document)")
    return f"the first {words} words of the training split"


def _clean(docs: SplitDocs, log) -> tuple[SplitDocs, dict]:
    from corpora.quality import clean_documents

    texts = list(docs.texts)  # near-duplicate removal compares every document with every other
    kept = clean_documents(texts, log=log)
    report = {"documents_before": len(texts), "documents_after": len(kept),
              "words_before": sum(map(_words, texts)),
              "words_after": sum(_words(texts[i]) for i in kept)}
    labels = [docs.labels[i] for i in kept] if docs.labels is not None else None
    return SplitDocs([texts[i] for i in kept], labels), report


def _tokenize_split(tok, docs: SplitDocs, path: Path, dtype, eos_id: int, label: str,
                    progress: bool) -> dict:
    from tqdm import tqdm

    counts = {"documents": 0, "words": 0, "bytes": 0}

    def counted(texts: Iterable[str]) -> Iterator[str]:  # as they stream past: read once
        for text in texts:
            counts["documents"] += 1
            counts["words"] += _words(text)
            counts["bytes"] += len(text.encode("utf-8"))
            yield text

    def blocks() -> Iterable[np.ndarray]:
        total = len(docs.texts) if isinstance(docs.texts, list) else None
        bar = tqdm(total=total, unit="doc", desc=f"tokenize {label}", disable=not progress)
        for ids, n in bpe.encode_documents(tok, counted(docs.texts), eos_id):
            bar.update(n)
            yield ids
        bar.close()

    info: ShardInfo = write_shard(path, blocks(), dtype)
    return {**info.as_dict(), **counts}


def _build(cfg: CorpusConfig, content: dict, tmp: Path, progress: bool, log) -> dict:
    start = time.perf_counter()
    tok_path = ensure_tokenizer(cfg, progress, log, content=content)
    # The description comes from the cached tokenizer itself, not from this config: a reused
    # tokenizer was trained by whichever run built it.
    trained_on = tokenizer_meta(tok_path)["trained_on"]
    shutil.copyfile(tok_path, tmp / "tokenizer.json")
    tok = bpe.load(tmp / "tokenizer.json")
    special = bpe.special_ids(tok)
    dtype = bpe.token_dtype(cfg.vocab_size)
    manifest: dict = {"format": FORMAT_VERSION, "key": tmp.name.split(".tmp")[0].lstrip("."),
                      "config": content, "special": special, "splits": {},
                      "tokenizer": {"file": "tokenizer.json", "sha256": sha256_file(tmp / "tokenizer.json"),
                                    "vocab_size": tok.get_vocab_size(), "requested_vocab_size": cfg.vocab_size,
                                    "trained_on": trained_on},
                      "files": {}}
    for split in SPLITS:
        if split == "val_clean" and cfg.name != "synthetic":
            # A real source has one held-out split; it is the clean one by definition.
            manifest["splits"]["val_clean"] = dict(manifest["splits"]["val"])
            continue
        docs = _documents(cfg, split, progress)
        if split == "train" and cfg.clean:
            docs, manifest["cleaning"] = _clean(docs, log)
        info = _tokenize_split(tok, docs, tmp / f"{split}.bin", dtype, special["eos_id"], split, progress)
        if info["documents"] == 0:  # known only once a streamed split has been read
            raise ConfigError("corpus.path" if cfg.path else "corpus.name",
                              f"the {split} split of {cfg.name} is empty")
        manifest["splits"][split] = info
        manifest["files"][info["file"]] = info["sha256"]
        if split == "train" and docs.labels is not None:
            text = "".join(json.dumps(label) + "\n" for label in docs.labels)
            manifest["documents"] = {"file": "documents.jsonl", "count": len(docs.labels)}
            manifest["files"]["documents.jsonl"] = _write_text_file(tmp / "documents.jsonl", text)
    manifest["pairs"] = None
    if cfg.name == "synthetic" and cfg.pairs_per_phenomenon > 0:
        from corpora.synthetic import minimal_pairs

        pairs = minimal_pairs(cfg.seed, cfg.pairs_per_phenomenon)
        text = "".join(json.dumps(p) + "\n" for p in pairs)
        manifest["pairs"] = {"file": "pairs.jsonl", "count": len(pairs),
                             "phenomena": sorted({p["phenomenon"] for p in pairs})}
        manifest["files"]["pairs.jsonl"] = _write_text_file(tmp / "pairs.jsonl", text)
    manifest["files"]["tokenizer.json"] = manifest["tokenizer"]["sha256"]
    manifest["seconds"] = round(time.perf_counter() - start, 2)
    manifest["created"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    _write_text_file(tmp / "manifest.json", json.dumps(manifest, indent=2) + "\n")
    return manifest


def read_manifest(path: str | Path | None) -> dict | None:
    """A prepared corpus's manifest as recorded, without verifying the files (cheap: for
    reports and decisions that only read counts); None when missing or unreadable."""
    try:
        return json.loads((Path(path) / "manifest.json").read_text())
    except (TypeError, OSError, ValueError):
        return None


def verify(path: Path) -> str | None:
    """None if the prepared corpus at `path` is complete and intact, else what is wrong."""
    try:
        manifest = json.loads((path / "manifest.json").read_text())
    except (OSError, ValueError) as e:
        return f"manifest unreadable ({e.__class__.__name__})"
    if manifest.get("format") not in READABLE_FORMATS:
        return f"format {manifest.get('format')} is not one this code reads ({READABLE_FORMATS})"
    for name, digest in manifest.get("files", {}).items():
        file = path / name
        if not file.exists():
            return f"{name} is missing"
        if sha256_file(file) != digest:
            return f"{name} fails its checksum"
    return None


def load_prepared(path: str | Path) -> PreparedCorpus:
    """Open a prepared corpus directory after verifying it; ValueError if damaged."""
    path = Path(path)
    problem = verify(path)
    if problem:
        raise ValueError(f"prepared corpus {path} is damaged: {problem}")
    return PreparedCorpus(path, json.loads((path / "manifest.json").read_text()))


def prepare_corpus(cfg: CorpusConfig, progress: bool = False, log=None) -> PreparedCorpus:
    """The prepared corpus for `cfg`: from the cache when intact, else built (atomically)."""
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    validate_corpus_config(cfg)
    root = Path(cfg.cache_dir)
    content = _content(cfg)  # once: for local files it hashes their data
    final = root / corpus_key(cfg, content)
    with _file_lock(root / f".{final.name}.lock"):
        if final.exists():
            problem = verify(final)
            if problem is None:
                return PreparedCorpus(final, json.loads((final / "manifest.json").read_text()))
            log(f"prepared corpus {final} is damaged ({problem}); rebuilding it")
        tmp = root / f".{final.name}.tmp{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            manifest = _build(cfg, content, tmp, progress, log)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        _publish(tmp, final)
        train = manifest["splits"]["train"]
        log(f"prepared {cfg.name} (quality {cfg.quality:g}): {train['documents']} documents, "
            f"{train['words']} words, {train['tokens']} tokens in {manifest['seconds']}s -> {final}")
        return PreparedCorpus(final, manifest)


# --- command line ---------------------------------------------------------------------------

@dataclass
class PrepareConfig:
    corpus: CorpusConfig = dataclasses.field(default_factory=CorpusConfig)


def _register() -> None:
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name="prepare_schema", node=PrepareConfig)


def main(argv: list[str]) -> int:
    from common.cli import compose

    cfg = compose("prepare", argv, _register, PrepareConfig).corpus
    corpus = prepare_corpus(cfg, progress=sys.stderr.isatty())
    print(corpus.path)
    return 0


if __name__ == "__main__":
    from common.cli import main_guard

    main_guard(lambda: main(sys.argv[1:]))
