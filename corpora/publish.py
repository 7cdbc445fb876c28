"""How cache entries (a tokenizer, a prepared corpus) come into being safely: one builder per key
across processes, and a directory that appears whole or not at all."""
from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from common.files import fsync_path, sha256_file
from common.locks import held


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Serialise preparation of one key across processes (a grid's workers, DDP ranks), also on
    different nodes: the cache is usually on a shared filesystem, where flock() is unreliable.
    Waits for the holder; one that died is recognised and its lock broken (common.locks)."""
    with held(path, wait=True):
        yield


def fresh_temporary(final: Path) -> Path:
    """An empty directory beside `final` to build it in: hidden, so nothing takes it for a
    finished entry, and emptied first in case an earlier try of this process left it behind."""
    tmp = final.with_name(f".{final.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    return tmp


def publish(tmp: Path, final: Path) -> None:
    """Move a finished temporary directory into place (the old one, if any, goes aside first)."""
    fsync_path(tmp)
    if final.exists():
        aside = final.with_name(f".{final.name}.old{os.getpid()}")
        os.replace(final, aside)
        shutil.rmtree(aside, ignore_errors=True)
    os.replace(tmp, final)
    fsync_path(final.parent)


def write_durably(path: Path, text: str) -> str:
    """Write a file of a directory still being built (so no rename of its own); its sha256."""
    with open(path, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    return sha256_file(path)
