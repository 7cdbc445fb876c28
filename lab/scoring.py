"""Minimal-pair scoring: sentence log-probabilities under a model, per-pair verdicts, and the
accuracies (overall, per phenomenon, macro, length-normalised) with their text table."""
from __future__ import annotations

import itertools
from collections import defaultdict
from pathlib import Path
from typing import Iterable, Sequence

import torch

from lab.pair_sources import phenomenon_of, read_pairs

# ---------------------------------------------------------------- sentence log-probabilities


def sentence_logprobs(model: torch.nn.Module, token_lists: Sequence[Sequence[int]], bos_id: int,
                      device: str | torch.device | None = None, batch_size: int = 64) -> list[float]:
    """Sum over each sentence's tokens of log p(token_t | bos, tokens_<t), in nats (float64 sums).

    `model(idx)` must return logits (B, T, V). The bos context makes the first word scored too;
    no end-of-sentence token is appended. Logits are computed in float32 whatever the model's
    precision. An empty token list scores 0.0. Sentences are batched by length (fewer pad
    positions) and right-padded, which a causal model cannot see; the results come back in
    input order.
    """
    return continuation_logprobs(model, [()] * len(token_lists), token_lists, bos_id, device, batch_size)


@torch.no_grad()
def continuation_logprobs(model: torch.nn.Module, contexts: Sequence[Sequence[int]],
                          continuations: Sequence[Sequence[int]], bos_id: int,
                          device: str | torch.device | None = None, batch_size: int = 64) -> list[float]:
    """Sum over each continuation's tokens of log p(token | bos, context, continuation tokens
    before it): sentence_logprobs with a context that is read but not scored (multiple-choice
    answers after their question). Same precision, batching and order as sentence_logprobs;
    an empty continuation scores 0.0."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if len(contexts) != len(continuations):
        raise ValueError(f"{len(contexts)} contexts for {len(continuations)} continuations")
    if device is None:
        device = next(model.parameters()).device
    device = torch.device(device)
    was_training = model.training
    model.eval()
    recast = _upcast_to_float32(model)
    sequences = [(list(c), list(t)) for c, t in zip(contexts, continuations)]
    out = [0.0] * len(sequences)
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i][0]) + len(sequences[i][1]))
    order = [i for i in order if sequences[i][1]]
    try:
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            sums = _batch_logprobs(model, [sequences[i] for i in chunk], bos_id, device)
            for row, i in enumerate(chunk):
                out[i] = sums[row]
    finally:
        model.train(was_training)
        for t, dtype in recast:
            t.data = t.data.to(dtype)
    return out


def _upcast_to_float32(model: torch.nn.Module) -> list[tuple[torch.Tensor, torch.dtype]]:
    """Cast the model's low-precision tensors to float32 in place; returns (tensor, old dtype)
    so the caller can restore them. Both casts are exact, so the caller's model is unchanged."""
    recast = [(t, t.dtype) for t in itertools.chain(model.parameters(), model.buffers())
              if t.is_floating_point() and t.dtype != torch.float32]
    for t, _ in recast:
        t.data = t.data.float()
    return recast


def _batch_logprobs(model: torch.nn.Module, sequences: list[tuple[list[int], list[int]]], bos_id: int,
                    device: torch.device) -> list[float]:
    """The log-probability sums of one batch of (context, non-empty continuation) pairs."""
    width = max(len(c) + len(t) for c, t in sequences)  # sequence tokens; inputs are 1 longer
    targets = torch.zeros(len(sequences), width, dtype=torch.long)
    mask = torch.zeros(len(sequences), width, dtype=torch.bool)
    for row, (context, continuation) in enumerate(sequences):
        ids = torch.as_tensor(context + continuation, dtype=torch.long)
        targets[row, :len(ids)] = ids
        mask[row, len(context):len(ids)] = True  # only the continuation is scored
    # inputs: bos then the sequence minus its last token; pads (any id) only after the end
    inputs = torch.cat([torch.full((len(sequences), 1), bos_id, dtype=torch.long), targets[:, :-1]], dim=1)
    inputs, targets, mask = inputs.to(device), targets.to(device), mask.to(device)
    with torch.autocast(device_type=device.type, enabled=False):
        logits = model(inputs).float()  # (B, T, V), computed in float32
    # log_softmax at the target only: one (B, T, V) tensor instead of two
    logp = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)
    return torch.where(mask, logp, torch.zeros_like(logp)).double().sum(dim=1).cpu().tolist()


# ---------------------------------------------------------------- tokenization


def encode_texts(tokenizer, texts: Sequence[str]) -> list[list[int]]:
    """Token ids of each text without special tokens, for a `tokenizers.Tokenizer` or a
    transformers tokenizer (its own bos/eos insertion is switched off; the context token is
    added by ``sentence_logprobs``)."""
    texts = list(texts)
    if hasattr(tokenizer, "encode_batch"):  # tokenizers.Tokenizer
        return [list(enc.ids) for enc in tokenizer.encode_batch(texts, add_special_tokens=False)]
    # verbose=False: sentences longer than the training context are scored all the same
    return [list(ids) for ids in tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"]]


def sentence_start_id(corpus) -> int:
    """The context token that precedes a sentence when scoring it.

    corpora.tokenizer.encode_documents writes the training stream as ``doc + EOS + doc + EOS``
    with no BOS, so the token a model has seen before every document start is EOS ("</s>");
    "<s>" never occurs as an input in training, and conditioning on it would feed the model an
    untrained embedding. If the corpus ever starts documents with BOS, change this one place.
    """
    return int(corpus.eos_id)


def _token_id(tokenizer, token: str) -> int:
    if hasattr(tokenizer, "token_to_id"):  # tokenizers.Tokenizer
        found = tokenizer.token_to_id(token)
    else:
        found = tokenizer.convert_tokens_to_ids(token)
    if found is None:
        raise ValueError(f"tokenizer has no {token!r} token")
    return int(found)


def load_tokenizer(path: str | Path):
    """A run's tokenizer.json, loaded as training loaded it."""
    from corpora import tokenizer as bpe

    return bpe.load(Path(path))  # special-token strings in a sentence stay text, as in training


# ---------------------------------------------------------------- pairs


def _accuracy(correct: int, n: int) -> float | None:
    return correct / n if n else None


def _verdict(good: float, bad: float) -> str:
    """"correct" (good strictly higher), "tie" (equal), "wrong", or "nan" (either is NaN)."""
    if good != good or bad != bad:
        return "nan"
    if good > bad:
        return "correct"
    return "tie" if good == bad else "wrong"


class Tally:
    """Outcome counts of one group of items, raw and length-normalised (lab.choices extends it)."""
    __slots__ = ("n", "correct", "ties", "nan", "correct_norm", "ties_norm")

    def __init__(self):
        self.n = self.correct = self.ties = self.nan = self.correct_norm = self.ties_norm = 0

    def add(self, raw: str, norm: str) -> None:
        self.n += 1
        self.correct += raw == "correct"
        self.ties += raw == "tie"
        self.nan += raw == "nan"
        self.correct_norm += norm == "correct"
        self.ties_norm += norm == "tie"

    def row(self) -> dict:
        return {"accuracy": _accuracy(self.correct, self.n), "n": self.n, "correct": self.correct,
                "n_ties": self.ties, "n_nan": self.nan, "accuracy_norm": _accuracy(self.correct_norm, self.n),
                "n_ties_norm": self.ties_norm}


def score_pairs(model: torch.nn.Module, tokenizer, pairs: Iterable[dict], *, bos_id: int | None = None,
                device: str | torch.device | None = None, batch_size: int = 64,
                details: bool = False) -> dict:
    """Accuracy of `model` on minimal pairs: overall, macro over phenomena, per phenomenon, per UID.

    Returns {"accuracy", "n", "correct", "n_ties", "n_nan", "accuracy_norm", "n_ties_norm",
    "macro_accuracy", "macro_accuracy_norm", "by_phenomenon": {name: {same counts}}, "by_uid",
    "bos_id"} and, with details=True, "pairs": one record per pair with both log-probabilities
    and token counts. bos_id defaults to the tokenizer's "</s>" (see sentence_start_id).

    A pair is correct only if logp(good) > logp(bad) strictly (BLiMP's "full sentence" method).
    Ties are not correct and are counted in n_ties (NaN scores in n_nan), never resolved to
    either side, so a model that scores every sentence alike shows up as ties, not as 0 % or
    50 %. ``*_norm`` compare logp / number of tokens instead (an empty sentence's normalised
    score is 0).
    """
    pairs = list(pairs)
    if bos_id is None:
        bos_id = _token_id(tokenizer, "</s>")
    good = encode_texts(tokenizer, [p["sentence_good"] for p in pairs])
    bad = encode_texts(tokenizer, [p["sentence_bad"] for p in pairs])
    scores = sentence_logprobs(model, good + bad, bos_id, device, batch_size)
    lp_good, lp_bad = scores[:len(pairs)], scores[len(pairs):]

    overall = Tally()
    tables: dict[str, dict[str, Tally]] = {"phenomenon": defaultdict(Tally), "UID": defaultdict(Tally)}
    records = []
    for i, pair in enumerate(pairs):
        raw = _verdict(lp_good[i], lp_bad[i])
        norm = _verdict(lp_good[i] / max(1, len(good[i])), lp_bad[i] / max(1, len(bad[i])))
        overall.add(raw, norm)
        tables["phenomenon"][phenomenon_of(pair)].add(raw, norm)
        tables["UID"][str(pair.get("UID", "all"))].add(raw, norm)
        if details:
            records.append({"pair_id": pair.get("pair_id", i), "phenomenon": phenomenon_of(pair),
                            "UID": pair.get("UID"), "logprob_good": lp_good[i], "logprob_bad": lp_bad[i],
                            "tokens_good": len(good[i]), "tokens_bad": len(bad[i]),
                            "correct": raw == "correct", "tie": raw == "tie",
                            "correct_norm": norm == "correct"})

    by_phenomenon = {name: t.row() for name, t in sorted(tables["phenomenon"].items())}
    result = {**overall.row(), "macro_accuracy": _macro(by_phenomenon, "accuracy"),
              "macro_accuracy_norm": _macro(by_phenomenon, "accuracy_norm"), "by_phenomenon": by_phenomenon,
              "by_uid": {name: t.row() for name, t in sorted(tables["UID"].items())}, "bos_id": bos_id}
    if details:
        result["pairs"] = records
    return result


def _macro(by_phenomenon: dict[str, dict], key: str) -> float | None:
    """The mean of `key` over phenomena that have a value (None when none has)."""
    values = [row[key] for row in by_phenomenon.values() if row[key] is not None]
    return sum(values) / len(values) if values else None


def evaluate_pairs_file(model: torch.nn.Module, tokenizer_path: str | Path, pairs_path: str | Path, *,
                        bos_id: int | None = None, device: str | torch.device | None = None,
                        batch_size: int = 64, details: bool = False) -> dict:
    """score_pairs on a pairs.jsonl with the tokenizer.json the model was trained with."""
    return score_pairs(model, load_tokenizer(tokenizer_path), read_pairs(pairs_path), bos_id=bos_id,
                       device=device, batch_size=batch_size, details=details)


def format_table(scores: dict) -> str:
    """score_pairs' result as a text table: one row per phenomenon, then micro and macro."""
    def pct(x):
        return "   n/a" if x is None else f"{100 * x:6.2f}"

    width = max([len("phenomenon"), len("macro average"), *map(len, scores["by_phenomenon"])])
    lines = [f"{'phenomenon':<{width}} {'n':>6} {'acc %':>6} {'ties':>5} {'norm %':>6}", "-" * (width + 28)]
    for name, row in scores["by_phenomenon"].items():
        lines.append(f"{name:<{width}} {row['n']:>6} {pct(row['accuracy'])} {row['n_ties']:>5} {pct(row['accuracy_norm'])}")
    lines.append("-" * (width + 28))
    lines.append(f"{'all (micro)':<{width}} {scores['n']:>6} {pct(scores['accuracy'])} {scores['n_ties']:>5} "
                 f"{pct(scores['accuracy_norm'])}")
    lines.append(f"{'macro average':<{width}} {'':>6} {pct(scores['macro_accuracy'])} {'':>5} "
                 f"{pct(scores['macro_accuracy_norm'])}")
    if scores.get("n_nan"):
        lines.append(f"note: {scores['n_nan']} pairs had a NaN score (counted as not correct)")
    return "\n".join(lines)
