"""The main job with cooldown branching against without, side by side on this machine.

    python bench/branching.py [--out DIR] [extra overrides ...]

Runs `python experiments/run.py grid=token_budget` twice into fresh directories (the corpus
cache is shared, so prepare it first or both pay alike), with grid.branching=true (the preset)
and =false, and prints each wall time, their ratio (goal: at most 0.7x) and the fitted
compute-optimal exponent a of approaches 1 and 3 with their 95% intervals (goal: overlapping).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(out: Path, extra: list[str]) -> tuple[float, dict]:
    started = time.perf_counter()
    subprocess.run([sys.executable, str(ROOT / "experiments" / "run.py"), "grid=token_budget", f"out_dir={out}",
                    "train.progress=none", *extra], check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - started
    fits = json.loads((out / "token_budget" / "report" / "fits.json").read_text())
    return seconds, fits


def exponents(fits: dict) -> dict[str, str]:
    level = fits["levels"][0]
    out = {}
    for approach in ("approach1", "approach3"):
        estimate = (level.get(approach) or {}).get("estimates", {}).get("params_exponent")
        if estimate:
            low, high = estimate["ci"]
            out[approach] = f"{estimate['value']:.3f} [{low:.3f}, {high:.3f}]"
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None)
    args, extra = parser.parse_known_args()
    root = args.out or Path(tempfile.mkdtemp(prefix="bench-branching-"))
    results = {}
    for name, flag in (("branching", "grid.branching=true"), ("from scratch", "grid.branching=false")):
        seconds, fits = run(root / name.replace(" ", "_"), [flag, *extra])
        results[name] = seconds
        print(f"{name:>13}: {seconds:6.1f} s  a: {exponents(fits)}", flush=True)
    print(f"ratio: {results['branching'] / results['from scratch']:.2f}x wall time (goal <= 0.7x)")


if __name__ == "__main__":
    main()
