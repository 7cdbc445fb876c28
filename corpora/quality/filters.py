"""Heuristic document filters in the style of Gopher (Rae et al. 2021) and C4 (Raffel et al. 2020).

Each rule is a small function ``rule(doc, cfg) -> str | None``: None keeps the document, a
string says why it is removed. Every threshold is a field of `FilterConfig`, with the
published value where one exists; where our synthetic corpus needed another value the
comment on the field says so and why. `apply_filters` runs the rules in order and records,
for each removed document, the first rule that fired (and optionally all rules that fire).

Boilerplate is handled the C4 way: lines matching a boilerplate phrase (cookie banners,
"privacy policy", "terms of use", "lorem ipsum", "javascript", ...) or looking like a
navigation bar are either dropped from the document (``boilerplate_mode="drop_lines"``, as C4
does) or make the whole document flagged (``"flag"``, the default: the caller gets indices
only, and the evaluation against ground truth is per document).
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

# Gopher's stop words ("the, be, to, of, and, that, have, with") plus the next most frequent
# English function words; a document needs at least `min_stop_words` distinct ones. Gopher's
# eight alone removed ~21% of our clean textbook pages: the synthetic grammar writes short
# simple sentences ("Paula is a weaver. She swims near the old shop.") that rarely use
# "to/of/and/with/that", while real English prose of 50+ words almost always has two.
GOPHER_STOP_WORDS = frozenset({"the", "be", "to", "of", "and", "that", "have", "with"})
STOP_WORDS = GOPHER_STOP_WORDS | frozenset({"a", "an", "in", "is", "are", "was", "were", "it",
                                            "he", "she", "they", "for", "on", "his", "her"})

# C4's line blocklist ("javascript", "lorem ipsum", "terms of use", "privacy policy",
# "cookie policy", "uses cookies", "{") plus the usual web chrome a crawl keeps (cookie
# banners, "all rights reserved", "powered by", newsletter and sharing widgets). These are
# generic English web phrases, not strings copied from our generator's sites.
BOILERPLATE_PHRASES = (
    "lorem ipsum", "javascript", "terms of use", "terms of service", "privacy policy",
    "cookie policy", "uses cookies", "use cookies", "use of cookies", "cookie notice",
    "accept all", "accept cookies", "manage preferences", "all rights reserved",
    "powered by", "sign up for our newsletter", "subscribe to our newsletter",
    "unsubscribe at any time", "enter your email", "share this:", "leave a comment",
    "back to top", "skip to content", "related posts", "last edited on",
    "content is available under",
)
# Phrases that are also ordinary English ("they share this", "a log in the river") are left
# out: they would remove clean prose; navigation bars are caught by their separators.
# A navigation bar / breadcrumb: several short items separated by "|", ">", "»" or "·".
NAV_SEPARATORS = re.compile(r"\s[|>»·]\s")
TERMINAL_PUNCT = ('.', '!', '?', '"', "'", '”', '’', ')')
HTML_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9]*(?:\s[^<>]*)?/?>|&[A-Za-z]+;|&#\d+;")
BULLETS = ("•", "●", "○", "■", "□", "▪", "▫", "–", "-", "*", "·")
_WORD_STRIP = ".,;:!?\"'()[]{}<>«»“”‘’"


@dataclass
class FilterConfig:
    # --- Gopher quality filters --------------------------------------------------------
    min_words: int = 50            # Gopher: 50
    max_words: int = 100_000       # Gopher: 100,000
    min_mean_word_length: float = 3.0   # Gopher: 3
    max_mean_word_length: float = 10.0  # Gopher: 10
    # ("#" + "..." + "…") per word; Gopher: 0.1.
    max_symbol_word_ratio: float = 0.1
    # HTML tags, entities and curly brackets per word. Gopher has no such rule (its input is
    # extracted text) and C4 drops any page with "{"; a page that still carries markup after
    # extraction is a failed extraction. 0.02 = one tag per 50 words; a clean page has none.
    max_markup_word_ratio: float = 0.02
    # Fraction of non-space characters that are digits (tables, listings, phone books).
    # Not a Gopher rule; 0.2 leaves prose with years and counts alone.
    max_digit_char_ratio: float = 0.2
    # Gopher: at most 90% of lines starting with a bullet, 30% ending with an ellipsis.
    max_bullet_line_fraction: float = 0.9
    max_ellipsis_line_fraction: float = 0.3
    # Fraction of (non-empty) lines ending in terminal punctuation; below this the page is
    # lists/menus, not prose. C4 keeps only such lines; 0.12 is FineWeb's document-level
    # version of that rule.
    min_punct_line_fraction: float = 0.12
    # The last line must end in terminal punctuation (after stripping tags): C4 drops lines
    # that do not, which drops a cut-off final sentence; at document level it flags a page
    # cut off mid-sentence. Set False for sources whose documents end in lists or titles.
    require_final_punct: bool = True
    min_stop_words: int = 2        # Gopher: 2 of STOP_WORDS
    # --- C4 boilerplate ----------------------------------------------------------------
    boilerplate_mode: str = "flag"  # "flag": remove the document; "drop_lines": remove lines
    # A line is navigation when it has at least this many separators (" | ", " > ", ...).
    min_nav_separators: int = 3
    boilerplate_phrases: tuple[str, ...] = BOILERPLATE_PHRASES
    # --- keyword stuffing ------------------------------------------------------------------
    # A line of at least `spam_min_line_words` words whose most common word is more than
    # this fraction of its words (a stuffed "kw buy kw cheap kw ..." line). Gopher's
    # top-n-gram rules only see this on the whole page, where our pages are short and
    # already repeat their topic name, so a line-level version is needed.
    spam_min_line_words: int = 10
    max_line_top_word_fraction: float = 0.3
    # --- Gopher repetition rules -----------------------------------------------------------
    max_dup_line_fraction: float = 0.30        # Gopher: 0.30 (lines)
    max_dup_line_char_fraction: float = 0.20   # Gopher: 0.20
    max_dup_para_fraction: float = 0.30        # Gopher: 0.30 (paragraphs split on "\n\n")
    max_dup_para_char_fraction: float = 0.20   # Gopher: 0.20
    # Fraction of characters in the most frequent 2/3/4-gram. Gopher: 0.20, 0.18, 0.16.
    max_top_ngram_char_fraction: dict[int, float] = field(
        default_factory=lambda: {2: 0.20, 3: 0.18, 4: 0.16})
    # Fraction of characters in duplicated 5..10-grams. Gopher: 0.15 down to 0.10.
    max_dup_ngram_char_fraction: dict[int, float] = field(
        default_factory=lambda: {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10})
    # Rules to skip, by name (see RULES).
    disabled: tuple[str, ...] = ()

    def __post_init__(self):
        if self.boilerplate_mode not in ("flag", "drop_lines"):
            raise ValueError(f"boilerplate_mode must be 'flag' or 'drop_lines', "
                             f"got {self.boilerplate_mode!r}")


class Doc:
    """A document with its lines and words computed once for all rules."""

    def __init__(self, text: str):
        self.text = text
        self.lines = [line.strip() for line in text.split("\n") if line.strip()]
        self.words = text.split()
        self._norm_words: list[str] | None = None

    @property
    def norm_words(self) -> list[str]:
        """Lower-cased words without surrounding punctuation, for the repetition rules."""
        if self._norm_words is None:
            words = (w.strip(_WORD_STRIP).lower() for w in self.words)
            self._norm_words = [w for w in words if w]
        return self._norm_words


# --- the rules -----------------------------------------------------------------------------


def word_count(doc: Doc, cfg: FilterConfig) -> str | None:
    n = len(doc.words)
    if n < cfg.min_words:
        return f"{n} words < {cfg.min_words}"
    if n > cfg.max_words:
        return f"{n} words > {cfg.max_words}"
    return None


def mean_word_length(doc: Doc, cfg: FilterConfig) -> str | None:
    if not doc.words:
        return "no words"
    mean = sum(map(len, doc.words)) / len(doc.words)
    if not cfg.min_mean_word_length <= mean <= cfg.max_mean_word_length:
        return (f"mean word length {mean:.1f} outside "
                f"[{cfg.min_mean_word_length}, {cfg.max_mean_word_length}]")
    return None


def symbol_ratio(doc: Doc, cfg: FilterConfig) -> str | None:
    text = doc.text
    symbols = text.count("#") + text.count("...") + text.count("…")
    ratio = symbols / max(1, len(doc.words))
    if ratio > cfg.max_symbol_word_ratio:
        return f"symbol/word ratio {ratio:.2f} > {cfg.max_symbol_word_ratio}"
    return None


def markup_ratio(doc: Doc, cfg: FilterConfig) -> str | None:
    marks = len(HTML_TAG.findall(doc.text)) + doc.text.count("{") + doc.text.count("}")
    ratio = marks / max(1, len(doc.words))
    if ratio > cfg.max_markup_word_ratio:
        return f"markup/word ratio {ratio:.3f} > {cfg.max_markup_word_ratio}"
    return None


def digit_ratio(doc: Doc, cfg: FilterConfig) -> str | None:
    chars = sum(map(len, doc.words))
    digits = sum(c.isdigit() for c in doc.text)
    ratio = digits / max(1, chars)
    if ratio > cfg.max_digit_char_ratio:
        return f"digit ratio {ratio:.2f} > {cfg.max_digit_char_ratio}"
    return None


def bullet_lines(doc: Doc, cfg: FilterConfig) -> str | None:
    if not doc.lines:
        return None
    frac = sum(line.startswith(BULLETS) for line in doc.lines) / len(doc.lines)
    if frac > cfg.max_bullet_line_fraction:
        return f"{frac:.0%} of lines start with a bullet > {cfg.max_bullet_line_fraction:.0%}"
    return None


def ellipsis_lines(doc: Doc, cfg: FilterConfig) -> str | None:
    if not doc.lines:
        return None
    frac = sum(line.endswith(("...", "…")) for line in doc.lines) / len(doc.lines)
    if frac > cfg.max_ellipsis_line_fraction:
        return f"{frac:.0%} of lines end with an ellipsis > {cfg.max_ellipsis_line_fraction:.0%}"
    return None


def _strip_tags(line: str) -> str:
    return HTML_TAG.sub(" ", line).strip()


def punct_lines(doc: Doc, cfg: FilterConfig) -> str | None:
    lines = [s for s in map(_strip_tags, doc.lines) if s]
    if not lines:
        return "no text lines"
    frac = sum(line.endswith(TERMINAL_PUNCT) for line in lines) / len(lines)
    if frac < cfg.min_punct_line_fraction:
        return f"{frac:.0%} of lines end in punctuation < {cfg.min_punct_line_fraction:.0%}"
    return None


def final_punct(doc: Doc, cfg: FilterConfig) -> str | None:
    if not cfg.require_final_punct:
        return None
    for line in reversed(doc.lines):
        line = _strip_tags(line)
        if line:
            if line.endswith(TERMINAL_PUNCT):
                return None
            return f"last line ends mid-sentence: ...{line[-30:]!r}"
    return None


def stop_words(doc: Doc, cfg: FilterConfig) -> str | None:
    found = STOP_WORDS.intersection(w.lower() for w in doc.words)
    if len(found) < cfg.min_stop_words:
        return f"{len(found)} stop words < {cfg.min_stop_words}"
    return None


def is_boilerplate_line(line: str, cfg: FilterConfig) -> str | None:
    """Why a line is boilerplate (its phrase, or "navigation"), or None."""
    low = _strip_tags(line).lower()
    for phrase in cfg.boilerplate_phrases:
        if phrase in low:
            return phrase
    if len(NAV_SEPARATORS.findall(f" {low} ")) >= cfg.min_nav_separators:
        return "navigation"
    return None


def boilerplate(doc: Doc, cfg: FilterConfig) -> str | None:
    for line in doc.lines:
        hit = is_boilerplate_line(line, cfg)
        if hit:
            return f"boilerplate line ({hit}): {line[:50]!r}"
    return None


def spam_line(doc: Doc, cfg: FilterConfig) -> str | None:
    for line in doc.lines:
        words = [w.strip(_WORD_STRIP).lower() for w in _strip_tags(line).split()]
        words = [w for w in words if any(c.isalnum() for c in w)]  # not "|", "-", ...
        if len(words) < cfg.spam_min_line_words:
            continue
        content = Counter(w for w in words if w not in STOP_WORDS)  # "the" may repeat
        if not content:
            continue
        word, count = content.most_common(1)[0]
        if count / len(words) > cfg.max_line_top_word_fraction:
            return (f"line repeats {word!r} {count}/{len(words)} times "
                    f"> {cfg.max_line_top_word_fraction:.0%}")
    return None


def _dup_fractions(items: Sequence[str]) -> tuple[float, float]:
    """(fraction of items that repeat an earlier one, fraction of their characters)."""
    if not items:
        return 0.0, 0.0
    seen: set[str] = set()
    dup = dup_chars = 0
    for item in items:
        if item in seen:
            dup += 1
            dup_chars += len(item)
        else:
            seen.add(item)
    return dup / len(items), dup_chars / max(1, sum(map(len, items)))


def duplicate_lines(doc: Doc, cfg: FilterConfig) -> str | None:
    frac, char_frac = _dup_fractions(doc.lines)
    if frac > cfg.max_dup_line_fraction:
        return f"{frac:.0%} duplicate lines > {cfg.max_dup_line_fraction:.0%}"
    if char_frac > cfg.max_dup_line_char_fraction:
        return f"{char_frac:.0%} chars in duplicate lines > {cfg.max_dup_line_char_fraction:.0%}"
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", doc.text) if p.strip()]
    frac, char_frac = _dup_fractions(paragraphs)
    if frac > cfg.max_dup_para_fraction:
        return f"{frac:.0%} duplicate paragraphs > {cfg.max_dup_para_fraction:.0%}"
    if char_frac > cfg.max_dup_para_char_fraction:
        return (f"{char_frac:.0%} chars in duplicate paragraphs "
                f"> {cfg.max_dup_para_char_fraction:.0%}")
    return None


def top_ngram(doc: Doc, cfg: FilterConfig) -> str | None:
    """Gopher: characters covered by the most frequent word n-gram (n = 2, 3, 4)."""
    words = doc.norm_words
    total = sum(map(len, words))
    if total == 0:
        return None
    for n, limit in sorted(cfg.max_top_ngram_char_fraction.items()):
        if len(words) < n:
            continue
        counts = Counter(zip(*(words[i:] for i in range(n))))
        gram, count = counts.most_common(1)[0]
        if count < 2:
            continue
        frac = count * sum(map(len, gram)) / total
        if frac > limit:
            return f"top {n}-gram {' '.join(gram)!r} covers {frac:.0%} of characters > {limit:.0%}"
    return None


def duplicate_ngrams(doc: Doc, cfg: FilterConfig) -> str | None:
    """Gopher: characters covered by duplicated word n-grams (n = 5..10), each character
    counted once: a word is covered when some n-gram containing it occurs earlier."""
    words = doc.norm_words
    total = sum(map(len, words))
    if total == 0:
        return None
    for n, limit in sorted(cfg.max_dup_ngram_char_fraction.items()):
        if len(words) < n:
            continue
        seen: set[tuple[str, ...]] = set()
        covered = [False] * len(words)
        for i in range(len(words) - n + 1):
            gram = tuple(words[i:i + n])
            if gram in seen:
                for j in range(i, i + n):
                    covered[j] = True
            else:
                seen.add(gram)
        frac = sum(len(w) for w, c in zip(words, covered) if c) / total
        if frac > limit:
            return f"duplicated {n}-grams cover {frac:.0%} of characters > {limit:.0%}"
    return None


Rule = Callable[[Doc, FilterConfig], "str | None"]
# In order of application: the first rule that fires is the reason a document is removed.
# Cheap, specific rules first; the repetition rules last.
RULES: dict[str, Rule] = {
    "word_count": word_count,
    "mean_word_length": mean_word_length,
    "symbol_ratio": symbol_ratio,
    "markup_ratio": markup_ratio,
    "digit_ratio": digit_ratio,
    "bullet_lines": bullet_lines,
    "ellipsis_lines": ellipsis_lines,
    "punct_lines": punct_lines,
    "stop_words": stop_words,
    "boilerplate": boilerplate,
    "spam_line": spam_line,
    "final_punct": final_punct,
    "duplicate_lines": duplicate_lines,
    "top_ngram": top_ngram,
    "duplicate_ngrams": duplicate_ngrams,
}


def drop_boilerplate_lines(text: str, cfg: FilterConfig) -> tuple[str, int]:
    """C4 line filter: the text without its boilerplate lines, and how many were dropped."""
    kept, dropped = [], 0
    for line in text.split("\n"):
        if line.strip() and is_boilerplate_line(line, cfg):
            dropped += 1
        else:
            kept.append(line)
    return "\n".join(kept), dropped


@dataclass
class FilterReport:
    n_docs: int
    kept: list[int]
    # doc index -> (rule name, detail) of the first rule that removed it
    removed: dict[int, tuple[str, str]]
    # doc index -> every rule that fires on it (only when apply_filters(all_rules=True))
    fired: dict[int, list[str]] = field(default_factory=dict)
    # drop_lines mode: doc index -> number of boilerplate lines dropped, and the edited texts
    lines_dropped: dict[int, int] = field(default_factory=dict)
    texts: list[str] | None = None

    def counts(self) -> Counter:
        return Counter(rule for rule, _ in self.removed.values())

    def summary(self) -> str:
        n = max(1, self.n_docs)
        lines = [f"quality filters: kept {len(self.kept)}/{self.n_docs} documents "
                 f"({len(self.kept) / n:.1%}), removed {len(self.removed)}"]
        examples: dict[str, str] = {}
        for rule, detail in self.removed.values():
            examples.setdefault(rule, detail)
        counts = self.counts()
        for rule in RULES:
            if counts[rule]:
                lines.append(f"  {rule:<18} {counts[rule]:>7}  ({counts[rule] / n:6.1%})  "
                             f"e.g. {examples[rule]}")
        if self.lines_dropped:
            lines.append(f"  boilerplate lines dropped: {sum(self.lines_dropped.values())} in "
                         f"{len(self.lines_dropped)} documents")
        return "\n".join(lines)


def apply_filters(texts: Iterable[str], cfg: FilterConfig | None = None,
                  all_rules: bool = False) -> FilterReport:
    """Run RULES over `texts`; a document is kept when no rule fires.

    all_rules: also record every rule that fires on each document (slower), in `fired`.
    In boilerplate_mode="drop_lines" boilerplate lines are dropped first (report.texts holds
    the edited texts) and the other rules see the edited text.
    """
    cfg = cfg or FilterConfig()
    rules = [(name, rule) for name, rule in RULES.items() if name not in cfg.disabled]
    drop = cfg.boilerplate_mode == "drop_lines"
    if drop:
        rules = [(name, rule) for name, rule in rules if name != "boilerplate"]
    kept: list[int] = []
    removed: dict[int, tuple[str, str]] = {}
    fired: dict[int, list[str]] = {}
    lines_dropped: dict[int, int] = {}
    out_texts: list[str] | None = [] if drop else None
    n = 0
    for index, text in enumerate(texts):
        n += 1
        if drop:
            text, dropped = drop_boilerplate_lines(text, cfg)
            out_texts.append(text)  # type: ignore[union-attr]
            if dropped:
                lines_dropped[index] = dropped
        doc = Doc(text)
        first = None
        for name, rule in rules:
            reason = rule(doc, cfg)
            if reason is not None:
                if first is None:
                    first = (name, reason)
                if not all_rules:
                    break
                fired.setdefault(index, []).append(name)
        if first is None:
            kept.append(index)
        else:
            removed[index] = first
    return FilterReport(n, kept, removed, fired, lines_dropped, out_texts)
