"""Train one grid run from its directory: ``python -m lab.sweep.worker <run_dir>``.

The run directory's spec.json holds the resolved RunConfig, so a worker needs nothing else:
the same call works in a local subprocess, under torchrun (data parallel), and in a SLURM job
(where a requeue simply calls it again and it resumes from the run's own checkpoint).
"""
from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path

from common.errors import EXIT_RUN_LOCKED, RunLocked
from corpora.cache import read_manifest
from lab.config import RunConfig, run_config_from_dict
from lab.distributed import process_group
from lab.runs import write_json

SPEC = "spec.json"


def write_spec(run_dir: Path, cfg: RunConfig, axes: dict, eval_pairs: bool = True, grid: dict | None = None) -> None:
    """eval_pairs: score the corpus' minimal pairs once the run is done (grid.eval_pairs). grid:
    the grid's name and scale, which a live dashboard groups the run by (lab/loggers.py)."""
    import dataclasses

    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(run_dir / SPEC, {"config": dataclasses.asdict(cfg), "axes": axes, "eval_pairs": eval_pairs,
                                **({"grid": grid} if grid else {})})


def read_spec(run_dir: Path) -> tuple[RunConfig, dict, bool]:
    """(config, grid axes, whether to score minimal pairs) as write_spec stored them."""
    data = json.loads((run_dir / SPEC).read_text())
    return run_config_from_dict(data["config"]), data.get("axes", {}), data.get("eval_pairs", True)


def run_from_dir(run_dir: str | Path) -> dict:
    """Train (or resume, or skip) the run; a crash is recorded as status "failed" with its reason."""
    from lab.single_run import run_single

    run_dir = Path(run_dir)
    cfg, _, eval_pairs = read_spec(run_dir)
    with process_group(cfg.train.backend) as (rank, world, wrap):
        try:
            final = run_single(cfg, run_dir, rank=rank, world=world, ddp_wrap=wrap)
            if eval_pairs and rank == 0 and final.get("status") == "done" and unscored(final):
                final = evaluate_pairs(run_dir, final)
            return final
        except RunLocked:  # another invocation is training it: leave its directory alone
            raise
        except Exception as e:  # recorded, so the grid can continue and list it
            if rank == 0:
                final = {"status": "failed", "reason": f"{e.__class__.__name__}: {e}".splitlines()[0],
                         "traceback": traceback.format_exc(), "run_id": run_dir.name}
                write_json(run_dir / "final.json", final)
            raise


def evaluate_pairs(run_dir: Path, final: dict) -> dict:
    """Minimal-pair accuracy of a finished run. A failure here does not undo the training: the
    run stays "done", the error is recorded as final["pairs_error"] and printed."""
    from lab.sweep.pairs import evaluate_run_pairs

    try:
        return evaluate_run_pairs(run_dir, final)
    except Exception as e:
        reason = f"{e.__class__.__name__}: {e}".splitlines()[0]
        print(f"{run_dir}: minimal-pair evaluation failed: {reason}", file=sys.stderr, flush=True)
        final = {**final, "pairs_error": reason}
        write_json(run_dir / "final.json", final)
        return final


def unscored(final: dict) -> bool:
    """Whether a finished run lacks a score its corpus offers: minimal pairs ("pairs") or
    knowledge probes ("fact_acc"). A corpus whose manifest lists neither (a real corpus) is not
    scored, which would verify the corpus and the checkpoint for nothing on every rerun. Read
    unverified: a damaged or missing manifest is left to the scoring, which reports it."""
    manifest = read_manifest(final.get("corpus_dir"))
    if manifest is None:
        return "pairs" not in final
    return ((manifest.get("pairs") is not None and "pairs" not in final)
            or (manifest.get("facts") is not None and "fact_acc" not in final))


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m lab.sweep.worker <run_dir>", file=sys.stderr)
        return 2
    try:
        final = run_from_dir(argv[0])
    except RunLocked as e:
        print(f"skipped: {e}", file=sys.stderr)
        return EXIT_RUN_LOCKED
    except Exception as e:
        print(f"{argv[0]}: failed: {e}", file=sys.stderr)
        return 1
    return 0 if final.get("status") == "done" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
