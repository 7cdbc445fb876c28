"""Preparation: exact shards, a shared tokenizer, a cache that is reused when intact and
rebuilt when not, and bad input refused before anything is written."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from common.errors import ConfigError
from corpora import build, keys
from corpora import tokenizer as bpe
from corpora.cache import load_prepared, prepare_corpus, verify
from corpora.config import CorpusConfig
from corpora.keys import REAL_TOKENIZER_WORDS, corpus_key, tokenizer_key
from corpora.stats import corpus_stats, format_stats
from corpora.synthetic import generate_documents
from corpora.tokenizer_cache import tokenizer_meta
from lab.config import RunConfig
from lab.runs import run_id
from tests.helpers import ROOT


def small(cache, **kw) -> CorpusConfig:
    base = dict(train_words=12_000, val_words=2_000, pairs_per_phenomenon=10, vocab_size=320,
                cache_dir=str(cache), workers=1, quality=0.5)
    return CorpusConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    return prepare_corpus(small(cache), log=lambda m: None)


def test_shards_are_the_documents_tokenized_and_joined_by_eos(prepared):
    tok = bpe.load(prepared.tokenizer_path)
    for split, quality in (("train", 0.5), ("val", 0.5), ("val_clean", 1.0)):
        words = 12_000 if split == "train" else 2_000
        docs = generate_documents(quality, words, seed=0, split=split, workers=1)
        expected = []
        for d in docs:
            expected += tok.encode(d.text, add_special_tokens=False).ids + [prepared.eos_id]
        shard = prepared.tokens(split)
        assert shard.dtype == np.uint16
        np.testing.assert_array_equal(np.asarray(shard), np.array(expected))
        info = prepared.manifest["splits"][split]
        assert info["documents"] == len(docs)
        assert info["words"] == sum(len(d.text.split()) for d in docs)
        assert info["bytes"] == sum(len(d.text.encode()) for d in docs)
        # Decoding a document's tokens gives its text back, byte for byte.
        first_eos = int(np.argmax(np.asarray(shard) == prepared.eos_id))
        assert tok.decode(list(map(int, shard[:first_eos]))) == docs[0].text


def test_tokenizer_loads_in_transformers_with_special_tokens(prepared):
    from transformers import PreTrainedTokenizerFast

    hf = PreTrainedTokenizerFast(tokenizer_file=str(prepared.tokenizer_path), bos_token="<s>",
                                 eos_token="</s>", pad_token="<pad>")
    assert (hf.pad_token_id, hf.bos_token_id, hf.eos_token_id) == (0, 1, 2)
    text = "The naïve otters swam — 3 times! <b>tags</b> 🦦"
    assert hf.decode(hf(text)["input_ids"]) == text
    assert len(hf) == prepared.vocab_size <= 320


def test_pairs_and_labels_are_written(prepared):
    pairs = [json.loads(line) for line in open(prepared.pairs_path)]
    assert len(pairs) == 10 * len(prepared.manifest["pairs"]["phenomena"]) and len(pairs) >= 60
    assert {"sentence_good", "sentence_bad", "phenomenon"} <= set(pairs[0])
    labels = [json.loads(line) for line in open(prepared.path / "documents.jsonl")]
    assert len(labels) == prepared.manifest["splits"]["train"]["documents"]
    assert {l["grade"] for l in labels} == {"textbook", "web"}


def test_second_preparation_reuses_the_cache(prepared):
    before = (prepared.path / "train.bin").stat().st_mtime_ns
    again = prepare_corpus(small(prepared.path.parent), log=lambda m: None)
    assert again.path == prepared.path
    assert (again.path / "train.bin").stat().st_mtime_ns == before


def test_every_quality_level_shares_one_tokenizer(tmp_path):
    logs = []
    low = prepare_corpus(small(tmp_path, quality=0.0), log=logs.append)
    high = prepare_corpus(small(tmp_path, quality=1.0, train_words=8_000), log=logs.append)
    assert low.path != high.path
    assert low.manifest["tokenizer"]["sha256"] == high.manifest["tokenizer"]["sha256"]
    assert sum("tokenizer: trained" in m for m in logs) == 1


def test_a_corrupted_cache_is_detected_and_rebuilt(tmp_path):
    cfg = small(tmp_path, train_words=5_000, val_words=1_000, pairs_per_phenomenon=0)
    first = prepare_corpus(cfg, log=lambda m: None)
    good = np.array(first.tokens("train"))
    with open(first.path / "train.bin", "r+b") as f:  # flip one byte in place
        f.seek(100)
        byte = f.read(1)
        f.seek(100)
        f.write(bytes([byte[0] ^ 0xFF]))
    assert "train.bin" in verify(first.path)
    with pytest.raises(ValueError, match="damaged"):
        load_prepared(first.path)
    logs = []
    rebuilt = prepare_corpus(cfg, log=logs.append)
    assert any("damaged" in m and "rebuilding" in m for m in logs)
    np.testing.assert_array_equal(np.asarray(rebuilt.tokens("train")), good)
    assert verify(rebuilt.path) is None


def test_a_half_written_corpus_is_never_used(tmp_path):
    cfg = small(tmp_path, train_words=5_000, val_words=1_000, pairs_per_phenomenon=0)
    first = prepare_corpus(cfg, log=lambda m: None)
    (first.path / "manifest.json").unlink()  # as if killed before the manifest landed
    assert verify(first.path) is not None
    rebuilt = prepare_corpus(cfg, log=lambda m: None)
    assert verify(rebuilt.path) is None and (rebuilt.path / "manifest.json").exists()


def test_large_vocabularies_use_uint32():
    assert bpe.token_dtype(65536) == np.uint16
    assert bpe.token_dtype(65537) == np.uint32


@pytest.mark.parametrize("override, field", [
    (dict(name="nonesuch"), "corpus.name"),
    (dict(quality=1.5), "corpus.quality"),
    (dict(quality=-0.1), "corpus.quality"),
    (dict(vocab_size=200), "corpus.vocab_size"),
    (dict(train_words=0), "corpus.train_words"),
    (dict(name="local", quality=1.0), "corpus.path"),
    (dict(name="local", quality=1.0, path="/no/such/file.txt"), "corpus.path"),
    (dict(name="tinystories", quality=0.5), "corpus.quality"),
])
def test_bad_corpus_config_is_refused_before_writing(tmp_path, override, field):
    with pytest.raises(ConfigError) as e:
        prepare_corpus(small(tmp_path / "cache", **override), log=lambda m: None)
    assert e.value.field == field
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


def test_an_empty_local_file_is_refused(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(ConfigError) as e:
        prepare_corpus(small(tmp_path / "cache", name="local", path=str(empty), quality=1.0))
    assert e.value.field == "corpus.path"


def test_a_local_text_corpus_is_prepared(tmp_path):
    src = local_source(tmp_path)
    corpus = prepare_corpus(small(tmp_path / "cache", name="local", path=str(src), quality=1.0,
                                  train_words=None, val_words=1_000_000, pairs_per_phenomenon=0),
                            log=lambda m: None)
    m = corpus.manifest
    assert m["splits"]["train"]["documents"] + m["splits"]["val"]["documents"] == 400
    assert m["splits"]["train"]["words"] + m["splits"]["val"]["words"] == 400 * 9
    assert m["splits"]["val_clean"] == m["splits"]["val"] and corpus.pairs_path is None


def test_stats_report_counts_and_ground_truth(prepared):
    stats = corpus_stats(prepared)
    assert stats["splits"]["train"]["tokens"] == len(prepared.tokens("train"))
    assert 0.4 < stats["quality"]["textbook_fraction"] < 0.6
    assert 0 < stats["unigram_entropy_train"] < np.log(320)
    text = format_stats(stats)
    assert "unigram" in text and "defect boilerplate" in text


def test_command_lines(tmp_path, prepared):
    cache = tmp_path / "cache"
    args = [sys.executable, "-m", "corpora.prepare", "corpus=synthetic", "corpus.quality=0.3",
            "corpus.train_words=4000", "corpus.val_words=1000", "corpus.pairs_per_phenomenon=0",
            "corpus.vocab_size=300", f"corpus.cache_dir={cache}", "corpus.workers=1"]
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    path = done.stdout.strip().splitlines()[-1]
    assert verify(__import__("pathlib").Path(path)) is None
    bad = subprocess.run(args[:3] + ["corpus.quality=1.5", f"corpus.cache_dir={tmp_path / 'bad'}"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.strip().startswith("error: corpus.quality:")
    assert len(bad.stderr.strip().splitlines()) == 1 and not (tmp_path / "bad").exists()
    stats = subprocess.run([sys.executable, "-m", "corpora.stats", str(prepared.path)], cwd=ROOT,
                           capture_output=True, text=True, timeout=120)
    assert stats.returncode == 0 and "train" in stats.stdout
    missing = subprocess.run([sys.executable, "-m", "corpora.stats", str(tmp_path / "nope")], cwd=ROOT,
                             capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and missing.stderr.startswith("error: path:")


def test_cleaning_removes_flagged_web_documents(tmp_path):
    cfg = small(tmp_path, quality=0.0, train_words=15_000, pairs_per_phenomenon=0, clean=True)
    corpus = prepare_corpus(cfg, log=lambda m: None)
    cleaning = corpus.manifest["cleaning"]
    kept = corpus.manifest["splits"]["train"]
    assert cleaning["documents_after"] == kept["documents"] < cleaning["documents_before"]
    assert cleaning["words_after"] == kept["words"]
    labels = [json.loads(line) for line in open(corpus.path / "documents.jsonl")]
    assert len(labels) == kept["documents"]
    # Boilerplate pages are the commonest defect and the filters catch them all.
    assert not any("boilerplate" in label["defects"] for label in labels)


def local_source(tmp_path, docs: int = 400):
    """A real (local .txt) source of `docs` nine-word documents."""
    lines = [f"Document {i} tells of the {['red', 'blue', 'green'][i % 3]} fox number {i}." for i in range(docs)]
    src = tmp_path / "corpus.txt"
    src.write_text("\n\n".join(lines) + "\n")
    return src


def edit(path, text):
    """Rewrite a file as a later edit would: a process hashes each (size, mtime) version of a
    file once, and two writes within one clock tick here can share an mtime."""
    mtime = path.stat().st_mtime_ns
    path.write_text(text)
    os.utime(path, ns=(mtime + 10**9, mtime + 10**9))


def local(tmp_path, src, **kw) -> CorpusConfig:
    return small(tmp_path / "cache", name="local", path=str(src), quality=1.0, val_words=500,
                 pairs_per_phenomenon=0, **kw)


def test_a_real_tokenizer_key_covers_the_words_it_is_trained_on(tmp_path):
    src = local_source(tmp_path)
    key = lambda train_words: tokenizer_key(local(tmp_path, src, train_words=train_words))
    # Below the cap the tokenizer reads train_words words: different budgets, different tokenizers.
    assert key(1_000) != key(2_000)
    # At or above it (or the whole source) it reads the same REAL_TOKENIZER_WORDS: one tokenizer.
    assert key(REAL_TOKENIZER_WORDS) == key(REAL_TOKENIZER_WORDS + 1) == key(50_000_000) == key(None)


def test_a_small_run_does_not_lend_its_tokenizer_to_a_larger_one(tmp_path):
    src = local_source(tmp_path)
    logs = []
    small_run = prepare_corpus(local(tmp_path, src, train_words=1_000), log=logs.append)
    larger_run = prepare_corpus(local(tmp_path, src, train_words=2_000), log=logs.append)
    assert sum("tokenizer: trained" in m for m in logs) == 2
    assert small_run.manifest["tokenizer"]["sha256"] != larger_run.manifest["tokenizer"]["sha256"]
    for corpus, words in ((small_run, 1_000), (larger_run, 2_000)):
        assert corpus.manifest["tokenizer"]["trained_on"] == f"the first {words} words of the training split"


def test_a_reused_tokenizer_is_described_by_what_it_was_trained_on(tmp_path):
    # The source holds fewer words than the cap, so both runs' tokenizers read the whole
    # training split: one tokenizer, built by the first run, reused by the second.
    src = local_source(tmp_path)
    logs = []
    first = prepare_corpus(local(tmp_path, src, train_words=None), log=logs.append)
    second = prepare_corpus(local(tmp_path, src, train_words=50_000_000), log=logs.append)
    assert sum("tokenizer: trained" in m for m in logs) == 1
    whole_split = first.manifest["splits"]["train"]["words"]
    assert whole_split < REAL_TOKENIZER_WORDS
    cached = tokenizer_meta(next((tmp_path / "cache" / "tokenizers").glob("local-*/tokenizer.json")))
    for corpus in (first, second):
        assert corpus.manifest["tokenizer"]["sha256"] == cached["sha256"]
        assert corpus.manifest["tokenizer"]["trained_on"] == cached["trained_on"] \
            == f"the first {whole_split} words of the training split"
    assert cached["words"] == whole_split


@pytest.mark.parametrize("damage", ["tokenizer file deleted", "metadata unreadable"])
def test_a_damaged_tokenizer_cache_is_retrained(tmp_path, damage):
    cfg = local(tmp_path, local_source(tmp_path), train_words=2_000)
    first = prepare_corpus(cfg, log=lambda m: None)
    tokenizer_dir = tmp_path / "cache" / "tokenizers" / tokenizer_key(cfg)
    expected = (tokenizer_dir / "tokenizer.json").read_bytes()
    if damage == "tokenizer file deleted":
        (tokenizer_dir / "tokenizer.json").unlink()
    else:
        (tokenizer_dir / "tokenizer.meta.json").write_text("{not json")
    train_tokens = np.array(first.tokens("train"))
    # Preparing the corpus again (its own cache removed) needs the tokenizer once more.
    shutil.rmtree(first.path)
    messages = []
    again = prepare_corpus(cfg, log=messages.append)
    assert any("damaged" in m and "retraining" in m for m in messages), messages
    assert (tokenizer_dir / "tokenizer.json").read_bytes() == expected  # the same training, the same file
    assert np.array_equal(again.tokens("train"), train_tokens)


def test_an_empty_source_publishes_no_tokenizer(tmp_path):
    src = tmp_path / "blank.txt"
    src.write_text("   \n\n \t\n")
    with pytest.raises(ConfigError) as err:
        prepare_corpus(local(tmp_path, src, train_words=2_000), log=lambda m: None)
    assert err.value.field == "corpus.path"
    tokenizers = tmp_path / "cache" / "tokenizers"
    assert not tokenizers.exists() or [p.name for p in tokenizers.iterdir() if not p.name.startswith(".")] == []


def test_an_edited_local_source_is_prepared_again(tmp_path):
    src = local_source(tmp_path)
    cfg = local(tmp_path, src, train_words=2_000)
    logs = []
    first = prepare_corpus(cfg, log=logs.append)
    built = (first.path / "train.bin").stat().st_mtime_ns
    # The same data (even rewritten, with a new mtime) hits the cache: nothing is rebuilt.
    src.write_bytes(src.read_bytes())
    again = prepare_corpus(cfg, log=logs.append)
    assert again.path == first.path and (again.path / "train.bin").stat().st_mtime_ns == built
    assert sum("tokenizer: trained" in m for m in logs) == 1
    # An edit that keeps the file's size and path still builds a fresh tokenizer and corpus.
    text = src.read_text()
    edit(src, text.replace("fox", "owl"))
    assert src.stat().st_size == len(text.encode())
    edited = prepare_corpus(cfg, log=logs.append)
    assert edited.path != first.path and first.path.exists()
    assert sum("tokenizer: trained" in m for m in logs) == 2
    assert edited.manifest["tokenizer"]["sha256"] != first.manifest["tokenizer"]["sha256"]
    assert not np.array_equal(edited.tokens("train"), first.tokens("train"))
    tok = bpe.load(edited.tokenizer_path)
    assert "owl" in tok.decode(list(map(int, edited.tokens("train")[:50])))


def test_local_keys_cover_exactly_the_files_read(tmp_path):
    root = tmp_path / "release"
    (root / "train_10M").mkdir(parents=True)
    (root / "dev").mkdir()
    (root / "train_10M" / "childes.train").write_text("the dog ran .\nthe cat sat .\n")
    (root / "dev" / "childes.dev").write_text("a bird sang .\n")
    cfg = small(tmp_path / "cache", name="babylm_strict_small", path=str(root), quality=1.0)
    keys = lambda: (corpus_key(cfg), tokenizer_key(cfg))
    before = keys()
    (root / "README.md").write_text("not read by the loader")
    (root / "train_10M" / "empty.train").write_text("")  # empty files are skipped
    assert keys() == before
    edit(root / "dev" / "childes.dev", "a bird sang !\n")  # read: the validation split
    after_dev = keys()
    assert after_dev[0] != before[0] and after_dev[1] != before[1]
    (root / "train_10M" / "childes.train").rename(root / "train_10M" / "renamed.train")
    assert keys() != after_dev  # same bytes under another name: another corpus


def test_synthetic_keys_do_not_depend_on_local_data():
    # Pinned: synthetic caches (and the runs that name them) keep their directories until what
    # they contain changes (last: GENERATOR_REVISION 3, pairs held out of training text, facts).
    assert corpus_key(CorpusConfig()) == "synthetic-q1-043367ad44a2"
    assert tokenizer_key(CorpusConfig()) == "synthetic-v4096-0b2ea617e122"
    cfg = CorpusConfig(quality=0.3, vocab_size=320, train_words=12_000)
    assert (corpus_key(cfg), tokenizer_key(cfg)) == ("synthetic-q0.3-3df975cafd48", "synthetic-v320-18096bba4526")
    assert corpus_key(CorpusConfig(quality=1)) == corpus_key(CorpusConfig(quality=1.0))


@pytest.mark.parametrize("constant,value,corpus", [
    ("GENERATOR_REVISION", 4, "synthetic"),        # the generated text changed
    ("SYNTHETIC_TOKENIZER_WORDS", 1000, "synthetic"),  # the tokenizer, so every shard, changed
    ("SYNTHETIC_TOKENIZER_QUALITY", 0.25, "synthetic"),
    ("REAL_TOKENIZER_WORDS", 1000, "tinystories"),
    ("REAL_TOKENIZER_KEY_REVISION", 3, "tinystories"),
    ("FORMAT_VERSION", 3, "synthetic"),
])
def test_what_changes_a_corpus_changes_its_keys_and_run_ids(monkeypatch, constant, value, corpus):
    cfg = RunConfig(corpus=CorpusConfig(name=corpus, train_words=50_000_000 if corpus != "synthetic" else 2_000_000))
    before = (corpus_key(cfg.corpus), tokenizer_key(cfg.corpus), run_id(cfg))
    monkeypatch.setattr(keys, constant, value)
    after = (corpus_key(cfg.corpus), tokenizer_key(cfg.corpus), run_id(cfg))
    # a new tokenizer, a new corpus and a new run: never the stale ones
    assert all(a != b for a, b in zip(before, after))


def test_a_corpus_of_the_previous_format_still_loads(prepared, tmp_path):
    # Finished runs point at their corpus (evaluation, export, submissions): format 1 has the same
    # layout, so it is read; a format this code does not know is refused.
    old = tmp_path / prepared.path.name
    shutil.copytree(prepared.path, old)
    manifest = json.loads((old / "manifest.json").read_text())
    (old / "manifest.json").write_text(json.dumps({**manifest, "format": 1}))
    assert verify(old) is None
    (old / "manifest.json").write_text(json.dumps({**manifest, "format": 99}))
    assert "format 99" in verify(old)


def test_special_token_strings_in_text_are_text(tmp_path):
    # A web page quoting "</s>" must not end its document there (or "<pad>" become padding).
    page = "the dog ran to the park .\nan html lesson shows </s> and <pad> and <s> tags .\n"
    source = tmp_path / "notes.txt"
    source.write_text("\n".join(f"page {i} : {page}" for i in range(200)))
    cfg = small(tmp_path / "cache", name="local", path=str(source), quality=1.0)
    corpus = prepare_corpus(cfg)
    special = corpus.manifest["special"]
    train = np.asarray(corpus.tokens("train"))
    documents = corpus.manifest["splits"]["train"]["documents"]
    assert int((train == special["eos_id"]).sum()) == documents
    assert not np.isin(train, [special["pad_id"], special["bos_id"]]).any()
    tok = bpe.load(corpus.path / "tokenizer.json")
    assert tok.decode(tok.encode("a </s> b", add_special_tokens=False).ids) == "a </s> b"


def test_a_missing_local_path_is_keyed_with_the_validation_error(tmp_path):
    cfg = small(tmp_path / "cache", name="local", path=str(tmp_path / "gone.txt"), quality=1.0)
    for key in (corpus_key, tokenizer_key):
        with pytest.raises(ConfigError, match="no such file") as e:
            key(cfg)
        assert e.value.field == "corpus.path"


def test_a_real_source_is_tokenized_as_it_is_read(tmp_path, monkeypatch):
    """A real split streams from the source into the shard: documents are still being read
    after the first ones were tokenized, so a large (or uncapped) source never sits in memory."""
    from corpora import sources

    events = []
    read, encode = sources.iter_documents, bpe.encode_documents

    def reading(cfg, split):
        for doc in read(cfg, split):
            events.append(("read", split))
            yield doc

    def encoding(tok, texts, eos_id, batch=2048):
        for block in encode(tok, texts, eos_id, batch=16):  # small batches: many blocks
            events.append(("encoded", None))
            yield block

    monkeypatch.setattr(sources, "iter_documents", reading)
    monkeypatch.setattr(build.bpe, "encode_documents", encoding)
    corpus = prepare_corpus(local(tmp_path, local_source(tmp_path), train_words=None), log=lambda m: None)
    first_encoded = events.index(("encoded", None))
    last_train_read = max(i for i, e in enumerate(events) if e == ("read", "train"))
    assert first_encoded < last_train_read
    # ...and the counts kept on the way are those of the documents themselves.
    m = corpus.manifest["splits"]
    assert m["train"]["documents"] + m["val"]["documents"] == 400
    assert m["train"]["words"] + m["val"]["words"] == 400 * 9
    assert m["train"]["tokens"] == len(corpus.tokens("train"))
