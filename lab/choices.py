"""Multiple-choice scoring: each choice's log-probability after its context, the accuracy of
the model's preferred choice (raw and length-normalised), with intervals and per-group rows.

A file holds JSON lines {"context": str, "choices": [str, ...], "answer": int, ...}; extra keys
are kept ("hops" groups the results). Choices normally start with a space ("Paris is in" +
" France"), since the text scored is context + choice.
"""
from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from statistics import NormalDist

import torch

from lab.scoring import Tally, continuation_logprobs, encode_texts

CHOICE_KEYS = ("context", "choices", "answer")
GROUP_KEY = "hops"


# ---------------------------------------------------------------- reading


def read_choices(path: str | Path) -> list[dict]:
    """The items of a choices JSONL file (blank lines skipped); a malformed line raises
    ValueError naming the file and line."""
    items = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                item = json.loads(line)
            except ValueError as e:
                raise ValueError(f"{where}: not JSON ({e.__class__.__name__})") from None
            problem = _item_problem(item)
            if problem:
                raise ValueError(f"{where}: {problem}")
            items.append(item)
    return items


def _item_problem(item) -> str | None:
    """Why an item is not a valid multiple-choice question, or None."""
    if not isinstance(item, dict):
        return "not a JSON object"
    missing = [k for k in CHOICE_KEYS if k not in item]
    if missing:
        return f"item lacks {', '.join(missing)}"
    if not isinstance(item["context"], str):
        return "context is not a string"
    choices = item["choices"]
    if not isinstance(choices, list) or len(choices) < 2:
        return "choices must be a list of at least 2 strings"
    if not all(isinstance(c, str) and c for c in choices):
        return "every choice must be a non-empty string"
    answer = item["answer"]
    if isinstance(answer, bool) or not isinstance(answer, int) or not 0 <= answer < len(choices):
        return f"answer must be an index into the {len(choices)} choices, got {answer!r}"
    return None


# ---------------------------------------------------------------- tokenization


def split_context_choice(tokenizer, context: str, choices: Sequence[str]) -> list[tuple[list[int], list[int]]]:
    """(context tokens, continuation tokens) for each choice, as lm-evaluation-harness pairs them.

    Whitespace at the context's end moves to the choice (the harness does this too: a BPE with
    the space attached to the next word then sees " France", not " " + "France"). context +
    choice is encoded whole, and the context alone; the continuation is every token of the whole
    past the two encodings' common prefix. A merge across the boundary ("the dog" + "s run" ->
    "the", " dogs", " run") then puts the merged token in the continuation, so the scored tokens
    always cover the whole choice (slicing the whole at len(context tokens), as the harness does,
    would drop the choice's first characters there) and the context tokens before it are exactly
    the ones the model reads.
    """
    return _split_items(tokenizer, [{"context": context, "choices": list(choices)}])[0]


def _split_items(tokenizer, items: Sequence[dict]) -> list[list[tuple[list[int], list[int]]]]:
    """split_context_choice for every item, with one call to the tokenizer."""
    texts = []
    for item in items:
        stripped = item["context"].rstrip()
        texts += [stripped] + [item["context"] + choice for choice in item["choices"]]
    encoded = iter(encode_texts(tokenizer, texts))
    splits = []
    for item in items:
        alone = next(encoded)
        pairs = []
        for choice in item["choices"]:
            whole = next(encoded)
            shared = 0
            while shared < min(len(alone), len(whole)) and alone[shared] == whole[shared]:
                shared += 1
            if shared == len(whole):
                raise ValueError(f"choice {choice!r} adds no token after context {item['context']!r}")
            pairs.append((whole[:shared], whole[shared:]))
        splits.append(pairs)
    return splits


# ---------------------------------------------------------------- verdicts and tallies


def _verdict(scores: Sequence[float], answer: int) -> tuple[str, int | None]:
    """("correct" | "tie" | "wrong" | "nan", the predicted index or None). Correct only when the
    answer alone has the highest score; a tie at the top including the answer is a "tie"."""
    if any(math.isnan(s) for s in scores):
        return "nan", None
    best = max(scores)
    winners = [i for i, s in enumerate(scores) if s == best]
    if winners == [answer]:
        return "correct", answer
    return ("tie" if answer in winners else "wrong"), (winners[0] if len(winners) == 1 else None)


Z_95 = NormalDist().inv_cdf(0.975)  # 1.95996...


def wilson_interval(successes: int, n: int, z: float = Z_95) -> list[float] | None:
    """Wilson's score interval for a proportion (95 % by default); None when n = 0. Unlike the
    normal approximation it stays inside [0, 1] and is not empty at 0 % or 100 %."""
    if n == 0:
        return None
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [max(0.0, centre - half), min(1.0, centre + half)]


class _Tally(Tally):
    """Tally's counts, and the chance accuracy of the items counted (their choices vary in number)."""
    __slots__ = ("chance",)

    def __init__(self):
        super().__init__()
        self.chance = 0.0

    def add(self, raw: str, norm: str, n_choices: int) -> None:
        super().add(raw, norm)
        self.chance += 1 / n_choices

    def row(self) -> dict:
        def share(k):
            return k / self.n if self.n else None

        return {"accuracy": share(self.correct), "accuracy_ci": wilson_interval(self.correct, self.n),
                "accuracy_norm": share(self.correct_norm),
                "accuracy_norm_ci": wilson_interval(self.correct_norm, self.n),
                "n": self.n, "correct": self.correct, "correct_norm": self.correct_norm,
                "n_ties": self.ties, "n_ties_norm": self.ties_norm, "n_nan": self.nan,
                "chance": share(self.chance)}


# ---------------------------------------------------------------- scoring


def score_choices(model: torch.nn.Module, tokenizer, items: Iterable[dict], *, bos_id: int,
                  device: str | torch.device | None = None, batch_size: int = 64,
                  details: bool = False) -> dict:
    """Accuracy of `model` on multiple-choice items.

    Each choice scores the summed log-probability of its tokens after bos + context (see
    split_context_choice; float32 logits, float64 sums, as sentence_logprobs). "accuracy": the
    answer has the highest sum; "accuracy_norm": the highest sum per UTF-8 byte of the choice
    (lm-evaluation-harness's acc_norm, which divides by len(choice): the same for ASCII text), so
    a longer choice is not penalised for its extra tokens. A tie at the top is never correct
    (n_ties); "chance" is the mean of 1 / number of choices; "*_ci" are Wilson 95 % intervals.

    Returns those keys with counts, "bos_id", "by_group" ({str(hops): same row}) when any item has
    "hops", and with details=True "items": per item its choices' log-probs, token and byte
    counts, the predictions and the item's extra keys (its position in `items` as "index").
    """
    items = list(items)
    splits = _split_items(tokenizer, items)
    flat = [pair for split in splits for pair in split]
    scores = continuation_logprobs(model, [c for c, _ in flat], [t for _, t in flat], bos_id, device, batch_size)

    overall = _Tally()
    groups: dict[str, _Tally] = defaultdict(_Tally)
    grouped = any(GROUP_KEY in item for item in items)
    records = []
    start = 0
    for index, (item, split) in enumerate(zip(items, splits)):
        logprobs = scores[start:start + len(split)]
        start += len(split)
        lengths = [len(choice.encode("utf-8")) for choice in item["choices"]]
        raw, predicted = _verdict(logprobs, item["answer"])
        norm, predicted_norm = _verdict([lp / n for lp, n in zip(logprobs, lengths)], item["answer"])
        overall.add(raw, norm, len(split))
        if grouped:
            groups[str(item.get(GROUP_KEY))].add(raw, norm, len(split))
        if details:
            extra = {k: v for k, v in item.items() if k not in CHOICE_KEYS}
            records.append({"index": index, **extra, "answer": item["answer"], "logprobs": logprobs,
                            "tokens": [len(t) for _, t in split], "bytes": lengths,
                            "prediction": predicted, "prediction_norm": predicted_norm,
                            "correct": raw == "correct", "tie": raw == "tie", "correct_norm": norm == "correct"})
    result = {**overall.row(), "bos_id": bos_id}
    if grouped:
        numeric_first = sorted(groups, key=lambda name: (not name.isdigit(), int(name) if name.isdigit() else 0, name))
        result["by_group"] = {name: groups[name].row() for name in numeric_first}
    if details:
        result["items"] = records
    return result


def evaluate_choices_file(model: torch.nn.Module, tokenizer_path: str | Path, choices_path: str | Path, *,
                          bos_id: int, device: str | torch.device | None = None, batch_size: int = 64,
                          details: bool = False) -> dict:
    """score_choices on a choices .jsonl with the tokenizer.json the model was trained with."""
    from lab.scoring import load_tokenizer

    return score_choices(model, load_tokenizer(tokenizer_path), read_choices(choices_path), bos_id=bos_id,
                         device=device, batch_size=batch_size, details=details)


def format_choices(scores: dict) -> str:
    """score_choices' result as a text table: one row per group (hops), then all items."""
    def pct(x):
        return "   n/a" if x is None else f"{100 * x:6.2f}"

    def ci(row):
        lo_hi = row["accuracy_ci"]
        return f"{'':>15}" if lo_hi is None else f"[{100 * lo_hi[0]:5.1f}, {100 * lo_hi[1]:5.1f}]"

    header = f"{'items':<10} {'n':>6} {'acc %':>6} {'95% interval':>15} {'norm %':>6} {'chance %':>8} {'ties':>5}"
    lines = [header, "-" * len(header)]

    def line(name, row):
        return (f"{name:<10} {row['n']:>6} {pct(row['accuracy'])} {ci(row):>15} {pct(row['accuracy_norm'])} "
                f"{pct(row['chance']):>8} {row['n_ties']:>5}")

    for name, row in scores.get("by_group", {}).items():
        lines.append(line(f"{name} hop{'s' if name != '1' else ''}", row))
    if scores.get("by_group"):
        lines.append("-" * len(header))
    lines.append(line("all", scores))
    if scores.get("n_nan"):
        lines.append(f"note: {scores['n_nan']} items had a NaN score (counted as not correct)")
    return "\n".join(lines)
