"""Durable small writes and content hashes, with no dependency beyond the standard library:
the corpus cache, checkpoints and run records all build on these."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def checksum_problem(directory: Path, digests: dict[str, str]) -> str | None:
    """The first file of `digests` (name -> sha256) missing from directory or not matching, as
    a phrase ("model.safetensors checksum mismatch"); None when all are intact."""
    for name, digest in digests.items():
        file = directory / name
        if not file.is_file():
            return f"{name} missing"
        if sha256_file(file) != digest:
            return f"{name} checksum mismatch"
    return None


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_text(path: Path, text: str) -> None:
    """Write a small file so that readers see the old or the new content, never a mix."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_path(path.parent)
