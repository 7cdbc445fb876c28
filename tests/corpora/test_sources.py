"""corpora.sources: registry, local/BabyLM/hub-format readers, hold-out, word budgets, errors.

All data is written to tmp_path here; nothing touches the network.
"""
import gzip
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from common.errors import ConfigError
from corpora.config import CorpusConfig
from corpora.sources import (
    BABYLM_LINES_PER_DOC,
    SOURCES,
    Source,
    count_words,
    iter_documents,
    take_words,
    validate_source,
)

DOCS = [f"document {i} says {'word ' * (i % 7)}end" for i in range(200)]


def cfg(**kw) -> CorpusConfig:
    return CorpusConfig(**kw)


def both(c: CorpusConfig) -> tuple[list[str], list[str]]:
    validate_source(c)
    return list(iter_documents(c, "train")), list(iter_documents(c, "val"))


def assert_partition(train, val, docs):
    """Disjoint (as multisets, documents are unique) and together complete, order kept."""
    assert train and val
    assert not set(train) & set(val)
    assert sorted(train + val) == sorted(docs)
    assert train == [d for d in docs if d in set(train)]


# ----------------------------------------------------------------------------- registry


def test_registry_entries_are_documented():
    required = {"babylm_strict_small", "babylm_strict", "tinystories", "fineweb_edu",
                "fineweb", "cosmopedia", "c4", "local"}
    assert required <= set(SOURCES)
    assert "synthetic" not in SOURCES
    for name, src in SOURCES.items():
        assert isinstance(src, Source) and src.name == name
        assert src.citation.strip() and src.licence.strip() and src.description.strip()
        assert src.text_field
        if name == "local":
            assert src.hub_id is None
        else:
            assert src.hub_id and "/" in src.hub_id
    assert SOURCES["fineweb_edu"].score_field == "score"
    assert SOURCES["cosmopedia"].hub_config  # the hub dataset needs a subset
    assert SOURCES["babylm_strict_small"].babylm_layout and SOURCES["babylm_strict"].babylm_layout


def test_hub_sources_validate_without_network():
    for name in SOURCES:
        if name != "local":
            validate_source(cfg(name=name))
    validate_source(cfg(name="fineweb_edu", min_score=3))
    validate_source(cfg(name="synthetic"))  # generated elsewhere: nothing to check


# ----------------------------------------------------------------------------- words


def test_count_words_is_whitespace_split():
    assert count_words("") == 0
    assert count_words("  a\tb\n\nc  ") == 3
    assert count_words("don't stop-me now.") == 3


def test_take_words_exact_budget_and_truncation():
    docs = ["one two three", "   ", "four  five\nsix seven", "eight"]
    assert list(take_words(docs, None)) == docs
    assert list(take_words(docs, 0)) == []
    assert list(take_words(docs, 3)) == ["one two three"]
    assert list(take_words(docs, 5)) == ["one two three", "four  five"]
    assert list(take_words(docs, 6)) == ["one two three", "four  five\nsix"]
    assert list(take_words(docs, 8)) == ["one two three", "four  five\nsix seven", "eight"]
    assert list(take_words(docs, 100)) == ["one two three", "four  five\nsix seven", "eight"]
    for n in range(0, 9):
        assert sum(count_words(d) for d in take_words(docs, n)) == n
    with pytest.raises(ValueError):
        list(take_words(docs, -1))


def test_take_words_stops_reading_early():
    def endless():
        i = 0
        while True:
            yield f"w{i} x y"
            i += 1

    out = list(take_words(endless(), 10))
    assert sum(map(count_words, out)) == 10 and out[-1] == "w3"


# ----------------------------------------------------------------------------- local files


def test_local_txt_blocks_and_holdout(tmp_path):
    docs = [d.replace("says", "says\nnext line") for d in DOCS]
    path = tmp_path / "corpus.txt"
    path.write_text("\n\n".join(docs) + "\n\n\n", encoding="utf-8")
    train, val = both(cfg(name="local", path=str(path)))
    assert_partition(train, val, docs)
    # Deterministic for a seed, different for another seed.
    assert list(iter_documents(cfg(name="local", path=str(path)), "val")) == val
    other = list(iter_documents(cfg(name="local", path=str(path), seed=1), "val"))
    assert other != val


@pytest.mark.parametrize("name", ["notes.txt", "notes.jsonl"])
def test_a_file_that_is_not_utf8_is_refused_by_name(tmp_path, name):
    path = tmp_path / name
    good = "caf\u00e9 au lait" if name.endswith(".txt") else json.dumps({"text": "caf\u00e9"})
    path.write_bytes((good + "\n\n").encode("utf-8") * 50 + "caf\u00e9\n".encode("latin-1"))
    with pytest.raises(ConfigError) as e:
        both(cfg(name="local", path=str(tmp_path)))
    assert e.value.field == "corpus.path" and name in e.value.reason and "UTF-8" in e.value.reason


def test_a_babylm_file_that_is_not_utf8_is_refused_by_name(tmp_path):
    (tmp_path / "train_10M").mkdir()
    (tmp_path / "train_10M" / "childes.train").write_bytes("caf\u00e9\n".encode("latin-1"))
    with pytest.raises(ConfigError) as e:
        list(iter_documents(cfg(name="babylm_strict_small", path=str(tmp_path)), "train"))
    assert e.value.field == "corpus.path" and "childes.train is not UTF-8" in e.value.reason


def test_local_txt_blank_lines_with_spaces_separate(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("a b\r\nc\n   \n\nd e f\n", encoding="utf-8")
    got = sorted(list(iter_documents(cfg(name="local", path=str(path)), "train"))
                 + list(iter_documents(cfg(name="local", path=str(path)), "val")))
    assert got == ["a b\nc", "d e f"]


def test_local_jsonl_and_custom_field(tmp_path):
    path = tmp_path / "c.jsonl"
    with open(path, "w", encoding="utf-8") as f:
        for i, d in enumerate(DOCS):
            f.write(json.dumps({"body": d, "id": i}) + "\n")
            if i % 50 == 0:
                f.write("\n")  # blank lines are ignored
    with pytest.raises(ConfigError) as e:
        validate_source(cfg(name="local", path=str(path)))
    assert e.value.field == "corpus.text_field"
    train, val = both(cfg(name="local", path=str(path), text_field="body"))
    assert_partition(train, val, DOCS)


def test_local_parquet_streams_row_groups(tmp_path):
    path = tmp_path / "c.parquet"
    pq.write_table(pa.table({"text": DOCS, "n": list(range(len(DOCS)))}), path, row_group_size=17)
    train, val = both(cfg(name="local", path=str(path)))
    assert_partition(train, val, DOCS)


def test_local_directory_mixed_formats_sorted_recursive(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "a.txt").write_text("\n\n".join(DOCS[:50]), encoding="utf-8")
    (tmp_path / "b" / "c.jsonl").write_text(
        "".join(json.dumps({"text": d}) + "\n" for d in DOCS[50:90]), encoding="utf-8")
    with gzip.open(tmp_path / "b" / "c2.jsonl.gz", "wt", encoding="utf-8") as f:
        f.write("".join(json.dumps({"text": d}) + "\n" for d in DOCS[90:120]))
    pq.write_table(pa.table({"text": DOCS[120:]}), tmp_path / "b" / "d.parquet")
    (tmp_path / "notes.csv").write_text("ignored,in,a,directory\n")
    (tmp_path / ".hidden.txt").write_text("hidden files are skipped\n")
    (tmp_path / "empty.txt").write_text("")
    train, val = both(cfg(name="local", path=str(tmp_path)))
    assert_partition(train, val, DOCS)


def test_local_directory_with_validation_files(tmp_path):
    (tmp_path / "train.txt").write_text("\n\n".join(DOCS[:150]), encoding="utf-8")
    (tmp_path / "validation.txt").write_text("\n\n".join(DOCS[150:]), encoding="utf-8")
    (tmp_path / "test.txt").write_text("test documents are left out", encoding="utf-8")
    train, val = both(cfg(name="local", path=str(tmp_path)))
    assert train == DOCS[:150] and val == DOCS[150:]


# ----------------------------------------------------------------------------- BabyLM


def _babylm_release(root):
    """Official layout: train_10M/*.train, train_100M/*.train, dev/*.dev (one utterance per line)."""
    lines = {
        "childes": [f"*CHI: child line {i} ." for i in range(70)],
        "bnc_spoken": [f"spoken line {i}" for i in range(5)] + [""] + ["after blank"],
    }
    (root / "train_10M").mkdir(parents=True)
    (root / "train_100M").mkdir()
    (root / "dev").mkdir()
    for name, ls in lines.items():
        (root / "train_10M" / f"{name}.train").write_text("\n".join(ls) + "\n", encoding="utf-8")
        (root / "train_100M" / f"{name}.train").write_text("big " * 3 + "\n", encoding="utf-8")
        (root / "dev" / f"{name}.dev").write_text(f"dev {name} one\ndev {name} two\n", encoding="utf-8")
    return lines


def test_babylm_directory_layout(tmp_path):
    lines = _babylm_release(tmp_path)
    train, val = both(cfg(name="babylm_strict_small", path=str(tmp_path)))
    k = BABYLM_LINES_PER_DOC
    child = lines["childes"]
    expected = ["\n".join(lines["bnc_spoken"][:5]), "after blank"] + [
        "\n".join(child[i:i + k]) for i in range(0, len(child), k)]
    assert train == expected  # sorted files: bnc_spoken before childes; no doc spans files
    assert val == ["dev bnc_spoken one\ndev bnc_spoken two", "dev childes one\ndev childes two"]
    # The 100M track reads its own folder.
    train100 = list(iter_documents(cfg(name="babylm_strict", path=str(tmp_path)), "train"))
    assert train100 == ["big big big ", "big big big "]
    # Word count of the whole train split is the word count of the files.
    total = sum(count_words(" ".join(ls)) for ls in lines.values())
    assert sum(map(count_words, train)) == total


def test_babylm_without_dev_holds_out(tmp_path):
    d = tmp_path / "train_10M"
    d.mkdir()
    (d / "x.train").write_text("\n\n".join(DOCS), encoding="utf-8")
    train, val = both(cfg(name="babylm_strict_small", path=str(d)))
    assert_partition(train, val, DOCS)


def test_babylm_path_without_train_files(tmp_path):
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(ConfigError) as e:
        validate_source(cfg(name="babylm_strict_small", path=str(tmp_path)))
    assert e.value.field == "corpus.path" and ".train" in e.value.reason


# ----------------------------------------------------------------------------- hub format


def _fineweb_edu_parquet(path):
    scores = [round((i * 0.37) % 5, 2) for i in range(len(DOCS))]
    pq.write_table(pa.table({"text": DOCS, "id": [str(i) for i in range(len(DOCS))],
                             "score": scores, "int_score": [int(round(s)) for s in scores]}),
                   path, row_group_size=40)
    return scores


def test_fineweb_edu_min_score_filter(tmp_path):
    path = tmp_path / "train-00000-of-00001.parquet"
    scores = _fineweb_edu_parquet(path)
    keep = [d for d, s in zip(DOCS, scores) if s >= 3.0]
    assert 0 < len(keep) < len(DOCS)
    train, val = both(cfg(name="fineweb_edu", path=str(path), min_score=3.0))
    assert sorted(train + val) == sorted(keep) and not set(train) & set(val)
    # The held-out partition does not depend on the threshold.
    all_train, all_val = both(cfg(name="fineweb_edu", path=str(path)))
    assert_partition(all_train, all_val, DOCS)
    assert train == [d for d in all_train if d in set(keep)]
    assert val == [d for d in all_val if d in set(keep)]


def test_local_files_filter_on_a_named_score_field(tmp_path):
    path = tmp_path / "crawl.jsonl"
    quality = [(i * 7) % 10 / 10 for i in range(len(DOCS))]
    path.write_text("".join(json.dumps({"body": d, "q": q}) + "\n" for d, q in zip(DOCS, quality)))
    train, val = both(cfg(name="local", path=str(path), text_field="body", score_field="q", min_score=0.5))
    assert sorted(train + val) == sorted(d for d, q in zip(DOCS, quality) if q >= 0.5)
    # The same threshold without a score column to read is refused, naming the field.
    with pytest.raises(ConfigError) as e:
        validate_source(cfg(name="local", path=str(path), text_field="body", min_score=0.5))
    assert e.value.field == "corpus.min_score"
    with pytest.raises(ConfigError) as e:
        validate_source(cfg(name="local", path=str(path), text_field="body", score_field="grade", min_score=0.5))
    assert e.value.field == "corpus.min_score" and "grade" in e.value.reason


def test_hub_format_directory_with_validation_split(tmp_path):
    for split, docs in (("train", DOCS[:150]), ("validation", DOCS[150:])):
        with open(tmp_path / f"{split}-00000-of-00001.jsonl", "w", encoding="utf-8") as f:
            for d in docs:
                f.write(json.dumps({"text": d, "meta": {"split": split}}) + "\n")
    pq.write_table(pa.table({"text": ["x"]}), tmp_path / "stray.parquet")
    with pytest.raises(ConfigError, match="mixes"):
        validate_source(cfg(name="tinystories", path=str(tmp_path)))
    (tmp_path / "stray.parquet").unlink()
    train, val = both(cfg(name="tinystories", path=str(tmp_path)))
    assert train == DOCS[:150] and val == DOCS[150:]


def test_c4_shaped_gzipped_json_lines(tmp_path):
    """C4's own shard names: c4-train.*.json.gz / c4-validation.*.json.gz (read via datasets)."""
    en = tmp_path / "en"
    en.mkdir()
    shards = {"c4-train.00000-of-00002.json.gz": DOCS[:80], "c4-train.00001-of-00002.json.gz": DOCS[80:150],
              "c4-validation.00000-of-00001.json.gz": DOCS[150:]}
    for name, docs in shards.items():
        with gzip.open(en / name, "wt", encoding="utf-8") as f:
            for d in docs:
                f.write(json.dumps({"text": d, "timestamp": "2019-04-25", "url": "http://x"}) + "\n")
    train, val = both(cfg(name="c4", path=str(tmp_path)))
    assert train == DOCS[:150] and val == DOCS[150:]


def test_min_score_column_missing_in_files(tmp_path):
    path = tmp_path / "data.parquet"
    pq.write_table(pa.table({"text": DOCS}), path)
    with pytest.raises(ConfigError) as e:
        validate_source(cfg(name="fineweb_edu", path=str(path), min_score=2))
    assert e.value.field == "corpus.min_score"


# ----------------------------------------------------------------------------- errors


def _field(c: CorpusConfig) -> str:
    with pytest.raises(ConfigError) as e:
        validate_source(c)
    return e.value.field


def test_bad_inputs_name_their_field(tmp_path):
    with pytest.raises(ConfigError) as e:
        validate_source(cfg(name="wikitext"))
    assert e.value.field == "corpus.name"
    assert "synthetic" in e.value.reason and "fineweb_edu" in e.value.reason
    with pytest.raises(ConfigError):
        iter_documents(cfg(name="wikitext"), "train")

    assert _field(cfg(name="local")) == "corpus.path"
    assert _field(cfg(name="local", path=str(tmp_path / "missing.txt"))) == "corpus.path"
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    assert _field(cfg(name="local", path=str(empty))) == "corpus.path"
    bad = tmp_path / "data.csv"
    bad.write_text("a,b\n")
    assert _field(cfg(name="local", path=str(bad))) == "corpus.path"
    d = tmp_path / "dir"
    d.mkdir()
    assert _field(cfg(name="local", path=str(d))) == "corpus.path"
    (d / "only.csv").write_text("a,b\n")
    assert _field(cfg(name="local", path=str(d))) == "corpus.path"
    assert _field(cfg(name="tinystories", path=str(d))) == "corpus.path"
    (d / "x.txt").write_text("")
    assert _field(cfg(name="local", path=str(d))) == "corpus.path"  # only empty files

    assert _field(cfg(name="c4", min_score=3)) == "corpus.min_score"
    assert _field(cfg(name="fineweb_edu", min_score="high")) == "corpus.min_score"
    assert _field(cfg(name="c4", train_words=-5)) == "corpus.train_words"
    assert _field(cfg(name="c4", val_words=None)) == "corpus.val_words"
    ok = tmp_path / "ok.txt"
    ok.write_text("fine text")
    assert _field(cfg(name="local", path=str(ok), hub_id="x/y")) == "corpus.hub_id"

    broken = tmp_path / "broken.jsonl"
    broken.write_text("{not json\n")
    assert _field(cfg(name="local", path=str(broken))) == "corpus.path"
    notparquet = tmp_path / "fake.parquet"
    notparquet.write_text("not parquet at all")
    assert _field(cfg(name="local", path=str(notparquet))) == "corpus.path"


def test_iter_documents_rejects_bad_split_and_synthetic(tmp_path):
    with pytest.raises(ValueError):
        iter_documents(cfg(name="c4"), "test")
    with pytest.raises(ConfigError) as e:
        iter_documents(cfg(name="synthetic"), "train")
    assert e.value.field == "corpus.name"
