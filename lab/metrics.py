"""Append-only metrics.jsonl, and progress shown as a bar on a terminal or plain lines."""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from common.files import atomic_write_text


class MetricsLog:
    """One JSON object per line. On resume, rows past the checkpoint are dropped so the file
    reads as if the run had never been interrupted. Each row written also goes to the mirrors
    (live dashboards, lab/loggers.py), after the file has it."""

    def __init__(self, path: Path, resume_step: int | None):
        self.path = path
        self.mirrors: list = []
        if resume_step is None:
            path.unlink(missing_ok=True)
        elif path.exists():
            kept = [line for line in path.read_text().splitlines()
                    if line.strip() and _parse(line) is not None and _parse(line)["step"] <= resume_step]
            atomic_write_text(path, "".join(line + "\n" for line in kept))

    def write(self, row: dict) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")
            f.flush()
        for mirror in self.mirrors:
            mirror.write(row)


def _parse(line: str) -> dict | None:
    try:
        return json.loads(line)
    except ValueError:  # a line torn by a kill mid-write
        return None


def read_metrics(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [row for row in map(_parse, path.read_text().splitlines()) if row is not None]


class Progress:
    """A tqdm bar (tokens/s, ETA) on a terminal; a plain line per log step otherwise."""

    def __init__(self, total_steps: int, start_step: int, tokens_per_step: int, mode: str, label: str):
        if mode == "auto":
            mode = "bar" if sys.stderr.isatty() and not os.environ.get("CI") else "lines"
        self.mode, self.label = mode, label
        self.total, self.tokens_per_step = total_steps, tokens_per_step
        self.bar = None
        self.start_time, self.start_step = time.perf_counter(), start_step
        if mode == "bar":
            from tqdm import tqdm

            self.bar = tqdm(total=total_steps, initial=start_step, desc=label, unit="step",
                            dynamic_ncols=True, leave=True)

    def update(self, step: int, row: dict) -> None:
        elapsed = time.perf_counter() - self.start_time
        rate = (step - self.start_step) / elapsed if elapsed > 0 else 0.0
        eta = (self.total - step) / rate if rate > 0 else float("nan")
        if self.bar is not None:
            self.bar.n = step
            self.bar.set_postfix(loss=f"{row['loss']:.3f}", tok_s=f"{row['tokens_per_s']:.0f}", refresh=False)
            self.bar.refresh()
        elif self.mode == "lines":
            print(f"{self.label} step {step}/{self.total} loss {row['loss']:.4f} "
                  f"lr {row['lr']:.2e} {row['tokens_per_s']:.0f} tok/s mfu {row['mfu']:.1%} "
                  f"eta {eta:.0f}s", flush=True)

    def message(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text)
        elif self.mode != "none":
            print(text, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
