"""Web-grade defects: what a crawl does to the same language.

Each defect is a function that edits a `WebPage` (a textbook `Draft` plus the page chrome
around it) and leaves evidence a test can find: boilerplate lines, a spam line, HTML tags,
misspelled words, a cut-off ending, a false canonical fact. The evidence of a defect is
marked `keep`, and truncation only cuts after the last kept sentence, so a label is never
applied to text that no longer shows it. Near-duplicates are made in `generate.py`, which
can regenerate an earlier document's draft from its seed.
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

from corpora.synthetic.genres import Draft, Sentence
from corpora.synthetic.lexicon import Lexicon
from corpora.synthetic.world import Fact, World, contradict, render_fact

# Default per-document probability of each defect in a web-grade document, applied
# independently (a page can have several, or none). The order is the order of the labels.
WEB_DEFECT_RATES: dict[str, float] = {
    "boilerplate": 0.5,
    "near_duplicate": 0.1,
    "keyword_spam": 0.15,
    "markup": 0.3,
    "typos": 0.25,
    "truncated": 0.1,
    "contradiction": 0.15,
}
TYPO_RATE = 0.04  # per eligible word of a page with the typos defect

# A handful of sites, each with its own chrome repeated verbatim on every page it serves.
SITES = (
    ("Home | News | Animals | Towns | About | Contact",
     "Copyright 2024 Village Notes. All rights reserved. Privacy policy. Terms of use."),
    ("Home | Stories | Popular | Random page | Log in",
     "This page was last edited on 3 March. Content is available under a free license."),
    ("Skip to content | Menu | Search | Subscribe",
     "Share this: Facebook | Twitter | Email. Related posts. Leave a comment."),
    ("Main page | Categories | Recent changes | Help",
     "Powered by WordPress. Theme by Example Themes. Back to top."),
    ("Forum index | Register | Login | FAQ | Members",
     "All times are UTC. Powered by phpBB. Contact us. Terms. Privacy."),
    ("Home > Learning > Nature > Articles",
     "Sign up for our newsletter. Enter your email address. Unsubscribe at any time."),
)
COOKIE_BANNERS = (
    "We use cookies to improve your experience. By continuing to browse the site you agree "
    "to our use of cookies. Accept | Reject | Settings",
    "This website uses cookies to ensure you get the best experience on our website. "
    "Learn more. Got it!",
    "Cookie notice: we and our partners use cookies for analytics and ads. Accept all | "
    "Manage preferences",
)
BOILERPLATE_LINES = frozenset(line for site in SITES for line in site) | frozenset(COOKIE_BANNERS)
SPAM_WORDS = ("best", "cheap", "buy", "online", "free", "deals", "top", "sale", "discount",
              "review", "click", "here", "now", "price", "2024", "shipping")
TAG_PATTERN = re.compile(r"</?[a-z][a-z0-9]*(?: [^<>]*)?/?>|&[a-z]+;")


@dataclass
class WebPage:
    draft: Draft
    header: list[str] = field(default_factory=list)
    footer: list[str] = field(default_factory=list)
    markup: bool = False
    # (paragraph, sentence, characters kept) where the page is cut off, if truncated.
    cut: tuple[int, int, int] | None = None

    def render(self) -> str:
        draft = self.draft
        if self.markup:
            lines = ['<html><head><meta charset="utf-8"></head><body>']
            lines += [f'<div class="nav">{line}</div>' for line in self.header]
            lines.append(f"<h1>{draft.title}</h1>")
        else:
            lines = self.header + [draft.title]
        for p_index, paragraph in enumerate(draft.paragraphs):
            texts = [s.text for s in paragraph]
            cut_here = self.cut is not None and self.cut[0] == p_index
            if cut_here:
                _, s_index, kept = self.cut  # type: ignore[misc]
                texts = texts[:s_index] + [paragraph[s_index].text[:kept]]
            if texts:
                body = " ".join(texts)
                if self.markup:
                    body = "<p>" + body + ("" if cut_here else "</p>")
                lines.append(body)
            if cut_here:
                return "\n".join(lines)
        if self.markup:
            lines += [f'<div class="footer">{line}</div>' for line in self.footer]
            lines.append("</body></html>")
        else:
            lines += self.footer
        return "\n".join(lines)


# --- the defects ---------------------------------------------------------------------


def add_boilerplate(page: WebPage, rng: random.Random) -> bool:
    nav, footer = SITES[int(rng.random() * len(SITES))]
    page.header = [nav]
    if rng.random() < 0.7:
        page.header.append(COOKIE_BANNERS[int(rng.random() * len(COOKIE_BANNERS))])
    page.footer = [footer]
    return True


def add_keyword_spam(page: WebPage, rng: random.Random, keyword: str) -> bool:
    """A stuffed line of the page's topic word among shopping words, mid-page."""
    words = []
    for _ in range(6 + int(rng.random() * 6)):
        words += [keyword, SPAM_WORDS[int(rng.random() * len(SPAM_WORDS))]]
    line = [Sentence(" ".join(words), keep=True)]
    paragraphs = page.draft.paragraphs
    # Never last: a page still ends with its own text (truncation is a separate defect).
    paragraphs.insert(int(rng.random() * len(paragraphs)), line)
    if rng.random() < 0.5:
        year = 2020 + int(rng.random() * 5)
        page.draft.title = f"{page.draft.title} | {keyword} | best {keyword} {year}"
    return True


def add_markup(page: WebPage, rng: random.Random) -> bool:
    """HTML tags around the page and a few entities and inline tags inside sentences."""
    page.markup = True
    for sentence in page.draft.sentences():
        if sentence.keep or rng.random() > 0.15:
            continue
        if " and " in sentence.text:
            sentence.text = sentence.text.replace(" and ", " &amp; ", 1)
        elif rng.random() < 0.5:
            sentence.text = sentence.text + " <br/>"
        else:
            words = sentence.text.split(" ")
            index = int(rng.random() * len(words))
            tag = ("b", "i", "span", "em", "strong")[int(rng.random() * 5)]
            words[index] = f"<{tag}>{words[index]}</{tag}>"
            sentence.text = "&nbsp;".join(words) if rng.random() < 0.2 else " ".join(words)
    return True


def misspell(word: str, rng: random.Random) -> str:
    """One character-level slip: swap, drop, double or replace a letter."""
    position = 1 + int(rng.random() * (len(word) - 2))
    operation = int(rng.random() * 4)
    if operation == 0:
        return word[:position] + word[position + 1] + word[position] + word[position + 2:]
    if operation == 1:
        return word[:position] + word[position + 1:]
    if operation == 2:
        return word[:position] + word[position] + word[position:]
    letter = "etaoinshrdlu"[int(rng.random() * 12)]
    return word[:position] + letter + word[position + 1:]


def _is_word(word: str, lexicon: Lexicon) -> bool:
    return word in lexicon.tags or word.lower() in lexicon.tags


def add_typos(page: WebPage, rng: random.Random, lexicon: Lexicon) -> bool:
    """Misspell about TYPO_RATE of the longer words, at least one word per page."""
    sentences = [s for s in page.draft.sentences() if not s.keep]
    first_changed = None
    for sentence in sentences:
        words = sentence.text.split(" ")
        changed = False
        for index, word in enumerate(words):
            if len(word) >= 4 and word.isalpha() and rng.random() < TYPO_RATE:
                slip = misspell(word, rng)
                if not _is_word(slip, lexicon):
                    words[index], changed = slip, True
        if changed:
            sentence.text = " ".join(words)
            first_changed = first_changed or sentence
    if first_changed is None:
        # Rate alone left the page clean: force one slip so the label stays true.
        for sentence in sentences:
            words = sentence.text.split(" ")
            for index, word in enumerate(words):
                slip = misspell(word, rng) if len(word) >= 4 and word.isalpha() else word
                if slip != word and not _is_word(slip, lexicon):
                    words[index] = slip
                    sentence.text = " ".join(words)
                    first_changed = sentence
                    break
            if first_changed:
                break
    if first_changed is None:
        return False
    first_changed.keep = True
    return True


def add_contradiction(page: WebPage, rng: random.Random, world: World) -> bool:
    """Replace a stated fact by a false one, or state a false fact about the topic."""
    stated = [s for s in page.draft.sentences() if s.fact is not None and not s.keep]
    if stated:
        sentence = stated[int(rng.random() * len(stated))]
        true_text = render_fact(sentence.fact)  # type: ignore[arg-type]
        false_fact = contradict(world, sentence.fact, rng)  # type: ignore[arg-type]
        sentence.text = sentence.text.replace(true_text, render_fact(false_fact))
        sentence.fact, sentence.keep = false_fact, True
        return True
    facts = world.facts()
    false_fact: Fact = contradict(world, facts[int(rng.random() * len(facts))], rng)
    paragraph = page.draft.paragraphs[0]
    paragraph.insert(int(rng.random() * (len(paragraph) + 1)),
                     Sentence(render_fact(false_fact), false_fact, keep=True))
    return True


def truncate(page: WebPage, rng: random.Random) -> bool:
    """Cut the page mid-sentence in its last part, after every kept sentence; the chrome
    and closing tags after the cut are lost, as in a crawl that stopped reading."""
    positions = [(p, s) for p, paragraph in enumerate(page.draft.paragraphs)
                 for s in range(len(paragraph))]
    last_kept = max((i for i, (p, s) in enumerate(positions)
                     if page.draft.paragraphs[p][s].keep), default=-1)
    earliest = max(last_kept + 1, int(len(positions) * 0.6))
    candidates = [(p, s) for p, s in positions[earliest:]
                  if len(page.draft.paragraphs[p][s].text.split(" ")) >= 3]
    if not candidates:
        return False
    p, s = candidates[int(rng.random() * len(candidates))]
    text = page.draft.paragraphs[p][s].text
    # Cut inside the sentence, never right after its final punctuation.
    kept = 1 + int(rng.random() * (len(text) - 3))
    while kept > 1 and (text[kept - 1] in " .?>;" or text[kept - 1] == ","):
        kept -= 1
    page.cut = (p, s, kept)
    return True
