"""The prepared-corpus cache: a corpus is found by its key when intact, else built and published
whole; a damaged one is rebuilt (with a message), never used."""
from __future__ import annotations

import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.files import checksum_problem
from corpora.build import build
from corpora.config import CorpusConfig
from corpora.keys import corpus_content, corpus_key
from corpora.publish import file_lock, fresh_temporary, publish
from corpora.shards import open_shard
from corpora.validate import validate_corpus_config

# Formats a prepared corpus may have and still be read (finished runs point at their corpus for
# evaluation, export and submissions): format 1's layout is the same, only its encoding of
# special-token strings in text differs, and the key keeps new preparations from reusing it.
READABLE_FORMATS = (1, 2)


@dataclass
class PreparedCorpus:
    """A prepared corpus on disk: what the trainer, evaluation and export read.

    `<cache_dir>/<name>-q<quality>-<hash>/` holds train.bin, val.bin and val_clean.bin (uint16 or
    uint32 ids, documents joined by EOS), tokenizer.json (a copy of the shared one under
    `tokenizers/`), pairs.jsonl, facts.jsonl and documents.jsonl (synthetic ground truth), and
    manifest.json (config, counts, sha256 of every file), written last.
    """
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
    def facts_path(self) -> Path | None:
        """The knowledge probes (corpora.synthetic.facts); None for a corpus without them (a
        real source, or a synthetic one prepared before generator revision 3)."""
        facts = self.manifest.get("facts")
        return self.path / facts["file"] if facts else None

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
    return checksum_problem(path, manifest.get("files", {}))


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
    content = corpus_content(cfg)  # once: for local files it hashes their data
    final = root / corpus_key(cfg, content)
    with file_lock(root / f".{final.name}.lock"):
        if final.exists():
            problem = verify(final)
            if problem is None:
                return PreparedCorpus(final, json.loads((final / "manifest.json").read_text()))
            log(f"prepared corpus {final} is damaged ({problem}); rebuilding it")
        tmp = fresh_temporary(final)
        try:
            manifest = build(cfg, content, tmp, progress, log)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        publish(tmp, final)
        train = manifest["splits"]["train"]
        log(f"prepared {cfg.name} (quality {cfg.quality:g}): {train['documents']} documents, "
            f"{train['words']} words, {train['tokens']} tokens in {manifest['seconds']}s -> {final}")
        return PreparedCorpus(final, manifest)
