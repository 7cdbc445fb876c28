"""A model ready to score from a path: a run directory or a Hugging Face folder, as model +
tokenizer + the context token its sentences are scored after."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from common.errors import ConfigError
from lab.pair_sources import load_pairs
from lab.run_model import default_device, load_corpus, load_run_model, run_corpus_dir
from lab.scoring import load_tokenizer, score_pairs, sentence_start_id


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
    path = Path(path)
    if not path.is_dir():
        raise ConfigError("model", f"{path} does not exist (give a run directory or a Hugging Face folder)")
    if is_hf_dir(path):
        if snapshot is not None:
            raise ConfigError("snapshot", "applies to run directories; an HF folder holds one model")
        return _load_hf(path, device)
    return _load_run(path, snapshot, device)


def _load_hf(path: Path, device: str | torch.device) -> Scorable:
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


def _load_run(path: Path, snapshot: str | None, device: str | torch.device) -> Scorable:
    run = load_run_model(path, snapshot=snapshot, device=device)
    corpus_dir = run_corpus_dir(run)
    if not corpus_dir:
        raise ConfigError("corpus_dir", f"{path} records no corpus_dir (its tokenizer is needed)")
    corpus = load_corpus(corpus_dir)
    return Scorable(run.model, load_tokenizer(corpus.tokenizer_path), sentence_start_id(corpus), "run",
                    {"model": str(path), "kind": "run", "snapshot": snapshot, "step": run.step,
                     "tokens": run.tokens})


def load_choices(source: str | Path) -> list[dict]:
    """The items of a choices .jsonl file; a missing, unreadable or malformed file raises
    ConfigError("choices", ...)."""
    from lab.choices import read_choices

    path = Path(source)
    if not path.is_file():
        raise ConfigError("choices", f"{path} is not a file (give a .jsonl of multiple-choice items)")
    try:
        items = read_choices(path)
    except ValueError as e:
        raise ConfigError("choices", str(e).splitlines()[0]) from None
    except OSError as e:
        raise ConfigError("choices", f"{path} is unreadable ({e.__class__.__name__})") from None
    if not items:
        raise ConfigError("choices", f"{path} holds no items")
    return items


def score_path(path: str | Path, *, pairs_source: str | Path | None = None,
               choices_source: str | Path | None = None, snapshot: str | None = None,
               device: str | None = None, batch_size: int = 64, details: bool = False) -> dict:
    """Score a run directory or HF folder on minimal pairs and/or multiple-choice items, loading
    the model once: {"pairs": score_pairs' dict, "choices": score_choices' dict} (each only when
    its source is given; each carries the model's description). Both inputs are read before the
    model is loaded, so a bad file fails fast."""
    from lab.choices import score_choices

    if pairs_source is None and choices_source is None:
        raise ConfigError("pairs", "give pairs, choices, or both")
    pairs = load_pairs(pairs_source) if pairs_source is not None else None
    if pairs is not None and not pairs:
        raise ConfigError("pairs", f"{pairs_source} holds no pairs")
    items = load_choices(choices_source) if choices_source is not None else None
    device = device or default_device()
    target = load_scorable(path, snapshot, device)
    out = {}
    if pairs is not None:
        out["pairs"] = score_pairs(target.model, target.tokenizer, pairs, bos_id=target.bos_id, device=device,
                                   batch_size=batch_size, details=details)
        out["pairs"].update(target.describe, pairs_source=str(pairs_source))
    if items is not None:
        out["choices"] = score_choices(target.model, target.tokenizer, items, bos_id=target.bos_id, device=device,
                                       batch_size=batch_size, details=details)
        out["choices"].update(target.describe, choices_source=str(choices_source))
    return out


def evaluate_path(path: str | Path, pairs_source: str | Path, *, snapshot: str | None = None,
                  device: str | None = None, batch_size: int = 64, details: bool = False) -> dict:
    """Score a run directory or HF folder on a pairs file / directory / hub id."""
    return score_path(path, pairs_source=pairs_source, snapshot=snapshot, device=device,
                      batch_size=batch_size, details=details)["pairs"]


def evaluate_choices_path(path: str | Path, choices_source: str | Path, *, snapshot: str | None = None,
                          device: str | None = None, batch_size: int = 64, details: bool = False) -> dict:
    """Score a run directory or HF folder on a multiple-choice .jsonl file."""
    return score_path(path, choices_source=choices_source, snapshot=snapshot, device=device,
                      batch_size=batch_size, details=details)["choices"]
