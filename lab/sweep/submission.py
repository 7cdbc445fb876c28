"""A BabyLM submission folder from a finished "babylm" grid run: every checkpoint exported as a
Hugging Face folder, scored through that folder, and described in results.json and a model card.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from corpora.cache import read_manifest
from lab.runs import read_final, write_json

EVAL_FILE = "lab_eval.json"
SUMMARY_KEYS = ("accuracy", "macro_accuracy", "accuracy_norm", "macro_accuracy_norm", "n", "correct",
                "n_ties", "n_ties_norm", "n_nan")


def _weights_meta(run_dir: Path, snapshot: str | None, final: dict) -> dict:
    if snapshot is None:
        return {"step": int(final["steps"]), "tokens": int(final["tokens"])}
    meta = json.loads((run_dir / "snapshots" / snapshot / "meta.json").read_text())
    return {"step": int(meta["step"]), "tokens": int(meta["tokens"])}


def _export_is_current(folder: Path, run_dir: Path, snapshot: str | None, step: int) -> bool:
    try:
        info = json.loads((folder / "lab_export.json").read_text())
    except (OSError, ValueError):
        return False
    return (info.get("run_dir") == str(run_dir.resolve()) and info.get("snapshot") == snapshot
            and info.get("step") == step and (folder / "model.safetensors").is_file())


def _pair_sources(run_dir: Path, final: dict, extra: str | None) -> list[tuple[str, str]]:
    """(label, pairs source): the corpus's own pairs when it has them, plus grid.pairs."""
    from lab.run_model import load_corpus

    sources = []
    corpus_dir = final.get("corpus_dir")
    if corpus_dir and Path(corpus_dir).is_dir():
        pairs = load_corpus(corpus_dir).pairs_path
        if pairs is not None:
            sources.append(("corpus_pairs", str(pairs)))
    if extra:
        sources.append(("pairs", extra))
    return sources


def validation_loss(folder: Path, corpus_dir: str, seq_len: int, eval_tokens: int, device: str | None = None,
                    batch_size: int = 16) -> dict:
    """Loss (nats/token) and bits/byte of the HF folder's model on the corpus's clean validation
    split: the first eval_tokens tokens in seq_len windows, as the trainer measures it, in float32."""
    import math

    import torch
    from transformers import AutoModelForCausalLM

    from lab.data import eval_batches, token_byte_lengths
    from lab.run_model import default_device, load_corpus

    device = device or default_device()
    corpus = load_corpus(corpus_dir)
    byte_lengths = token_byte_lengths(corpus.tokenizer_path)
    model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True, dtype=torch.float32).to(device).eval()
    nats, n_tokens, n_bytes = 0.0, 0, 0
    with torch.no_grad():
        for x, y in eval_batches(corpus.tokens("val_clean"), seq_len, eval_tokens, batch_size):
            logits = model(input_ids=x.to(device)).logits.float()
            nll = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), y.to(device).reshape(-1),
                                                    reduction="sum")
            nats += float(nll.double())
            n_tokens += y.numel()
            n_bytes += int(byte_lengths[y.numpy()].sum())
    return {"val_loss": nats / n_tokens, "val_bpb": nats / math.log(2) / max(1, n_bytes), "tokens": n_tokens}


def _evaluate(folder: Path, sources: list[tuple[str, str]], device: str | None, val: dict | None = None) -> dict:
    """{label: scores without per-pair details} (and "val": validation loss) for the HF folder,
    cached in lab_eval.json."""
    from lab.scorable import evaluate_path

    cache = folder / EVAL_FILE
    try:
        done = json.loads(cache.read_text())
    except (OSError, ValueError):
        done = {}
    changed = False
    if val is not None and done.get("val", {}).get("settings") != val:
        done["val"] = {**validation_loss(folder, device=device, **val), "settings": val}
        changed = True
    for label, source in sources:
        if label in done and done[label].get("pairs_source") == source:
            continue
        done[label] = evaluate_path(folder, source, device=device)
        changed = True
    if changed:
        write_json(cache, done)
    return done


def build_submission(run_dir: Path, out: Path, *, grid: str, scale: str, track_corpus: str,
                     axes: dict, extra_pairs: str | None = None, device: str | None = None,
                     log=print) -> dict:
    """Export + evaluate every snapshot and the final model of a finished run into `out`:

        out/
            chck_1M/ ... chck_100M/   one Hugging Face folder per intermediate checkpoint (the
                                      revision names BabyLM's 2025 pipeline evaluates)
            main/                     the final model
            results.json              every checkpoint's words seen and minimal-pair scores
            README.md                 the model card: data, budget, architecture, results table

    The grid runner passes <grid dir>/submission, or submission/<run id> per run when a grid has
    several (e.g. two sizes). Each folder is scored through its own files (lab.evaluate's HF
    path), so the table's numbers are those of the files being submitted; so is each validation
    loss. Rerunning skips folders already exported from the same weights (lab_export.json says
    which) and scores already in the folder's lab_eval.json; README.md and results.json are
    rebuilt from those every time.
    """
    from common.errors import ConfigError
    from lab.scorable import quiet_transformers

    quiet_transformers()
    run_dir = Path(run_dir)
    final = read_final(run_dir) or {}
    if final.get("status") != "done":
        raise ConfigError("run_dir", f"{run_dir} is not a finished run ({final.get('status', 'no final.json')})")
    out.mkdir(parents=True, exist_ok=True)
    sources = _pair_sources(run_dir, final, extra_pairs)
    val = _val_settings(run_dir, final)
    names = _checkpoint_names(run_dir)
    _remove_stale_exports(out, names, run_dir, log)
    exported = 0
    started = time.perf_counter()
    rows = []
    for name in names:
        snapshot = None if name == "main" else name
        meta = _weights_meta(run_dir, snapshot, final)
        exported += _export_if_stale(run_dir, out / name, snapshot, meta["step"])
        scores = _evaluate(out / name, sources, device, val)
        rows.append(_checkpoint_row(name, meta, scores, final, axes))
    results = _results(run_dir, final, grid, scale, track_corpus, axes, rows, sources)
    write_json(out / "results.json", results)
    (out / "README.md").write_text(model_card(results))
    log(f"submission: {len(names)} models ({exported} exported, {len(names) - exported} already there) "
        f"in {time.perf_counter() - started:.0f}s -> {out}")
    return results


def _val_settings(run_dir: Path, final: dict) -> dict | None:
    """validation_loss's settings, the trainer's own; None when the corpus is gone."""
    from lab.run_model import read_run_config

    if not (final.get("corpus_dir") and Path(final["corpus_dir"]).is_dir()):
        return None
    cfg, _ = read_run_config(run_dir)
    return {"corpus_dir": final["corpus_dir"], "seq_len": cfg.train.seq_len, "eval_tokens": cfg.train.eval_tokens}


def _checkpoint_names(run_dir: Path) -> list[str]:
    """The run's intact snapshots in training order, then "main" (the final weights)."""
    from common.errors import ConfigError
    from lab.checkpoint import list_snapshots
    from lab.run_model import read_run_config

    names = [p.name for p in list_snapshots(run_dir)] + ["main"]
    # Every checkpoint the schedule promised must be there: a missing or corrupt one is an error
    # here, not a silently shorter submission (nor a reason to delete its earlier export).
    scheduled = set(read_run_config(run_dir)[0].train.snapshots)
    missing = sorted(scheduled - set(names))
    if missing:
        raise ConfigError("run_dir", f"{run_dir} lacks intact snapshots {', '.join(missing)} of its schedule "
                                     f"(see snapshots/; retrain the run to recreate them)")
    return names


def _remove_stale_exports(out: Path, names: list[str], run_dir: Path, log) -> None:
    """Exports of an earlier schedule or run would pass for part of this submission."""
    import shutil

    for stale in sorted(out.iterdir()):
        if stale.is_dir() and stale.name not in names and (stale / "lab_export.json").is_file():
            shutil.rmtree(stale)
            log(f"submission: removed {stale.name} (not a checkpoint of {run_dir.name})")


def _export_if_stale(run_dir: Path, folder: Path, snapshot: str | None, step: int) -> bool:
    """Export the weights to `folder` unless it already holds them; True when it exported."""
    from lab.export import export_hf

    if _export_is_current(folder, run_dir, snapshot, step):
        return False
    export_hf(run_dir, folder, snapshot=snapshot)
    return True


def _checkpoint_row(name: str, meta: dict, scores: dict, final: dict, axes: dict) -> dict:
    """results.json's entry for one checkpoint: position, validation loss, pair summaries."""
    tokens_per_word = final.get("tokens_per_word") or 1.0
    row = {"name": name, "step": meta["step"], "tokens": meta["tokens"],
           "words": meta["tokens"] / tokens_per_word,
           "nominal_words": axes.get("snapshots", {}).get(name, final.get("words"))}
    if "val" in scores:
        row.update(val_loss=scores["val"]["val_loss"], val_bpb=scores["val"]["val_bpb"])
    for label, result in scores.items():
        if label == "val":
            continue
        row[label] = {k: result.get(k) for k in SUMMARY_KEYS}
        row[label]["by_phenomenon"] = {k: v["accuracy"] for k, v in result["by_phenomenon"].items()}
    if name == "main":
        row.update(final_val_loss=final.get("final_val_loss"), final_val_bpb=final.get("final_val_bpb"))
    return row


def _results(run_dir: Path, final: dict, grid: str, scale: str, track_corpus: str, axes: dict,
             rows: list[dict], sources: list[tuple[str, str]]) -> dict:
    from lab.run_model import read_run_config

    cfg, _ = read_run_config(run_dir)
    c, m, t = cfg.corpus, cfg.model, cfg.train
    real = c.name == track_corpus
    prepared = _prepared_train(final.get("corpus_dir"))
    return {
        "grid": grid, "scale": scale, "run_id": run_dir.name, "run_dir": str(run_dir.resolve()),
        "data": {"corpus": c.name, "track": track_corpus, "real_babylm_data": real,
                 "offline_stand_in": not real, "path": c.path, "hub_id": c.hub_id,
                 "corpus_words": axes.get("corpus_words"), "train_words_requested": c.train_words,
                 # what the manifest of the prepared corpus counts (after any cleaning), not the request
                 "train_words_prepared": prepared.get("words"), "train_words_source": prepared.get("source_words"),
                 "corpus_dir": final.get("corpus_dir"), "tokens_per_word": final.get("tokens_per_word")},
        "budget": {"words": t.words, "epochs": axes.get("epochs"), "max_epochs": axes.get("max_epochs", 10.0),
                   "words_trained": final.get("words"), "tokens_trained": final.get("tokens"),
                   "epochs_trained_windows": final.get("epochs"), "word_unit": axes.get("word_unit"),
                   "checkpoints": {k: v for k, v in t.snapshots.items()}},
        "architecture": {"type": "LlamaForCausalLM", "params": final.get("params"),
                         "non_embedding_params": final.get("non_embedding_params"), "d_model": m.d_model,
                         "n_layers": m.n_layers, "n_heads": m.n_heads, "n_kv_heads": m.n_kv_heads,
                         "vocab_size": m.vocab_size, "tie_embeddings": m.tie_embeddings, "seq_len": t.seq_len},
        "training": {"batch_size": t.batch_size, "lr": t.lr, "schedule": t.schedule,
                     "warmup": t.warmup if t.warmup_tokens is None else None, "warmup_tokens": t.warmup_tokens,
                     "weight_decay": t.weight_decay, "precision": final.get("precision"),
                     "device": final.get("device"), "wall_s": final.get("wall_s"), "seed": cfg.seed,
                     "code_version": final.get("code_version")},
        "final": {"val_loss": final.get("final_val_loss"), "val_bpb": final.get("final_val_bpb"),
                  "pairs": final.get("pairs")},
        "pairs_sources": dict(sources), "val_eval_tokens": t.eval_tokens,
        "checkpoints": rows,
    }


def _prepared_train(corpus_dir: str | None) -> dict:
    """{"words": words in the prepared training split, "source_words": words read before
    cleaning} from the corpus manifest; {} when the corpus directory is gone or unreadable."""
    manifest = read_manifest(corpus_dir)
    try:
        words = int(manifest["splits"]["train"]["words"])
    except (TypeError, ValueError, KeyError):
        return {}
    cleaning = manifest.get("cleaning") or {}
    return {"words": words, "source_words": int(cleaning.get("words_before", words))}


def _size_note(d: dict, budget_words: float | None) -> str:
    """One sentence when the prepared training split is not the requested size, else ""."""
    prepared, requested = d.get("train_words_prepared"), d.get("train_words_requested")
    if prepared is None:
        return " (The prepared corpus's manifest could not be read: this is the requested size, not a count.)"
    if requested is None or prepared == requested:
        return ""
    source = d.get("train_words_source") or prepared
    why = []
    if source < requested:
        why.append(f"the source holds only {source:,} words")
    if source > prepared:
        why.append(f"cleaning removed {source - prepared:,}")
    if source > requested:
        why.append("documents are kept whole")
    passes = f", so the {budget_words:,.0f}-word budget is {budget_words / prepared:.2f} passes over it" \
        if budget_words else ""
    return (f" The prepared training split holds {prepared:,} words, "
            f"{'fewer' if prepared < requested else 'more'} than the {requested:,} requested"
            f"{' (' + '; '.join(why) + ')' if why else ''}{passes}.")


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}"


def model_card(results: dict) -> str:
    """README.md of the submission folder: data, budget, architecture and the results table."""
    d = results["data"]
    return f"""---
library_name: transformers
pipeline_tag: text-generation
tags: [babylm, llama, causal-lm, lab]
---

# BabyLM {d['track']} submission: `{results['run_id']}`

Trained from scratch by `lab` (`python experiments/run.py grid={results['grid']} scale={results['scale']}`).
Each folder here is a Hugging Face model (`AutoModelForCausalLM` + `AutoTokenizer`); upload
them as the revisions of one repository (`main` is the final model).

## Data

{_card_data(d, results['budget'])}

## Budget

{_card_budget(results)}
## Architecture

{_card_architecture(results['architecture'], results['training'])}

## Results

{_card_results(results)}
"""


def _card_data(d: dict, b: dict) -> str:
    """Which corpus, how many words, and whether it is the real BabyLM data."""
    words = d["train_words_prepared"] if d.get("train_words_prepared") is not None else d.get("train_words_requested")
    words = "n/a" if words is None else f"{words:,}"
    if d["real_babylm_data"]:
        where = d["path"] or f"the hub copy {d['hub_id'] or 'of the registry default'}"
        data = (f"The BabyLM `{d['track']}` training corpus ({where}), its first "
                f"{words} words.")
    else:
        data = (f"**Offline stand-in**: the embedded synthetic corpus (`{d['corpus']}`), "
                f"{words} generated words, in place of the BabyLM `{d['track']}` "
                f"corpus at the same word budget. Not a valid BabyLM submission; train with "
                f"`corpus={d['track']}` for that.")
    return data + _size_note(d, b["words"])


def _card_budget(results: dict) -> str:
    """Words seen and checkpoint positions, ending in a newline (and a note on a shrunk scale)."""
    d, b = results["data"], results["budget"]
    scale_note = ""
    if results["scale"] != "gpu":
        scale_note = (f"\nScale `{results['scale']}`: corpus, budget and checkpoint unit are shrunk by one factor "
                      f"(unit {b['word_unit']:,.0f} words instead of 1M), and checkpoints are named by the words "
                      f"actually seen, not by BabyLM's names.\n")
    checkpoints = ', '.join(f'{k} ({v:,.0f})' for k, v in sorted(b['checkpoints'].items(), key=lambda kv: kv[1]))
    return (f"- {b['words']:,.0f} words seen ({b['epochs']:g} epochs of {d['corpus_words']:,.0f} words; "
            f"BabyLM caps at {b['max_epochs']:g})\n"
            f"- trained: {b['tokens_trained']:,} tokens = {b['words_trained']:,.0f} words at "
            f"{d['tokens_per_word']:.3f} tokens/word\n"
            f"- intermediate checkpoints at: {checkpoints} words\n"
            f"{scale_note}")


def _card_architecture(a: dict, tr: dict) -> str:
    return f"""Llama (RMSNorm, rotary, SwiGLU, grouped-query attention): {a['params']:,} parameters
({a['non_embedding_params']:,} non-embedding), d_model={a['d_model']}, n_layers={a['n_layers']},
n_heads={a['n_heads']}, n_kv_heads={a['n_kv_heads']}, vocab={a['vocab_size']} (byte-level BPE),
tied embeddings={a['tie_embeddings']}, context {a['seq_len']} tokens.
Training: batch {tr['batch_size']} x {a['seq_len']} tokens, lr {tr['lr']:g} ({tr['schedule']}, warmup {_card_warmup(tr)}),
weight decay {tr['weight_decay']:g}, {tr['precision']} on {tr['device']}, seed {tr['seed']}, {tr['wall_s']:.0f}s."""


def _card_warmup(tr: dict) -> str:
    """A grid's warmup is a token count (train.warmup_tokens); a single run's may be a fraction."""
    if tr.get("warmup_tokens") is not None:
        return f"{tr['warmup_tokens']:,.0f} tokens"
    warmup = tr.get("warmup")
    return "-" if warmup is None else (f"{warmup:g} of the steps" if warmup < 1 else f"{warmup:g} steps")


def _card_results(results: dict) -> str:
    """How pairs are scored, the per-checkpoint table, the final losses and the pair sources."""
    sources = "\n".join(f"- `{k}`: {v}" for k, v in results["pairs_sources"].items()) or "- none (the corpus has no pairs)"
    final = results["final"]
    return f"""Zero-shot minimal pairs: a sentence's score is the sum of log P(token | `</s>`, tokens before),
scored through the exported folders in float32. acc = strictly higher score for the good
sentence (ties counted apart, not as correct), macro = mean over phenomena, norm = scores
divided by the number of tokens.

{_checkpoint_table(results)}

val loss: nats/token on the clean validation split (first {_val_tokens(results)} tokens), float32.
Final model (training's own measurement): validation loss {_fmt(final['val_loss'])} nats/token, {_fmt(final['val_bpb'])} bits/byte.

Pairs:
{sources}

Full numbers: `results.json`."""


def _checkpoint_table(results: dict) -> str:
    """A markdown table: one row per checkpoint, val loss and each pair source's accuracies."""
    labels = [label for label in ("corpus_pairs", "pairs") if label in results["pairs_sources"]]
    head = "| revision | step | words seen | tokens | val loss |" + "".join(
        f" {label} acc % | macro % | norm % | ties |" for label in labels)
    sep = "|---|---:|---:|---:|---:|" + "---:|---:|---:|---:|" * len(labels)
    lines = [head, sep]
    for row in results["checkpoints"]:
        cells = [f"`{row['name']}`", str(row["step"]), f"{row['words']:,.0f}", f"{row['tokens']:,}",
                 _fmt(row.get("val_loss"))]
        for label in labels:
            s = row.get(label) or {}
            cells += [_pct(s.get("accuracy")), _pct(s.get("macro_accuracy")), _pct(s.get("accuracy_norm")),
                      str(s.get("n_ties", "n/a"))]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _fmt(x) -> str:
    return "n/a" if x is None else f"{x:.4f}"


def _val_tokens(results: dict) -> str:
    return f"{results.get('val_eval_tokens') or 0:,}"
