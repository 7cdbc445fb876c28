"""A run directory's trained model: its recorded config, its final or snapshot weights loaded
into lab.model.Llama, and the prepared corpus it trained on."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from common.errors import ConfigError


def load_corpus(corpus_dir: str | Path):
    """The prepared corpus a run trained on (tokenizer, special ids, optional pairs)."""
    from corpora.cache import load_prepared

    try:
        return load_prepared(Path(corpus_dir))
    except ConfigError:
        raise
    except (OSError, ValueError) as e:  # missing or damaged: say which corpus, on one line
        raise ConfigError("corpus_dir", str(e).splitlines()[0] if str(e) else f"{corpus_dir} unreadable") from None


def read_run_config(run_dir: Path) -> tuple:
    """(RunConfig, the config.json dict) as recorded by lab.runs.record_start."""
    from lab.config import run_config_from_dict

    path = run_dir / "config.json"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError("run_dir", f"{run_dir} has no config.json (not a run directory?)") from None
    except (OSError, ValueError) as e:
        raise ConfigError("run_dir", f"{path} is unreadable ({e.__class__.__name__})") from None
    return run_config_from_dict(data["config"]), data


@dataclass
class RunModel:
    model: torch.nn.Module
    cfg: object  # RunConfig
    run_config: dict  # config.json
    final: dict | None  # final.json, None while the run has none
    weights: Path  # the checkpoint or snapshot directory the weights came from
    step: int
    tokens: int | None
    snapshot: str | None


def load_run_model(run_dir: str | Path, snapshot: str | None = None, *, require_done: bool = True,
                   device: str | torch.device = "cpu") -> RunModel:
    """A run's model in eval mode with its final weights, or those of snapshots/<snapshot>.

    Bad input raises ConfigError: missing run directory, no config.json, unfinished run
    (require_done, for final weights), unknown, missing or corrupt weights.
    """
    from safetensors.torch import load_file

    from lab import checkpoint
    from lab.model import Llama
    from lab.runs import read_final

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ConfigError("run_dir", f"{run_dir} does not exist")
    cfg, run_config = read_run_config(run_dir)
    final = read_final(run_dir)
    if snapshot is not None:
        path = _snapshot_dir(run_dir, snapshot)
    else:
        path = _final_checkpoint_dir(run_dir, final, require_done)
    problem = checkpoint.verify(path)
    if problem:
        raise ConfigError("snapshot" if snapshot else "run_dir", f"{path} is corrupt ({problem})")
    meta = json.loads((path / "meta.json").read_text())
    model = Llama(cfg.model)
    checkpoint.load_model_weights(model, load_file(path / "model.safetensors"))
    model.to(device).eval()
    tokens = meta.get("tokens")
    if tokens is None and final is not None and snapshot is None:
        tokens = final.get("tokens")
    return RunModel(model=model, cfg=cfg, run_config=run_config, final=final, weights=path,
                    step=int(meta["step"]), tokens=tokens, snapshot=snapshot)


def _snapshot_dir(run_dir: Path, snapshot: str) -> Path:
    from lab import checkpoint

    path = run_dir / "snapshots" / snapshot
    if not path.is_dir():
        known = [p.name for p in checkpoint.list_snapshots(run_dir)]
        raise ConfigError("snapshot", f"no snapshot {snapshot!r} in {run_dir} "
                                      f"(have: {', '.join(known) or 'none'})")
    return path


def _final_checkpoint_dir(run_dir: Path, final: dict | None, require_done: bool) -> Path:
    """checkpoints/step_<final["steps"]>, the checkpoint the trainer writes at the last step.
    It must be there: falling back to an older one would pass off earlier weights as final."""
    from lab import checkpoint

    if final is None or (require_done and final.get("status") != "done"):
        status = "no final.json" if final is None else f"status {final.get('status')!r}"
        raise ConfigError("run_dir", f"{run_dir} is not a finished run ({status})")
    if "steps" in final:
        path = run_dir / "checkpoints" / f"{checkpoint.STEP_PREFIX}{int(final['steps']):08d}"
    else:
        found = checkpoint.list_checkpoints(run_dir)
        if not found:
            raise ConfigError("run_dir", f"{run_dir} has no checkpoint")
        path = found[-1]
    if not path.is_dir():
        raise ConfigError("run_dir", f"final checkpoint {path.name} is missing")
    return path


def run_corpus_dir(run: RunModel) -> str | None:
    """Where the run's prepared corpus lives (final.json, else config.json from record_start)."""
    if run.final and run.final.get("corpus_dir"):
        return run.final["corpus_dir"]
    return run.run_config.get("corpus_dir")


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"
