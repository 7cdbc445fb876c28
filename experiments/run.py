"""The lab's entry point.

    python experiments/run.py grid=token_budget     # the main job: a grid, its fits and figures
    python experiments/run.py model.n_layers=2      # one run

Configs live in experiments/conf (Hydra): typed schemas, YAML presets, command-line overrides.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without install

from lab.cli import compose, main_guard  # noqa: E402
from lab.sweep.runner import EntryConfig, base_run_config, run_grid  # noqa: E402


def register() -> None:
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name="entry_schema", node=EntryConfig)


def main(argv: list[str]) -> int:
    entry = compose("config", argv, register, EntryConfig)
    if entry.grid is not None:
        return run_grid(entry)
    from lab.single_run import run_single

    final = run_single(base_run_config(entry))
    return 0 if final["status"] == "done" else 1


if __name__ == "__main__":
    main_guard(lambda: main(sys.argv[1:]))
