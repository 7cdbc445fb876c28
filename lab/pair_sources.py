"""Minimal pairs in BLiMP's format, read from a JSON-lines file, a directory of them, or a
`datasets` hub id, with the phenomenon each pair belongs to."""
from __future__ import annotations

import json
from pathlib import Path

from common.errors import ConfigError

PAIR_KEYS = ("sentence_good", "sentence_bad")


def phenomenon_of(pair: dict, default: str = "all") -> str:
    """The phenomenon a pair belongs to: "phenomenon", else BLiMP's "linguistics_term", else
    "UID", else `default` (the file name for a directory of pair files)."""
    for key in ("phenomenon", "linguistics_term", "UID"):
        if pair.get(key) not in (None, ""):
            return str(pair[key])
    return default


def read_pairs(path: str | Path) -> list[dict]:
    """JSON lines with at least sentence_good and sentence_bad (phenomenon, UID, pair_id optional)."""
    pairs = []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                pair = json.loads(line)
            except ValueError as e:
                raise ValueError(f"{path}:{number}: not JSON ({e.__class__.__name__})") from None
            if not isinstance(pair, dict):
                raise ValueError(f"{path}:{number}: not a JSON object")
            missing = [k for k in PAIR_KEYS if not isinstance(pair.get(k), str)]
            if missing:
                raise ValueError(f"{path}:{number}: pair lacks {', '.join(missing)}")
            pairs.append(pair)
    return pairs


def _read_pairs_dir(path: Path) -> list[dict]:
    """Every .jsonl file of a directory (BLiMP ships one per paradigm), in name order; a pair
    without a phenomenon of its own is filed under its file's name."""
    files = sorted(p for p in path.iterdir() if p.is_file() and p.name.endswith(".jsonl"))
    if not files:
        raise ConfigError("pairs", f"{path} holds no .jsonl files")
    pairs = []
    for file in files:
        stem = file.name[:-len(".jsonl")]
        pairs += [{**p, "phenomenon": phenomenon_of(p, stem)} if "phenomenon" not in p else p
                  for p in read_pairs(file)]
    return pairs


def load_pairs(source: str | Path) -> list[dict]:
    """Pairs from a .jsonl file, a directory of them, or a datasets hub id such as
    "nyu-mll/blimp" (needs internet: not exercised by the offline tests). Bad input raises
    ConfigError("pairs", ...)."""
    path = Path(source)
    try:
        if path.is_file():
            return read_pairs(path)
        if path.is_dir():
            return _read_pairs_dir(path)
    except ConfigError:
        raise
    except ValueError as e:
        raise ConfigError("pairs", str(e).splitlines()[0]) from None
    except OSError as e:
        raise ConfigError("pairs", f"{path} is unreadable ({e.__class__.__name__})") from None
    text = str(source)
    looks_like_hub = text.count("/") == 1 and not text.startswith((".", "/")) and not text.endswith(".jsonl")
    if not looks_like_hub:
        raise ConfigError("pairs", f"{text} is not a file, a directory of .jsonl files, or a hub id (owner/name)")
    return load_hub_pairs(text)


def load_hub_pairs(hub_id: str) -> list[dict]:
    """Every config of a BLiMP-format datasets repository (its "train" split, BLiMP's only one).

    Needs internet (or a populated datasets cache); the offline tests cannot exercise it."""
    try:
        import datasets
    except ImportError:
        raise ConfigError("pairs", f"{hub_id} looks like a hub id, but the `datasets` package is not installed") from None
    try:
        configs = datasets.get_dataset_config_names(hub_id)
        pairs = []
        for config in configs or [None]:
            ds = datasets.load_dataset(hub_id, config)
            split = ds["train"] if "train" in ds else ds[next(iter(ds))]
            for row in split:
                row = dict(row)
                if "phenomenon" not in row:
                    row["phenomenon"] = phenomenon_of(row, config or hub_id)
                pairs.append(row)
    except Exception as e:  # network, unknown id, schema: one line
        raise ConfigError("pairs", f"could not load hub dataset {hub_id!r} "
                                   f"({e.__class__.__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None
    missing = [k for k in PAIR_KEYS if pairs and k not in pairs[0]]
    if not pairs or missing:
        raise ConfigError("pairs", f"hub dataset {hub_id!r} has no {', '.join(missing) or 'pairs'}")
    return pairs
