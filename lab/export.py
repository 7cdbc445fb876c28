"""Export a run as a Hugging Face model directory (LlamaForCausalLM + its tokenizer + a card).

    python -m lab.export <run_dir> <out_dir> [--snapshot NAME]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path

from common.errors import ConfigError

# torch, transformers and the run's model are imported where used: bad input fails in a blink.

# Files that mark a directory as one of our exports (safe to replace).
_EXPORT_MARKERS = ("config.json", "README.md")


def _tokenizer(tokenizer_path: Path, start_id: int, pad_id: int, eos_id: int, max_length: int):
    """A PreTrainedTokenizerFast over the run's tokenizer.json that prepends the start token.

    Prepending it makes ``tokenizer(text)`` exactly the context lab.scoring scores sentences in.
    The training stream is ``doc + </s> + doc + </s>`` (no <s>), so that token is "</s>", and it
    is the exported bos_token as well, like GPT-2's <|endoftext|> (lab.scoring.sentence_start_id).
    """
    from tokenizers import Tokenizer, processors
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer.from_file(str(tokenizer_path))
    start = tok.id_to_token(start_id)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{start} $A", pair=f"{start} $A $B:1", special_tokens=[(start, start_id)])
    # split_special_tokens: a "</s>" written in the text is text, as in training (corpora.tokenizer.load);
    # saved in tokenizer_config.json, so AutoTokenizer keeps it.
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=start, eos_token=tok.id_to_token(eos_id),
                                   pad_token=tok.id_to_token(pad_id), model_max_length=max_length,
                                   split_special_tokens=True)


def _fmt(x, spec: str = "") -> str:
    if x is None:
        return "n/a"
    try:
        return format(x, spec)
    except (TypeError, ValueError):
        return str(x)


def _card_rows(run, run_id: str) -> list[tuple[str, str]]:
    """(label, value) rows of the model card's table: the weights, the shape, the training."""
    from lab.accounting import non_embedding_params, total_params

    cfg, final = run.cfg, run.final or {}
    m, t = cfg.model, cfg.train
    which = f"snapshot `{run.snapshot}`" if run.snapshot else "final weights"
    tokens = run.tokens
    words = None
    if tokens is not None and final.get("tokens_per_word"):
        words = tokens / final["tokens_per_word"]
    rows = [
        ("run id", f"`{run_id}`"),
        ("weights", f"{which} (step {run.step})"),
        ("parameters", f"{total_params(m):,} ({non_embedding_params(m):,} non-embedding)"),
        ("shape", f"d_model={m.d_model}, n_layers={m.n_layers}, n_heads={m.n_heads}, "
                  f"n_kv_heads={m.n_kv_heads}, vocab={m.vocab_size}, tied={m.tie_embeddings}"),
        ("training tokens (these weights)", _fmt(tokens, ",")),
        ("training words (these weights)", _fmt(words, ",.0f")),
        ("training tokens (whole run)", _fmt(final.get("tokens"), ",")),
        ("context length", str(t.seq_len)),
        ("corpus", f"{cfg.corpus.name} (quality {cfg.corpus.quality:g}, seed {cfg.corpus.seed})"),
        ("seed", str(cfg.seed)),
        ("final val loss (nats/token, clean split)", _fmt(final.get("final_val_loss"), ".4f")),
        ("final val bits/byte", _fmt(final.get("final_val_bpb"), ".4f")),
        ("minimal-pair accuracy (final)", _fmt(final.get("pairs"), ".4f")),
        ("status", str(final.get("status", "n/a"))),
        ("code version", str(final.get("code_version") or run.run_config.get("code_version", "unknown"))),
    ]
    if run.snapshot:
        rows.append(("note", "val loss and pair accuracy above are the run's final ones, not this snapshot's"))
    return rows


def model_card(run, run_dir: Path, start_token: str) -> str:
    final = run.final or {}
    run_id = run.run_config.get("run_id") or final.get("run_id") or run_dir.name
    table = "\n".join(f"| {k} | {v} |" for k, v in _card_rows(run, run_id))
    return f"""---
library_name: transformers
pipeline_tag: text-generation
tags: [llama, causal-lm, lab]
---

# {run_id}{f" ({run.snapshot})" if run.snapshot else ""}

A Llama-style causal language model trained from scratch by `lab` (exported with `python -m lab.export`).

| | |
|---|---|
{table}

## Use

```python
from transformers import AutoModelForCausalLM, AutoTokenizer

tok = AutoTokenizer.from_pretrained("path/to/this/dir")
model = AutoModelForCausalLM.from_pretrained("path/to/this/dir")
ids = tok("The dog runs.", return_tensors="pt").input_ids  # starts with {start_token!r}
logits = model(ids).logits
```

The tokenizer prepends `{start_token}`, the token that preceded every document in training, so
a sentence's log-probability sum over `ids[1:]` matches lab's minimal-pair scoring.
"""


def export_hf(run_dir: str | Path, out_dir: str | Path, snapshot: str | None = None) -> Path:
    """Write run_dir's final weights (or snapshots/<snapshot>) to out_dir as a HF model directory.

    It loads offline with ``AutoModelForCausalLM.from_pretrained(out)`` and
    ``AutoTokenizer.from_pretrained(out)`` and computes the same logits as lab.model.Llama. It is
    built under a hidden temporary name and renamed into place, so out_dir is either absent, the
    previous export, or the complete new one. Raises ConfigError on bad input (missing run, unfinished run, unknown snapshot, missing
    corpus, out_dir that exists and is not a previous export).
    """
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    if not run_dir.is_dir():
        raise ConfigError("run_dir", f"{run_dir} does not exist")
    from common.files import fsync_path
    from lab.run_model import load_corpus, load_run_model, run_corpus_dir
    from lab.scoring import sentence_start_id

    run = load_run_model(run_dir, snapshot=snapshot)
    if out_dir.exists() and not _replaceable(out_dir):
        raise ConfigError("out_dir", f"{out_dir} exists and is not an earlier export; refusing to overwrite")
    corpus_dir = run_corpus_dir(run)
    if not corpus_dir or not Path(corpus_dir).is_dir():
        raise ConfigError("corpus_dir", f"the run's corpus {corpus_dir!r} is not available (its tokenizer is needed)")
    corpus = load_corpus(corpus_dir)
    start_id = sentence_start_id(corpus)

    from lab.hf import to_hf_model

    hf = to_hf_model(run.model, bos_id=start_id, eos_id=corpus.eos_id, pad_id=corpus.pad_id)
    # Metadata only for the default rotary (the logits do not depend on it): what it was trained on.
    hf.config.max_position_embeddings = run.cfg.train.seq_len
    tokenizer = _tokenizer(Path(corpus.tokenizer_path), start_id, corpus.pad_id, corpus.eos_id,
                           run.cfg.train.seq_len)

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
        hf.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        _compat(tmp, run.cfg.model.rope_theta)
        (tmp / "README.md").write_text(model_card(run, run_dir, tokenizer.bos_token))
        provenance = {"run_dir": str(run_dir.resolve()), "run_id": run.run_config.get("run_id"),
                      "snapshot": snapshot, "step": run.step, "tokens": run.tokens, "weights": str(run.weights)}
        (tmp / "lab_export.json").write_text(json.dumps(provenance, indent=2) + "\n")
        for p in tmp.iterdir():
            fsync_path(p)
        fsync_path(tmp)
        _swap_in(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def _compat(directory: Path, rope_theta: float) -> None:
    """Also readable by transformers 4.x (e.g. evaluation pipelines pinned to it): 4.x reads
    rope_theta at the top level (else silently uses 10000) and knows no "TokenizersBackend"."""
    config = json.loads((directory / "config.json").read_text())
    config.setdefault("rope_theta", rope_theta)
    config.setdefault("torch_dtype", config.get("dtype", "float32"))
    (directory / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    tok_config = json.loads((directory / "tokenizer_config.json").read_text())
    tok_config["tokenizer_class"] = "PreTrainedTokenizerFast"
    (directory / "tokenizer_config.json").write_text(json.dumps(tok_config, indent=2) + "\n")


def _replaceable(path: Path) -> bool:
    if not path.is_dir():
        return False
    names = {p.name for p in path.iterdir()}
    return not names or all(m in names for m in _EXPORT_MARKERS) and "lab_export.json" in names


def _swap_in(tmp: Path, out_dir: Path) -> None:
    from common.files import fsync_path

    old = None
    if out_dir.exists():
        old = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}"
        shutil.rmtree(old, ignore_errors=True)
        os.rename(out_dir, old)
    os.rename(tmp, out_dir)
    fsync_path(out_dir.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.export", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", help="a finished run directory")
    parser.add_argument("out_dir", help="where to write the Hugging Face model directory")
    parser.add_argument("--snapshot", default=None, help="export snapshots/NAME instead of the final weights")
    args = parser.parse_args(argv)
    out = export_hf(args.run_dir, args.out_dir, snapshot=args.snapshot)
    print(f"exported {args.run_dir}{f' ({args.snapshot})' if args.snapshot else ''} -> {out}")
    return 0


if __name__ == "__main__":
    from common.cli import main_guard

    main_guard(main)
