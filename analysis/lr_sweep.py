"""The learning-rate sweep (grid=lr_sweep): each size's optimum, the rule log lr = a + b log N,
and the figure of loss against learning rate.

    python -m analysis.lr_sweep <grid dir>

writes <grid dir>/report/{report.md, lr_sweep.png, lr_rule.json}. The optimum of a size is
interpolated from its best swept rate and that rate's two neighbours (a parabola in log lr), so
it is only known when the best rate is not the lowest or highest one tried: a size whose best
rate sits at an edge refuses the rule, naming the size, and no lr_rule.json is written.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

RULE_FILE = "lr_rule.json"
FIGURE_FILE = "lr_sweep.png"


class EdgeOptimum(ValueError):
    """A size's best learning rate is the lowest or highest one swept: its optimum is not known."""


@dataclass(frozen=True)
class SizeSweep:
    params: float
    beta2: float
    lrs: list[float]  # ascending
    losses: list[float]  # final validation loss at each rate, mean over seeds
    seeds: list[int]  # seeds per rate
    run_ids: list[list[str]]


@dataclass(frozen=True)
class Optimum:
    params: float
    beta2: float
    lr: float  # interpolated in log lr
    loss: float  # the parabola's minimum
    best_swept_lr: float
    best_swept_loss: float


def read_sweep(grid_dir: Path) -> list[SizeSweep]:
    """Runs of results.csv grouped by (N, beta2), rates ascending, seeds averaged. A diverged run
    counts as an infinite loss (its rate is past the optimum); runs without a result are left
    out here and named by `unfinished`."""
    cells: dict[tuple[float, float], dict[float, list[dict]]] = {}
    for r in _rows(grid_dir):
        if r["status"] in ("done", "diverged"):
            cells.setdefault((float(r["params"]), float(r["beta2"])), {}).setdefault(float(r["lr"]), []).append(r)
    sweeps = []
    for (params, beta2), by_lr in sorted(cells.items()):
        lrs = sorted(by_lr)
        sweeps.append(SizeSweep(params, beta2, lrs, [float(np.mean([_loss(r) for r in by_lr[lr]])) for lr in lrs],
                                [len(by_lr[lr]) for lr in lrs], [[r["run_id"] for r in by_lr[lr]] for lr in lrs]))
    return sweeps


def unfinished(grid_dir: Path) -> list[str]:
    """Run ids of the sweep that are neither done nor diverged (failed, pending, running)."""
    return [r["run_id"] for r in _rows(grid_dir) if r["status"] not in ("done", "diverged")]


def _rows(grid_dir: Path) -> list[dict]:
    with open(grid_dir / "results.csv", newline="") as f:
        return list(csv.DictReader(f))


def _loss(row: dict) -> float:
    return float(row["final_val_loss"]) if row["status"] == "done" and row.get("final_val_loss") else math.inf


def optimum(sweep: SizeSweep) -> Optimum:
    """The vertex of the parabola in log lr through the best rate and its neighbours (it lies
    between them, the middle point being the lowest); EdgeOptimum when there is no neighbour."""
    best = int(np.argmin(sweep.losses))
    if len(sweep.lrs) < 3 or best in (0, len(sweep.lrs) - 1):
        side = "lowest" if best == 0 else "highest"
        raise EdgeOptimum(f"size N={sweep.params:,.0f} (beta2 {sweep.beta2:g}): its best learning rate "
                          f"{sweep.lrs[best]:g} is the {side} swept, so its optimum is not known; "
                          f"extend grid.lrs past it")
    y = np.asarray(sweep.losses[best - 1:best + 2])
    if not np.isfinite(y).all():  # the optimum is bracketed, but a diverged rate has no loss to fit
        gone = [lr for lr, loss in zip(sweep.lrs[best - 1:best + 2], y) if not math.isfinite(loss)]
        raise EdgeOptimum(f"size N={sweep.params:,.0f} (beta2 {sweep.beta2:g}): rate {gone[0]:g} diverged next to "
                          f"the best rate {sweep.lrs[best]:g}; add a rate between them to locate the optimum")
    x = np.log(sweep.lrs[best - 1:best + 2])
    c2, c1, c0 = np.polyfit(x, y, 2)
    vertex = -c1 / (2 * c2) if c2 > 0 else x[1]
    return Optimum(sweep.params, sweep.beta2, float(math.exp(vertex)), float(c0 + c1 * vertex + c2 * vertex ** 2),
                   sweep.lrs[best], sweep.losses[best])


def fit_rule(optima: list[Optimum]) -> tuple[float, float]:
    """(a, b) of log lr_opt = a + b log N by least squares (natural logs): two sizes at least."""
    if len({o.params for o in optima}) < 2:
        raise ValueError("a learning-rate rule needs optima at two sizes at least")
    b, a = np.polyfit(np.log([o.params for o in optima]), np.log([o.lr for o in optima]), 1)
    return float(a), float(b)


def predict(optima: list[Optimum], params: float) -> float:
    a, b = fit_rule(optima)
    return math.exp(a + b * math.log(params))


def best_beta2(sweeps: list[SizeSweep]) -> float:
    """The beta2 whose best swept losses are lowest on average over the sizes (one beta2: it)."""
    by_beta2: dict[float, list[float]] = {}
    for s in sweeps:
        by_beta2.setdefault(s.beta2, []).append(min(s.losses))
    return min(by_beta2, key=lambda b: float(np.mean(by_beta2[b])))


def rule_document(grid_dir: Path, sweeps: list[SizeSweep], optima: list[Optimum]) -> dict:
    """The rule file lab.lr_rule reads, with the data and provenance that produced it."""
    a, b = fit_rule(optima)
    settings = _settings(grid_dir, sweeps[0].run_ids[0][0])
    sizes = [o.params for o in optima]
    return {
        "name": grid_dir.name, "kind": "measured", "intercept": round(a, 6), "slope": round(b, 6),
        "sizes": [min(sizes), max(sizes)],
        "source": f"grid=lr_sweep {grid_dir.name}, {len(optima)} sizes, beta2 {optima[0].beta2:g}",
        "settings": {**settings, "beta2": optima[0].beta2, "tokens_per_param": _tokens_per_param(grid_dir),
                     "warmup_tokens_per_param": _warmup_per_param(grid_dir, sweeps)},
        "optima": [asdict(o) for o in optima],
        "sweeps": [{**asdict(s), "losses": [x if math.isfinite(x) else None for x in s.losses]} for s in sweeps],
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def _tokens_per_param(grid_dir: Path) -> float | None:
    """D/N of the sweep's runs (whole steps make it vary a little between sizes): their median."""
    with open(grid_dir / "results.csv", newline="") as f:
        ratios = [float(r["tokens"]) / float(r["params"]) for r in csv.DictReader(f)
                  if r["status"] == "done" and r.get("tokens")]
    return round(float(np.median(ratios)), 2) if ratios else None


def _warmup_per_param(grid_dir: Path, sweeps: list[SizeSweep]) -> float | None:
    """Warmup tokens over N of each size's runs (the rate does not change it): their median, as
    the optimal rate depends on the warmup it was measured with."""
    ratios = []
    for sweep in sweeps:
        config = json.loads((grid_dir / "runs" / sweep.run_ids[0][0] / "config.json").read_text())
        warmup = config.get("config", config)["train"].get("warmup_tokens")
        if warmup is not None:
            ratios.append(warmup / sweep.params)
    return round(float(np.median(ratios)), 2) if ratios else None


def _settings(grid_dir: Path, run_id: str) -> dict:
    """What the rule holds for, from one run's config.json (every run of the sweep shares it)."""
    config = json.loads((grid_dir / "runs" / run_id / "config.json").read_text())
    cfg = config.get("config", config)
    model, train, corpus = cfg["model"], cfg["train"], cfg["corpus"]
    return {"vocab_size": model["vocab_size"], "seq_len": train["seq_len"], "batch_size": train["batch_size"],
            "schedule": train["schedule"], "cooldown": train["cooldown"], "decay_shape": train["decay_shape"],
            "corpus": corpus.get("name"), "code_version": config.get("code_version", "")}


def draw(sweeps: list[SizeSweep], optima: list[Optimum], rule: tuple[float, float] | None, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    colours = plt.cm.viridis(np.linspace(0, 0.85, max(1, len(sweeps))))
    for sweep, colour in zip(sweeps, colours):
        label = f"N={sweep.params:,.0f}" + (f", beta2 {sweep.beta2:g}" if len({s.beta2 for s in sweeps}) > 1 else "")
        finite = [(lr, loss) for lr, loss in zip(sweep.lrs, sweep.losses) if math.isfinite(loss)]
        ax.plot(*zip(*finite), "o-", color=colour, label=label)
        for lr in (lr for lr, loss in zip(sweep.lrs, sweep.losses) if not math.isfinite(loss)):
            ax.axvline(lr, color=colour, linestyle="--", linewidth=0.8)  # diverged (or failed) at this rate
        for o in optima:
            if (o.params, o.beta2) == (sweep.params, sweep.beta2):
                ax.plot([o.lr], [o.loss], "*", color=colour, markersize=14, markeredgecolor="black")
        if rule is not None:
            ax.axvline(math.exp(rule[0] + rule[1] * math.log(sweep.params)), color=colour, linestyle=":", linewidth=1)
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # the decade labels alone
    ax.set_xlabel("peak learning rate")
    ax.set_ylabel("final validation loss (nats/token)")
    ax.set_title("learning-rate sweep: optimum (star), rule's prediction (dotted), diverged (dashed)", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_sweep_report(grid_dir: Path) -> tuple[Path, str | None]:
    """(report.md, None) with the rule written, or (report.md, why the rule was refused)."""
    out = grid_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    (out / RULE_FILE).unlink(missing_ok=True)  # never leave a rule the current runs do not give
    sweeps = read_sweep(grid_dir)
    beta2 = best_beta2(sweeps) if sweeps else None
    chosen = [s for s in sweeps if s.beta2 == beta2]
    optima, edges, rule = [], [], None
    missing = unfinished(grid_dir)
    if missing:  # a rule from part of the sweep could rest on a rate that is still to come
        edges.append(f"{len(missing)} runs of the sweep have no result yet ({', '.join(missing[:3])}"
                     f"{' ...' if len(missing) > 3 else ''}): rerun the grid")
    for sweep in chosen:
        try:
            optima.append(optimum(sweep))
        except EdgeOptimum as e:
            edges.append(str(e))
    problem = "; ".join(edges) or None
    if problem is None:
        try:
            rule = fit_rule(optima)
        except ValueError as e:  # fewer than two sizes
            problem = str(e)
    draw(sweeps, optima, rule, out / FIGURE_FILE)
    if rule is not None:
        (out / RULE_FILE).write_text(json.dumps(rule_document(grid_dir, sweeps, optima), indent=1) + "\n")
    (out / "report.md").write_text(_markdown(grid_dir, sweeps, optima, rule, problem))
    return out / "report.md", problem


def _markdown(grid_dir: Path, sweeps: list[SizeSweep], optima: list[Optimum], rule, problem: str | None) -> str:
    lines = [f"# Learning-rate sweep: {grid_dir.name}", ""]
    if problem:
        lines += [f"**No rule: {problem}.**", ""]
    else:
        a, b = rule
        lines += [f"Rule: log lr = {a:.4f} {b:+.4f} log N (lr = {math.exp(a):.4g} N^{b:.3f}), fitted on "
                  f"{len(optima)} sizes; written to `report/{RULE_FILE}` (use it with "
                  f"`train.lr=auto train.lr_rule={grid_dir / 'report' / RULE_FILE}`).", ""]
    if len({s.beta2 for s in sweeps}) > 1:
        lines += [f"beta2 swept: {sorted({s.beta2 for s in sweeps})}; the rule is fitted at beta2 "
                  f"{best_beta2(sweeps):g}, whose best losses are lowest on average.", ""]
    lines += ["| N | beta2 | best swept lr | its loss | interpolated optimum | loss there | rule's lr |",
              "|---|---|---|---|---|---|---|"]
    for o in optima:
        predicted = f"{math.exp(rule[0] + rule[1] * math.log(o.params)):.4g}" if rule else "-"
        lines.append(f"| {o.params:,.0f} | {o.beta2:g} | {o.best_swept_lr:g} | {o.best_swept_loss:.4f} | "
                     f"{o.lr:.4g} | {o.loss:.4f} | {predicted} |")
    lines += ["", f"![loss against learning rate]({FIGURE_FILE})", "", "Runs per size and rate (seeds averaged):", ""]
    for s in sweeps:
        cells = ", ".join(f"{lr:g}: {loss:.4f}" + (f" ({n} seeds)" if n > 1 else "")
                          for lr, loss, n in zip(s.lrs, s.losses, s.seeds))
        lines.append(f"- N={s.params:,.0f}, beta2 {s.beta2:g}: {cells}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("grid_dir", type=Path)
    args = parser.parse_args(argv)
    if not (args.grid_dir / "results.csv").is_file():
        print(f"error: {args.grid_dir / 'results.csv'} does not exist: run the lr_sweep grid first", file=sys.stderr)
        return 2
    path, problem = write_sweep_report(args.grid_dir)
    print(f"report: {path}")
    if problem:
        print(f"error: no learning-rate rule: {problem}", file=sys.stderr)
        return 1
    print(f"rule: {path.parent / RULE_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
