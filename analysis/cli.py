"""What the analysis command lines share."""
from __future__ import annotations

import argparse
import sys

from analysis.table import InsufficientData
from common.errors import EXIT_BAD_INPUT, ConfigError


class OneLineParser(argparse.ArgumentParser):
    """Usage errors become ConfigError so that every bad input reads the same single line."""

    def error(self, message: str):
        raise ConfigError("arguments", message)


def bad_input(error: ConfigError | InsufficientData) -> int:
    """Print the one line a bad input gets (`error: <field>: <reason>`, or what data is missing)
    and return the exit code for it."""
    prefix = "error: not enough data: " if isinstance(error, InsufficientData) else "error: "
    print(f"{prefix}{error}", file=sys.stderr)
    return EXIT_BAD_INPUT
