"""corpus=mix: the interleave's proportions (in words, against the weights and an analytic
document share), its reproducibility by seed, the parts' splits, the realised shares in the
manifest (against the tokenizer run on each document), keys, and bad configs.

The parts are small local files in their sources' formats: FineWeb-Edu's parquet (text, score,
int_score) and JSON Lines."""
import json
import random

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from common.errors import ConfigError
from corpora import tokenizer as bpe
from corpora.cache import prepare_corpus
from corpora.config import CorpusConfig
from corpora.keys import corpus_content, corpus_key, tokenizer_key
from corpora.mix import iter_mixed, parts_of
from corpora.sources import count_words, iter_documents, take_words
from corpora.validate import validate_corpus_config

EDU_WORDS = 30  # words per edu document, +0..10
WEB_WORDS = 8  # words per web document, +0..4


def write_parts(root, n_edu: int = 1500, n_web: int = 5000):
    """FineWeb-Edu-shaped parquet of long documents, JSON Lines of short ones; their paths."""
    rng = random.Random(0)
    vocab = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu".split()
    edu = [" ".join(rng.choice(vocab) for _ in range(EDU_WORDS - 1 + i % 11)) + f" edu{i}" for i in range(n_edu)]
    web = [" ".join(rng.choice(vocab[:6]) for _ in range(WEB_WORDS - 1 + i % 5)) + f" web{i}" for i in range(n_web)]
    scores = [round((i * 0.37) % 5, 2) for i in range(n_edu)]
    root.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"text": edu, "score": scores, "int_score": [int(round(s)) for s in scores]}),
                   root / "edu.parquet", row_group_size=200)
    (root / "web.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in web))
    return root / "edu.parquet", root / "web.jsonl"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return write_parts(tmp_path_factory.mktemp("parts"))


def mix(files, cache=None, **kw) -> CorpusConfig:
    edu, web = files
    values = dict(name="mix", parts={"edu": {"name": "fineweb_edu", "path": str(edu)},
                                     "web": {"name": "local", "path": str(web)}},
                  weights={"edu": 0.3, "web": 0.7}, train_words=20_000, val_words=2_000, vocab_size=300,
                  workers=1, cache_dir=str(cache or "unused"))
    values.update(kw)
    return CorpusConfig(**values)


def drawn(cfg: CorpusConfig, split: str, words: int) -> tuple[list[str], list[str]]:
    seen: list[str] = []
    texts = list(take_words(iter_mixed(cfg, split, seen), words))
    return texts, seen[:len(texts)]


def test_word_shares_follow_the_weights_and_documents_follow_their_lengths(files):
    cfg = mix(files)
    texts, parts = drawn(cfg, "train", 40_000)
    words = {p: sum(count_words(t) for t, q in zip(texts, parts) if q == p) for p in ("edu", "web")}
    n_edu, n_web = parts.count("edu"), parts.count("web")
    # Sampling error of the edu share: the document draws are Bernoulli with the analytic rate
    # below; its binomial sd, carried into words, is well under 0.02 here.
    assert words["edu"] / sum(words.values()) == pytest.approx(0.3, abs=0.03)
    # Documents: drawn at weight / mean length, so edu (mean 35 words) is rarer than 0.3 of them.
    mean_edu, mean_web = EDU_WORDS + 5, WEB_WORDS + 2
    expected = (0.3 / mean_edu) / (0.3 / mean_edu + 0.7 / mean_web)
    sd = (expected * (1 - expected) / len(parts)) ** 0.5
    assert n_edu / len(parts) == pytest.approx(expected, abs=4 * sd)
    assert n_web > 5 * n_edu


def test_the_same_seed_gives_the_same_mixture_and_another_seed_another_order(files):
    first, again = drawn(mix(files), "train", 5_000), drawn(mix(files), "train", 5_000)
    assert first == again
    other = drawn(mix(files, seed=1), "train", 5_000)
    assert other[1] != first[1]


def test_each_part_is_read_in_order_from_its_own_split(files):
    cfg = mix(files)
    parts = parts_of(cfg)
    for split in ("train", "val"):
        texts, names = drawn(cfg, split, 8_000)
        for name, part in parts.items():
            own = [t for t, n in zip(texts, names) if n == name]
            # The mix takes each part's documents in its own order, from the start of its split.
            reference = list(take_words(iter_documents(part, split), sum(map(count_words, own))))
            assert own[:-1] == reference[:len(own) - 1] and own
        other = "val" if split == "train" else "train"
        held = {t for part in parts.values() for t in iter_documents(part, other)}
        assert not held & set(texts[:-1])


def test_a_zero_weight_part_is_never_read(files):
    texts, names = drawn(mix(files, weights={"edu": 0.0, "web": 1.0}), "train", 3_000)
    assert set(names) == {"web"} and all(" web" in t for t in texts)


def test_the_manifest_records_what_each_part_realised(files, tmp_path):
    cfg = mix(files, tmp_path / "cache", train_words=6_000, val_words=1_500)
    corpus = prepare_corpus(cfg, log=lambda msg: None)
    tok = bpe.load(corpus.tokenizer_path)
    for split, words in (("train", 6_000), ("val", 1_500)):
        info = corpus.manifest["splits"][split]
        texts, names = drawn(cfg, split, words)
        # Reference: each document tokenized on its own, plus its EOS, summed per part.
        for name in ("edu", "web"):
            own = [t for t, n in zip(texts, names) if n == name]
            part = info["parts"][name]
            assert part["documents"] == len(own)
            assert part["words"] == sum(map(count_words, own))
            assert part["tokens"] == sum(len(tok.encode(t, add_special_tokens=False).ids) + 1 for t in own)
        assert sum(p["tokens"] for p in info["parts"].values()) == info["tokens"]
        assert sum(p["share_words"] for p in info["parts"].values()) == pytest.approx(1.0, abs=1e-5)
    train = corpus.manifest["splits"]["train"]["parts"]
    assert train["edu"]["share_words"] == pytest.approx(0.3, abs=0.06)
    # One shard, the documents in the drawn order.
    texts, _ = drawn(cfg, "train", 6_000)
    ids = np.concatenate([np.append(tok.encode(t, add_special_tokens=False).ids, corpus.eos_id) for t in texts])
    assert np.array_equal(np.asarray(corpus.tokens("train")), ids)


def test_keys_follow_the_parts_weights_and_data(files, tmp_path):
    base = mix(files)
    assert corpus_key(base) != corpus_key(mix(files, weights={"edu": 0.5, "web": 0.5}))
    # The tokenizer is trained on the mixture: it follows the weights, and not the training size.
    assert tokenizer_key(base) != tokenizer_key(mix(files, weights={"edu": 0.5, "web": 0.5}))
    assert tokenizer_key(base) == tokenizer_key(mix(files, val_words=3_000))
    # A part's data enters by content: a copy elsewhere has the same content, an edit another.
    edu, web = files
    copy = tmp_path / "copy.jsonl"
    copy.write_bytes(web.read_bytes())
    moved = mix(files, parts={"edu": {"name": "fineweb_edu", "path": str(edu)}, "web": {"name": "local", "path": str(copy)}})
    assert corpus_content(moved)["parts"]["web"]["data"] == corpus_content(base)["parts"]["web"]["data"]
    copy.write_text(web.read_text() + json.dumps({"text": "one more page"}) + "\n")
    assert corpus_content(moved)["parts"]["web"]["data"] != corpus_content(base)["parts"]["web"]["data"]
    # Weights 1 and 1.0 are one corpus.
    assert corpus_key(mix(files, weights={"edu": 1, "web": 1})) == corpus_key(mix(files, weights={"edu": 1.0, "web": 1.0}))


def test_corpora_without_the_new_fields_keep_their_keys():
    content = corpus_content(CorpusConfig(name="fineweb_edu", min_score=3))
    assert not {"score_field", "parts", "weights", "tokenizer_from", "heldout_from"} & set(content)


@pytest.mark.parametrize("change, field", [
    (dict(parts={"edu": {"name": "fineweb_edu"}}, weights={"edu": 1.0}), "corpus.parts"),
    (dict(weights={"edu": 0.3}), "corpus.weights"),
    (dict(weights={"edu": -0.3, "web": 0.7}), "corpus.weights.edu"),
    (dict(weights={"edu": 0, "web": 0}), "corpus.weights"),
    (dict(path="/data/x"), "corpus.path"),
    (dict(min_score=3), "corpus.min_score"),
    (dict(clean=True), "corpus.clean"),
    (dict(quality=0.5), "corpus.quality"),
    (dict(parts={"edu": {"name": "synthetic"}, "web": {"name": "fineweb"}}), "corpus.parts.edu.name"),
    (dict(parts={"edu": {"name": "fineweb_edu", "min_scor": 3}, "web": {"name": "fineweb"}}),
     "corpus.parts.edu.min_scor"),
    (dict(parts={"edu": {"name": "fineweb", "min_score": 3}, "web": {"name": "fineweb_edu"}}),
     "corpus.parts.edu.min_score"),
    (dict(parts={"edu": {"name": "local", "path": "/no/such/file"}, "web": {"name": "fineweb"}}),
     "corpus.parts.edu.path"),
    (dict(parts={"edu": {"name": "fineweb_edu", "train_words": 100}, "web": {"name": "fineweb"}}),
     "corpus.parts.edu.train_words"),
])
def test_bad_mixes_are_refused_naming_the_field(files, change, field):
    values = {"parts": {"edu": {"name": "fineweb_edu"}, "web": {"name": "fineweb"}}, "weights": {"edu": 0.3, "web": 0.7}}
    values.update(change)
    with pytest.raises(ConfigError) as e:
        validate_corpus_config(CorpusConfig(name="mix", **values))
    assert e.value.field == field


def test_parts_are_only_a_mix_field():
    with pytest.raises(ConfigError) as e:
        validate_corpus_config(CorpusConfig(name="fineweb", parts={"a": {"name": "fineweb"}}))
    assert e.value.field == "corpus.parts"
