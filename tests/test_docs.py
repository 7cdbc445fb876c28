"""The docs and the README say what the code does.

Config tables. A Markdown table whose first header cell is `field` lists config fields, one per
row (`model.d_model`, `train.lr`, `grid.eval_pairs`, `grid.scales.cpu.sizes`, ...). Its other
columns are:
  - `default`: where the default comes from is stated in the paragraph above the table, as
    either "resolved by `python experiments/run.py [OVERRIDES]`" (the config that command
    composes, checked by composing it exactly as experiments/run.py does) or "dataclass
    defaults" (the typed schema's own default);
  - a column named by overrides, such as `scale=gpu` or `launcher=slurm`: the value that
    `python experiments/run.py <those overrides>` resolves;
  - `meaning`: free text, not checked.
Every row's field must exist in the typed schema (experiments/run.py's EntryConfig) and every
value cell must equal what the code resolves. Every schema field must appear in some table.

Preset tables. A table whose first header cell is `corpus=`, `grid=`, `launcher=` or `scale=`
names, in its first column, the presets of that group: each must exist under experiments/conf,
and each preset there must be listed.

The `results.csv` column table (first header cell `column`) must list the columns the grid
writes, in order.

Commands and links. Every `python -m MODULE`, `python PATH.py` and `torchrun ... PATH.py` in the
README or the docs (fenced blocks and inline code) must name something that exists, and every
`python experiments/run.py OVERRIDES` there without placeholders must compose. Inline code that
names a repository path or a config field must name one that exists. README's relative links
must resolve, and its first two commands must be the install-and-run line and the test line.
"""
from __future__ import annotations

import dataclasses
import functools
import importlib
import importlib.util
import math
import re
import shlex
import types
import typing
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOC_PAGES = sorted((ROOT / "docs").glob("*.md"))
PAGES = [README, *DOC_PAGES]
CONF = ROOT / "experiments" / "conf"

INSTALL_AND_RUN = 'pip install -e ".[dev]" && python experiments/run.py grid=token_budget'
TEST_COMMAND = "python -m pytest -q"

PRESET_GROUPS = ("corpus", "grid", "launcher", "scale")
CONFIG_GROUPS = ("model", "train", "corpus", "grid", "launcher")
PACKAGES = ("common", "corpora", "lab", "analysis", "experiments", "papers", "bench")
TOP_DIRS = (*PACKAGES, "tests", "docs")
FILE_SUFFIXES = {"safetensors", "json", "jsonl", "md", "py", "yaml", "txt", "csv", "png", "pdf", "bin", "pt"}


# ---------------------------------------------------------------- Markdown parsing

@dataclass
class Table:
    page: Path
    line: int  # 1-based line of the header
    preamble: str  # the paragraph just above the table
    header: list[str]
    rows: list[tuple[int, list[str]]]  # (line, cells)

    def where(self, line: int | None = None) -> str:
        return f"{self.page.relative_to(ROOT)}:{line or self.line}"


def _lines_outside_fences(text: str) -> list[tuple[int, str, bool]]:
    """(line number, line, inside a fenced block) for every line."""
    out, fenced = [], False
    for number, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("```"):
            out.append((number, line, True))
            fenced = not fenced
            continue
        out.append((number, line, fenced))
    return out


def _cells(line: str) -> list[str]:
    """A table row's cells; a `|` inside backticks does not split."""
    body = line.strip()
    body = body.removeprefix("|")
    body = body.removesuffix("|")
    cells, current, in_code = [], "", False
    for ch in body:
        if ch == "`":
            in_code = not in_code
        if ch == "|" and not in_code:
            cells.append(current.strip())
            current = ""
        else:
            current += ch
    cells.append(current.strip())
    return cells


def _plain(cell: str) -> str:
    return cell.replace("`", "").strip()


def tables(page: Path) -> list[Table]:
    lines = _lines_outside_fences(page.read_text())
    found = []
    i = 0
    while i < len(lines) - 1:
        number, line, fenced = lines[i]
        separator = lines[i + 1][1].strip()
        if not fenced and line.lstrip().startswith("|") and re.fullmatch(r"\|?[\s:|-]+\|?", separator) and "-" in separator:
            # The paragraph above: skip blank lines, then take lines up to the next blank one.
            j = i - 1
            while j >= 0 and not lines[j][1].strip():
                j -= 1
            above = []
            while j >= 0 and lines[j][1].strip() and not lines[j][2]:
                above.insert(0, lines[j][1])
                j -= 1
            rows = []
            k = i + 2
            while k < len(lines) and lines[k][1].lstrip().startswith("|") and not lines[k][2]:
                rows.append((lines[k][0], _cells(lines[k][1])))
                k += 1
            found.append(Table(page, number, " ".join(above), [_plain(c) for c in _cells(line)], rows))
            i = k
        else:
            i += 1
    return found


def fenced_commands(page: Path) -> list[tuple[int, str]]:
    """Shell commands in fenced blocks: continuation lines joined, prompts and comments dropped,
    `&&` chains split. Output lines of a `console` block (no `$ ` prompt) are skipped."""
    out = []
    fence_lang = None
    pending, start = "", 0
    for number, line, fenced in _lines_outside_fences(page.read_text()):
        stripped = line.strip()
        if stripped.startswith("```"):
            fence_lang = stripped[3:].strip() if fence_lang is None else None
            continue
        if not fenced or fence_lang not in ("", "bash", "sh", "shell", "console"):
            continue
        if fence_lang == "console":
            if not stripped.startswith("$ "):
                continue
            stripped = stripped[2:]
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        command = (pending + stripped).split(" #", 1)[0].strip()
        pending = ""
        for part in command.split("&&"):
            if part.strip():
                out.append((start, part.strip()))
    return out


# ---------------------------------------------------------------- the typed schema

@functools.cache
def _entry():
    from experiments import run

    return run


@functools.cache
def composed(overrides: tuple[str, ...]):
    """The config `python experiments/run.py <overrides>` trains with, composed as its main() does."""
    from common.cli import compose

    run = _entry()
    return compose("config", list(overrides), run.register, run.EntryConfig)


def _unwrap(tp):
    """X from X | None."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def schema_lookup(path: str):
    """(owner dataclass, field name) of a dotted field path; dict-valued fields take one key
    per level (`grid.scales.cpu.sizes`). Raises LookupError for a field the schema lacks."""
    tp = _entry().EntryConfig
    parts = path.split(".")
    owner, name = None, None
    i = 0
    while i < len(parts):
        tp = _unwrap(tp)
        if dataclasses.is_dataclass(tp):
            names = {f.name for f in dataclasses.fields(tp)}
            if parts[i] not in names:
                raise LookupError(f"{path}: {tp.__name__} has no field {parts[i]!r}")
            owner, name = tp, parts[i]
            tp = typing.get_type_hints(tp)[parts[i]]
        elif typing.get_origin(tp) is dict:
            owner, name = None, None  # a key of a dict field: no dataclass default
            tp = typing.get_args(tp)[1]
        else:
            raise LookupError(f"{path}: {'.'.join(parts[:i])} is a leaf")
        i += 1
    return owner, name


def dataclass_default(path: str):
    owner, name = schema_lookup(path)
    if owner is None:
        raise LookupError(f"{path}: a key of a dict field has no dataclass default")
    return getattr(owner(), name)


def resolved(overrides: tuple[str, ...], path: str):
    node = composed(overrides)
    walked = []
    for part in path.split("."):
        if node is None:
            raise LookupError(f"{'.'.join(walked)} is null under `python experiments/run.py {' '.join(overrides)}`"
                              f" (grid fields need grid=<name>)")
        if isinstance(node, dict):
            if part not in node:
                raise LookupError(f"{path}: no key {part!r} under {'.'.join(walked)}")
            node = node[part]
        elif dataclasses.is_dataclass(node):
            if part not in {f.name for f in dataclasses.fields(node)}:
                raise LookupError(f"{path}: no field {part!r}")
            node = getattr(node, part)
        else:
            raise LookupError(f"{path}: {'.'.join(walked)} is a leaf")
        walked.append(part)
    return node


def schema_leaves() -> list[str]:
    """Every public field path; dict fields of dataclasses (grid.scales) count as one leaf."""
    leaves = []

    def walk(tp, prefix):
        hints = typing.get_type_hints(tp)
        for f in dataclasses.fields(tp):
            inner = _unwrap(hints[f.name])
            if dataclasses.is_dataclass(inner):
                walk(inner, prefix + f.name + ".")
            else:
                leaves.append(prefix + f.name)

    walk(_entry().EntryConfig, "")
    return leaves


# ---------------------------------------------------------------- values

def parse_value(text: str):
    t = _plain(text)
    low = t.lower()
    if low in ("null", "none"):
        return None
    if low in ("true", "false"):
        return low == "true"
    if t.startswith("[") and t.endswith("]"):
        inner = t[1:-1].strip()
        return [parse_value(x) for x in inner.split(",")] if inner else []
    if t.startswith("{") and t.endswith("}"):  # {key: value, ...}, flat
        inner = t[1:-1].strip()
        pairs = [item.split(":", 1) for item in inner.split(",")] if inner else []
        return {k.strip(): parse_value(v) for k, v in pairs}
    for kind in (int, float):
        try:
            return kind(t)
        except ValueError:
            pass
    if len(t) >= 2 and t[0] == t[-1] and t[0] in "\"'":
        return t[1:-1]
    return t


def same(doc, code) -> bool:
    if isinstance(doc, bool) or isinstance(code, bool):
        return isinstance(doc, bool) and isinstance(code, bool) and doc == code
    if doc is None or code is None:
        return doc is None and code is None
    if isinstance(doc, (int, float)) and isinstance(code, (int, float)):
        return math.isclose(doc, code, rel_tol=1e-9, abs_tol=0.0)
    if isinstance(doc, list) and isinstance(code, (list, tuple)):
        return len(doc) == len(code) and all(same(a, b) for a, b in zip(doc, code))
    if isinstance(doc, dict) and isinstance(code, dict):
        return doc == code
    return isinstance(doc, str) and isinstance(code, str) and doc == code


_RESOLVED = re.compile(r"resolved by `python experiments/run\.py([^`]*)`")


def default_source(table: Table) -> tuple[str, tuple[str, ...]]:
    """("resolved", overrides) or ("dataclass", ()) as the paragraph above the table states."""
    claims = [("resolved", tuple(m.group(1).split())) for m in _RESOLVED.finditer(table.preamble)]
    if "dataclass defaults" in table.preamble:
        claims.append(("dataclass", ()))
    assert len(claims) == 1, (f"{table.where()}: the paragraph above a table with a `default` column must say "
                              f"either 'resolved by `python experiments/run.py [overrides]`' or 'dataclass "
                              f"defaults', exactly once; found {claims or 'neither'}")
    return claims[0]


def config_tables() -> list[Table]:
    return [t for page in PAGES for t in tables(page) if t.header and t.header[0].lower() == "field"]


def _table_id(table: Table) -> str:
    return table.where()


# ---------------------------------------------------------------- tests: config tables

def test_docs_have_config_tables():
    found = config_tables()
    assert len(found) >= 5, f"expected the docs to list config fields in tables, found {len(found)}"
    assert sum(len(t.rows) for t in found) >= 80


@pytest.mark.parametrize("table", config_tables(), ids=_table_id)
def test_config_table_matches_the_code(table: Table):
    columns = []
    for index, name in enumerate(table.header[1:], 1):
        if name.lower() in ("meaning", "notes"):
            continue
        if name.lower() == "default":
            kind, overrides = default_source(table)
            columns.append((index, name, kind, overrides))
        elif "=" in name:
            columns.append((index, name, "resolved", tuple(name.split())))
        else:
            pytest.fail(f"{table.where()}: unknown column {name!r} (use default, meaning, or overrides like scale=gpu)")
    assert columns, f"{table.where()}: a field table without a value column"
    problems = []
    for line, cells in table.rows:
        field = _plain(cells[0])
        try:
            schema_lookup(field)
        except LookupError as e:
            problems.append(f"{table.where(line)}: {e}")
            continue
        for index, name, kind, overrides in columns:
            if index >= len(cells):
                problems.append(f"{table.where(line)}: {field}: missing {name} cell")
                continue
            doc = parse_value(cells[index])
            try:
                code = dataclass_default(field) if kind == "dataclass" else resolved(overrides, field)
            except LookupError as e:
                problems.append(f"{table.where(line)}: {e}")
                continue
            if not same(doc, code):
                source = ("the dataclass default is" if kind == "dataclass" else
                          f"`{' '.join(['python experiments/run.py', *overrides])}` resolves")
                problems.append(f"{table.where(line)}: {field}: the doc says {cells[index]} ({name}), "
                                f"{source} {code!r}")
    assert not problems, "\n".join(problems)


def test_every_config_field_is_documented():
    documented = {_plain(cells[0]) for t in config_tables() for _, cells in t.rows}
    missing = [leaf for leaf in schema_leaves()
               if leaf not in documented and not any(d.startswith(leaf + ".") for d in documented)]
    assert not missing, ("config fields with no row in any docs table (add them to the page of their area): "
                         + ", ".join(missing))


# ---------------------------------------------------------------- tests: presets and columns

def preset_tables() -> list[tuple[str, Table]]:
    out = []
    for page in PAGES:
        for t in tables(page):
            head = t.header[0] if t.header else ""
            if head.endswith("=") and head[:-1] in PRESET_GROUPS:
                out.append((head[:-1], t))
    return out


def test_preset_tables_match_experiments_conf():
    by_group: dict[str, set[str]] = {}
    problems = []
    for group, table in preset_tables():
        for line, cells in table.rows:
            names = re.findall(r"`([^`]+)`", cells[0])
            assert names, f"{table.where(line)}: name the preset in backticks"
            for name in names:
                if not (CONF / group / f"{name}.yaml").exists():
                    problems.append(f"{table.where(line)}: no preset experiments/conf/{group}/{name}.yaml")
                by_group.setdefault(group, set()).add(name)
    for group, names in by_group.items():
        on_disk = {p.stem for p in (CONF / group).glob("*.yaml")}
        for name in sorted(on_disk - names):
            problems.append(f"the docs' `{group}=` table does not list experiments/conf/{group}/{name}.yaml")
    assert {"corpus", "grid", "launcher"} <= set(by_group), f"preset tables found for {sorted(by_group)}"
    assert not problems, "\n".join(problems)


def test_results_columns_are_documented_in_order():
    from lab.sweep.results import COLUMNS

    found = [t for page in DOC_PAGES for t in tables(page) if t.header and t.header[0].lower() == "column"]
    assert len(found) == 1, f"expected one `| column | meaning |` table of results.csv, found {len(found)}"
    documented = [_plain(cells[0]) for _, cells in found[0].rows]
    assert documented == list(COLUMNS), (f"{found[0].where()}: results.csv columns differ\n"
                                         f"  docs: {documented}\n  code: {list(COLUMNS)}")


# ---------------------------------------------------------------- tests: commands, paths, links

def _module_exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _has_placeholder(text: str) -> bool:
    return any(mark in text for mark in ("<", ">", "...", "|"))


def command_problems(page: Path) -> list[str]:
    """Commands of fenced blocks, and inline code that is a command (`python bench/attention.py`)."""
    problems = []
    where = page.relative_to(ROOT)
    inline = [(line, code) for line, code in inline_code(page) if code.startswith(("python ", "torchrun "))]
    for line, command in fenced_commands(page) + inline:
        try:
            words = shlex.split(command)
        except ValueError as e:
            problems.append(f"{where}:{line}: cannot split {command!r}: {e}")
            continue
        for i, word in enumerate(words):
            if word not in ("python", "python3", "torchrun"):
                continue
            rest = words[i + 1:]
            if word != "torchrun" and rest[:1] == ["-m"]:
                module = rest[1] if len(rest) > 1 else ""
                if not _module_exists(module):
                    problems.append(f"{where}:{line}: no module {module!r} for `{command}`")
                continue
            script = next((w for w in rest if w.endswith(".py")), None)
            if script is None:
                continue
            if not (ROOT / script).is_file():
                problems.append(f"{where}:{line}: no file {script!r} for `{command}`")
                continue
            if script == "experiments/run.py":
                overrides = rest[rest.index(script) + 1:]
                if not any(_has_placeholder(o) for o in overrides):
                    from common.errors import ConfigError

                    try:
                        composed(tuple(overrides))
                    except ConfigError as e:  # the one line the user would see
                        problems.append(f"{where}:{line}: `{command}` does not compose: {e}")
    return problems


def test_readme_starts_with_the_two_commands():
    first = [c for _, c in _fenced_lines(README)][:2]
    assert first == [INSTALL_AND_RUN, TEST_COMMAND], (
        f"README's first fenced commands must be `{INSTALL_AND_RUN}` then `{TEST_COMMAND}`; found {first}")
    ci = (ROOT / ".ci" / "run").read_text()
    assert TEST_COMMAND in ci and "mkdocs build --strict" in ci, ".ci/run must build the docs and run the README's tests"


def _fenced_lines(page: Path) -> list[tuple[int, str]]:
    """Whole command lines of fenced blocks (not split at &&), comments dropped."""
    out = []
    for number, line, fenced in _lines_outside_fences(page.read_text()):
        if fenced and not line.strip().startswith("```") and line.strip():
            out.append((number, line.strip().split("  #", 1)[0].strip()))
    return out


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_fenced_commands_name_what_exists(page: Path):
    problems = command_problems(page)
    assert not problems, "\n".join(problems)


def inline_code(page: Path) -> list[tuple[int, str]]:
    out = []
    for number, line, fenced in _lines_outside_fences(page.read_text()):
        if not fenced:
            out.extend((number, m.group(1)) for m in re.finditer(r"`([^`\n]+)`", line))
    return out


_PATH = re.compile(rf"^(?:{'|'.join(TOP_DIRS)})/[\w./-]*$")
_MODULE = re.compile(rf"^(?:{'|'.join(PACKAGES)})(?:\.[a-z_][a-z0-9_]*)+$")
_FIELD = re.compile(rf"^\+?((?:{'|'.join(CONFIG_GROUPS)})\.[a-z_][a-z0-9_.]*)(?:=.*)?$")


def _module_or_attribute(dotted: str) -> bool:
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        name = ".".join(parts[:cut])
        if _module_exists(name):
            obj = importlib.import_module(name)
            for attr in parts[cut:]:
                if not hasattr(obj, attr):
                    return False
                obj = getattr(obj, attr)
            return True
    return False


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_inline_paths_modules_and_fields_exist(page: Path):
    problems = []
    where = page.relative_to(ROOT)
    for line, code in inline_code(page):
        if _PATH.match(code):
            if not (ROOT / code.rstrip("/")).exists():
                problems.append(f"{where}:{line}: no such path {code!r}")
        elif _MODULE.match(code) and code.rsplit(".", 1)[-1] not in FILE_SUFFIXES:
            if not _module_or_attribute(code):
                problems.append(f"{where}:{line}: no module or attribute {code!r}")
        elif (m := _FIELD.match(code)) and m.group(1).rsplit(".", 1)[-1] not in FILE_SUFFIXES:
            try:
                schema_lookup(m.group(1))
            except LookupError as e:
                problems.append(f"{where}:{line}: {e}")
    assert not problems, "\n".join(problems)


def readme_links() -> list[tuple[int, bool, str]]:
    """(line, is an image, target) of every relative link in README.md."""
    out = []
    for number, line, fenced in _lines_outside_fences(README.read_text()):
        if fenced:
            continue
        for m in re.finditer(r"(!?)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", line):
            target = m.group(2)
            if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
                continue  # absolute URL or an anchor of this page
            out.append((number, m.group(1) == "!", target.split("#", 1)[0]))
    return out


def test_readme_relative_links_resolve():
    links = [(line, target) for line, image, target in readme_links() if not image]
    assert links, "README.md should link into docs/"
    missing = [f"README.md:{line}: {target}" for line, target in links if not (ROOT / target).exists()]
    assert not missing, "links to missing files:\n" + "\n".join(missing)


def test_readme_images_exist():
    images = [(line, target) for line, image, target in readme_links() if image]
    missing = [f"README.md:{line}: {target}" for line, target in images if not (ROOT / target).is_file()]
    assert not missing, ("README images missing (docs/assets/headline.png is generated by "
                         "`python -m analysis.report runs/token_budget --headline docs/assets/headline.png` "
                         "after the main job):\n" + "\n".join(missing))
