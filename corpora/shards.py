"""Token shards: one flat memory-mapped array of token ids per split, with checksums.

A split is written to a temporary file while its sha256 is computed on the fly, then fsynced;
the caller renames the whole directory into place once every file is complete, so a reader
sees either a finished corpus or none.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np


@dataclass
class ShardInfo:
    file: str
    dtype: str
    tokens: int
    sha256: str

    def as_dict(self) -> dict:
        return {"file": self.file, "dtype": self.dtype, "tokens": self.tokens, "sha256": self.sha256}


def write_shard(path: Path, blocks: Iterable[np.ndarray], dtype: np.dtype) -> ShardInfo:
    """Append id blocks to `path` as `dtype`, hashing as they go; fsync before returning."""
    digest = hashlib.sha256()
    tokens = 0
    limit = np.iinfo(dtype).max
    with open(path, "wb") as f:
        for block in blocks:
            if block.size and int(block.max()) > limit:
                raise ValueError(f"token id {int(block.max())} does not fit {dtype}")
            data = block.astype(dtype, copy=False).tobytes()
            digest.update(data)
            f.write(data)
            tokens += block.size
        f.flush()
        os.fsync(f.fileno())
    return ShardInfo(path.name, np.dtype(dtype).name, tokens, digest.hexdigest())


def open_shard(directory: Path, info: dict) -> np.ndarray:
    """The split as a read-only memmap (an empty array for an empty split)."""
    if info["tokens"] == 0:
        return np.zeros(0, dtype=info["dtype"])
    return np.memmap(directory / info["file"], dtype=info["dtype"], mode="r", shape=(info["tokens"],))
