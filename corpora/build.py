"""Building one prepared corpus into a directory: each split's token shard, the ground-truth
labels, minimal pairs and knowledge probes, and the manifest, written last."""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from common.errors import ConfigError
from common.files import sha256_file
from corpora import tokenizer as bpe
from corpora.config import CorpusConfig
from corpora.documents import SplitDocs, clean, split_documents
from corpora.keys import FORMAT_VERSION
from corpora.publish import write_durably
from corpora.shards import ShardInfo, write_shard
from corpora.sources import count_words
from corpora.tokenizer_cache import ensure_tokenizer, tokenizer_meta

SPLITS = ("train", "val", "val_clean")


def build(cfg: CorpusConfig, content: dict, tmp: Path, progress: bool, log) -> dict:
    """Fill `tmp` (named after the corpus key) with the corpus of `cfg`; its manifest.
    `content`: the `corpora.keys.corpus_content` the key was made from, kept in the manifest."""
    start = time.perf_counter()
    tok_path = ensure_tokenizer(cfg, progress, log, content=content)
    shutil.copyfile(tok_path, tmp / "tokenizer.json")
    tok = bpe.load(tmp / "tokenizer.json")
    manifest: dict = {"format": FORMAT_VERSION, "key": tmp.name.split(".tmp")[0].lstrip("."),
                      "config": content, "special": bpe.special_ids(tok), "splits": {},
                      "tokenizer": _tokenizer_entry(cfg, tok, tmp, tok_path), "files": {}}
    for split in SPLITS:
        _add_split(cfg, tok, split, tmp, manifest, progress, log)
    manifest["pairs"] = manifest["facts"] = None
    if cfg.name == "synthetic" and cfg.pairs_per_phenomenon > 0:
        _add_pairs(cfg, tmp, manifest)
    if cfg.name == "synthetic":
        _add_facts(cfg, tmp, manifest)
    manifest["files"]["tokenizer.json"] = manifest["tokenizer"]["sha256"]
    manifest["seconds"] = round(time.perf_counter() - start, 2)
    manifest["created"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    write_durably(tmp / "manifest.json", json.dumps(manifest, indent=2) + "\n")
    return manifest


def _tokenizer_entry(cfg: CorpusConfig, tok, tmp: Path, cached: Path) -> dict:
    return {"file": "tokenizer.json", "sha256": sha256_file(tmp / "tokenizer.json"),
            "vocab_size": tok.get_vocab_size(), "requested_vocab_size": cfg.vocab_size,
            # From the cached tokenizer itself, not from this config: a reused tokenizer was
            # trained by whichever run built it.
            "trained_on": tokenizer_meta(cached)["trained_on"]}


def _add_split(cfg: CorpusConfig, tok, split: str, tmp: Path, manifest: dict, progress: bool, log) -> None:
    """Tokenize one split into its shard and record it (and the training labels) in `manifest`."""
    if split == "val_clean" and cfg.name != "synthetic" and cfg.heldout_from is None:
        # A real source has one held-out split; it is the clean one by definition.
        manifest["splits"]["val_clean"] = dict(manifest["splits"]["val"])
        return
    docs = split_documents(cfg, split, progress)
    if split == "train" and cfg.clean:
        docs, manifest["cleaning"] = clean(docs, log)
    info = _tokenize_split(tok, docs, tmp / f"{split}.bin", bpe.token_dtype(cfg.vocab_size),
                           manifest["special"]["eos_id"], split, progress)
    if info["documents"] == 0:  # known only once a streamed split has been read
        raise ConfigError("corpus.path" if cfg.path else "corpus.name",
                          f"the {split} split of {cfg.name} is empty")
    if docs.parts is not None:  # a mix: what each part realised of this split
        from corpora.mix import realized_shares

        info["parts"] = realized_shares(docs.parts, tmp, info, manifest["special"]["eos_id"])
    manifest["splits"][split] = info
    manifest["files"][info["file"]] = info["sha256"]
    if split == "train" and docs.labels is not None:
        text = "".join(json.dumps(label) + "\n" for label in docs.labels)
        manifest["documents"] = {"file": "documents.jsonl", "count": len(docs.labels)}
        manifest["files"]["documents.jsonl"] = write_durably(tmp / "documents.jsonl", text)


def _tokenize_split(tok, docs: SplitDocs, path: Path, dtype, eos_id: int, label: str,
                    progress: bool) -> dict:
    from tqdm import tqdm

    counts = {"documents": 0, "words": 0, "bytes": 0}

    def counted(texts: Iterable[str]) -> Iterator[str]:  # as they stream past: read once
        for text in texts:
            counts["documents"] += 1
            counts["words"] += count_words(text)
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


def _add_pairs(cfg: CorpusConfig, tmp: Path, manifest: dict) -> None:
    from corpora.synthetic import minimal_pairs

    pairs = minimal_pairs(cfg.seed, cfg.pairs_per_phenomenon)
    text = "".join(json.dumps(p) + "\n" for p in pairs)
    manifest["pairs"] = {"file": "pairs.jsonl", "count": len(pairs),
                         "phenomena": sorted({p["phenomenon"] for p in pairs})}
    manifest["files"]["pairs.jsonl"] = write_durably(tmp / "pairs.jsonl", text)


def _add_facts(cfg: CorpusConfig, tmp: Path, manifest: dict) -> None:
    """The world's knowledge probes (lab.choices format), held out like the pairs."""
    from corpora.synthetic.facts import fact_probes

    probes = fact_probes(cfg.seed)
    text = "".join(json.dumps(p) + "\n" for p in probes)
    manifest["facts"] = {"file": "facts.jsonl", "n": len(probes),
                         "n_two_hop": sum(p["hops"] == 2 for p in probes)}
    manifest["files"]["facts.jsonl"] = write_durably(tmp / "facts.jsonl", text)
