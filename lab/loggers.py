"""Live dashboards (``logger=[tensorboard,wandb]``): each mirrors metrics.jsonl, the config and
final.json's numbers while a run trains, on rank 0 only.

metrics.jsonl stays the source of truth. A dashboard gets a row after the file has it, and a
dashboard that fails warns once and is dropped: it never stops or changes the training. On
resume a dashboard is replayed from metrics.jsonl (already cut back to the checkpoint's step),
so it shows the rows of an uninterrupted run, also for a branch that adopted its trunk's rows.
"""
from __future__ import annotations

import dataclasses
import json
import os
import secrets
import sys
from pathlib import Path

from common.files import atomic_write_text
from lab.metrics import read_metrics

TENSORBOARD_DIR = "tensorboard"  # <run dir>/tensorboard/: the event files
WANDB_DIR = "wandb"  # <run dir>/wandb/: W&B's own files, and run_id (the run a resume continues)
SPEC_FILE = "spec.json"  # a grid run's plan (lab/sweep/worker.py): the grid it belongs to, its axes
# The numbers of final.json that the TensorBoard HParams tab shows against the config.
HPARAM_METRICS = ("final_val_loss", "final_val_bpb", "final_train_loss")


def open_dashboards(cfg, run_dir: Path, metrics, *, fresh: bool, label: str = "") -> Dashboards:
    """cfg.logger's dashboards, mirroring the MetricsLog `metrics` from now on; none without a
    log (ranks other than 0) or without cfg.logger."""
    if metrics is None or not cfg.logger:
        return Dashboards([], label)
    board = Dashboards.open(cfg, run_dir, fresh=fresh, label=label)
    metrics.mirrors.append(board)
    return board


class Dashboards:
    """The open dashboards of one run. A context manager: closed however the run ends."""

    def __init__(self, sinks: list, label: str = ""):
        self.sinks, self.label = sinks, label

    @classmethod
    def open(cls, cfg, run_dir: Path, *, fresh: bool, label: str = "") -> Dashboards:
        """Open cfg.logger's dashboards for run_dir and replay its metrics.jsonl. fresh: the run
        starts at step 0 (a dashboard's earlier files are a killed start's, and are dropped)."""
        grid = _grid_of(run_dir)
        rows = [] if fresh else read_metrics(run_dir / "metrics.jsonl")
        board = cls([], label)
        for name in cfg.logger:
            try:
                sink = _SINKS[name](cfg, run_dir, grid, fresh)
            except Exception as e:
                board._warn(name, "could not start", e)
                continue
            board.sinks.append(sink)
            board._each("replay", lambda s: [s.row(row) for row in rows], only=sink)
        return board

    def write(self, row: dict) -> None:
        self._each("row", lambda s: s.row(row))

    def final(self, final: dict) -> None:
        self._each("final numbers", lambda s: s.final(final))

    def close(self, ok: bool = True) -> None:
        self._each("close", lambda s: s.close(ok))
        self.sinks = []

    def __enter__(self) -> Dashboards:
        return self

    def __exit__(self, kind, value, tb) -> None:
        self.close(ok=kind is None)

    def _each(self, what: str, call, only=None) -> None:
        for sink in list(self.sinks):
            if only is not None and sink is not only:
                continue
            try:
                call(sink)
            except Exception as e:
                self._warn(sink.name, f"failed ({what})", e)
                self.sinks.remove(sink)
                try:
                    sink.close(False)
                except Exception:
                    pass  # already reported; the run goes on without it

    def _warn(self, name: str, what: str, e: Exception) -> None:
        reason = f"{e.__class__.__name__}: {e}".splitlines()[0]
        print(f"{self.label}: warning: the {name} dashboard {what}: {reason}; training goes on without it "
              "(metrics.jsonl has every row)", file=sys.stderr, flush=True)


def _grid_of(run_dir: Path) -> dict:
    """{"name", "scale", "axes"} of a grid run (its spec.json), {} for a single run."""
    try:
        spec = json.loads((run_dir / SPEC_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return {**(spec.get("grid") or {}), "axes": spec.get("axes", {})}


def _numbers(final: dict) -> dict:
    return {k: v for k, v in final.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


class TensorBoardSink:
    """Event files under <run dir>/tensorboard/: a scalar per metrics.jsonl key at its step, the
    config as text and HParams, final.json's numbers as final/<key> at the last step."""

    name = "tensorboard"

    def __init__(self, cfg, run_dir: Path, grid: dict, fresh: bool):
        import shutil

        from torch.utils.tensorboard import SummaryWriter

        log_dir = run_dir / TENSORBOARD_DIR
        if fresh:
            shutil.rmtree(log_dir, ignore_errors=True)
        # A resume replays every row: purge_step=0 tells TensorBoard's readers to drop what the
        # earlier files hold (a killed run's rows past the checkpoint, rows logged twice).
        self.writer = SummaryWriter(str(log_dir), purge_step=None if fresh else 0)
        self.steps = 0
        config = {"run_id": run_dir.name, **({"grid": grid} if grid else {}), "config": dataclasses.asdict(cfg)}
        text = json.dumps(config, indent=2, sort_keys=True, default=str)
        self.writer.add_text("config", "\n".join("    " + line for line in text.splitlines()), 0)
        self._hparams(config)

    def _hparams(self, config: dict) -> None:
        from torch.utils.tensorboard.summary import hparams

        flat = {k: v if isinstance(v, (bool, int, float, str)) else json.dumps(v, default=str)
                for k, v in _flatten(config).items()}
        for summary in hparams(flat, {f"final/{k}": 0.0 for k in HPARAM_METRICS}):
            self.writer.file_writer.add_summary(summary, 0)

    def row(self, row: dict) -> None:
        step = row["step"]
        for key, value in row.items():
            if key != "step" and isinstance(value, (int, float)):
                self.writer.add_scalar(key, value, step)
        self.steps = max(self.steps, step)
        self.writer.flush()  # a dashboard shows the row now, not in two minutes

    def final(self, final: dict) -> None:
        step = final.get("steps", self.steps)
        for key, value in _numbers(final).items():
            self.writer.add_scalar(f"final/{key}", value, step)
        text = json.dumps(final, indent=2, sort_keys=True, default=str)
        self.writer.add_text("final", "\n".join("    " + line for line in text.splitlines()), step)

    def close(self, ok: bool) -> None:
        self.writer.close()


class WandbSink:
    """A Weights & Biases run named by the run id, in the grid's group, its files under
    <run dir>/wandb/. WANDB_MODE, WANDB_PROJECT and WANDB_ENTITY are W&B's own settings (online
    by default; project "lab"). A resume continues the same W&B run."""

    name = "wandb"

    def __init__(self, cfg, run_dir: Path, grid: dict, fresh: bool):
        import wandb

        files = run_dir / WANDB_DIR
        files.mkdir(parents=True, exist_ok=True)
        id_file = files / "run_id"
        # A fresh start gets a new W&B run: the killed start's steps would hide this one's.
        run_id = None if fresh or not id_file.exists() else id_file.read_text().strip()
        run_id = run_id or secrets.token_hex(6)  # W&B's ids: lowercase letters and digits
        atomic_write_text(id_file, run_id + "\n")
        tags = [f"scale={grid['scale']}"] if grid.get("scale") else None
        self.run = wandb.init(
            dir=str(run_dir), project=os.environ.get("WANDB_PROJECT", "lab"), id=run_id, resume="allow",
            name=run_dir.name, group=grid.get("name"), job_type=grid.get("axes", {}).get("role") or "run",
            tags=tags, config={"run_id": run_dir.name, "axes": grid.get("axes", {}), **dataclasses.asdict(cfg)},
            allow_val_change=True,
            # The training's own output stays plain: W&B does not wrap stdout and stderr.
            settings=wandb.Settings(console="off"))

    def row(self, row: dict) -> None:
        # W&B keeps one value per step and drops steps below the run's current one (a resumed
        # online run already holds them).
        if row["step"] >= self.run.step:
            self.run.log({k: v for k, v in row.items() if k != "step"}, step=row["step"])

    def final(self, final: dict) -> None:
        self.run.summary.update({f"final/{k}": v for k, v in final.items()
                                 if v is None or isinstance(v, (bool, int, float, str))})

    def close(self, ok: bool) -> None:
        self.run.finish(exit_code=0 if ok else 1)


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in d.items():
        if isinstance(value, dict) and value:
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


_SINKS = {"tensorboard": TensorBoardSink, "wandb": WandbSink}
