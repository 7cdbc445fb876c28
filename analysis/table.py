"""What the fits read: a table of runs (CSV) as typed arrays with the runs a fit must not use set
aside, each run's loss curve from its run directory, and the exception a fit raises on too little.
"""
from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from common.errors import ConfigError

# The 6 of C = 6 N D, the one compute every approach and every published law is stated in
# (Chinchilla's count; the lab's recorded training FLOPs add attention, 10-20% at our sizes and
# varying with size, so fitting against them would put the approaches on different axes).
FLOPS_PER_PARAM_TOKEN = 6.0

# The grid runner writes final_val_loss; hand-made tables may just call it loss.
LOSS_COLUMNS = ("final_val_loss", "loss")
PARAMS_COLUMNS = ("params", "non_embedding_params")
# The isoflop grid's nominal compute budget C, as lab/sweep/results.py names it in results.csv.
BUDGET_COLUMN = "compute_budget"
PAIRS_COLUMN = "pairs_acc"
LEGACY_PAIRS_COLUMN = "blimp_acc"
# Accuracy on the synthetic world's facts (one hop, two hops); absent from tables written before.
FACT_COLUMNS = ("fact_acc", "fact_acc_2hop")
# The numeric level of any quality axis; where a row has none, the synthetic dial `quality` is read.
QUALITY_VALUE_COLUMN = "quality_value"
QUALITY_LABEL_COLUMN = "quality_label"
DONE = "done"
# Columns that are a run's outcome or bookkeeping, not where it sits in the grid. Every other
# column (corpus, lr, batch_size, ...) must agree for two runs to be seeds of one cell: a column
# missing here can only split seeds apart (fitted as separate runs, as before grid.seeds), never
# merge two settings, e.g. the learning rates of an lr sweep, into one mean.
SETTING_EXCLUDES = frozenset({"run_id", "seed", "status", "reason", "code_version", "wall_s", "flops",
                              *LOSS_COLUMNS, "final_train_loss", "final_val_bpb", "final_val_own_loss",
                              PAIRS_COLUMN, LEGACY_PAIRS_COLUMN, *FACT_COLUMNS})


class InsufficientData(Exception):
    """Raised by a fit whose data are too few or of the wrong shape; callers skip it with the reason."""


@dataclass(frozen=True)
class RunTable:
    """Usable runs as parallel arrays; NaN marks a value the table does not have."""

    run_ids: tuple[str, ...]
    params: np.ndarray
    tokens: np.ndarray
    # Training FLOPs as recorded (the true cost, attention included), else 6 N D; shown, never fitted.
    flops: np.ndarray
    loss: np.ndarray
    # Fraction of textbook-grade data (1 = textbook, 0 = web); NaN when not recorded.
    quality: np.ndarray
    # Passes over the unique tokens; 1 when not recorded.
    epochs: np.ndarray
    # The grid's nominal compute budget C of each run (column BUDGET_COLUMN); NaN where not recorded.
    compute_budget: np.ndarray
    # Accuracy on the run's own synthetic minimal pairs (not the BLiMP benchmark); NaN when unscored.
    pairs_acc: np.ndarray
    # Accuracy on the world's facts, one hop and two hops (FACT_COLUMNS); NaN when not recorded.
    fact_acc: np.ndarray
    fact_acc_2hop: np.ndarray
    # The run's training seed (init and data order); NaN when not recorded.
    seed: np.ndarray
    # Every other recorded coordinate of the run (corpus, learning rate, shape, ...) as one text:
    # runs that agree on it and on N and D are seeds of one cell (see SETTING_EXCLUDES).
    setting: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.run_ids)

    def subset(self, rows: np.ndarray) -> RunTable:
        rows = np.asarray(rows)
        if rows.dtype == bool:
            rows = np.flatnonzero(rows)
        return RunTable(
            run_ids=tuple(self.run_ids[i] for i in rows), setting=tuple(self.setting[i] for i in rows),
            **{name: getattr(self, name)[rows] for name in _ARRAY_FIELDS},
        )

    def quality_levels(self) -> list[float]:
        known = self.quality[~np.isnan(self.quality)]
        return sorted(float(q) for q in np.unique(known))

    @property
    def compute(self) -> np.ndarray:
        """C = 6 N D of every run: the compute axis of all three approaches."""
        return FLOPS_PER_PARAM_TOKEN * self.params * self.tokens

    @property
    def past_one_epoch(self) -> np.ndarray:
        """Runs that saw some training token more than once."""
        return self.epochs > 1.0

    @property
    def has_repeats(self) -> bool:
        return bool(np.any(self.past_one_epoch))

    def cell_ids(self) -> np.ndarray:
        """The grid cell of every run, numbered in order of first appearance.

        Runs that agree on every recorded coordinate but the seed (N, D, quality, epochs, nominal
        compute budget, and the rest of the setting: corpus, learning rate, ...) are replicates of
        one cell, as a grid with grid.seeds trains them: the same point of every fit, measured again
        with other noise. Two such rows are replicates even in a table without a seed column.
        """
        keys = zip(self.params, self.tokens, self.quality, self.epochs, self.compute_budget, self.setting)
        numbering: dict[tuple, int] = {}
        # NaN != NaN would split a cell whose quality or budget is not recorded: key it as None.
        return np.array([numbering.setdefault(tuple(None if _is_nan(v) else v for v in key), len(numbering))
                         for key in keys], dtype=int)

    @property
    def has_replicates(self) -> bool:
        """Some cell holds more than one run (seed replicates)."""
        return len(self) > 0 and int(self.cell_ids().max()) + 1 < len(self)

    def cell_means(self) -> RunTable:
        """One row per cell, in order of first appearance: its first run's id and coordinates, and
        the mean over its seeds of the loss (and of FLOPs and each accuracy); the table
        itself when every cell has one run.

        Every fit takes these points: a cell enters once at its seeds' mean, so replicates can
        neither count as independent runs nor let the best of several seeds pass for the cell. A
        cell with fewer finished seeds counts once too (unweighted), its mean only noisier.
        """
        cells = self.cell_ids()
        if len(self) == 0 or int(cells.max()) + 1 == len(self):
            return self
        seeds = np.bincount(cells)
        first_runs = np.unique(cells, return_index=True)[1]
        accuracies = {}
        for name in _ACCURACY_FIELDS:
            values = getattr(self, name)
            scored = ~np.isnan(values)
            with np.errstate(invalid="ignore"):  # a cell with no scored run: NaN, as for one run
                accuracies[name] = (np.bincount(cells, np.where(scored, values, 0.0))
                                    / np.bincount(cells, scored.astype(float)))
        return replace(self.subset(first_runs), loss=np.bincount(cells, self.loss) / seeds,
                       flops=np.bincount(cells, self.flops) / seeds, **accuracies,
                       seed=np.where(seeds == 1, self.seed[first_runs], np.nan))


_ACCURACY_FIELDS = ("pairs_acc", "fact_acc", "fact_acc_2hop")
_ARRAY_FIELDS = ("params", "tokens", "flops", "loss", "quality", "epochs", "compute_budget", *_ACCURACY_FIELDS,
                 "seed")


def concat_runs(tables: list[RunTable]) -> RunTable:
    """The runs of several tables as one (e.g. to pick one reference compute for all of them)."""
    return RunTable(run_ids=tuple(r for t in tables for r in t.run_ids),
                    setting=tuple(c for t in tables for c in t.setting),
                    **{name: np.concatenate([getattr(t, name) for t in tables]) for name in _ARRAY_FIELDS})


@dataclass(frozen=True)
class ExcludedRun:
    run_id: str
    reason: str


@dataclass(frozen=True)
class LoadedTable:
    source: str
    runs: RunTable
    excluded: tuple[ExcludedRun, ...] = field(default_factory=tuple)
    loss_column: str = "final_val_loss"
    params_column: str = "params"

    @property
    def total_rows(self) -> int:
        return len(self.runs) + len(self.excluded)

    def exclusion_note(self) -> str | None:
        if not self.excluded:
            return None
        listed = ", ".join(f"{run.run_id} ({run.reason})" for run in self.excluded)
        return (f"excluded {len(self.excluded)} of {self.total_rows} runs from the fits: {listed}")


def read_table(path: str | Path, params_column: str = "params") -> LoadedTable:
    """Read a CSV of runs. Raises ConfigError (one-line message) for a missing file or column."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError("table", f"no such file: {path}")
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        header = reader.fieldnames or []
        rows = list(reader)
    return table_from_rows(rows, header, source=str(path), params_column=params_column)


def _quality_levels(rows: list[dict[str, str]], header: list[str], column) -> np.ndarray:
    """Each row's quality level as a number: `quality_value` where the axis has one (the synthetic
    dial, a score threshold, a mixture's share); the synthetic dial `quality` for tables written
    before that column. A level named by `quality_label` alone (grid.sources: no number) gets its
    rank, the first label in the table 1 down to the last 0 (a grid writes its rows in the order
    grid.sources lists them), so sources are told apart instead of all reading as quality 1 (a
    real corpus's dial). A table sorted or merged by hand reorders them: list the highest first."""
    quality = column(QUALITY_VALUE_COLUMN)
    labels = [(row.get(QUALITY_LABEL_COLUMN) or "").strip() for row in rows]
    ranked = list(dict.fromkeys(label for label, value in zip(labels, quality) if label and np.isnan(value)))
    if len(ranked) > 1:
        rank = {label: 1.0 - i / (len(ranked) - 1) for i, label in enumerate(ranked)}
        quality = np.array([rank.get(label, value) for label, value in zip(labels, quality)])
    return np.where(np.isnan(quality), column("quality"), quality)


def table_from_rows(rows: list[dict[str, str]], header: list[str], *, source: str,
                    params_column: str = "params") -> LoadedTable:
    """Only rows with status "done" (or no status column) and a finite positive loss, size and token
    count enter the fits; every other row is kept as an ``ExcludedRun`` with its reason so that the
    entry points can say what was left out."""
    if params_column not in PARAMS_COLUMNS:
        raise ConfigError("params_column", f"must be one of {', '.join(PARAMS_COLUMNS)}")
    loss_column = next((name for name in LOSS_COLUMNS if name in header), None)
    missing = [name for name in (params_column, "tokens") if name not in header]
    if loss_column is None:
        missing.append(" or ".join(LOSS_COLUMNS))
    if missing:
        raise ConfigError("table", f"{source} lacks column(s) {', '.join(missing)} "
                                   f"(have: {', '.join(header) or 'none'})")
    if not rows:
        raise ConfigError("table", f"{source} has no rows")

    def column(name: str, default: float = math.nan) -> np.ndarray:
        if name not in header:
            return np.full(len(rows), default)
        return np.array([_parse_number(row.get(name), name, source) for row in rows])

    run_ids = tuple(row.get("run_id") or f"row{i + 1}" for i, row in enumerate(rows))
    statuses = [(row.get("status") or DONE).strip().lower() for row in rows]
    params = column(params_column)
    tokens = column("tokens")
    loss = column(loss_column)
    flops = column("flops")
    flops = np.where(np.isfinite(flops) & (flops > 0), flops, FLOPS_PER_PARAM_TOKEN * params * tokens)
    epochs = column("epochs", 1.0)
    epochs = np.where(np.isfinite(epochs) & (epochs > 0), epochs, 1.0)
    quality = _quality_levels(rows, header, column)
    everything = RunTable(run_ids=run_ids, params=params, tokens=tokens, flops=flops, loss=loss,
                          quality=quality, epochs=epochs,
                          compute_budget=column(BUDGET_COLUMN), pairs_acc=column(_pairs_column(header)),
                          fact_acc=column(FACT_COLUMNS[0]), fact_acc_2hop=column(FACT_COLUMNS[1]),
                          seed=column("seed"), setting=tuple(_setting(row, header) for row in rows))

    keep, excluded = [], []
    for i, (run_id, status) in enumerate(zip(run_ids, statuses)):
        reason = _exclusion_reason(status, params[i], tokens[i], loss[i], loss_column, params_column)
        if reason is None:
            keep.append(i)
        else:
            excluded.append(ExcludedRun(run_id, reason))
    return LoadedTable(source=source, runs=everything.subset(np.array(keep, dtype=int)),
                       excluded=tuple(excluded), loss_column=loss_column, params_column=params_column)


def _is_nan(value) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _setting(row: dict[str, str], header: list[str]) -> str:
    """The row's coordinates other than the seed, as one text (numbers by value: 1e6 = 1000000)."""
    parts = []
    for name in header:
        if name in SETTING_EXCLUDES:
            continue
        text = (row.get(name) or "").strip()
        try:
            text = repr(float(text))
        except ValueError:
            pass
        parts.append(f"{name}={text}")
    return ";".join(parts)


def _pairs_column(header: list[str]) -> str:
    # results.csv written before the rename called it blimp_acc; a grid rebuilds its table from the
    # run directories, but a copied table may still carry the old name.
    return PAIRS_COLUMN if PAIRS_COLUMN in header or LEGACY_PAIRS_COLUMN not in header else LEGACY_PAIRS_COLUMN


def _exclusion_reason(status: str, params: float, tokens: float, loss: float,
                      loss_column: str, params_column: str) -> str | None:
    if status != DONE:
        return status
    if not (math.isfinite(loss) and loss > 0):
        return f"no finite positive {loss_column}"
    if not (math.isfinite(params) and params > 0):
        return f"no positive {params_column}"
    if not (math.isfinite(tokens) and tokens > 0):
        return "no positive tokens"
    return None


def _parse_number(text: str | None, column: str, source: str) -> float:
    if text is None or text.strip() == "" or text.strip().lower() in ("nan", "none", "null"):
        return math.nan
    try:
        return float(text)
    except ValueError:
        raise ConfigError("table", f"{source}: column {column} has a non-number {text!r}") from None


@dataclass(frozen=True)
class RunCurve:
    """One run's loss curve from ``runs/<run_id>/metrics.jsonl``."""

    run_id: str
    params: float
    # 6 N: compute per token on the same C = 6 N D axis as the fits.
    compute_per_token: float
    # Training loss at each logged step, against tokens seen.
    tokens: np.ndarray
    loss: np.ndarray
    # Validation loss on eval steps, ending with the run's final one (from the results table).
    val_tokens: np.ndarray
    val_loss: np.ndarray


def read_curves(grid_dir: Path, runs: RunTable) -> tuple[list[RunCurve], list[str]]:
    """The curve of every run in the table that has one; a note for each that does not."""
    curves, missing = [], []
    for i, run_id in enumerate(runs.run_ids):
        path = Path(grid_dir) / "runs" / run_id / "metrics.jsonl"
        curve = _read_curve(path, runs, i) if path.is_file() else None
        if curve is None:
            missing.append(run_id)
        else:
            curves.append(curve)
    shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
    notes = [f"no loss curve for {len(missing)} of {len(runs)} runs: {shown}"] if missing else []
    return curves, notes


def _read_curve(path: Path, runs: RunTable, i: int) -> RunCurve | None:
    records = _json_lines(path)
    logged = [r for r in records if _finite(r.get("tokens")) and _finite(r.get("loss"))]
    if not logged:
        return None
    evaluated = [r for r in records if _finite(r.get("tokens")) and _finite(r.get("val_loss"))]
    val_tokens = [float(r["tokens"]) for r in evaluated]
    val_loss = [float(r["val_loss"]) for r in evaluated]
    # metrics.jsonl has periodic evaluations only; the final one lives in final.json and
    # the results table, and is the point every fit uses, so the curve ends on it.
    final_tokens, final_loss = float(runs.tokens[i]), float(runs.loss[i])
    if np.isfinite(final_loss) and (not val_tokens or val_tokens[-1] < final_tokens):
        val_tokens.append(final_tokens)
        val_loss.append(final_loss)
    return RunCurve(run_id=runs.run_ids[i], params=float(runs.params[i]),
                    compute_per_token=FLOPS_PER_PARAM_TOKEN * float(runs.params[i]),
                    tokens=np.array([r["tokens"] for r in logged], dtype=float),
                    loss=np.array([r["loss"] for r in logged], dtype=float),
                    val_tokens=np.array(val_tokens), val_loss=np.array(val_loss))


def _json_lines(path: Path) -> list[dict]:
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut short by a crash mid-write carries nothing usable
    return records


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and np.isfinite(value)
