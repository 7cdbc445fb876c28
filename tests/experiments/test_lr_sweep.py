"""grid=lr_sweep through the real entry point, at a tiny scale: every size has its optimum inside
the swept range, the rule it writes is what train.lr=auto uses, and the rule fitted on the other
sizes predicts a held-out size's learning rate well enough that training at it lands within
max(0.5%, 2 seed-noise sigma) of that size's own sweep best."""
from __future__ import annotations

import csv
import dataclasses
import json
import statistics

import numpy as np
import pytest

from analysis.lr_sweep import optimum, predict, read_sweep
from lab.config import run_config_from_dict
from lab.single_run import run_single
from tests.helpers import run_entry

# Sizes 12k, 41k and 101k (d_model 16 per layer, 1-3 layers), 5 tokens per parameter, two seeds:
# at a few hundred steps one seed in a few spikes at the higher rates, and the mean of two keeps
# an optimum from resting on one such run.
# Five rates: on the corpus of generator revision 3 the two smaller sizes' best rate is 1.6e-2
# (by a few hundredths of a nat), so 3.2e-2 closes the range above them. Those rates were
# chosen under the grids' old warmup cap (5% of the smallest budget: 0.25 N here); under today's
# (warmup N, 20% of each run) the optima stay interior and the middle size's best swept rate is
# 8e-3 (session 13: predicted 8.0e-3, 3.0334 nats against the sweep's 3.0143, 0.080 allowed).
SIZES = [1.2e4, 4.0e4, 1.0e5]
LRS = [2e-3, 4e-3, 8e-3, 1.6e-2, 3.2e-2]
SWEEP = ["grid=lr_sweep", "scale=smoke", "model.aspect_ratio=16", "model.head_dim=8", "corpus.train_words=250000",
         f"grid.sizes=[{','.join(map(str, SIZES))}]", "grid.tokens_per_param=5",
         f"grid.lrs=[{','.join(map(str, LRS))}]", "grid.seeds=[0,1]",
         "grid.eval_pairs=false", "train.threads=1",
         "train.progress=lines", "launcher.poll_s=0.2"]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, corpus_cache):
    out = tmp_path_factory.mktemp("lr_sweep")
    done = run_entry([*SWEEP, f"out_dir={out}", f"corpus.cache_dir={corpus_cache}"], cwd=out, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out / "lr_sweep-smoke", done


def test_every_size_has_an_interior_optimum_and_the_rule_is_written(sweep):
    grid, done = sweep
    sweeps = read_sweep(grid)
    assert [s.params for s in sweeps] == sorted(s.params for s in sweeps) and len(sweeps) == len(SIZES)
    for s in sweeps:
        assert 0 < int(np.argmin(s.losses)) < len(s.lrs) - 1, (s.params, s.losses)
    assert "learning-rate rule: " in done.stdout
    rule = json.loads((grid / "report" / "lr_rule.json").read_text())
    assert len(rule["optima"]) == len(SIZES) and rule["kind"] == "measured"
    with open(grid / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert {float(r["lr"]) for r in rows} == set(LRS) and {r["seed"] for r in rows} == {"0", "1"}
    assert {r["lr_from"] for r in rows} == {"given"}


def _train_like(grid, run_id: str, out, **changes) -> float:
    """Train the sweep run `run_id` again with some fields changed (lr, seed): its final loss."""
    config = json.loads((grid / "runs" / run_id / "config.json").read_text())["config"]
    cfg = run_config_from_dict(config)
    train = {k: v for k, v in changes.items() if k != "seed"}
    cfg = dataclasses.replace(cfg, seed=changes.get("seed", cfg.seed), train=dataclasses.replace(cfg.train, **train))
    final = run_single(cfg, out / f"{run_id}-{'-'.join(f'{k}{v}' for k, v in changes.items())}", log=lambda *_: None)
    return float(final["final_val_loss"])


def test_a_held_out_sizes_predicted_rate_is_as_good_as_its_own_sweep_best(sweep, tmp_path):
    grid, _ = sweep
    sweeps = read_sweep(grid)
    held = sweeps[1]  # the middle size, predicted from the smallest and the largest
    others = [optimum(s) for s in sweeps if s is not held]
    lr = float(f"{predict(others, held.params):.4g}")
    best = int(np.argmin(held.losses))  # the sweep's best, a mean over seeds 0 and 1
    best_run = held.run_ids[best][0]
    # Seed noise at the best rate: the sweep's two seeds and a third.
    at_best = [_final_loss(grid, run) for run in held.run_ids[best]] + [_train_like(grid, best_run, tmp_path, seed=2)]
    sigma = statistics.stdev(at_best)
    # The predicted rate at the same two seeds, compared as the sweep compares rates: by the mean.
    loss = statistics.mean(_train_like(grid, best_run, tmp_path, lr=lr, seed=s) for s in (0, 1))
    allowed = max(0.005 * held.losses[best], 2 * sigma)
    print(f"held out N={held.params:,.0f}: predicted lr {lr:g}, loss {loss:.4f} against the sweep's best "
          f"{held.losses[best]:.4f} at {held.lrs[best]:g}; allowed {allowed:.4f} (seed sigma {sigma:.4f})")
    assert loss - held.losses[best] <= allowed, (lr, loss, held.losses, sigma)


def _final_loss(grid, run_id: str) -> float:
    return float(json.loads((grid / "runs" / run_id / "final.json").read_text())["final_val_loss"])
