"""Document quality tools: every filter rule, exact and near dedup, and detection quality on
the synthetic corpus (thresholds set from measurements, with margin)."""
import pytest

from corpora.quality import (
    DedupConfig,
    FilterConfig,
    apply_filters,
    clean_documents,
    deduplicate,
)
from corpora.quality.evaluate import evaluate
from corpora.quality.filters import RULES, Doc
from corpora.synthetic import generate_documents

CLEAN = (
    "The River Town\n"
    "The town of Millbrook sits beside a wide river, and the people there have lived with "
    "its floods for many years. Every spring the water rises to the edge of the market, so "
    "the traders move their stalls to the hill. The children like to watch the boats.\n"
    "In summer the river is calm. Farmers bring their sheep to drink, and the old miller "
    "grinds wheat with the help of the current. He says that the mill is older than the "
    "church. Nobody in the town knows if that is true, but everyone likes the story.\n"
    "When autumn comes, the leaves fall into the water and drift away to the sea."
)


def _bad_documents() -> dict[str, str]:
    body = CLEAN.split("\n", 1)[1]
    filler = " ".join(f"item{i} zzq" for i in range(60))
    return {
        "word_count": "The cat sat on the mat with the dog.",
        "mean_word_length": "The " + " ".join(["a b c d e f g h i j"] * 10) + " and the end.",
        "symbol_ratio": "\n".join(f"#tag{i} #news #today of the day..." for i in range(20)),
        "markup_ratio": "<html><body><div class=\"x\">" + body.replace(". ", ". <br/>")
                        + "</div></body></html>",
        "digit_ratio": "The prices and the codes: " + " ".join(
            f"{i * 7919:07d}" for i in range(60)) + ".",
        "bullet_lines": "\n".join(f"- the point {i} of the list with some more words here."
                                  for i in range(12)),
        "ellipsis_lines": "\n".join(f"The story of the town and the river goes on {i}..."
                                    for i in range(12)),
        "punct_lines": "\n".join(f"Item {i} of the catalogue with a price and a size"
                                 for i in range(12)) + "\nThe end.",
        "stop_words": filler + ".",
        "boilerplate": body + "\nWe use cookies to improve your experience. Accept all",
        "spam_line": body.replace("\nIn summer", "\ncheap shoes buy shoes best shoes sale "
                                  "shoes online shoes discount shoes\nIn summer"),
        "final_punct": body + "\nThe miller walked down to the",
        "duplicate_lines": body + ("\nThe children like to watch the boats." * 6),
        "top_ngram": body + " " + "the river the river the river " * 10 + "is wide.",
        "duplicate_ngrams": body + " " + " ".join(
            ["the old miller grinds wheat with the help of the current."] * 4),
    }


def test_rules_fire_on_bad_and_not_on_clean():
    cfg = FilterConfig()
    clean = Doc(CLEAN)
    bad = _bad_documents()
    assert set(bad) == set(RULES), "every rule needs a hand-written bad document"
    for name, rule in RULES.items():
        assert rule(clean, cfg) is None, (name, rule(clean, cfg))
        assert rule(Doc(bad[name]), cfg) is not None, name
    report = apply_filters([CLEAN] + list(bad.values()), cfg)
    assert report.kept == [0]
    assert "quality filters: kept 1/" in report.summary()


def test_rule_thresholds_are_config_fields_and_rules_can_be_disabled():
    bad = _bad_documents()["word_count"]
    assert apply_filters([bad], FilterConfig(min_words=5)).kept == [0]
    assert apply_filters([bad], FilterConfig(disabled=("word_count",))).kept == [0]
    assert apply_filters([bad]).removed[0][0] == "word_count"


def test_boilerplate_drop_lines_mode():
    text = "Home | News | Animals | About | Contact\n" + CLEAN + "\nPrivacy policy. Terms of use."
    report = apply_filters([text], FilterConfig(boilerplate_mode="drop_lines"))
    assert report.kept == [0]
    assert report.lines_dropped == {0: 2}
    assert report.texts[0] == CLEAN
    assert apply_filters([text]).removed[0][0] == "boilerplate"


@pytest.fixture(scope="module")
def textbook_docs():
    return generate_documents(quality=1.0, n_words=40_000, seed=3, split="train", workers=1)


def test_clean_textbook_documents_are_kept(textbook_docs):
    report = apply_filters([d.text for d in textbook_docs])
    # Measured 98.9% on 100k words (seed 0): a few short pages and repetitive stories.
    assert len(report.kept) / len(textbook_docs) >= 0.97, report.summary()
    assert not deduplicate([d.text for d in textbook_docs]).removed


def test_exact_duplicates():
    texts = [CLEAN, "Another page about the hills and the sheep that live on them.",
             CLEAN.upper().replace("\n", "\n\n  "), CLEAN]
    report = deduplicate(texts, DedupConfig(near=False))
    assert report.kept == [0, 1]
    assert report.reason(2) == "exact duplicate of doc 0"
    assert report.reason(3) == "exact duplicate of doc 0"
    assert "exact duplicates" in report.summary()


def test_near_duplicates(textbook_docs):
    docs = [d.text for d in textbook_docs if len(d.text.split()) >= 80][:30]
    # The first document whose third line has three sentences or more: one to copy with edits.
    index = next(i for i, d in enumerate(docs) if len(d.split("\n")) > 2 and len(d.split("\n")[2].split(". ")) >= 3)
    source = docs[index]
    lines = source.split("\n")
    sentences = lines[2].split(". ")
    sentences[0], sentences[1] = sentences[1], sentences[0]   # swap two sentences
    del sentences[-1]                                          # drop one
    lines[2] = ". ".join(sentences)
    copy = "\n".join(lines)
    assert copy != source
    report = deduplicate(docs + [copy])
    assert report.kept == list(range(len(docs))), report.summary()
    kind, of, sim = report.removed[len(docs)]
    assert (kind, of) == ("near", index) and sim >= 0.5
    assert report.reason(len(docs)).startswith(f"near duplicate of doc {index} (jaccard ~")


def test_clean_documents_pipeline(textbook_docs):
    texts = [d.text for d in textbook_docs[:40]]
    texts = texts + [texts[3], "<html><body>" + texts[4] + "</body></html>"]
    logged = []
    kept = clean_documents(texts, log=logged.append)
    assert 3 in kept and len(texts) - 2 not in kept and len(texts) - 1 not in kept
    assert len(logged) == 2 and "deduplication" in logged[1]


def test_detection_quality_on_synthetic_web():
    docs = generate_documents(quality=0.0, n_words=60_000, seed=1, split="train", workers=1)
    ev = evaluate(docs)
    # Measured (60k words, seed 1): every targeted rule has precision 1.00 for its defect;
    # recall 1.00 for boilerplate/markup/keyword_spam/truncated; dedup precision 1.00 and
    # near-duplicate recall 0.65 (0.77 on 300k words; see evaluate.py for why it is bounded).
    for rule, target in (("markup_ratio", "markup"), ("boilerplate", "boilerplate"),
                         ("spam_line", "keyword_spam"), ("final_punct", "truncated")):
        fired = [i for i, rules in ev.filters.fired.items() if rule in rules]
        assert fired, rule
        precision = sum(target in docs[i].defects for i in fired) / len(fired)
        assert precision >= 0.95, (rule, precision)
        assert ev.recall("filters", target) >= 0.95, target
    assert ev.precision("filters") >= 0.95
    assert ev.clean_removed("filters") <= 0.05
    dedup_removed = list(ev.dedup.removed)
    assert dedup_removed
    nd_precision = sum("near_duplicate" in docs[i].defects
                       for i in dedup_removed) / len(dedup_removed)
    assert nd_precision >= 0.9
    assert ev.recall("dedup", "near_duplicate") >= 0.5
