"""The lab's entry point.

    python experiments/run.py grid=token_budget     # the main job: a grid, its fits and figures
    python experiments/run.py model.n_layers=2      # one run
    torchrun --standalone --nproc_per_node=2 experiments/run.py model.n_layers=2   # one run, data parallel
    python experiments/run.py launcher=slurm launcher.nodes=2 launcher.gpus_per_node=8   # one run, one SLURM job

Configs live in experiments/conf (Hydra): typed schemas, YAML presets, command-line overrides.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without install

from common.cli import compose, main_guard  # noqa: E402
from lab.sweep.runner import EntryConfig, base_run_config, run_grid  # noqa: E402


def register() -> None:
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name="entry_schema", node=EntryConfig)


def main(argv: list[str]) -> int:
    entry = compose("config", argv, register, EntryConfig)
    if entry.grid is not None:
        return run_grid(entry)
    from lab.config import validate_run
    from lab.distributed import process_group
    from lab.single_run import run_single

    cfg = base_run_config(entry)
    if entry.launcher.name != "local":  # one run as one submitit job (e.g. over several SLURM nodes)
        from lab.sweep.launchers import run_one

        validate_run(cfg)
        return run_one(cfg, entry.launcher)
    validate_run(cfg)  # before joining any process group: a bad config fails alone, at once
    # Under torchrun (or jax.distributed) every process runs this: one run, data parallel, and
    # rank 0 writes the files.
    with process_group(cfg.train.backend) as (rank, world, wrap):
        final = run_single(cfg, rank=rank, world=world, ddp_wrap=wrap, log=print if rank == 0 else _quiet)
    return 0 if final["status"] == "done" else 1


def _quiet(*args, **kwargs) -> None:
    pass


if __name__ == "__main__":
    main_guard(lambda: main(sys.argv[1:]))
