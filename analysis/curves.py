"""Loss curves read back from run directories (``runs/<run_id>/metrics.jsonl``)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from analysis.table import RunTable


@dataclass(frozen=True)
class RunCurve:
    run_id: str
    params: float
    flops_per_token: float
    # Training loss at each logged step, against tokens seen.
    tokens: np.ndarray
    loss: np.ndarray
    # Validation loss on eval steps, ending with the run's final one (from the results table).
    val_tokens: np.ndarray
    val_loss: np.ndarray


def _records(path: Path) -> list[dict]:
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut short by a crash mid-write carries nothing usable
    return records


def read_curves(grid_dir: Path, runs: RunTable) -> tuple[list[RunCurve], list[str]]:
    """The curve of every run in the table that has one; a note for each that does not."""
    curves, missing = [], []
    for i, run_id in enumerate(runs.run_ids):
        path = Path(grid_dir) / "runs" / run_id / "metrics.jsonl"
        if not path.is_file():
            missing.append(run_id)
            continue
        records = _records(path)
        logged = [r for r in records if _finite(r.get("tokens")) and _finite(r.get("loss"))]
        evaluated = [r for r in records if _finite(r.get("tokens")) and _finite(r.get("val_loss"))]
        if not logged:
            missing.append(run_id)
            continue
        val_tokens = [float(r["tokens"]) for r in evaluated]
        val_loss = [float(r["val_loss"]) for r in evaluated]
        # metrics.jsonl has periodic evaluations only; the final one lives in final.json and
        # the results table, and is the point every fit uses, so the curve ends on it.
        final_tokens, final_loss = float(runs.tokens[i]), float(runs.loss[i])
        if np.isfinite(final_loss) and (not val_tokens or val_tokens[-1] < final_tokens):
            val_tokens.append(final_tokens)
            val_loss.append(final_loss)
        curves.append(RunCurve(
            run_id=run_id, params=float(runs.params[i]),
            flops_per_token=float(runs.flops[i] / runs.tokens[i]),
            tokens=np.array([r["tokens"] for r in logged], dtype=float),
            loss=np.array([r["loss"] for r in logged], dtype=float),
            val_tokens=np.array(val_tokens), val_loss=np.array(val_loss)))
    shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
    notes = [f"no loss curve for {len(missing)} of {len(runs)} runs: {shown}"] if missing else []
    return curves, notes


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and np.isfinite(value)
