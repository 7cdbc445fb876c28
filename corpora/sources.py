"""Registry and readers of real text corpora: BabyLM, TinyStories, FineWeb(-Edu), Cosmopedia, C4, local files.

Everything here yields plain document strings; tokenization and sharding live in
``corpora.build``, caching in ``corpora.cache``. The synthetic corpus is not here:
``corpora.synthetic`` generates it.

Splits. A source either has a real validation split (hub split, BabyLM ``*.dev`` files,
local files whose name marks them as validation) or none; then validation is *held out*
from the training stream: record ``i`` (counted over the raw stream, before any score
filter) goes to "val" iff ``blake2b(f"{seed}:{i}")`` falls below ``VAL_FRACTION``. The rule
is stable (same seed, same data -> same split), and train/val are disjoint and together
cover every record.

Words are whitespace-separated tokens (``str.split()``), BabyLM's unit, so word budgets
mean the same thing for every source.
"""
from __future__ import annotations

import gzip
import hashlib
import itertools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from common.errors import ConfigError
from corpora.config import CorpusConfig

# Fraction of records held out for validation when a source has no validation split.
VAL_FRACTION = 0.05
# BabyLM files hold one utterance/sentence per line; a document is a run of consecutive
# non-blank lines, cut at blank lines, at file ends, and after this many lines (so that
# documents carry some context yet the hold-out and the eos boundaries stay fine-grained).
BABYLM_LINES_PER_DOC = 32
# File types read for name="local" (read by this module's own streaming readers).
LOCAL_EXTENSIONS = (".txt", ".jsonl", ".jsonl.gz", ".parquet")
# File types accepted for a hub source given a local path (read through `datasets`); .json
# files must be JSON Lines, as hub shards are (C4 ships c4-train.00000-of-01024.json.gz).
HUB_FILE_EXTENSIONS = (".parquet", ".jsonl", ".jsonl.gz", ".json", ".json.gz")
# A file (or a folder on its path) whose name contains one of these words (split at - _ .)
# is a validation file; "test" files are left out of both splits (hub layouts ship them).
_VAL_WORDS = frozenset({"validation", "valid", "val", "dev"})
_TEST_WORDS = frozenset({"test"})
# BabyLM release folders holding the training files of each track (2023 and 2024 names).
_BABYLM_TRAIN_DIRS = {
    "babylm_strict_small": ("train_10M", "babylm_10M", "10M"),
    "babylm_strict": ("train_100M", "babylm_100M", "100M"),
}


@dataclass(frozen=True)
class Source:
    """One registry entry: where a corpus lives and how its records are read."""

    name: str
    description: str
    citation: str
    licence: str
    hub_id: str | None  # Hugging Face datasets id (None: local files only)
    hub_config: str | None
    text_field: str  # column holding the document text
    train_split: str
    val_split: str | None  # None: hold out VAL_FRACTION of the training stream
    streaming: bool  # stream from the hub instead of downloading everything first
    score_field: str | None = None  # quality score compared with cfg.min_score
    babylm_layout: bool = False  # with a path: a directory of *.train / *.dev files


_BABYLM_CITATION = (
    "Warstadt, Mueller, Choshen, Wilcox, Zhuang, Ciro, Mosquera, Paranjape, Williams, Linzen, "
    "Cotterell (2023). Findings of the BabyLM Challenge: Sample-Efficient Pretraining on "
    "Developmentally Plausible Corpora. CoNLL-CMCL 2023 (https://babylm.github.io)."
)
_BABYLM_LICENCE = (
    "Mixture of sub-corpora under their own terms (CHILDES/TalkBank rules, BNC, Project "
    "Gutenberg, OpenSubtitles, Simple English Wikipedia CC BY-SA, Switchboard); research use."
)
_FINEWEB_CITATION = (
    "Penedo, Kydlicek, Ben Allal, Lozhkov, Mitchell, Raffel, Von Werra, Wolf (2024). The FineWeb "
    "Datasets: Decanting the Web for the Finest Text Data at Scale. NeurIPS 2024 Datasets and "
    "Benchmarks, arXiv:2406.17557."
)
_FINEWEB_LICENCE = "ODC-By 1.0; also subject to the CommonCrawl terms of use."

SOURCES: dict[str, Source] = {
    s.name: s
    for s in (
        Source(
            name="babylm_strict_small",
            description=(
                "BabyLM strict-small track: 10M words of child-directed speech, dialogue, "
                "children's books, subtitles and Simple Wikipedia. Hub copy nilq/babylm-10M "
                "(one line per row; override with corpus.hub_id), or corpus.path = an official "
                "release directory (train_10M/*.train, dev/*.dev)."
            ),
            citation=_BABYLM_CITATION,
            licence=_BABYLM_LICENCE,
            hub_id="nilq/babylm-10M",
            hub_config=None,
            text_field="text",
            train_split="train",
            val_split="validation",
            streaming=False,
            babylm_layout=True,
        ),
        Source(
            name="babylm_strict",
            description=(
                "BabyLM strict track: 100M words, same genres as strict-small. Hub copy "
                "nilq/babylm-100M (one line per row; override with corpus.hub_id), or "
                "corpus.path = an official release directory (train_100M/*.train, dev/*.dev)."
            ),
            citation=_BABYLM_CITATION,
            licence=_BABYLM_LICENCE,
            hub_id="nilq/babylm-100M",
            hub_config=None,
            text_field="text",
            train_split="train",
            val_split="validation",
            streaming=True,
            babylm_layout=True,
        ),
        Source(
            name="tinystories",
            description=(
                "TinyStories: ~2.1M short stories written by GPT-3.5/4 with a 3-4 year old's "
                "vocabulary; a narrow, clean distribution that small models learn fluently."
            ),
            citation=(
                "Eldan, Li (2023). TinyStories: How Small Can Language Models Be and Still Speak "
                "Coherent English? arXiv:2305.07759."
            ),
            licence="CDLA-Sharing-1.0.",
            hub_id="roneneldan/TinyStories",
            hub_config=None,
            text_field="text",
            train_split="train",
            val_split="validation",
            streaming=True,
        ),
        Source(
            name="fineweb_edu",
            description=(
                "FineWeb-Edu: FineWeb pages scored 0-5 for educational value by a Llama-3-70B "
                "annotated classifier (columns score / int_score); corpus.min_score filters on "
                "'score'. Default config sample-10BT; no validation split (held out)."
            ),
            citation=(
                _FINEWEB_CITATION
                + " Lozhkov, Ben Allal, von Werra, Wolf (2024). FineWeb-Edu: the finest collection "
                "of educational content."
            ),
            licence=_FINEWEB_LICENCE,
            hub_id="HuggingFaceFW/fineweb-edu",
            hub_config="sample-10BT",
            text_field="text",
            train_split="train",
            val_split=None,
            streaming=True,
            score_field="score",
        ),
        Source(
            name="fineweb",
            description=(
                "FineWeb: 15T tokens of deduplicated, filtered CommonCrawl English web text. "
                "Default config sample-10BT; no validation split (held out)."
            ),
            citation=_FINEWEB_CITATION,
            licence=_FINEWEB_LICENCE,
            hub_id="HuggingFaceFW/fineweb",
            hub_config="sample-10BT",
            text_field="text",
            train_split="train",
            val_split=None,
            streaming=True,
        ),
        Source(
            name="cosmopedia",
            description=(
                "Cosmopedia: synthetic textbooks, blog posts, stories and WikiHow articles written "
                "by Mixtral-8x7B-Instruct. Needs a subset (corpus.hub_config): stories (default), "
                "web_samples_v1, web_samples_v2, stanford, wikihow, openstax, khanacademy, "
                "auto_math_text. No validation split (held out)."
            ),
            citation=(
                "Ben Allal, Lozhkov, Penedo, Wolf, von Werra (2024). Cosmopedia. Hugging Face, "
                "https://huggingface.co/datasets/HuggingFaceTB/cosmopedia."
            ),
            licence="Apache-2.0 (generated text; see the dataset card for model terms).",
            hub_id="HuggingFaceTB/cosmopedia",
            hub_config="stories",
            text_field="text",
            train_split="train",
            val_split=None,
            streaming=True,
        ),
        Source(
            name="c4",
            description=(
                "C4 (Colossal Clean Crawled Corpus), English config: heuristically cleaned "
                "CommonCrawl from April 2019, with its official validation split."
            ),
            citation=(
                "Raffel, Shazeer, Roberts, Lee, Narang, Matena, Zhou, Li, Liu (2020). Exploring the "
                "Limits of Transfer Learning with a Unified Text-to-Text Transformer. JMLR 21(140). "
                "Dodge et al. (2021). Documenting Large Webtext Corpora: A Case Study on the "
                "Colossal Clean Crawled Corpus. EMNLP 2021."
            ),
            licence="ODC-By 1.0; also subject to the CommonCrawl terms of use.",
            hub_id="allenai/c4",
            hub_config="en",
            text_field="text",
            train_split="train",
            val_split="validation",
            streaming=True,
        ),
        Source(
            name="local",
            description=(
                "Your own files (corpus.path, a file or a directory searched recursively): .txt "
                "(one document per blank-line-separated block), .jsonl (one JSON object per line, "
                "text in corpus.text_field or 'text'), .parquet (column corpus.text_field or 'text')."
            ),
            citation="User-supplied data: cite its origin.",
            licence="As the user's data: check before redistributing models or samples.",
            hub_id=None,
            hub_config=None,
            text_field="text",
            train_split="train",
            val_split=None,
            streaming=False,
        ),
    )
}

_WORD = re.compile(r"\S+")


# ----------------------------------------------------------------------------- words


def count_words(text: str) -> int:
    """Whitespace-separated words, BabyLM's unit (the same as ``len(text.split())``)."""
    return len(text.split())


def take_words(docs: Iterable[str], n_words: int | None) -> Iterator[str]:
    """Yield documents until exactly ``n_words`` words have been yielded (None: everything).

    The last document is cut after its n-th remaining word, keeping its original spacing up
    to there, so budgets are exact. Documents without words are dropped under a budget.
    """
    if n_words is None:
        yield from docs
        return
    if n_words < 0:
        raise ValueError(f"n_words must be >= 0, got {n_words}")
    left = n_words
    if left == 0:
        return
    for doc in docs:
        n = count_words(doc)
        if n == 0:
            continue
        if n < left:
            left -= n
            yield doc
            continue
        if n == left:
            yield doc
        else:
            last = next(itertools.islice(_WORD.finditer(doc), left - 1, None))
            yield doc[: last.end()]
        return


# ----------------------------------------------------------------------------- validation


def get_source(name: str) -> Source:
    """The registry entry of ``name``, or a ConfigError listing the known names."""
    try:
        return SOURCES[name]
    except KeyError:
        known = ", ".join(sorted(SOURCES))
        raise ConfigError(
            "corpus.name",
            f"unknown corpus {name!r}; known: synthetic (generated), {known}",
        ) from None


def validate_source(cfg: CorpusConfig) -> None:
    """Check a corpus config before any compute; raise ConfigError naming the bad field.

    Never touches the network: hub sources without a path are only checked for a usable id.
    With a path, the files are found, checked for existence, emptiness and extension, and
    the first record of each format is peeked at for the text (and score) field.
    "synthetic" passes: it is generated by corpora.synthetic, nothing to check here.
    """
    if cfg.name == "synthetic":
        return
    src = get_source(cfg.name)
    _check_budgets(cfg)
    if cfg.score_field is not None and (not isinstance(cfg.score_field, str) or not cfg.score_field):
        raise ConfigError("corpus.score_field", f"must be a non-empty column name, got {cfg.score_field!r}")
    if cfg.min_score is not None:
        if src.score_field is None and cfg.score_field is None:
            raise ConfigError(
                "corpus.min_score",
                f"corpus {cfg.name!r} has no quality score to filter on "
                f"(only {', '.join(s.name for s in SOURCES.values() if s.score_field)} do, "
                "and local files with corpus.score_field naming their score column)",
            )
        if isinstance(cfg.min_score, bool) or not isinstance(cfg.min_score, (int, float)):
            raise ConfigError("corpus.min_score", f"must be a number, got {cfg.min_score!r}")
    if cfg.text_field is not None and (not isinstance(cfg.text_field, str) or not cfg.text_field):
        raise ConfigError("corpus.text_field", f"must be a non-empty string, got {cfg.text_field!r}")
    if cfg.path is None:
        if src.hub_id is None:
            raise ConfigError("corpus.path", f"corpus {cfg.name!r} reads local files: set corpus.path")
        hub_id = cfg.hub_id or src.hub_id
        if not isinstance(hub_id, str) or not hub_id.strip():
            raise ConfigError("corpus.hub_id", f"must be a Hugging Face dataset id, got {hub_id!r}")
        return
    if src.hub_id is None and (cfg.hub_id is not None or cfg.hub_config is not None):
        field = "corpus.hub_id" if cfg.hub_id is not None else "corpus.hub_config"
        raise ConfigError(field, "only hub sources take a hub id/config; 'local' reads corpus.path")
    train, val = _resolve_files(cfg, src)
    if not src.babylm_layout:
        for path in _first_of_each_format(train + val):
            _peek_fields(path, _text_field(cfg, src), _score_field(cfg, src))


def _check_budgets(cfg: CorpusConfig) -> None:
    for field, value, optional in (
        ("corpus.train_words", cfg.train_words, True),
        ("corpus.val_words", cfg.val_words, False),
    ):
        if value is None and optional:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(field, f"must be a non-negative integer word count, got {value!r}")


def _text_field(cfg: CorpusConfig, src: Source) -> str:
    return cfg.text_field or src.text_field


def _score_field(cfg: CorpusConfig, src: Source) -> str | None:
    """The score column to read: only when a threshold is set (keeps reads minimal)."""
    return (cfg.score_field or src.score_field) if cfg.min_score is not None else None


# ----------------------------------------------------------------------------- files


def _resolve_files(cfg: CorpusConfig, src: Source) -> tuple[list[Path], list[Path]]:
    """(train files, val files) under cfg.path, in a stable sorted order; empty files skipped."""
    root = Path(cfg.path).expanduser()
    if not root.exists():
        raise ConfigError("corpus.path", f"no such file or directory: {root}")
    if src.babylm_layout:
        return _babylm_files(root, src)
    allowed = LOCAL_EXTENSIONS if src.hub_id is None else HUB_FILE_EXTENSIONS
    if root.is_file():
        if not _has_ext(root, allowed):
            raise ConfigError(
                "corpus.path",
                f"unsupported extension {''.join(root.suffixes) or '(none)'!r} of {root}; "
                f"corpus {cfg.name!r} reads {', '.join(allowed)}",
            )
        if root.stat().st_size == 0:
            raise ConfigError("corpus.path", f"empty file: {root}")
        return [root], []
    files = [p for p in _walk(root) if _has_ext(p, allowed)]
    if not files:
        raise ConfigError(
            "corpus.path", f"no {', '.join(allowed)} files under {root} (corpus {cfg.name!r})"
        )
    files = [p for p in files if p.stat().st_size > 0]
    if not files:
        raise ConfigError("corpus.path", f"only empty files under {root}")
    if src.hub_id is not None and len({_format(p) for p in files}) > 1:
        raise ConfigError("corpus.path", f"mixes parquet and json files under {root}: use one format")
    train, val = [], []
    for p in files:
        role = _role(p.relative_to(root))
        if role == "val":
            val.append(p)
        elif role == "train":
            train.append(p)
    if not train:
        raise ConfigError("corpus.path", f"only validation/test files under {root}, no training files")
    return train, val


def local_files(cfg: CorpusConfig) -> tuple[Path, list[Path]]:
    """(root, every file `iter_documents` reads under cfg.path): train then val files.

    The same listing the readers use (extensions, BabyLM layout, empty and test files left
    out), so a cache key built from it covers exactly the data read. ConfigError as
    `validate_source` for a missing or unusable path.
    """
    if cfg.path is None:
        raise ValueError(f"corpus {cfg.name!r} has no local path")
    train, val = _resolve_files(cfg, get_source(cfg.name))
    return Path(cfg.path).expanduser(), train + val


def _walk(root: Path) -> list[Path]:
    """Regular files under root, recursively, sorted; hidden files and folders skipped."""
    out = []
    for p in root.rglob("*"):
        rel = p.relative_to(root)
        if p.is_file() and not any(part.startswith(".") for part in rel.parts):
            out.append(p)
    return sorted(out, key=lambda p: p.relative_to(root).as_posix())


def _has_ext(path: Path, extensions: tuple[str, ...]) -> bool:
    return path.name.lower().endswith(extensions)


def _role(rel: Path) -> str:
    """'val', 'test' or 'train' from the words of the file's and its folders' names.

    Hub layouts name files ``validation-00000-of-00001.parquet`` or
    ``c4-validation.00000-of-00008.json.gz``, or use a ``validation/`` folder; the same
    convention lets local corpora ship their own split.
    """
    words = {w for part in rel.parts for w in re.split(r"[-_.\s]+", part.lower())}
    if words & _VAL_WORDS:
        return "val"
    if words & _TEST_WORDS:
        return "test"
    return "train"


def _babylm_files(root: Path, src: Source) -> tuple[list[Path], list[Path]]:
    """*.train files (of this track's folder when the release holds both) and *.dev files."""
    if root.is_file():
        if root.suffix != ".train":
            raise ConfigError("corpus.path", f"a BabyLM file must end in .train, got {root}")
        if root.stat().st_size == 0:
            raise ConfigError("corpus.path", f"empty file: {root}")
        return [root], []
    files = _walk(root)
    train = [p for p in files if p.suffix == ".train"]
    track_dirs = _BABYLM_TRAIN_DIRS.get(src.name, ())
    in_track = [p for p in train if any(d in track_dirs for d in p.relative_to(root).parts[:-1])]
    if in_track:
        train = in_track
    val = [p for p in files if p.suffix == ".dev" and p.stat().st_size > 0]
    if not train:
        raise ConfigError(
            "corpus.path",
            f"no *.train files under {root} (expected the BabyLM layout: train_10M/*.train, dev/*.dev)",
        )
    train = [p for p in train if p.stat().st_size > 0]
    if not train:
        raise ConfigError("corpus.path", f"only empty *.train files under {root}")
    return train, val


def _format(path: Path) -> str:
    """'text', 'json' (JSON Lines, maybe gzipped) or 'parquet'."""
    name = path.name.lower()
    if name.endswith(".parquet"):
        return "parquet"
    if name.endswith(".txt"):
        return "text"
    return "json"


def _open_text(path: Path):
    """Open a text file for reading, gunzipping ``*.gz`` on the fly."""
    if path.name.lower().endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def _first_of_each_format(files: list[Path]) -> list[Path]:
    seen: dict[str, Path] = {}
    for p in files:
        seen.setdefault(_format(p), p)
    return list(seen.values())


def _peek_fields(path: Path, text_field: str, score_field: str | None) -> None:
    """Check the first record of a json/parquet file has the needed columns."""
    fmt = _format(path)
    if fmt == "text":
        return
    if fmt == "parquet":
        import pyarrow.parquet as pq

        try:
            names = set(pq.read_schema(path).names)
        except Exception as e:  # pyarrow raises several types for non-parquet bytes
            raise ConfigError("corpus.path", f"not a readable parquet file: {path} ({e})") from None
    else:
        try:
            first = _first_json_record(path)
        except (OSError, UnicodeDecodeError, EOFError) as e:  # bad gzip, not UTF-8
            raise ConfigError("corpus.path", f"cannot read {path} as UTF-8 JSON Lines ({e})") from None
        if first is None:
            raise ConfigError("corpus.path", f"no JSON records in {path}")
        names = set(first)
    if text_field not in names:
        raise ConfigError(
            "corpus.text_field", f"no column {text_field!r} in {path} (has: {', '.join(sorted(names))})"
        )
    if score_field is not None and score_field not in names:
        raise ConfigError(
            "corpus.min_score", f"no score column {score_field!r} in {path} to filter on"
        )


def _first_json_record(path: Path) -> dict | None:
    with _open_text(path) as f:
        for lineno, line in enumerate(f, 1):
            if line.strip():
                return _parse_json_line(line, path, lineno)
    return None


def _parse_json_line(line: str, path: Path, lineno: int) -> dict:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        raise ConfigError(
            "corpus.path", f"{path}:{lineno}: invalid JSON ({e.msg}); expected JSON Lines"
        ) from None
    if not isinstance(obj, dict):
        raise ConfigError("corpus.path", f"{path}:{lineno}: expected one JSON object per line")
    return obj


# ----------------------------------------------------------------------------- readers
# Every reader yields records (text, score); score is None unless a threshold is set.

Record = tuple[str | None, float | None]


def _read_txt(path: Path) -> Iterator[Record]:
    """One document per block of non-blank lines; lines keep their text, lose their newline."""
    block: list[str] = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\r\n")
            if line.strip():
                block.append(line)
            elif block:
                yield "\n".join(block), None
                block = []
    if block:
        yield "\n".join(block), None


def _read_jsonl(path: Path, text_field: str, score_field: str | None) -> Iterator[Record]:
    with _open_text(path) as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            obj = _parse_json_line(line, path, lineno)
            if text_field not in obj:
                raise ConfigError("corpus.text_field", f"{path}:{lineno}: no field {text_field!r}")
            yield obj[text_field], (obj.get(score_field) if score_field else None)


def _read_parquet(path: Path, text_field: str, score_field: str | None) -> Iterator[Record]:
    """Row-group batches via pyarrow, so files larger than memory stream."""
    import pyarrow.parquet as pq

    _peek_fields(path, text_field, score_field)
    columns = [text_field] + ([score_field] if score_field else [])
    pf = pq.ParquetFile(path)
    for batch in pf.iter_batches(columns=columns, batch_size=4096):
        texts = batch.column(text_field).to_pylist()
        scores = batch.column(score_field).to_pylist() if score_field else [None] * len(texts)
        yield from zip(texts, scores)


def _read_local(files: list[Path], text_field: str, score_field: str | None) -> Iterator[Record]:
    for path in files:
        fmt = _format(path)
        if fmt == "text":
            yield from _utf8_or_refused(path, _read_txt(path))
        elif fmt == "json":
            yield from _read_jsonl(path, text_field, score_field)  # refuses non-UTF-8 itself
        else:
            yield from _read_parquet(path, text_field, score_field)


def _utf8_or_refused(path: Path, records: Iterator[Record]) -> Iterator[Record]:
    """A file that is not UTF-8 is bad input naming the file, not a traceback mid-preparation."""
    try:
        yield from records
    except UnicodeDecodeError as e:
        raise ConfigError("corpus.path", f"{path} is not UTF-8 text ({e.reason}); convert it "
                                         "(e.g. iconv -t UTF-8) or move it out of the directory") from None


def _read_rows(rows: Iterable[dict], text_field: str, score_field: str | None, where: str) -> Iterator[Record]:
    """Records from `datasets` rows; the text field is checked on the first row."""
    checked = False
    for row in rows:
        if not checked:
            if text_field not in row:
                raise ConfigError(
                    "corpus.text_field", f"no column {text_field!r} in {where} (has: {', '.join(row)})"
                )
            if score_field is not None and score_field not in row:
                raise ConfigError("corpus.min_score", f"no score column {score_field!r} in {where}")
            checked = True
        yield row[text_field], (row.get(score_field) if score_field else None)


def _read_with_datasets(files: list[Path], text_field: str, score_field: str | None) -> Iterator[Record]:
    """Hub-format local files through the `datasets` parquet/json builders (streamed, no cache)."""
    import datasets

    builder = _format(files[0])
    ds = datasets.load_dataset(
        builder, data_files=[str(p) for p in files], split="train", streaming=True
    )
    yield from _read_rows(ds, text_field, score_field, f"{builder} files {files[0].parent}")


def _read_hub(cfg: CorpusConfig, src: Source, split: str) -> Iterator[Record]:
    import datasets

    hub_id = cfg.hub_id or src.hub_id
    config = cfg.hub_config or src.hub_config
    ds = datasets.load_dataset(hub_id, config, split=split, streaming=src.streaming)
    yield from _read_rows(ds, _text_field(cfg, src), _score_field(cfg, src), f"{hub_id}:{split}")


def _read_babylm_file(path: Path) -> Iterator[Record]:
    with open(path, encoding="utf-8") as f:
        yield from _group_lines(line.rstrip("\r\n") for line in f)


def _group_lines(lines: Iterable[str | None]) -> Iterator[Record]:
    """BabyLM documents: runs of non-blank lines, cut at blanks and every BABYLM_LINES_PER_DOC."""
    block: list[str] = []
    for line in lines:
        if line is not None and line.strip():
            block.append(line)
            if len(block) < BABYLM_LINES_PER_DOC:
                continue
        if block:
            yield "\n".join(block), None
            block = []
    if block:
        yield "\n".join(block), None


# ----------------------------------------------------------------------------- documents


def _in_val(seed: int, index: int) -> bool:
    """Stable hold-out draw of record ``index``: independent of Python's hash seed."""
    digest = hashlib.blake2b(f"{seed}:{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") < VAL_FRACTION * 2**64


def _hold_out(records: Iterable[Record], seed: int, split: str) -> Iterator[Record]:
    want_val = split == "val"
    for i, rec in enumerate(records):
        if _in_val(seed, i) == want_val:
            yield rec


def iter_documents(cfg: CorpusConfig, split: str) -> Iterator[str]:
    """Yield the document texts of ``split`` ("train" or "val") of the configured source.

    Config errors (unknown name, bad path, ...) raise at call time; the data itself is read
    lazily (hub sources stream where the registry says so), so callers can stop after a
    word budget with :func:`take_words`. Empty documents are skipped; with
    ``cfg.min_score`` only documents whose score is at least it are kept (a missing score
    fails the filter). Without a validation split, val is held out (see the module doc).
    """
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    if cfg.name == "mix":  # its parts, read by this function, interleaved
        from corpora.mix import iter_mixed

        return iter_mixed(cfg, split)
    if cfg.name == "synthetic":
        raise ConfigError("corpus.name", "'synthetic' is generated by corpora.synthetic, not read here")
    src = get_source(cfg.name)
    text_field, score_field = _text_field(cfg, src), _score_field(cfg, src)

    if cfg.path is None:
        if src.hub_id is None:
            raise ConfigError("corpus.path", f"corpus {cfg.name!r} reads local files: set corpus.path")
        has_val = src.val_split is not None
        records = _read_hub(cfg, src, src.val_split if (split == "val" and has_val) else src.train_split)
        if src.babylm_layout:  # hub copies hold one line per row: group like the official files
            records = _group_lines(text for text, _ in records)
    else:
        train_files, val_files = _resolve_files(cfg, src)
        has_val = bool(val_files)
        files = val_files if (split == "val" and has_val) else train_files
        if src.babylm_layout:
            records = itertools.chain.from_iterable(_utf8_or_refused(p, _read_babylm_file(p)) for p in files)
        elif src.hub_id is None:
            records = _read_local(files, text_field, score_field)
        else:
            records = _read_with_datasets(files, text_field, score_field)

    if not has_val:
        records = _hold_out(records, cfg.seed, split)
    return _texts(records, score_field, cfg.min_score)


def _texts(records: Iterable[Record], score_field: str | None, min_score: float | None) -> Iterator[str]:
    for text, score in records:
        if score_field is not None and (score is None or score < min_score):
            continue
        if isinstance(text, str) and text.strip():
            yield text
