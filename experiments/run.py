"""The lab's entry point: `python experiments/run.py [overrides...]` trains one run.

Configs live in experiments/conf (Hydra): typed schemas, YAML presets, command-line overrides.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without install

from lab.cli import compose, main_guard  # noqa: E402
from lab.config import RunConfig  # noqa: E402


def register() -> None:
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name="run_schema", node=RunConfig)


def main(argv: list[str]) -> int:
    cfg = compose("config", argv, register, RunConfig)
    from lab.single_run import run_single

    final = run_single(cfg)
    return 0 if final["status"] == "done" else 1


if __name__ == "__main__":
    main_guard(lambda: main(sys.argv[1:]))
