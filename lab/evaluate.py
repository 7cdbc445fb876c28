"""BLiMP-style minimal-pair scoring, and loading a finished run's model for evaluation.

A pair is scored correct when the model gives the grammatical sentence a strictly higher total
log-probability than the ungrammatical one (BLiMP's "full sentence" method). A sentence's
log-probability is sum_t log p(x_t | <ctx>, x_<t) over all of its tokens, where <ctx> is one
context token standing for "start of a document" (see ``sentence_start_id``), so the first
word is scored too.

Batches are right-padded: the model is causal, so the padding after a sentence cannot change
the logits at its positions, and padded positions are masked out of the sums.
"""
from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import torch

PAIR_KEYS = ("sentence_good", "sentence_bad")


# ---------------------------------------------------------------- sentence log-probabilities


@torch.no_grad()
def sentence_logprobs(model: torch.nn.Module, token_lists: Sequence[Sequence[int]], bos_id: int,
                      device: str | torch.device | None = None, batch_size: int = 64) -> list[float]:
    """Sum over each sentence's tokens of log p(token_t | bos, tokens_<t), in nats (float64 sums).

    `model(idx)` must return logits (B, T, V). An empty token list scores 0.0. Sentences are
    batched by length (fewer pad positions) and the results returned in input order.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if device is None:
        device = next(model.parameters()).device
    device = torch.device(device)
    was_training = model.training
    model.eval()
    out = [0.0] * len(token_lists)
    order = sorted(range(len(token_lists)), key=lambda i: len(token_lists[i]))
    order = [i for i in order if len(token_lists[i]) > 0]
    try:
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            width = max(len(token_lists[i]) for i in chunk)  # sentence tokens; inputs are 1 longer
            targets = torch.zeros(len(chunk), width, dtype=torch.long)
            mask = torch.zeros(len(chunk), width, dtype=torch.bool)
            for row, i in enumerate(chunk):
                ids = torch.as_tensor(list(token_lists[i]), dtype=torch.long)
                targets[row, :len(ids)] = ids
                mask[row, :len(ids)] = True
            # inputs: bos then the sentence minus its last token; pads (any id) only after the end
            inputs = torch.cat([torch.full((len(chunk), 1), bos_id, dtype=torch.long), targets[:, :-1]], dim=1)
            inputs, targets, mask = inputs.to(device), targets.to(device), mask.to(device)
            logits = model(inputs).float()  # (B, T, V)
            # log_softmax at the target only: one (B, T, V) tensor instead of two
            logp = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)
            sums = torch.where(mask, logp, torch.zeros_like(logp)).double().sum(dim=1).cpu().tolist()
            for row, i in enumerate(chunk):
                out[i] = sums[row]
    finally:
        model.train(was_training)
    return out


# ---------------------------------------------------------------- tokenization


def encode_texts(tokenizer, texts: Sequence[str]) -> list[list[int]]:
    """Token ids of each text without special tokens, for a `tokenizers.Tokenizer` or a
    transformers tokenizer (its own bos/eos insertion is switched off; the context token is
    added by ``sentence_logprobs``)."""
    texts = list(texts)
    if hasattr(tokenizer, "encode_batch"):  # tokenizers.Tokenizer
        return [list(enc.ids) for enc in tokenizer.encode_batch(texts, add_special_tokens=False)]
    return [list(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]


def sentence_start_id(corpus) -> int:
    """The context token that precedes a sentence when scoring it.

    corpora.tokenizer.encode_documents writes the training stream as ``doc + EOS + doc + EOS``
    with no BOS, so the token a model has seen before every document start is EOS ("</s>");
    "<s>" never occurs as an input in training, and conditioning on it would feed the model an
    untrained embedding. If the corpus ever starts documents with BOS, change this one place.
    """
    return int(corpus.eos_id)


# ---------------------------------------------------------------- minimal pairs


def read_pairs(path: str | Path) -> list[dict]:
    """JSON lines with at least sentence_good and sentence_bad (phenomenon, UID, pair_id optional)."""
    pairs = []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            pair = json.loads(line)
            missing = [k for k in PAIR_KEYS if not isinstance(pair.get(k), str)]
            if missing:
                raise ValueError(f"{path}:{number}: pair lacks {', '.join(missing)}")
            pairs.append(pair)
    return pairs


def _accuracy(correct: int, n: int) -> float | None:
    return correct / n if n else None


def score_pairs(model: torch.nn.Module, tokenizer, pairs: Iterable[dict], *, bos_id: int | None = None,
                device: str | torch.device | None = None, batch_size: int = 64,
                details: bool = False) -> dict:
    """Accuracy of `model` on minimal pairs: overall and per phenomenon (and per UID).

    Returns {"accuracy", "n", "correct", "by_phenomenon": {name: {"accuracy", "n", "correct"}},
    "by_uid": {...}, "bos_id"} and, with details=True, "pairs": one record per pair with both
    log-probabilities. bos_id defaults to the tokenizer's EOS token (see sentence_start_id).
    A pair is correct only if logp(good) > logp(bad) strictly (ties and NaN count as wrong).
    """
    pairs = list(pairs)
    if bos_id is None:
        bos_id = _token_id(tokenizer, "</s>")
    good = encode_texts(tokenizer, [p["sentence_good"] for p in pairs])
    bad = encode_texts(tokenizer, [p["sentence_bad"] for p in pairs])
    scores = sentence_logprobs(model, good + bad, bos_id, device, batch_size)
    lp_good, lp_bad = scores[:len(pairs)], scores[len(pairs):]

    totals: dict[str, dict[str, list[int]]] = {"phenomenon": defaultdict(lambda: [0, 0]),
                                                "UID": defaultdict(lambda: [0, 0])}
    records, correct_all = [], 0
    for i, pair in enumerate(pairs):
        correct = bool(lp_good[i] > lp_bad[i])  # False for ties and NaN
        correct_all += correct
        for key in totals:
            tally = totals[key][str(pair.get(key, "all"))]
            tally[0] += correct
            tally[1] += 1
        if details:
            records.append({"pair_id": pair.get("pair_id", i), "phenomenon": pair.get("phenomenon"),
                            "UID": pair.get("UID"), "logprob_good": lp_good[i], "logprob_bad": lp_bad[i],
                            "tokens_good": len(good[i]), "tokens_bad": len(bad[i]), "correct": correct})

    def table(key):
        return {name: {"accuracy": _accuracy(c, n), "n": n, "correct": c}
                for name, (c, n) in sorted(totals[key].items())}

    result = {"accuracy": _accuracy(correct_all, len(pairs)), "n": len(pairs), "correct": correct_all,
              "by_phenomenon": table("phenomenon"), "by_uid": table("UID"), "bos_id": bos_id}
    if details:
        result["pairs"] = records
    return result


def _token_id(tokenizer, token: str) -> int:
    if hasattr(tokenizer, "token_to_id"):  # tokenizers.Tokenizer
        found = tokenizer.token_to_id(token)
    else:
        found = tokenizer.convert_tokens_to_ids(token)
    if found is None:
        raise ValueError(f"tokenizer has no {token!r} token")
    return int(found)


def load_tokenizer(path: str | Path):
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(path))


def evaluate_pairs_file(model: torch.nn.Module, tokenizer_path: str | Path, pairs_path: str | Path, *,
                        bos_id: int | None = None, device: str | torch.device | None = None,
                        batch_size: int = 64, details: bool = False) -> dict:
    """score_pairs on a pairs.jsonl with the tokenizer.json the model was trained with."""
    return score_pairs(model, load_tokenizer(tokenizer_path), read_pairs(pairs_path), bos_id=bos_id,
                       device=device, batch_size=batch_size, details=details)


# ---------------------------------------------------------------- a run's model


def load_corpus(corpus_dir: str | Path):
    """The prepared corpus a run trained on (tokenizer, special ids, optional pairs)."""
    from corpora.prepare import load_prepared
    from lab.errors import ConfigError

    try:
        return load_prepared(Path(corpus_dir))
    except ConfigError:
        raise
    except (OSError, ValueError) as e:  # missing or damaged: say which corpus, on one line
        raise ConfigError("corpus_dir", str(e).splitlines()[0] if str(e) else f"{corpus_dir} unreadable") from None


def read_run_config(run_dir: Path) -> tuple:
    """(RunConfig, the config.json dict) as recorded by lab.runs.record_start."""
    from lab.config import run_config_from_dict
    from lab.errors import ConfigError

    path = run_dir / "config.json"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError("run_dir", f"{run_dir} has no config.json (not a run directory?)") from None
    except (OSError, ValueError) as e:
        raise ConfigError("run_dir", f"{path} is unreadable ({e.__class__.__name__})") from None
    return run_config_from_dict(data["config"]), data


@dataclass
class RunModel:
    model: torch.nn.Module
    cfg: object  # RunConfig
    run_config: dict  # config.json
    final: dict | None  # final.json, None while the run has none
    weights: Path  # the checkpoint or snapshot directory the weights came from
    step: int
    tokens: int | None
    snapshot: str | None


def load_run_model(run_dir: str | Path, snapshot: str | None = None, *, require_done: bool = True,
                   device: str | torch.device = "cpu") -> RunModel:
    """A run's model in eval mode with its final weights, or those of snapshots/<snapshot>.

    Final weights come from checkpoints/step_<final["steps"]>, the checkpoint the trainer writes
    at the last step; it must be intact (no silent fall back to an older one). Bad input raises
    ConfigError: missing run directory, no config.json, unfinished run (require_done, for final
    weights), unknown or corrupt snapshot.
    """
    from safetensors.torch import load_file

    from lab import checkpoint
    from lab.errors import ConfigError
    from lab.model import Llama
    from lab.runs import read_final

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ConfigError("run_dir", f"{run_dir} does not exist")
    cfg, run_config = read_run_config(run_dir)
    final = read_final(run_dir)
    if snapshot is not None:
        path = run_dir / "snapshots" / snapshot
        if not path.is_dir():
            known = [p.name for p in checkpoint.list_snapshots(run_dir)]
            raise ConfigError("snapshot", f"no snapshot {snapshot!r} in {run_dir} "
                                          f"(have: {', '.join(known) or 'none'})")
    else:
        if final is None or (require_done and final.get("status") != "done"):
            status = "no final.json" if final is None else f"status {final.get('status')!r}"
            raise ConfigError("run_dir", f"{run_dir} is not a finished run ({status})")
        if "steps" in final:
            path = run_dir / "checkpoints" / f"{checkpoint.STEP_PREFIX}{int(final['steps']):08d}"
        else:
            found = checkpoint.list_checkpoints(run_dir)
            if not found:
                raise ConfigError("run_dir", f"{run_dir} has no checkpoint")
            path = found[-1]
        if not path.is_dir():
            raise ConfigError("run_dir", f"final checkpoint {path.name} is missing")
    problem = checkpoint.verify(path)
    if problem:
        raise ConfigError("snapshot" if snapshot else "run_dir", f"{path} is corrupt ({problem})")
    meta = json.loads((path / "meta.json").read_text())
    model = Llama(cfg.model)
    checkpoint.load_model_weights(model, load_file(path / "model.safetensors"))
    model.to(device).eval()
    tokens = meta.get("tokens")
    if tokens is None and final is not None and snapshot is None:
        tokens = final.get("tokens")
    return RunModel(model=model, cfg=cfg, run_config=run_config, final=final, weights=path,
                    step=int(meta["step"]), tokens=tokens, snapshot=snapshot)


def run_corpus_dir(run: RunModel) -> str | None:
    """Where the run's prepared corpus lives (final.json, else config.json from record_start)."""
    if run.final and run.final.get("corpus_dir"):
        return run.final["corpus_dir"]
    return run.run_config.get("corpus_dir")


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"
