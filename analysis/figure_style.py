"""Deterministic matplotlib output: the same numbers give byte-identical PNG and PDF files.

No pyplot and no global backend: figures are plain ``matplotlib.figure.Figure`` objects rendered
by Agg (PNG) and the PDF backend, under a temporary rc context that fixes the font, the SVG hash
salt and the sizes. Timestamps and software strings are dropped from the file metadata.
"""
from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path

import matplotlib
from matplotlib.figure import Figure

from analysis.intervals import plain_json

STYLE = {
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "legend.fontsize": 7.5,
    "legend.framealpha": 0.9,
    "axes.grid": True,
    "grid.alpha": 0.25,
    "svg.hashsalt": "lab-analysis",
    "svg.fonttype": "path",
    "pdf.fonttype": 42,
    "savefig.dpi": 150,
    "figure.dpi": 100,
}
PNG_METADATA = {"Software": None}
PDF_METADATA = {"CreationDate": None, "ModDate": None, "Producer": None, "Creator": None}


@contextmanager
def figure_style():
    with matplotlib.rc_context(STYLE):
        yield


def new_figure(width: float = 6.4, height: float = 4.4, columns: int = 1) -> tuple[Figure, list]:
    figure = Figure(figsize=(width, height), layout="constrained")
    axes = [figure.add_subplot(1, columns, i + 1) for i in range(columns)]
    return figure, axes


def save_figure(figure: Figure, directory: Path, name: str, data: dict) -> list[Path]:
    """Write name.png, name.pdf and name.json (the exact numbers plotted and the runs behind them)."""
    directory.mkdir(parents=True, exist_ok=True)
    png, pdf, numbers = (directory / f"{name}.{suffix}" for suffix in ("png", "pdf", "json"))
    figure.savefig(png, metadata=PNG_METADATA)
    figure.savefig(pdf, metadata=PDF_METADATA)
    numbers.write_text(json.dumps(plain_json(data), indent=1, allow_nan=False) + "\n")
    return [png, pdf, numbers]

