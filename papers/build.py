"""Build a paper: train the grid runs it is missing, refit, redraw every figure and table, fill in
its text, and write a manifest that ties each output file to the runs and inputs behind it.

    python papers/build.py <slug> [scale=smoke|cpu|gpu] [out_dir=DIR] [bootstrap=N] [seed=S]
                                  [OVERRIDE ...] [<grid key>.OVERRIDE ...]

<slug> is a directory papers/<slug>/ holding paper.yaml (the grids the paper draws from, with their
overrides and default scale, and its figure and table specs) and its text template. Runs live where
experiments/run.py puts them (<out_dir>/<grid>[-<scale>]/runs/<run_id>), so finished runs are
reused, whoever trained them; the paper itself goes to <out_dir>/papers/<slug>/:

    paper.md          the text with every number, table and figure filled in from this build
    fits/<grid>.json  the fits behind the numbers (analysis.report_text.fits_to_json)
    numbers.json      the values the template was filled with
    figures/          <name>.png, .pdf and .json (the numbers plotted and their run ids)
    tables/           <name>.md
    manifest.json     per figure/table: files with sha256, run ids, input sha256, code version

Any other KEY=VALUE is a Hydra override of experiments/run.py (e.g. corpus.cache_dir=...,
train.threads=1) passed to every grid; prefix it with a grid key of paper.yaml to pass it to that
grid alone (e.g. data_quality.grid.sizes=[3e4]). Bad input prints one line ``error: <field>:
<reason>`` and exits 2.
"""
from __future__ import annotations

import hashlib
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout without install

from common.cli import compose, main_guard  # noqa: E402
from common.errors import ConfigError  # noqa: E402
from lab.sweep.spec import SCALES  # noqa: E402

PAPERS_DIR = Path(__file__).resolve().parent
PAPER_KEYS = ("scale", "out_dir", "bootstrap", "seed")


@dataclass
class GridUse:
    """One grid a paper draws from: its key in paper.yaml, the grid preset, and its overrides."""
    key: str
    grid: str
    overrides: list[str]


@dataclass
class PaperSpec:
    slug: str
    directory: Path
    title: str
    text: str
    scale: str
    bootstrap: int
    seed: int
    budget: float | None
    grids: list[GridUse]
    figures: list[dict]
    tables: list[dict]
    raw: dict = field(default_factory=dict)


def available_slugs() -> list[str]:
    return sorted(p.parent.name for p in PAPERS_DIR.glob("*/paper.yaml"))


def load_spec(slug: str) -> PaperSpec:
    import yaml

    if not slug or "/" in slug or slug.startswith("."):
        raise ConfigError("slug", f"not a paper name: {slug!r}")
    directory = PAPERS_DIR / slug
    if not (directory / "paper.yaml").is_file():
        raise ConfigError("slug", f"unknown paper {slug!r}; choose one of {', '.join(available_slugs()) or 'none'}")
    raw = yaml.safe_load((directory / "paper.yaml").read_text()) or {}
    analysis = raw.get("analysis") or {}
    grids = [GridUse(key, str(use.get("grid", key)), [str(o) for o in use.get("overrides") or []])
             for key, use in (raw.get("grids") or {}).items()]
    if not grids:
        raise ConfigError("paper.yaml", f"{slug}: names no grids")
    spec = PaperSpec(slug=slug, directory=directory, title=str(raw.get("title", slug)),
                     text=str(raw.get("text", "paper.md")), scale=str(raw.get("scale", "cpu")),
                     bootstrap=int(analysis.get("bootstrap", 200)), seed=int(analysis.get("seed", 0)),
                     budget=analysis.get("budget"), grids=grids, figures=list(raw.get("figures") or []),
                     tables=list(raw.get("tables") or []), raw=raw)
    keys = {g.key for g in grids}
    for item in spec.figures + spec.tables:
        for key in item.get("grids", []):
            if key not in keys:
                raise ConfigError("paper.yaml", f"{item.get('name')} draws from unknown grid {key!r}")
    return spec


@dataclass
class BuildArgs:
    slug: str
    scale: str
    out_dir: str
    bootstrap: int
    seed: int
    common: list[str]
    per_grid: dict[str, list[str]]


def parse_args(argv: list[str]) -> tuple[PaperSpec, BuildArgs]:
    if not argv or "=" in argv[0]:
        raise ConfigError("slug", f"missing paper name: python papers/build.py <slug> [scale=...]; "
                                  f"papers: {', '.join(available_slugs())}")
    spec = load_spec(argv[0])
    values = {"scale": spec.scale, "out_dir": "runs", "bootstrap": str(spec.bootstrap), "seed": str(spec.seed)}
    common: list[str] = []
    per_grid: dict[str, list[str]] = {g.key: [] for g in spec.grids}
    for item in argv[1:]:
        if "=" not in item:
            raise ConfigError("arguments", f"expected KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        head, _, rest = key.lstrip("+~").partition(".")
        if key in PAPER_KEYS:
            values[key] = value
        elif rest and head in per_grid:
            per_grid[head].append(item.replace(f"{head}.", "", 1))
        else:
            common.append(item)
    if values["scale"] not in SCALES:
        raise ConfigError("scale", f"unknown scale {values['scale']!r}; choose one of {', '.join(SCALES)}")
    if not values["out_dir"]:
        raise ConfigError("out_dir", "must not be empty")
    numbers = {}
    for key in ("bootstrap", "seed"):
        try:
            numbers[key] = int(values[key])
        except ValueError:
            raise ConfigError(key, f"must be an integer, got {values[key]!r}") from None
        if numbers[key] < 0:
            raise ConfigError(key, f"must be >= 0, got {numbers[key]}")
    return spec, BuildArgs(slug=spec.slug, scale=values["scale"], out_dir=values["out_dir"],
                           bootstrap=numbers["bootstrap"], seed=numbers["seed"], common=common, per_grid=per_grid)


def _register() -> None:
    from hydra.core.config_store import ConfigStore

    from lab.sweep.runner import EntryConfig

    ConfigStore.instance().store(name="entry_schema", node=EntryConfig)


def compose_grids(spec: PaperSpec, args: BuildArgs) -> dict:
    """Every grid's typed entry config, expanded once to fail on bad input before any training."""
    from lab.sweep.runner import EntryConfig, base_run_config
    from lab.sweep.spec import expand

    entries = {}
    for use in spec.grids:
        overrides = [f"grid={use.grid}", f"scale={args.scale}", "grid.report=false", *use.overrides,
                     *args.common, *args.per_grid[use.key], f"out_dir={args.out_dir}"]
        entry = compose("config", overrides, _register, EntryConfig)
        expand(base_run_config(entry), entry.grid, entry.scale)
        entries[use.key] = entry
    return entries


def sha256_of(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@dataclass
class Provenance:
    """What the paper's files were made from: each grid's results.csv and the fits written from it,
    and the code version; every figure, table and the text names its share in the manifest."""
    slug: str
    tables: dict
    grid_dirs: dict[str, Path]
    fit_paths: dict[str, Path]
    version: str

    def inputs_of(self, keys: list[str]) -> dict[str, str]:
        found = {}
        for key in keys:
            found[f"{self.grid_dirs[key].name}/results.csv"] = sha256_of(self.grid_dirs[key] / "results.csv")
            found[f"papers/{self.slug}/fits/{key}.json"] = sha256_of(self.fit_paths[key])
        return found

    def run_ids_of(self, keys: list[str]) -> list[str]:
        return sorted({r for key in keys for r in self.tables[key].runs.run_ids})


def train_grids(spec: PaperSpec, args: BuildArgs) -> tuple[dict, dict[str, Path]]:
    """Every grid's entry config and directory, once the runs it was missing are trained."""
    from lab.sweep.runner import grid_dir_of, run_grid

    entries = compose_grids(spec, args)
    grid_dirs = {}
    for key, entry in entries.items():
        if run_grid(entry) != 0:
            print(f"note: grid {key} has runs that did not finish; the paper uses the finished ones", flush=True)
        grid_dirs[key] = grid_dir_of(entry)
    return entries, grid_dirs


def paper_budget(spec: PaperSpec, tables: dict) -> float:
    """One reference compute for the whole paper, so that allocations of different grids compare."""
    from analysis.pipeline import default_budget
    from analysis.table import concat_runs

    if spec.budget:
        return float(spec.budget)
    everything = concat_runs([t.runs for t in tables.values()])
    return default_budget(everything) if len(everything) else 1e12


def fit_grids(tables: dict, grid_dirs: dict[str, Path], request, out: Path) -> tuple[dict, dict, dict[str, Path]]:
    """Fit every grid and write out/fits/<key>.json; a grid too small to fit gets None and a JSON
    saying why. Returns the fits, their JSON and the JSON files, by grid key."""
    from dataclasses import replace

    from analysis.pipeline import fit_table
    from analysis.report_text import fits_to_json
    from analysis.table import InsufficientData

    fits, fit_json, fit_paths = {}, {}, {}
    for key, table in tables.items():
        table = replace(table, source=f"{grid_dirs[key].name}/results.csv")
        try:
            fits[key] = fit_table(table, request)
            fit_json[key] = fits_to_json(fits[key])
        except InsufficientData as reason:
            fits[key] = None
            fit_json[key] = {"table": table.source, "skipped": str(reason)}
        fit_paths[key] = out / "fits" / f"{key}.json"
        fit_paths[key].write_text(json.dumps(fit_json[key], indent=1, sort_keys=True) + "\n")
    return fits, fit_json, fit_paths


def start_manifest(spec: PaperSpec, args: BuildArgs, entries: dict, budget: float, sources: Provenance) -> dict:
    """The build's settings and grids; each figure, table and the text add their entry when written."""
    grids = {}
    for use in spec.grids:
        table = sources.tables[use.key]
        grids[use.key] = {"grid": entries[use.key].grid.name, "dir": sources.grid_dirs[use.key].name,
                          "overrides": [*use.overrides, *args.common, *args.per_grid[use.key]],
                          "runs": list(table.runs.run_ids), "excluded": [r.run_id for r in table.excluded]}
    return {"paper": spec.slug, "title": spec.title, "scale": args.scale, "code_version": sources.version,
            "bootstrap": args.bootstrap, "seed": args.seed, "budget": budget, "grids": grids,
            "figures": {}, "tables": {}}


def draw_figures(kinds, spec: PaperSpec, context, out: Path, manifest: dict, sources: Provenance) -> dict[str, str]:
    """Every figure of paper.yaml into out/figures; returns name -> PNG path relative to the paper."""
    figure_files: dict[str, str] = {}
    for item in spec.figures:
        name, keys = item["name"], list(item.get("grids", []))
        paths, run_ids = kinds.draw(item["kind"], name, keys, context, out / "figures")
        figure_files[name] = f"figures/{name}.png"
        manifest["figures"][name] = {
            "kind": item["kind"], "caption": item.get("caption", ""),
            "files": {f"figures/{p.name}": sha256_of(p) for p in paths},
            # A run id names a config; the same run may sit in two grids' directories (see "grids").
            "run_ids": sorted(set(run_ids)) if run_ids is not None else sources.run_ids_of(keys),
            "inputs": sources.inputs_of(keys), "code_version": sources.version}
    return figure_files


def write_tables(kinds, spec: PaperSpec, context, out: Path, manifest: dict, sources: Provenance) -> dict[str, str]:
    """Every table of paper.yaml into out/tables/<name>.md; returns name -> markdown."""
    table_text: dict[str, str] = {}
    for item in spec.tables:
        name, keys = item["name"], list(item.get("grids", []))
        text = kinds.tabulate(item["kind"], keys, context)
        path = out / "tables" / f"{name}.md"
        path.write_text(text + "\n")
        table_text[name] = text
        manifest["tables"][name] = {"kind": item["kind"], "caption": item.get("caption", ""),
                                    "files": {f"tables/{name}.md": sha256_of(path)},
                                    "run_ids": sources.run_ids_of(keys), "inputs": sources.inputs_of(keys),
                                    "code_version": sources.version}
    return table_text


def write_text(template, spec: PaperSpec, fit_json: dict, context, figure_files: dict[str, str],
               table_text: dict[str, str], out: Path, manifest: dict, sources: Provenance) -> None:
    """numbers.json and paper.md: the template filled with the fitted numbers, figures and tables."""
    numbers = template.numbers(fit_json, context)
    (out / "numbers.json").write_text(json.dumps(numbers, indent=1, sort_keys=True) + "\n")
    captions = {item["name"]: item.get("caption", "") for item in spec.figures + spec.tables}
    source = (spec.directory / spec.text).read_text()
    paper = template.fill(source, numbers, figures=figure_files, captions=captions, tables=table_text)
    (out / "paper.md").write_text(paper)
    all_keys = [u.key for u in spec.grids]
    manifest["paper_md"] = {"files": {"paper.md": sha256_of(out / "paper.md"),
                                      "numbers.json": sha256_of(out / "numbers.json")},
                            "run_ids": sources.run_ids_of(all_keys), "inputs": sources.inputs_of(all_keys),
                            "template_sha256": sha256_of(spec.directory / spec.text),
                            "code_version": sources.version}


def build(spec: PaperSpec, args: BuildArgs) -> Path:
    """Train what is missing, fit, draw, tabulate, fill the text; returns the manifest's path."""
    from analysis.pipeline import FitRequest
    from analysis.table import read_table
    from lab.runs import code_version

    sys.path.insert(0, str(PAPERS_DIR))
    import paper_kinds as kinds  # noqa: E402  (papers/paper_kinds.py: figure and table kinds)
    import paper_text as template  # noqa: E402  (papers/paper_text.py: numbers and text)

    started = time.perf_counter()
    entries, grid_dirs = train_grids(spec, args)
    tables = {key: read_table(grid_dirs[key] / "results.csv") for key in entries}
    budget = paper_budget(spec, tables)
    out = Path(args.out_dir) / "papers" / spec.slug
    for sub in ("fits", "figures", "tables"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    request = FitRequest(n_boot=args.bootstrap, seed=args.seed, budget=budget)
    fits, fit_json, fit_paths = fit_grids(tables, grid_dirs, request, out)
    context = kinds.Context(tables=tables, fits=fits, fit_json=fit_json, grid_dirs=grid_dirs, budget=budget,
                            scale=args.scale)
    sources = Provenance(spec.slug, tables, grid_dirs, fit_paths, code_version())
    manifest = start_manifest(spec, args, entries, budget, sources)
    figure_files = draw_figures(kinds, spec, context, out, manifest, sources)
    table_text = write_tables(kinds, spec, context, out, manifest, sources)
    write_text(template, spec, fit_json, context, figure_files, table_text, out, manifest, sources)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    print(f"paper: {out / 'paper.md'}  ({time.perf_counter() - started:.0f}s)")
    print(f"manifest: {out / 'manifest.json'}")
    return out / "manifest.json"


def main(argv: list[str]) -> int:
    spec, args = parse_args(argv)
    build(spec, args)
    return 0


if __name__ == "__main__":
    main_guard(lambda: main(sys.argv[1:]))
