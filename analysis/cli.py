"""What the analysis command lines share."""
from __future__ import annotations

import argparse

from common.errors import ConfigError


class OneLineParser(argparse.ArgumentParser):
    """Usage errors become ConfigError so that every bad input reads the same single line."""

    def error(self, message: str):
        raise ConfigError("arguments", message)
