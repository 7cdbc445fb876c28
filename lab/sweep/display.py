"""Progress over a grid's runs: done / running / left, aggregate tokens/s and ETA."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from corpora.cache import read_manifest
from lab.metrics import read_metrics
from lab.sweep.results import missing_result


def _last_row(run_dir: Path) -> dict | None:
    rows = read_metrics(run_dir / "metrics.jsonl")
    return rows[-1] if rows else None


class GridDisplay:
    def __init__(self, run_dirs: list[Path], already_done: int, mode: str = "auto", every_s: float = 10.0):
        self.total_runs = len(run_dirs) + already_done
        self.done = already_done
        self.budget = {d: _budget(d) for d in run_dirs}
        self.finished_dirs: set[Path] = set()
        self.start = time.perf_counter()
        self.tty = sys.stderr.isatty() if mode == "auto" else mode == "bar"
        self.every_s, self.last_print = every_s, 0.0
        self.bar = None
        if self.tty:
            from tqdm import tqdm

            self.bar = tqdm(total=self.total_runs, initial=already_done, unit="run", desc="grid", dynamic_ncols=True)

    def started(self, run_dir: Path) -> None:
        pass

    def finished(self, run_dir: Path) -> None:
        if run_dir in self.finished_dirs:
            return
        self.finished_dirs.add(run_dir)
        self.done += 1
        status = _status(run_dir)
        line = f"[{self.done}/{self.total_runs}] {run_dir.name}: {status}"
        if self.bar is not None:
            self.bar.update(1)
            self.bar.write(line)
        else:
            print(line, flush=True)

    def refresh(self, running: list[Path]) -> None:
        rows = {d: _last_row(d) for d in running}
        rate = sum(r["tokens_per_s"] for r in rows.values() if r)
        left_tokens = sum(self.budget[d] for d in self.budget if d not in self.finished_dirs and d not in running)
        for d in running:  # a words budget is known in tokens once the run has recorded its corpus
            self.budget[d] = _budget(d)
        left_tokens += sum(self.budget[d] - (rows[d]["tokens"] if rows[d] else 0) for d in running)
        eta = left_tokens / rate if rate > 0 else float("nan")
        left = self.total_runs - self.done - len(running)
        text = f"done {self.done} | running {len(running)} | left {left} | {rate:,.0f} tok/s | eta {_fmt(eta)}"
        if self.bar is not None:
            self.bar.set_postfix_str(text, refresh=True)
        elif time.perf_counter() - self.last_print >= self.every_s:
            print(text, flush=True)
            self.last_print = time.perf_counter()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _budget(run_dir: Path) -> float:
    """The run's budget in tokens (a words budget times its corpus's tokens per word, once the
    run's config.json names the corpus; the word count until then)."""
    try:
        train = json.loads((run_dir / "spec.json").read_text())["config"]["train"]
    except (OSError, ValueError, KeyError):
        return 0.0
    if train.get("words"):
        try:
            corpus_dir = json.loads((run_dir / "config.json").read_text())["corpus_dir"]
            split = read_manifest(corpus_dir)["splits"]["train"]
            return float(train["words"]) * split["tokens"] / max(1, split["words"])
        except (OSError, ValueError, KeyError, TypeError):
            return float(train["words"])
    return float(train.get("tokens") or 0.0)


def _status(run_dir: Path) -> str:
    try:
        final = json.loads((run_dir / "final.json").read_text())
    except (OSError, ValueError):
        return "{}: {}".format(*missing_result(run_dir))
    if final.get("status") == "done":
        return f"done, val loss {final.get('final_val_loss', float('nan')):.4f} in {final.get('wall_s', 0):.0f}s"
    return f"{final.get('status')}: {final.get('reason')}"


def _fmt(seconds: float) -> str:
    if seconds != seconds:
        return "?"
    m, s = divmod(int(seconds), 60)
    return f"{m}m{s:02d}s"
