"""The quality axis of a data_quality grid: its levels, each a corpus with a label and (where one
exists) a number, one shared tokenizer and one shared held-out set.

The axis is exactly one of
  - grid.qualities: the synthetic corpus's dial (label `quality 0.5`, value the quality);
  - grid.sources: corpora side by side (label the preset name or the config's `label`, no value);
  - grid.min_scores: thresholds on one corpus's score (label `min_score>=3`, value the threshold);
  - grid.mixtures: weights of corpus=mix's parts (label `mix edu 0.3`, value the first part's share).

Shared tokenizer: the synthetic dial has one by construction (corpora.keys). Otherwise every
level's corpus.tokenizer_from names one corpus: the equal mixture of the sources, the lowest
threshold (the widest of the levels: every other is a subset of it), or the mix at equal weights;
a corpus.tokenizer_from given on the command line wins.

Shared held-out set: every level's corpus.heldout_from names the reference level, whose held-out
split becomes every level's val_clean (the split each run's validation loss is measured on),
tokenized with the shared tokenizer; each level keeps its own as val. The reference is
grid.val_level, or by default the highest level (highest value; the first source listed). The
synthetic dial keeps its clean split (textbook pages, as quality 1 holds out) unless
grid.val_level names a level.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import yaml

from common.cli import CONF_DIR
from common.errors import ConfigError
from corpora.config import CorpusConfig, corpus_from
from corpora.sources import SOURCES

AXES = ("qualities", "sources", "min_scores", "mixtures")
# What a source level takes from the command's corpus: the sizes and the tokenizer's setting, never
# what the corpus is (its name, files, filters).
_SHARED_FIELDS = ("train_words", "val_words", "pairs_per_phenomenon", "vocab_size", "seed", "cache_dir",
                  "clean", "workers")
CLEAN_SPLIT = "clean split"


@dataclass(frozen=True)
class QualityLevel:
    label: str  # e.g. "fineweb_edu", "min_score>=3", "mix edu 0.3", "quality 0.5"
    value: float | None  # the number the analysis orders levels by; None for sources
    corpus: CorpusConfig  # with the shared tokenizer and held-out set set


def chosen_axis(grid) -> str:
    """The one quality axis set on the command line (qualities, from the preset, when none is)."""
    chosen = [name for name in AXES if getattr(grid, name) is not None]
    if len(chosen) > 1:
        raise ConfigError(f"grid.{chosen[1]}", f"a data_quality grid sweeps one quality axis; "
                                               f"{' and '.join('grid.' + c for c in chosen)} are both set")
    return chosen[0] if chosen else "qualities"


def validate_axis(grid, qualities: list[float]) -> None:
    """The checks that need no corpus (lab.sweep.spec.validate_grid calls it)."""
    if grid.kind != "data_quality":
        for name in (*AXES[1:], "val_level"):
            if getattr(grid, name) is not None:
                raise ConfigError(f"grid.{name}", "applies to data_quality grids only")
        return
    axis = chosen_axis(grid)
    values = qualities if axis == "qualities" else getattr(grid, axis)
    if len(values) < 2:
        raise ConfigError(f"grid.{axis}", f"a data_quality grid needs at least two levels, got {len(values)}")
    if axis == "qualities" and any(not 0 <= q <= 1 for q in values):
        raise ConfigError("grid.qualities", "quality levels must lie in [0, 1]")
    if axis == "min_scores":
        if any(isinstance(s, bool) or not isinstance(s, (int, float)) or not math.isfinite(s) for s in values):
            raise ConfigError("grid.min_scores", f"thresholds must be numbers, got {values}")
        if len(set(map(float, values))) != len(values):
            raise ConfigError("grid.min_scores", f"thresholds must be distinct, got {values}")


def quality_levels(base: CorpusConfig, grid, qualities: list[float]) -> list[QualityLevel]:
    """The levels of a data_quality grid over the command's corpus `base`, each with the shared
    tokenizer and held-out set; ConfigError naming the grid or corpus field otherwise."""
    axis = chosen_axis(grid)
    levels = {"qualities": _quality_levels, "sources": _source_levels, "min_scores": _threshold_levels,
              "mixtures": _mixture_levels}[axis](base, grid, qualities)
    labels = [level.label for level in levels]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"grid.{axis}", f"two levels share the label {_first_repeat(labels)!r}: "
                                          "give each a distinct one")
    reference = _reference(levels, grid, axis)
    tokenizer = None if axis == "qualities" else (base.tokenizer_from or _tokenizer_corpus(levels, base, axis))
    shared = []
    for level in levels:
        corpus = dataclasses.replace(
            level.corpus, tokenizer_from=tokenizer if tokenizer is not None else level.corpus.tokenizer_from,
            heldout_from=None if reference is None else _as_spec(reference.corpus))
        shared.append(dataclasses.replace(level, corpus=corpus))
    return shared


def val_level_label(levels: list[QualityLevel], grid) -> str:
    """The label of the level every run is validated on (CLEAN_SPLIT for the synthetic default)."""
    reference = _reference(levels, grid, chosen_axis(grid))
    return CLEAN_SPLIT if reference is None else reference.label


def _quality_levels(base: CorpusConfig, grid, qualities: list[float]) -> list[QualityLevel]:
    if base.name != "synthetic":
        raise ConfigError("grid.qualities", f"the quality dial is the synthetic corpus's; over corpus={base.name} "
                                            "sweep grid.sources, grid.min_scores or grid.mixtures")
    return [QualityLevel(f"quality {q:g}", float(q), dataclasses.replace(base, quality=float(q)))
            for q in qualities]


def _source_levels(base: CorpusConfig, grid, _) -> list[QualityLevel]:
    from corpora.validate import validate_corpus_config

    shared = {name: getattr(base, name) for name in _SHARED_FIELDS}
    levels = []
    for i, item in enumerate(grid.sources):
        field_name = f"grid.sources[{i}]"
        spec, label = _source_spec(item, field_name)
        if spec.get("name") in ("synthetic", "mix", None):
            raise ConfigError(f"{field_name}.name", "a source is a real corpus (a mixture is grid.mixtures, the "
                                                    f"synthetic corpus grid.qualities), got {spec.get('name')!r}")
        corpus = corpus_from(spec, CorpusConfig(**shared), field_name)
        corpus = dataclasses.replace(corpus, **{k: v for k, v in shared.items() if k not in spec})
        try:
            validate_corpus_config(corpus)
        except ConfigError as e:  # named after the entry, not after the command's corpus
            raise ConfigError(f"{field_name}.{e.field.removeprefix('corpus.')}", e.reason) from None
        levels.append(QualityLevel(label, None, corpus))
    return levels


def _source_spec(item, field_name: str) -> tuple[dict, str]:
    """(corpus fields, label) of one grid.sources entry: a preset name or a mapping."""
    if isinstance(item, str):
        preset = CONF_DIR / "corpus" / f"{item}.yaml"
        if preset.exists():
            return dict(yaml.safe_load(preset.read_text()) or {}), item
        if item in SOURCES:
            return {"name": item}, item
        raise ConfigError(field_name, f"no corpus preset {item!r} (experiments/conf/corpus/{item}.yaml)")
    if not isinstance(item, dict):
        raise ConfigError(field_name, f"must be a corpus preset name or a corpus config, got {item!r}")
    spec = {str(k): v for k, v in item.items()}
    label = str(spec.pop("label", spec.get("name")))
    return spec, label


def _threshold_levels(base: CorpusConfig, grid, _) -> list[QualityLevel]:
    src = SOURCES.get(base.name)
    if src is None or (src.score_field is None and base.score_field is None):
        raise ConfigError("grid.min_scores", f"needs a corpus with a score field: corpus=fineweb_edu, or "
                                             f"corpus=local with corpus.score_field (got corpus={base.name})")
    if base.min_score is not None:
        raise ConfigError("corpus.min_score", "grid.min_scores sets each level's threshold: leave it unset")
    return [QualityLevel(f"min_score>={s:g}", float(s), dataclasses.replace(base, min_score=float(s)))
            for s in grid.min_scores]


def _mixture_levels(base: CorpusConfig, grid, _) -> list[QualityLevel]:
    if base.name != "mix":
        raise ConfigError("grid.mixtures", f"sweeps the weights of corpus=mix's parts (got corpus={base.name})")
    names = [str(n) for n in base.parts]
    levels = []
    for i, item in enumerate(grid.mixtures):
        weights = _mixture_weights(item, base, names, f"grid.mixtures[{i}]")
        total = sum(weights.values())
        first = weights[names[0]] / total
        label = (f"mix {names[0]} {first:.3g}" if len(names) == 2
                 else "mix " + " ".join(f"{n} {weights[n] / total:.3g}" for n in names))
        levels.append(QualityLevel(label, first, dataclasses.replace(base, weights=weights)))
    return levels


def _mixture_weights(item, base: CorpusConfig, names: list[str], field_name: str) -> dict[str, float]:
    """One level's weights: a mapping over every part, or the first part's share in [0, 1] with
    the others sharing the rest as the corpus's weights do (equally where those are all 0)."""
    if isinstance(item, dict):
        weights = {str(k): v for k, v in item.items()}
        if set(weights) != set(names):
            raise ConfigError(field_name, f"must weigh every part ({', '.join(names)}), got {', '.join(weights)}")
    elif isinstance(item, (int, float)) and not isinstance(item, bool) and 0 <= item <= 1:
        rest = {n: float(base.weights.get(n, 0)) for n in names[1:]}
        total = sum(rest.values())
        weights = {names[0]: float(item),
                   **{n: (1 - item) * (w / total if total > 0 else 1 / len(rest)) for n, w in rest.items()}}
    else:
        raise ConfigError(field_name, f"must be the first part's share in [0, 1] or a mapping of weights, got {item!r}")
    if any(isinstance(w, bool) or not isinstance(w, (int, float)) or w < 0 for w in weights.values()) \
            or sum(weights.values()) <= 0:
        raise ConfigError(field_name, f"weights must be numbers >= 0, not all 0, got {weights}")
    return {n: float(weights[n]) for n in names}


def _reference(levels: list[QualityLevel], grid, axis: str) -> QualityLevel | None:
    """The level whose held-out split validates every run (None: the synthetic clean split)."""
    if grid.val_level is None:
        if axis == "qualities":
            return None
        if axis == "sources":
            return levels[0]
        return max(levels, key=lambda level: level.value)
    wanted = str(grid.val_level)
    for level in levels:
        if level.label == wanted:
            return level
    try:
        number = float(wanted)
    except ValueError:
        number = None
    for level in levels:
        if number is not None and level.value is not None and math.isclose(level.value, number):
            return level
    raise ConfigError("grid.val_level", f"names no level: {wanted!r}; the levels are "
                                        f"{', '.join(repr(level.label) for level in levels)}")


def _tokenizer_corpus(levels: list[QualityLevel], base: CorpusConfig, axis: str) -> dict:
    """The corpus that trains the one tokenizer of a grid over real corpora (as a config)."""
    if axis == "min_scores":
        return _as_spec(min(levels, key=lambda level: level.value).corpus)
    if axis == "mixtures":
        return _as_spec(dataclasses.replace(base, weights={str(n): 1.0 for n in base.parts}))
    parts = {level.label: _as_spec(level.corpus) for level in levels}
    for spec in parts.values():  # a part carries what it is, the mix its sizes
        for name in ("train_words", "val_words", "pairs_per_phenomenon", "clean", "cache_dir", "workers"):
            spec.pop(name)
    mix = CorpusConfig(**{**{name: getattr(base, name) for name in _SHARED_FIELDS}, "clean": False},
                       name="mix", parts=parts, weights={label: 1.0 for label in parts})
    return _as_spec(mix)


def _as_spec(corpus: CorpusConfig) -> dict:
    """A corpus config as the mapping corpus.tokenizer_from / heldout_from hold (in config.json)."""
    spec = dataclasses.asdict(corpus)
    spec.pop("tokenizer_from")
    spec.pop("heldout_from")
    return spec


def _first_repeat(labels: list[str]) -> str:
    seen = set()
    for label in labels:
        if label in seen:
            return label
        seen.add(label)
    return ""
