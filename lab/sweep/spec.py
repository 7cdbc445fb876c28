"""Grids of runs: typed config, scale presets, and expansion into resolved run configs.

A grid names its kind (which axes it sweeps) and its axis values per scale (smoke / cpu / gpu);
the run settings of each scale are Hydra presets (experiments/conf/scale). Command-line
overrides such as ``grid.sizes=[...]`` replace the chosen scale's axis values.

The "babylm" kind is a BabyLM submission rather than a sweep: one run per size x epoch count,
budgeted in words seen (train.words = epochs x corpus words), at most 10 epochs, with snapshots
at BabyLM's checkpoint schedule (see ``babylm_checkpoints``) that lab.sweep.submission exports.
"""
from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass, field
from typing import Any

from common.errors import ConfigError
from lab.config import RunConfig
from lab.sweep.quality_axes import QualityLevel, quality_levels, val_level_label, validate_axis

KINDS = ("token_budget", "isoflop", "data_quality", "babylm", "lr_sweep")
SCALES = ("smoke", "cpu", "gpu")


@dataclass
class ScaleAxes:
    # Model sizes as target parameter counts (the size picker turns each into a shape).
    sizes: list[float] = field(default_factory=list)
    # Token budgets D (token_budget, data_quality).
    budgets: list[float] = field(default_factory=list)
    # Compute budgets C in FLOPs (isoflop): each size trains on D = C / (6N), N its total parameters.
    compute_budgets: list[float] = field(default_factory=list)
    # Corpus quality levels (data_quality); other grids use corpus.quality.
    qualities: list[float] = field(default_factory=list)
    # babylm: epochs over the track's corpus (each is one run: train.words = epochs * corpus_words),
    # the corpus size in words (10M strict-small, 100M strict at scale gpu) and the checkpoint
    # unit in words (1M at scale gpu: chck_1M, ...; smaller scales shrink both, see babylm_checkpoints).
    epochs: list[float] = field(default_factory=list)
    corpus_words: float = 0.0
    word_unit: float = 0.0
    # lr_sweep: peak learning rates tried at every size (2x apart in the presets), each size
    # trained on tokens_per_param x N tokens, and optionally at each AdamW beta2 of beta2s.
    lrs: list[float] = field(default_factory=list)
    tokens_per_param: float = 0.0
    beta2s: list[float] = field(default_factory=list)


@dataclass
class GridConfig:
    name: str = "token_budget"
    kind: str = "token_budget"
    description: str = ""
    # Axis overrides from the command line; None = the scale preset's values.
    sizes: list[float] | None = None
    budgets: list[float] | None = None
    compute_budgets: list[float] | None = None
    qualities: list[float] | None = None
    scales: dict[str, ScaleAxes] = field(default_factory=dict)
    # babylm: overrides of the scale's epochs / corpus size / checkpoint unit (None = preset).
    epochs: list[float] | None = None
    corpus_words: float | None = None
    word_unit: float | None = None
    # lr_sweep: overrides of the scale's learning rates, tokens per parameter and beta2s (None = preset).
    lrs: list[float] | None = None
    tokens_per_param: float | None = None
    beta2s: list[float] | None = None
    # babylm: BabyLM's cap on passes over the data (a words budget above max_epochs * corpus
    # words is refused before any compute).
    max_epochs: float = 10.0
    # babylm: the real corpus of this track (corpus=<this> trains on it; the default corpus,
    # "synthetic", is the offline stand-in at the same word budget).
    track_corpus: str = ""
    # babylm: export every checkpoint + main to <grid dir>/submission, evaluate and describe them.
    submission: bool = True
    # Extra minimal pairs to evaluate the submission's checkpoints on: a .jsonl file, a directory
    # of them (BLiMP's files) or a datasets hub id (e.g. nyu-mll/blimp, needs internet).
    pairs: str | None = None
    # Minimal-pair evaluation of every finished run (when the corpus provides pairs).
    eval_pairs: bool = True
    # Write the analysis report at the end.
    report: bool = True
    # Each run's warmup in tokens per parameter of its model: train.warmup_tokens = this x N, one
    # token per parameter after Porian et al. 2024, so warmup follows the model, not the run's
    # length. null leaves train.warmup / train.warmup_tokens as given.
    warmup_tokens_per_param: float | None = 1.0
    # ... capped at this fraction of the smallest budget of that size (of each run's own budget in
    # an isoflop grid), so that every budget of one size shares its warmup (and its first steps)
    # and none spends more than this on it (nor more than what its cooldown leaves). Not 5%: at
    # the CPU scale the smallest budgets are below N, and 5% of them was a 6-step warmup that made
    # a seed move a whole trunk by 0.2-0.4 nats (bench/RESULTS.md, "Warmup and seed noise"); ~100
    # steps lowered every loss and the seed spread (0.012 nats at 1M tokens, 0.049 at 125k). The
    # smallest cells then warm up and cool down with no constant phase between, and the plan names
    # them. Measured at the CPU scale only.
    max_warmup_fraction: float = 0.8
    # Print the plan (runs, tokens, compute, estimated wall time) and make every check that
    # comes before compute, then exit without training.
    plan_only: bool = False
    # One constant-rate trunk per model, and each budget a cooldown branched off it
    # (lab.sweep.branching): the same runs, at a fraction of the compute. Cells then train with a
    # WSD schedule (train.cooldown, train.decay_shape) and warmup in tokens.
    branching: bool = False
    # Train every cell at each of these seeds (init and data order); null = train.seed alone.
    # The report shows the seed-to-seed spread and its intervals include it.
    seeds: list[int] | None = None
    # data_quality: the quality axis over real corpora, instead of the synthetic dial (qualities);
    # at most one of qualities / sources / min_scores / mixtures (see lab.sweep.quality_axes).
    # sources: corpus preset names or corpus configs (an optional `label` names the level).
    sources: list[Any] | None = None
    # min_scores: thresholds on the corpus's score field (corpus=fineweb_edu, or local with corpus.score_field).
    min_scores: list[float] | None = None
    # mixtures: weights of corpus=mix's parts, each a number (the first part's share; the others
    # share the rest as corpus.weights does) or a mapping {part: weight}.
    mixtures: list[Any] | None = None
    # data_quality: the level whose held-out split validates every run (its label, or its value);
    # null = the highest level (the first source listed; the clean split for the synthetic dial).
    val_level: str | None = None


@dataclass(frozen=True)
class PlannedRun:
    cfg: RunConfig  # resolved (shape picked), validated
    axes: dict  # the grid coordinates of this run, for tables and figures


def axes_for(grid: GridConfig, scale: str) -> ScaleAxes:
    if scale not in SCALES:
        raise ConfigError("scale", f"unknown scale {scale!r}; choose one of {', '.join(SCALES)}")
    if scale not in grid.scales:
        raise ConfigError("scale", f"grid {grid.name!r} defines no {scale!r} preset")
    preset = grid.scales[scale]
    return ScaleAxes(
        sizes=list(grid.sizes if grid.sizes is not None else preset.sizes),
        budgets=list(grid.budgets if grid.budgets is not None else preset.budgets),
        compute_budgets=list(grid.compute_budgets if grid.compute_budgets is not None else preset.compute_budgets),
        qualities=list(grid.qualities if grid.qualities is not None else preset.qualities),
        epochs=list(grid.epochs if grid.epochs is not None else preset.epochs),
        corpus_words=float(grid.corpus_words if grid.corpus_words is not None else preset.corpus_words),
        word_unit=float(grid.word_unit if grid.word_unit is not None else preset.word_unit),
        lrs=list(grid.lrs if grid.lrs is not None else preset.lrs),
        tokens_per_param=float(grid.tokens_per_param if grid.tokens_per_param is not None
                               else preset.tokens_per_param),
        beta2s=list(grid.beta2s if grid.beta2s is not None else preset.beta2s),
    )


def validate_grid(grid: GridConfig, axes: ScaleAxes) -> None:
    # The name is a directory under out_dir: one plain component, nothing that climbs out.
    if not grid.name or grid.name in (".", "..") or "/" in grid.name or "\\" in grid.name:
        raise ConfigError("grid.name", f"must be a plain directory name, got {grid.name!r}")
    if grid.kind not in KINDS:
        raise ConfigError("grid.kind", f"unknown grid kind {grid.kind!r}; choose one of {', '.join(KINDS)}")
    if not axes.sizes:
        raise ConfigError("grid.sizes", "at least one model size is needed")
    if any(s <= 0 for s in axes.sizes):
        raise ConfigError("grid.sizes", "sizes are parameter counts and must be > 0")
    if grid.seeds is not None and (not grid.seeds or len(set(grid.seeds)) != len(grid.seeds)):
        raise ConfigError("grid.seeds", f"must be a non-empty list of distinct seeds (or null), got {grid.seeds}")
    if grid.kind in ("babylm", "lr_sweep"):
        validate_axis(grid, axes.qualities)  # refuses a quality axis on them
    if grid.kind == "babylm":
        _validate_warmup(grid)
        return  # validate_babylm: its budgets are in words
    if grid.kind == "lr_sweep":
        _validate_lr_sweep(axes)
        _validate_warmup(grid)
        return
    if grid.kind == "isoflop":
        if not axes.compute_budgets or any(c <= 0 for c in axes.compute_budgets):
            raise ConfigError("grid.compute_budgets", "an isoflop grid needs positive compute budgets (FLOPs)")
    elif not axes.budgets or any(b <= 0 for b in axes.budgets):
        raise ConfigError("grid.budgets", "at least one positive token budget is needed")
    validate_axis(grid, axes.qualities)
    _validate_warmup(grid)


def _validate_lr_sweep(axes: ScaleAxes) -> None:
    # An optimum is interpolated from the best rate and its two neighbours, so three at least.
    if len(axes.lrs) < 3 or len(set(axes.lrs)) != len(axes.lrs) or any(lr <= 0 for lr in axes.lrs):
        raise ConfigError("grid.lrs", f"an lr_sweep needs at least three distinct learning rates > 0, got {axes.lrs}")
    if axes.tokens_per_param <= 0:
        raise ConfigError("grid.tokens_per_param", f"must be > 0, got {axes.tokens_per_param:g}")
    if any(not 0 < b < 1 for b in axes.beta2s):
        raise ConfigError("grid.beta2s", f"AdamW beta2 values must lie in (0, 1), got {axes.beta2s}")


def _validate_warmup(grid: GridConfig) -> None:
    if grid.warmup_tokens_per_param is not None and grid.warmup_tokens_per_param < 0:
        raise ConfigError("grid.warmup_tokens_per_param", "must be >= 0 (or null)")
    if not 0 < grid.max_warmup_fraction <= 1:
        raise ConfigError("grid.max_warmup_fraction", "must be in (0, 1]")


def expand(base: RunConfig, grid: GridConfig, scale: str) -> list[PlannedRun]:
    """Every run of the grid as a resolved, validated RunConfig (fails before any compute)."""
    from lab.single_run import resolve

    axes = axes_for(grid, scale)
    validate_grid(grid, axes)
    if grid.kind == "babylm":
        return with_seeds(expand_babylm(base, grid, axes), grid)
    if grid.kind == "lr_sweep":
        return with_seeds(expand_lr_sweep(base, grid, axes), grid)
    if base.train.words is not None:  # it would override every point's token budget alike
        raise ConfigError("train.words", f"a {grid.kind} grid sets each run's budget in tokens; "
                                         "leave train.words unset (it applies to babylm grids)")
    levels = (quality_levels(base.corpus, grid, axes.qualities) if grid.kind == "data_quality"
              else [QualityLevel("", base.corpus.quality, base.corpus)])
    val_level = val_level_label(levels, grid) if grid.kind == "data_quality" else ""
    tokens_per_step = base.train.batch_size * base.train.seq_len
    if grid.kind != "isoflop":  # (an isoflop budget may be too small for its largest sizes: skipped)
        small = [b for b in axes.budgets if b < tokens_per_step]
        if small:
            raise ConfigError("grid.budgets", f"budget {small[0]:g} is below one optimizer step of "
                                              f"{tokens_per_step} tokens (train.batch_size x train.seq_len)")
    planned = []
    for level, size in itertools.product(levels, axes.sizes):
        sized = dataclasses.replace(base, model=dataclasses.replace(base.model, params=float(size)),
                                    corpus=level.corpus)
        shaped = resolve(dataclasses.replace(sized, train=dataclasses.replace(
            sized.train, tokens=float(max(axes.budgets or [tokens_per_step])))))
        points = _points_of_size(shaped, grid, axes, tokens_per_step)
        shared = grid_warmup_tokens(shaped, grid, min((steps for _, _, steps in points), default=0) * tokens_per_step)
        for compute, tokens, steps in points:
            # An IsoFLOP profile compares sizes at one compute and its runs share no trunk: each
            # is capped by its own budget, so a large model's short run does not set the warmup
            # of its longer ones (one cap per size gave the 1.9M model 8 steps at every compute).
            warmup = (grid_warmup_tokens(shaped, grid, steps * tokens_per_step) if grid.kind == "isoflop"
                      else shared)
            train = dataclasses.replace(shaped.train, tokens=float(steps * tokens_per_step), warmup_tokens=warmup)
            axes_row = {"size": size, "quality": level.corpus.quality, "budget_tokens": tokens}
            if grid.kind == "data_quality":  # what the level is, and what every level is validated on
                axes_row.update(quality_label=level.label, quality_value=level.value, val_level=val_level)
            if compute is not None:
                axes_row["compute_budget"] = compute
            planned.append(PlannedRun(resolve(dataclasses.replace(shaped, train=train)), axes_row))
    if not planned:
        raise ConfigError("grid", "the grid expands to no runs (every budget is below one optimizer step)")
    return with_seeds(planned, grid)


def with_seeds(planned: list[PlannedRun], grid: GridConfig) -> list[PlannedRun]:
    """Each run once per grid.seeds (the seed is in the run id, so replicates never collide), or
    as planned with its own train seed; the seed is a grid coordinate either way."""
    seeds = grid.seeds if grid.seeds is not None else [None]
    return [PlannedRun(p.cfg if seed is None else dataclasses.replace(p.cfg, seed=int(seed)),
                       {**p.axes, "seed": p.cfg.seed if seed is None else int(seed)})
            for p in planned for seed in seeds]


def _points_of_size(shaped: RunConfig, grid: GridConfig, axes: ScaleAxes,
                    tokens_per_step: int) -> list[tuple[float | None, float, int]]:
    """(compute budget or None, nominal tokens D, whole optimizer steps) of one size's runs.

    isoflop: D = C / (6N), N the resolved model's total parameters: the lab counts a run's
    compute as C = 6ND (lab.accounting.compute_6nd), so a point of the C profile is a run whose
    6ND is C, as the analysis reads it. (D = C / flops_per_token, attention included, made the
    grid's C and the fits' C two different numbers.)"""
    from lab.accounting import total_params

    if grid.kind == "isoflop":
        n = total_params(shaped.model)
        budgets = [(float(c), c / (6.0 * n)) for c in axes.compute_budgets]
    else:
        budgets = [(None, float(b)) for b in axes.budgets]
    # Whole optimizer steps, so D is exactly what is trained; an isoflop point below one step is
    # not a point (this size cannot fit a step in that compute budget).
    points = [(c, d, math.floor(d / tokens_per_step)) for c, d in budgets]
    return [p for p in points if p[2] >= 1]


def grid_warmup_tokens(shaped: RunConfig, grid: GridConfig, budget: float) -> float | None:
    """train.warmup_tokens for runs of one size: warmup_tokens_per_param x N in whole steps,
    capped at max_warmup_fraction (and 1 - cooldown) of `budget`, rounded down to whole steps so
    the cap holds after the trainer's rounding. Given the size's smallest budget, it is the same
    for all budgets of the size, which then share their first steps (an isoflop grid passes each
    run's own). An explicit train.warmup_tokens, or warmup_tokens_per_param=null, is kept."""
    from lab.accounting import total_params

    t = shaped.train
    if t.warmup_tokens is not None or grid.warmup_tokens_per_param is None:
        return t.warmup_tokens
    per_step = t.batch_size * t.seq_len
    wanted = math.floor(grid.warmup_tokens_per_param * total_params(shaped.model) / per_step + 0.5)
    # The smallest run's cooldown (a WSD tail: branches, sweeps) must still fit after the warmup.
    fraction = min(grid.max_warmup_fraction, 1.0 - t.cooldown)
    cap = math.floor(fraction * budget / per_step + 1e-9)
    return float(min(wanted, cap) * per_step)


# A warmup longer than this share of a size's smallest run is named in the plan.
LONG_WARMUP = 0.05


def warmup_notes(planned: list[PlannedRun], grid: GridConfig, base: RunConfig) -> list[str]:
    """One line per size whose warmup is not warmup_tokens_per_param x N (the cap shortened it,
    or the command line set the warmup itself, then also when it is above the cap's fraction),
    or is above LONG_WARMUP of the size's smallest budget; in an isoflop grid, whose runs are
    capped one by one, the line is about the size's shortest run."""
    from lab.accounting import total_params

    def budget(t) -> float:
        return t.words if t.words is not None else t.tokens  # a word is at least one token

    smallest: dict[float, float] = {}
    for plan in planned:
        size = plan.axes["size"]  # every grid kind that sets warmups has a size axis
        smallest[size] = min(smallest.get(size, math.inf), budget(plan.cfg.train))
    per_run = grid.kind == "isoflop"  # each run capped by its own budget (expand)
    notes: dict[float, str] = {}
    for plan in planned:
        t, n, size = plan.cfg.train, total_params(plan.cfg.model), plan.axes.get("size")
        if base.train.warmup_tokens is not None or grid.warmup_tokens_per_param is None:
            how = ("train.warmup_tokens as given" if base.train.warmup_tokens is not None
                   else f"train.warmup={t.warmup:g} (grid.warmup_tokens_per_param=null)")
            if t.warmup_tokens is not None and t.warmup_tokens > grid.max_warmup_fraction * budget(t):
                notes[size] = (f"size {size:g}: warmup {how}: {t.warmup_tokens:,.0f} tokens, above "
                               f"{grid.max_warmup_fraction:g} of its {budget(t):,.0f}-token run")
            else:
                notes.setdefault(size, f"size {size:g}: warmup {how}")
            continue
        if per_run and budget(t) > smallest[size]:
            continue  # the note is about the size's shortest run, whatever order the runs come in
        wanted = grid.warmup_tokens_per_param * n
        reference = budget(t) if per_run else smallest[size]
        where = "each run's budget" if per_run else "its smallest budget"
        if t.warmup_tokens + t.batch_size * t.seq_len / 2 < wanted:  # shorter than rounding explains
            notes.setdefault(size, f"size {size:g} (N={n:,}): warmup capped at "
                                   f"{min(grid.max_warmup_fraction, 1.0 - t.cooldown):g} of {where}: "
                                   f"{t.warmup_tokens:,.0f} tokens{' in its shortest run' if per_run else ''}, "
                                   f"not {wanted:,.0f}")
        elif t.warmup_tokens > LONG_WARMUP * reference:
            unit = "words" if t.words is not None else "tokens"  # a word is one token or more: an upper bound
            notes.setdefault(size, f"size {size:g} (N={n:,}): warmup {t.warmup_tokens:,.0f} tokens "
                                   f"({grid.warmup_tokens_per_param:g} per parameter), "
                                   f"{t.warmup_tokens / reference:.0%} of "
                                   f"{'its shortest run' if per_run else 'its smallest budget'} in {unit}")
    return list(notes.values())


def expand_lr_sweep(base: RunConfig, grid: GridConfig, axes: ScaleAxes) -> list[PlannedRun]:
    """Every size at every learning rate (and beta2), on tokens_per_param x N tokens in whole
    steps, with the WSD schedule and warmup in tokens of the grids that will use the rule."""
    from lab.accounting import total_params
    from lab.single_run import resolve

    if base.train.words is not None:
        raise ConfigError("train.words", "an lr_sweep sets each run's budget as grid.tokens_per_param x N tokens; "
                                         "leave train.words unset")
    per_step = base.train.batch_size * base.train.seq_len
    planned = []
    for size in axes.sizes:
        shaped = resolve(dataclasses.replace(base, model=dataclasses.replace(base.model, params=float(size))))
        steps = max(1, math.floor(axes.tokens_per_param * total_params(shaped.model) / per_step + 0.5))
        train = dataclasses.replace(shaped.train, tokens=float(steps * per_step), schedule="wsd",
                                    warmup_tokens=grid_warmup_tokens(shaped, grid, steps * per_step))
        for beta2, lr in itertools.product(axes.beta2s or [base.train.beta2], axes.lrs):
            swept = dataclasses.replace(train, lr=float(lr), lr_from=None, beta2=float(beta2))
            planned.append(PlannedRun(resolve(dataclasses.replace(shaped, train=swept)), {
                "size": size, "quality": base.corpus.quality, "budget_tokens": swept.tokens,
                "lr": float(lr), "beta2": float(beta2), "tokens_per_param": axes.tokens_per_param}))
    return planned


# ---------------------------------------------------------------- BabyLM submissions

BABYLM_UNIT_WORDS = 1_000_000  # scale gpu: BabyLM's own checkpoint names (chck_1M, ...)


def checkpoint_name(words: float) -> str:
    """chck_<N>M for whole millions (BabyLM's revision names), chck_<N>K for whole thousands
    (the scaled-down schedules of scale smoke/cpu), else chck_<N> words."""
    n = int(round(words))
    if n % 1_000_000 == 0:
        return f"chck_{n // 1_000_000}M"
    if n % 1_000 == 0:
        return f"chck_{n // 1_000}K"
    return f"chck_{n}"


def babylm_checkpoints(budget_words: float, unit: float) -> dict[str, float]:
    """{name: words seen} of BabyLM's intermediate checkpoints up to the budget: 1..10 units,
    then every 10 units to 100, then every 100 units to 1000 (unit = 1M words at scale gpu:
    chck_1M..chck_10M, chck_20M..chck_100M, chck_200M..chck_1000M).

    The trainer saves each at the first optimizer step whose words seen reach the count (at
    most one batch past it). A checkpoint at the budget itself is the last step: the budget is
    trained in whole steps rounded down, so it lies less than one batch below the count and
    never above the 10-epoch cap."""
    counts = ([k * unit for k in range(1, 11)] + [k * 10 * unit for k in range(2, 11)]
              + [k * 100 * unit for k in range(2, 11)])
    return {checkpoint_name(c): float(round(c)) for c in counts if c <= budget_words * (1 + 1e-9)}


def validate_babylm(base: RunConfig, grid: GridConfig, axes: ScaleAxes) -> list[tuple[str, float]]:
    """[(field the budget came from, words)] after the BabyLM checks (10-epoch cap, corpus)."""
    if axes.corpus_words <= 0:
        raise ConfigError("grid.corpus_words", "a babylm grid needs the corpus size in words (> 0)")
    if axes.word_unit <= 0:
        raise ConfigError("grid.word_unit", "a babylm grid needs the checkpoint unit in words (> 0)")
    if grid.max_epochs <= 0:
        raise ConfigError("grid.max_epochs", "must be > 0")
    name = base.corpus.name
    if name != "synthetic" and name != grid.track_corpus:
        raise ConfigError("corpus.name", f"grid {grid.name!r} trains on {grid.track_corpus or 'its BabyLM corpus'} "
                                         f"(or offline on corpus=synthetic), not on {name!r}")
    if base.train.words is not None:  # an explicit budget wins over the epochs axis
        budgets = [("train.words", float(base.train.words))]
    else:
        if not axes.epochs or any(e <= 0 for e in axes.epochs):
            raise ConfigError("grid.epochs", "a babylm grid needs positive epoch counts")
        budgets = [("grid.epochs", float(e) * axes.corpus_words) for e in axes.epochs]
    for field_name, words in budgets:
        epochs = words / axes.corpus_words
        if epochs > grid.max_epochs * (1 + 1e-9):
            raise ConfigError(field_name, f"{words:,.0f} words is {epochs:g} epochs of the {axes.corpus_words:,.0f}-word "
                                          f"corpus; BabyLM allows at most {grid.max_epochs:g} epochs "
                                          f"({grid.max_epochs * axes.corpus_words:,.0f} words)")
    return budgets


def expand_babylm(base: RunConfig, grid: GridConfig, axes: ScaleAxes) -> list[PlannedRun]:
    """One run per size x budget: the corpus cut to corpus_words, train.words = the budget,
    BabyLM's checkpoints as snapshots, the trainer's epoch guard at max_epochs (+1% for the
    rounding of windows; the BabyLM rule itself is checked here, in words)."""
    from lab.single_run import resolve

    budgets = validate_babylm(base, grid, axes)
    corpus = dataclasses.replace(base.corpus, train_words=int(round(axes.corpus_words)))
    # The warmup cap is taken of the smallest budget in words: every word is at least one token
    # (byte-level BPE splits text into words before merging), so it holds in tokens as well.
    smallest = min(words for _, words in budgets)
    planned = []
    for size, (_, words) in itertools.product(axes.sizes, budgets):
        shaped = resolve(dataclasses.replace(base, corpus=corpus,
                                             model=dataclasses.replace(base.model, params=float(size))))
        train = dataclasses.replace(base.train, words=float(words), tokens=float(words),  # tokens: id label only
                                    max_epochs=grid.max_epochs * 1.01,
                                    snapshots=babylm_checkpoints(words, axes.word_unit),
                                    warmup_tokens=grid_warmup_tokens(shaped, grid, smallest))
        cfg = dataclasses.replace(shaped, train=train)
        planned.append(PlannedRun(resolve(cfg), {
            "size": size, "quality": base.corpus.quality, "budget_tokens": None, "budget_words": words,
            "epochs": words / axes.corpus_words, "corpus_words": axes.corpus_words, "word_unit": axes.word_unit}))
    return planned
