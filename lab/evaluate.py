"""Score a run directory or a Hugging Face folder on minimal pairs and/or multiple-choice items.

    python -m lab.evaluate <run dir | HF dir> [--pairs FILE_OR_DIR_OR_HUB_ID] [--choices FILE.jsonl]
                           [--json] [--snapshot NAME]
"""
from __future__ import annotations

import json

import torch

from common.errors import ConfigError
from lab.choices import format_choices
from lab.scorable import quiet_transformers, score_path
from lab.scoring import format_table


def _parser():
    import argparse

    parser = argparse.ArgumentParser(prog="python -m lab.evaluate", description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a finished run directory, or a Hugging Face model folder")
    parser.add_argument("--pairs", default=None,
                        help="a JSON-lines file, a directory of them, or a datasets hub id (e.g. nyu-mll/blimp)")
    parser.add_argument("--choices", default=None,
                        help="a JSON-lines file of multiple-choice items (context, choices, answer)")
    parser.add_argument("--snapshot", default=None, help="score snapshots/NAME of a run instead of its final weights")
    parser.add_argument("--json", action="store_true", help="print the full results as JSON")
    parser.add_argument("--details", action="store_true",
                        help="with --json: every pair's and item's log-probabilities")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    parser.add_argument("--batch-size", type=int, default=64)
    return parser


def _check_settings(batch_size: int, device: str | None, pairs: str | None, choices: str | None) -> None:
    if pairs is None and choices is None:
        raise ConfigError("pairs", "give --pairs, --choices, or both")
    if batch_size < 1:
        raise ConfigError("batch_size", f"must be >= 1, got {batch_size}")
    if device not in (None, "cpu", "cuda"):
        raise ConfigError("device", f"unknown device {device!r}; choose cpu or cuda")
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device", "cuda is not available here")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    quiet_transformers()
    _check_settings(args.batch_size, args.device, args.pairs, args.choices)
    scores = score_path(args.model, pairs_source=args.pairs, choices_source=args.choices, snapshot=args.snapshot,
                        device=args.device, batch_size=args.batch_size, details=args.details)
    if args.json:  # one source: its dict as is; both: {"pairs": ..., "choices": ...}
        print(json.dumps(scores if len(scores) > 1 else next(iter(scores.values())), indent=2, sort_keys=True))
        return 0
    name = f"{args.model}{f' ({args.snapshot})' if args.snapshot else ''}"
    blocks = []
    if "pairs" in scores:
        blocks.append(f"{name} on {args.pairs}\n{format_table(scores['pairs'])}")
    if "choices" in scores:
        blocks.append(f"{name} on {args.choices}\n{format_choices(scores['choices'])}")
    print("\n\n".join(blocks))
    return 0


if __name__ == "__main__":
    from common.cli import main_guard

    main_guard(main)
