"""results.csv: one row per planned run, rebuilt from the run directories (the source of truth)."""
from __future__ import annotations

import csv
import io
from pathlib import Path

from common.files import atomic_write_text
from lab.runs import is_locked, read_final

# Where submitit keeps a grid's job pickles and logs (unless launcher.folder moves them).
SUBMITIT_DIR = "submitit"
# In a run directory: the folder of its submitit job's logs, as submitted.
JOB_LOG_FILE = "job_log"

COLUMNS = ["run_id", "status", "reason", "params", "non_embedding_params", "tokens", "flops", "quality",
           "quality_label", "quality_value", "val_level",
           "corpus", "epochs", "final_train_loss", "final_val_loss", "final_val_bpb", "final_val_own_loss",
           "pairs_acc", "fact_acc", "fact_acc_2hop", "wall_s", "size", "budget_tokens", "compute_budget",
           "d_model", "n_layers", "n_heads",
           "n_kv_heads", "attention", "seq_len", "batch_size", "lr", "lr_from", "beta2", "seed", "backend",
           "precision", "code_version"]


def missing_result(run_dir: Path) -> tuple[str, str]:
    """(status, reason) of a run directory without final.json: being trained elsewhere, or
    not (yet) run, with where its log is."""
    if is_locked(run_dir):
        return "running", "being trained by another process"
    job, job_log = run_dir / "job_id", run_dir / JOB_LOG_FILE
    if job_log.exists():
        where = f"{job_log.read_text().strip()}/"
    elif job.exists():  # submitted before job_log was recorded: the default folder
        where = f"{run_dir.parent.parent / SUBMITIT_DIR / job.read_text().strip()}/"
    else:
        where = str(run_dir / "worker.log")
    return "pending", f"no result: see {where}"


def collect(planned: list, run_dirs: list[Path]) -> list[dict]:
    from lab.accounting import attention_kind

    rows = []
    for plan, run_dir in zip(planned, run_dirs):
        final = read_final(run_dir) or {}
        status, reason = (final.get("status"), final.get("reason") or "") if final else missing_result(run_dir)
        cfg = plan.cfg
        row = {
            "run_id": run_dir.name,
            "status": status,
            "reason": reason,
            "quality": cfg.corpus.quality,
            # data_quality: the level (label, and its number where it has one: quality, min_score,
            # the first part's share of a mix) and the level whose held-out split validates every run.
            "quality_label": plan.axes.get("quality_label", ""),
            "quality_value": "" if plan.axes.get("quality_value") is None else plan.axes["quality_value"],
            "val_level": plan.axes.get("val_level", ""),
            "corpus": cfg.corpus.name,
            "d_model": cfg.model.d_model,
            "n_layers": cfg.model.n_layers,
            "n_heads": cfg.model.n_heads,
            "n_kv_heads": cfg.model.n_kv_heads,
            "attention": attention_kind(cfg.model),  # mha / gqa<G>: constant along a grid's size axis
            "seq_len": cfg.train.seq_len,
            "batch_size": cfg.train.batch_size,
            "lr": cfg.train.lr,
            "lr_from": cfg.train.lr_from or "given",  # a measured rule, a published prior, or the config
            "beta2": cfg.train.beta2,
            "seed": cfg.seed,
            "backend": cfg.train.backend,  # torch or jax: the analysis reads both alike
            "size": plan.axes.get("size"),
            "budget_tokens": plan.axes.get("budget_tokens"),
            "compute_budget": plan.axes.get("compute_budget", ""),
        }
        for key in ("params", "non_embedding_params", "tokens", "flops", "epochs", "final_train_loss",
                    "final_val_loss", "final_val_bpb", "final_val_own_loss", "wall_s", "precision",
                    "code_version"):
            value = final.get(key)
            row[key] = "" if value is None else value
        # The worker's accuracy on the corpus's own synthetic minimal pairs (not the BLiMP benchmark).
        row["pairs_acc"] = "" if final.get("pairs") is None else final["pairs"]
        # Accuracy on the corpus's multiple-choice knowledge probes (lab.choices), all and two-hop.
        for key in ("fact_acc", "fact_acc_2hop"):
            row[key] = "" if final.get(key) is None else final[key]
        if not row["params"]:
            from lab.accounting import (
                non_embedding_params,
                total_params,
                training_flops,
            )

            row.update(params=total_params(cfg.model), non_embedding_params=non_embedding_params(cfg.model),
                       tokens=int(cfg.train.tokens), flops=training_flops(cfg.model, cfg.train.seq_len, cfg.train.tokens))
        rows.append(row)
    return rows


def write_csv(path: Path, rows: list[dict]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def summary_table(rows: list[dict]) -> str:
    header = f"{'run_id':<44} {'status':<9} {'params':>9} {'tokens':>9} {'val loss':>9} {'bpb':>7} {'pairs':>6} {'wall':>6}"
    lines = [header, "-" * len(header)]
    for r in rows:
        def num(key, fmt):
            return format(r[key], fmt) if r.get(key) not in ("", None) else "-"
        lines.append(f"{r['run_id']:<44} {r['status']:<9} {num('params', ',.0f'):>9} {num('tokens', '.2e'):>9} "
                     f"{num('final_val_loss', '.4f'):>9} {num('final_val_bpb', '.3f'):>7} {num('pairs_acc', '.3f'):>6} "
                     f"{num('wall_s', '.0f'):>6}")
    return "\n".join(lines)
