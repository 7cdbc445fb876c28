"""BLiMP-style minimal-pair scoring, and loading a model (a run's, or a Hugging Face folder's).

    python -m lab.evaluate <run dir | HF dir> --pairs FILE_OR_DIR_OR_HUB_ID [--json] [--snapshot NAME]

A pair is scored correct when the model gives the grammatical sentence a strictly higher total
log-probability than the ungrammatical one (BLiMP's "full sentence" method). A sentence's
log-probability is sum_t log p(x_t | <ctx>, x_<t) over all of its tokens, where <ctx> is one
context token standing for "start of a document" (see ``sentence_start_id``), so the first
word is scored too; no end-of-sentence token is appended. Logits are computed in float32
(autocast off, a low-precision model is up-cast for the call) and the per-token
log-probabilities summed in float64, whatever precision the model was trained in.

Ties (equal scores) are neither right nor wrong for the other side: they count as not correct
in ``accuracy`` and are reported as ``n_ties`` (overall and per phenomenon), so a degenerate
model that gives every sentence the same score shows up as ties, not as 0 % or 50 %.
Length-normalised scores (log-probability / number of tokens) are reported beside the raw ones
(``accuracy_norm``), as is the macro average over phenomena (``macro_accuracy``).

Batches are right-padded: the model is causal, so the padding after a sentence cannot change
the logits at its positions, and padded positions are masked out of the sums.

Pairs come from JSON lines (sentence_good, sentence_bad, and a phenomenon: "phenomenon", else
BLiMP's "linguistics_term", else "UID", else the file name), a directory of such files (BLiMP's
67 paradigm files), or a Hugging Face datasets hub id such as "nyu-mll/blimp" (every config of
it, loaded with `datasets`; needs internet, so that path is not exercised by the offline tests).
"""
from __future__ import annotations

import itertools
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
    # float32 compute whatever the model's storage dtype: up-cast for the call (exact), and
    # restore each tensor's own dtype after (also exact), so the caller's model is unchanged.
    recast = [(t, t.dtype) for t in itertools.chain(model.parameters(), model.buffers())
              if t.is_floating_point() and t.dtype != torch.float32]
    for t, _ in recast:
        t.data = t.data.float()
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
            with torch.autocast(device_type=device.type, enabled=False):
                logits = model(inputs).float()  # (B, T, V), computed in float32
            # log_softmax at the target only: one (B, T, V) tensor instead of two
            logp = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)
            sums = torch.where(mask, logp, torch.zeros_like(logp)).double().sum(dim=1).cpu().tolist()
            for row, i in enumerate(chunk):
                out[i] = sums[row]
    finally:
        model.train(was_training)
        for t, dtype in recast:
            t.data = t.data.to(dtype)
    return out


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


# ---------------------------------------------------------------- minimal pairs


def phenomenon_of(pair: dict, default: str = "all") -> str:
    """The phenomenon a pair belongs to: "phenomenon", else BLiMP's "linguistics_term", else
    "UID", else `default` (the file name for a directory of pair files)."""
    for key in ("phenomenon", "linguistics_term", "UID"):
        if pair.get(key) not in (None, ""):
            return str(pair[key])
    return default


def read_pairs(path: str | Path) -> list[dict]:
    """JSON lines with at least sentence_good and sentence_bad (phenomenon, UID, pair_id optional)."""
    pairs = []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                pair = json.loads(line)
            except ValueError as e:
                raise ValueError(f"{path}:{number}: not JSON ({e.__class__.__name__})") from None
            if not isinstance(pair, dict):
                raise ValueError(f"{path}:{number}: not a JSON object")
            missing = [k for k in PAIR_KEYS if not isinstance(pair.get(k), str)]
            if missing:
                raise ValueError(f"{path}:{number}: pair lacks {', '.join(missing)}")
            pairs.append(pair)
    return pairs


def _accuracy(correct: int, n: int) -> float | None:
    return correct / n if n else None


def _verdict(good: float, bad: float) -> str:
    """"correct" (good strictly higher), "tie" (equal), "wrong", or "nan" (either is NaN)."""
    if good != good or bad != bad:
        return "nan"
    if good > bad:
        return "correct"
    return "tie" if good == bad else "wrong"


class _Tally:
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

    A pair is correct only if logp(good) > logp(bad) strictly. Ties are not correct and are
    counted in n_ties (NaN scores in n_nan), never resolved to either side. ``*_norm`` compare
    logp / number of tokens instead (an empty sentence's normalised score is 0).
    """
    pairs = list(pairs)
    if bos_id is None:
        bos_id = _token_id(tokenizer, "</s>")
    good = encode_texts(tokenizer, [p["sentence_good"] for p in pairs])
    bad = encode_texts(tokenizer, [p["sentence_bad"] for p in pairs])
    scores = sentence_logprobs(model, good + bad, bos_id, device, batch_size)
    lp_good, lp_bad = scores[:len(pairs)], scores[len(pairs):]

    overall = _Tally()
    tables: dict[str, dict[str, _Tally]] = {"phenomenon": defaultdict(_Tally), "UID": defaultdict(_Tally)}
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

    def macro(key):
        values = [row[key] for row in by_phenomenon.values() if row[key] is not None]
        return sum(values) / len(values) if values else None

    result = {**overall.row(), "macro_accuracy": macro("accuracy"), "macro_accuracy_norm": macro("accuracy_norm"),
              "by_phenomenon": by_phenomenon,
              "by_uid": {name: t.row() for name, t in sorted(tables["UID"].items())}, "bos_id": bos_id}
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
    from corpora import tokenizer as bpe

    return bpe.load(Path(path))  # special-token strings in a sentence stay text, as in training


def evaluate_pairs_file(model: torch.nn.Module, tokenizer_path: str | Path, pairs_path: str | Path, *,
                        bos_id: int | None = None, device: str | torch.device | None = None,
                        batch_size: int = 64, details: bool = False) -> dict:
    """score_pairs on a pairs.jsonl with the tokenizer.json the model was trained with."""
    return score_pairs(model, load_tokenizer(tokenizer_path), read_pairs(pairs_path), bos_id=bos_id,
                       device=device, batch_size=batch_size, details=details)


# ---------------------------------------------------------------- a run's model


def load_corpus(corpus_dir: str | Path):
    """The prepared corpus a run trained on (tokenizer, special ids, optional pairs)."""
    from common.errors import ConfigError
    from corpora.prepare import load_prepared

    try:
        return load_prepared(Path(corpus_dir))
    except ConfigError:
        raise
    except (OSError, ValueError) as e:  # missing or damaged: say which corpus, on one line
        raise ConfigError("corpus_dir", str(e).splitlines()[0] if str(e) else f"{corpus_dir} unreadable") from None


def read_run_config(run_dir: Path) -> tuple:
    """(RunConfig, the config.json dict) as recorded by lab.runs.record_start."""
    from common.errors import ConfigError
    from lab.config import run_config_from_dict

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

    from common.errors import ConfigError
    from lab import checkpoint
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


# ---------------------------------------------------------------- pair sources


def load_pairs(source: str | Path) -> list[dict]:
    """Pairs from a .jsonl file, a directory of them (phenomenon defaults to the file stem), or
    a datasets hub id (every config of it, e.g. "nyu-mll/blimp"; needs internet: not tested
    offline). Bad input raises ConfigError("pairs", ...)."""
    from common.errors import ConfigError

    path = Path(source)
    try:
        if path.is_file():
            return read_pairs(path)
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.is_file() and p.name.endswith(".jsonl"))
            if not files:
                raise ConfigError("pairs", f"{path} holds no .jsonl files")
            pairs = []
            for file in files:
                stem = file.name[:-len(".jsonl")]
                pairs += [{**p, "phenomenon": phenomenon_of(p, stem)} if "phenomenon" not in p else p
                          for p in read_pairs(file)]
            return pairs
    except ValueError as e:
        if isinstance(e, ConfigError):
            raise
        raise ConfigError("pairs", str(e).splitlines()[0]) from None
    except OSError as e:
        raise ConfigError("pairs", f"{path} is unreadable ({e.__class__.__name__})") from None
    text = str(source)
    looks_like_hub = text.count("/") == 1 and not text.startswith((".", "/")) and not text.endswith(".jsonl")
    if not looks_like_hub:
        raise ConfigError("pairs", f"{text} is not a file, a directory of .jsonl files, or a hub id (owner/name)")
    return load_hub_pairs(text)


def load_hub_pairs(hub_id: str) -> list[dict]:
    """Every config of a BLiMP-format datasets repository (its "train" split, BLiMP's only one).

    Needs internet (or a populated datasets cache); the offline tests cannot exercise it."""
    from common.errors import ConfigError

    try:
        import datasets
    except ImportError:
        raise ConfigError("pairs", f"{hub_id} looks like a hub id, but the `datasets` package is not installed") from None
    try:
        configs = datasets.get_dataset_config_names(hub_id)
        pairs = []
        for config in configs or [None]:
            ds = datasets.load_dataset(hub_id, config)
            split = ds["train"] if "train" in ds else ds[next(iter(ds))]
            for row in split:
                row = dict(row)
                if "phenomenon" not in row:
                    row["phenomenon"] = phenomenon_of(row, config or hub_id)
                pairs.append(row)
    except Exception as e:  # network, unknown id, schema: one line
        raise ConfigError("pairs", f"could not load hub dataset {hub_id!r} "
                                   f"({e.__class__.__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None
    missing = [k for k in PAIR_KEYS if pairs and k not in pairs[0]]
    if not pairs or missing:
        raise ConfigError("pairs", f"hub dataset {hub_id!r} has no {', '.join(missing) or 'pairs'}")
    return pairs


# ---------------------------------------------------------------- any model directory


def quiet_transformers() -> None:
    """No per-model progress bars or info lines from transformers (a CLI prints its own)."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:
        return
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


class HFLogits(torch.nn.Module):
    """A transformers causal LM as `model(idx) -> logits`, the interface sentence_logprobs uses."""

    def __init__(self, hf: torch.nn.Module):
        super().__init__()
        self.hf = hf

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.hf(input_ids=idx).logits


def is_hf_dir(path: Path) -> bool:
    """A Hugging Face model folder (config.json with model_type/architectures), not a run dir."""
    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and ("architectures" in config or "model_type" in config) and "config" not in config


@dataclass
class Scorable:
    model: torch.nn.Module
    tokenizer: object
    bos_id: int
    kind: str  # "run" or "hf"
    describe: dict


def load_scorable(path: str | Path, snapshot: str | None = None, device: str | torch.device = "cpu") -> Scorable:
    """A run directory (our model, its corpus's tokenizer, the </s> context) or a Hugging Face
    folder (AutoModelForCausalLM in float32 + AutoTokenizer, whose bos token is the context)."""
    from common.errors import ConfigError

    path = Path(path)
    if not path.is_dir():
        raise ConfigError("model", f"{path} does not exist (give a run directory or a Hugging Face folder)")
    if is_hf_dir(path):
        if snapshot is not None:
            raise ConfigError("snapshot", "applies to run directories; an HF folder holds one model")
        from transformers import AutoModelForCausalLM, AutoTokenizer

        try:
            hf = AutoModelForCausalLM.from_pretrained(path, local_files_only=True, dtype=torch.float32)
            tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        except Exception as e:
            raise ConfigError("model", f"{path} does not load with transformers "
                                       f"({e.__class__.__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None
        bos = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
        if bos is None:
            raise ConfigError("model", f"{path}'s tokenizer has neither a bos nor an eos token to condition on")
        model = HFLogits(hf.to(device).eval()).eval()
        return Scorable(model, tokenizer, int(bos), "hf", {"model": str(path), "kind": "hf"})
    run = load_run_model(path, snapshot=snapshot, device=device)
    corpus_dir = run_corpus_dir(run)
    if not corpus_dir:
        raise ConfigError("corpus_dir", f"{path} records no corpus_dir (its tokenizer is needed)")
    corpus = load_corpus(corpus_dir)
    return Scorable(run.model, load_tokenizer(corpus.tokenizer_path), sentence_start_id(corpus), "run",
                    {"model": str(path), "kind": "run", "snapshot": snapshot, "step": run.step,
                     "tokens": run.tokens})


def evaluate_path(path: str | Path, pairs_source: str | Path, *, snapshot: str | None = None,
                  device: str | None = None, batch_size: int = 64, details: bool = False) -> dict:
    """Score a run directory or HF folder on a pairs file / directory / hub id."""
    pairs = load_pairs(pairs_source)
    if not pairs:
        from common.errors import ConfigError

        raise ConfigError("pairs", f"{pairs_source} holds no pairs")
    device = device or default_device()
    target = load_scorable(path, snapshot, device)
    scores = score_pairs(target.model, target.tokenizer, pairs, bos_id=target.bos_id, device=device,
                         batch_size=batch_size, details=details)
    scores.update(target.describe, pairs_source=str(pairs_source))
    return scores


def format_table(scores: dict) -> str:
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


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m lab.evaluate", description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a finished run directory, or a Hugging Face model folder")
    parser.add_argument("--pairs", required=True,
                        help="a JSON-lines file, a directory of them, or a datasets hub id (e.g. nyu-mll/blimp)")
    parser.add_argument("--snapshot", default=None, help="score snapshots/NAME of a run instead of its final weights")
    parser.add_argument("--json", action="store_true", help="print the full results as JSON")
    parser.add_argument("--details", action="store_true", help="with --json: every pair's log-probabilities")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args(argv)
    quiet_transformers()
    if args.batch_size < 1:
        from common.errors import ConfigError

        raise ConfigError("batch_size", f"must be >= 1, got {args.batch_size}")
    if args.device not in (None, "cpu", "cuda"):
        from common.errors import ConfigError

        raise ConfigError("device", f"unknown device {args.device!r}; choose cpu or cuda")
    if args.device == "cuda" and not torch.cuda.is_available():
        from common.errors import ConfigError

        raise ConfigError("device", "cuda is not available here")
    scores = evaluate_path(args.model, args.pairs, snapshot=args.snapshot, device=args.device,
                           batch_size=args.batch_size, details=args.details)
    if args.json:
        print(json.dumps(scores, indent=2, sort_keys=True))
    else:
        print(f"{scores['model']}{f' ({args.snapshot})' if args.snapshot else ''} on {args.pairs}")
        print(format_table(scores))
    return 0


if __name__ == "__main__":
    from common.cli import main_guard

    main_guard(main)
