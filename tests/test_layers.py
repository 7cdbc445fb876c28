"""The packages stay layered: common <- corpora <- lab <- experiments/papers, analysis beside lab
on common alone, and a run id or corpus key costs no torch. Checked statically (every import
statement, lazy ones included) and at run time in fresh interpreters (what really gets loaded)."""
from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT

PROJECT = ("common", "corpora", "lab", "analysis", "experiments", "papers", "tests", "bench")
# What each package may import of the project (itself included); experiments and papers sit on
# top and may import anything, so they have no rule.
ALLOWED = {
    "common": {"common"},
    "corpora": {"common", "corpora"},
    "analysis": {"common", "analysis"},
    "lab": {"common", "corpora", "lab"},
}
# Third-party packages a layer must not import: common is imported by every entry point.
FORBIDDEN_EXTERNAL = {"common": {"torch"}}
# The one lab module that hands finished runs to analysis: the only lab -> analysis edge.
LAB_ANALYSIS_SEAM = "lab/sweep/report_step.py"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import statement in `path`, at any depth: inside
    functions, classes, conditionals and try blocks too, since a lazy import is still an edge."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            name = ".".join(base + ([node.module] if node.module else []))
            if node.module is not None:
                found.append((node.lineno, name))
            # `from pkg import x`: x may be a module itself (`from corpora import prepare`)
            found += [(node.lineno, f"{name}.{alias.name}") for alias in node.names]
    return found


def violations(package: str) -> list[str]:
    """Every import in `package` that breaks its layer rule, as 'file:line imports module'."""
    allowed = ALLOWED[package]
    external = FORBIDDEN_EXTERNAL.get(package, set())
    bad: dict[str, str] = {}  # one report per statement, naming its module
    for path in sorted((ROOT / package).rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        for line, name in imported_modules(path):
            top = name.split(".")[0]
            if top in allowed or (top not in PROJECT and top not in external):
                continue
            if package == "lab" and top == "analysis" and rel == LAB_ANALYSIS_SEAM:
                continue
            bad.setdefault(f"{rel}:{line}", name)
    return [f"{where} imports {name}" for where, name in bad.items()]


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_each_package_imports_only_the_layers_below_it(package):
    assert (ROOT / package / "__init__.py").exists()
    assert violations(package) == []


def test_no_module_imports_the_corpus_command_line():
    # `python -m corpora.prepare` runs the file as __main__; an import of it would load a second
    # copy, with its own module state, under its real name.
    importers = [f"{path.relative_to(ROOT)}:{line}" for top in PROJECT if (ROOT / top).is_dir()
                 for path in sorted((ROOT / top).rglob("*.py"))
                 for line, name in imported_modules(path) if name == "corpora.prepare"]
    assert importers == []


def test_the_import_walk_sees_lazy_and_relative_imports(tmp_path, monkeypatch):
    # The rule is only as good as the walk: an import hidden in a function, or written relative,
    # must still be found.
    pkg = tmp_path / "corpora" / "sub"
    pkg.mkdir(parents=True)
    (tmp_path / "corpora" / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "mod.py").write_text("def f():\n    if True:\n        from lab.runs import run_id\n"
                                "from .. import keys\nfrom ..config import CorpusConfig\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert imported_modules(pkg / "mod.py") == [
        (4, "corpora.keys"), (5, "corpora.config"), (5, "corpora.config.CorpusConfig"),
        (3, "lab.runs"), (3, "lab.runs.run_id")]
    assert violations("corpora") == ["corpora/sub/mod.py:3 imports lab.runs"]


def run_fresh(code: str) -> dict:
    """Run `code` in a new interpreter at the repository root; the JSON it prints last."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


LOADED_AFTER_IMPORTING = """
import importlib, json, pathlib, sys
root = pathlib.Path.cwd()
names = []
for path in sorted((root / {package!r}).rglob("*.py")):
    parts = list(path.relative_to(root).with_suffix("").parts)
    names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
for name in names:
    importlib.import_module(name)
print(json.dumps({{"imported": names, "loaded": sorted(sys.modules)}}))
"""


@pytest.mark.parametrize("package, sample, forbidden", [
    ("common", "common.cli", ("corpora", "lab", "analysis", "experiments", "papers", "torch")),
    ("corpora", "corpora.synthetic.lexicon", ("lab", "analysis", "experiments", "papers")),
])
def test_importing_a_lower_layer_loads_no_upper_one(package, sample, forbidden):
    # At run time, transitively: catches what the static walk cannot (a dependency that imports
    # the lab back, an import built from a string).
    result = run_fresh(LOADED_AFTER_IMPORTING.format(package=package))
    assert sample in result["imported"]
    loaded = [m for m in result["loaded"] if m.split(".")[0] in forbidden]
    assert loaded == []


def test_a_run_id_and_a_corpus_key_need_no_torch():
    # Planning a grid names thousands of runs and looks up their corpora; neither may pay for
    # torch (seconds to import) or the tokenizers library.
    result = run_fresh(
        "import json, sys\n"
        "from corpora.config import CorpusConfig\n"
        "from corpora.keys import content_key, corpus_key, tokenizer_key\n"
        "from lab.config import RunConfig\n"
        "from lab.runs import run_id\n"
        "keys = [run_id(RunConfig()), corpus_key(CorpusConfig()), content_key(CorpusConfig()),\n"
        "        tokenizer_key(CorpusConfig())]\n"
        "print(json.dumps({'keys': keys, 'loaded': sorted(sys.modules)}))\n")
    assert result["keys"][1] == "synthetic-q1-043367ad44a2"
    assert result["keys"][0].startswith("d") and "-q1-" in result["keys"][0]
    assert [m for m in result["loaded"] if m.split(".")[0] in ("torch", "tokenizers")] == []
