"""One trunk per model, a cooldown branch per budget (grid.branching).

Hägele et al. 2024 show a constant learning rate with a short cooldown matches a cosine run of
the same length. So the cells of a grid that differ only in their token budget share everything
up to their cooldown start: one constant-rate trunk trains that part once, keeps a checkpoint at
every cell's cooldown start, and each cell starts there (train.branch_from, train.branch_step)
and trains its cooldown alone. A cell stays the run it would be from scratch (same run id, same
numbers: tests/lab/test_branch.py), so branching changes the cost of a grid, never its results.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from common.errors import ConfigError
from lab.config import RunConfig
from lab.runs import identity, read_final, run_id
from lab.schedule import cooldown_start

TRUNKS = "trunks"  # <grid dir>/trunks/<trunk run id>: trunks are not grid points


@dataclass(frozen=True)
class Trunk:
    cfg: RunConfig
    run_dir: Path
    cells: tuple[Path, ...]  # the run directories it serves


def steps_of(cfg: RunConfig) -> int:
    t = cfg.train
    return int(t.tokens // (t.batch_size * t.seq_len))


def _family(cfg: RunConfig) -> str:
    """What cells of one trunk share: everything but the budget (and, being cells, the schedule)."""
    d = identity(cfg)
    d["train"].pop("tokens")
    return json.dumps(d, sort_keys=True)


def as_branch_cell(cfg: RunConfig) -> RunConfig:
    """A cell of a branching grid trains with a WSD schedule (the trunk's constant rate, then its
    own cooldown); warmup must be a token count, so that it does not depend on the budget."""
    t = cfg.train
    if t.words is not None:
        raise ConfigError("grid.branching", "branching needs token budgets (train.tokens), not words")
    if t.warmup_tokens is None:
        raise ConfigError("grid.branching", "branching needs warmup as a token count (train.warmup_tokens): "
                                            "a warmup that is a fraction of the run differs between budgets")
    return dataclasses.replace(cfg, train=dataclasses.replace(t, schedule="wsd"))


def plan_trunks(cells: list[RunConfig], run_dirs: list[Path], grid_dir: Path) -> tuple[list[RunConfig], list[Trunk]]:
    """(cells with branch_from/branch_step set, the trunks they need). A family of one budget
    gets no trunk: branching would only add work."""
    families: dict[str, list[int]] = {}
    for index, cfg in enumerate(cells):
        families.setdefault(_family(cfg), []).append(index)
    out, trunks = list(cells), []
    for members in families.values():
        if len(members) < 2:
            continue
        starts = {i: cooldown_start(cells[i].train, steps_of(cells[i])) for i in members}
        longest = max(members, key=lambda i: steps_of(cells[i]))
        trunk_cfg = _trunk_config(cells[longest], starts[longest], sorted(set(starts.values())))
        # Absolute: workers and SLURM jobs may start elsewhere than this command's directory.
        trunk_dir = (grid_dir / TRUNKS / run_id(trunk_cfg)).absolute()
        for i in members:
            out[i] = dataclasses.replace(cells[i], train=dataclasses.replace(
                cells[i].train, branch_from=str(trunk_dir), branch_step=starts[i]))
        trunks.append(Trunk(trunk_cfg, trunk_dir, tuple(run_dirs[i] for i in members)))
    return out, trunks


def _trunk_config(longest: RunConfig, last_start: int, branch_steps: list[int]) -> RunConfig:
    t = longest.train
    tokens = last_start * t.batch_size * t.seq_len  # it ends where the longest cell's cooldown starts
    return dataclasses.replace(longest, train=dataclasses.replace(
        t, schedule="constant", tokens=float(tokens), keep_steps=branch_steps, snapshots={},
        branch_from=None, branch_step=0))


def compute_ledger(trunk_dirs: list[Path], cell_dirs: list[Path]) -> dict:
    """FLOPs the grid spent (trunks whole, each cell past its branch point) against what the
    same cells trained independently would have cost (each cell's full FLOPs). Only finished
    cells count: a diverged run's FLOPs are its plan's, not what it trained."""
    spent = sum((read_final(d) or {}).get("flops") or 0.0 for d in trunk_dirs)
    independent = 0.0
    for run_dir in cell_dirs:
        final = read_final(run_dir) or {}
        if final.get("status") != "done":  # failed, diverged part way or missing: no full cost to compare
            continue
        flops = final["flops"] or 0.0
        independent += flops
        parent = final.get("parent")
        if parent and final.get("steps"):
            flops -= flops * parent["step"] / final["steps"]  # the trunk's part, counted with the trunk
        spent += flops
    return {"spent_flops": spent, "independent_flops": independent,
            "ratio": spent / independent if independent else float("nan")}


def ledger_line(ledger: dict) -> str:
    if not ledger["independent_flops"]:
        return "compute: no finished run to count"
    return f"compute: {ledger['spent_flops']:.3g} FLOPs, {ledger['ratio']:.2f}x of independent runs"
