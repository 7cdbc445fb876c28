"""Run the fits with single-threaded OpenBLAS, restoring the previous thread counts afterwards.

scipy's L-BFGS-B calls OpenBLAS on matrices of a few rows. Threaded OpenBLAS gains nothing at that
size, and its spin-waiting worker threads compete with the main thread: measured on this 2-core
machine, 200 bootstrap refits take 0.8 s alone but 2.3 s next to one busy process (0.8 s with one
BLAS thread). This finds the OpenBLAS copies loaded in the process (numpy's and scipy's wheels
each bundle one) the way threadpoolctl does, and does nothing where it cannot (non-Linux, other
BLAS vendors).
"""
from __future__ import annotations

import ctypes
from contextlib import contextmanager
from pathlib import Path

# Symbol prefixes of OpenBLAS builds: plain, and the renamed copies in numpy/scipy wheels.
_PREFIXES = ("openblas", "scipy_openblas")
_SUFFIXES = ("", "64_")


def _openblas_controls() -> list[tuple[ctypes._CFuncPtr, ctypes._CFuncPtr]]:
    maps = Path("/proc/self/maps")
    if not maps.is_file():
        return []
    paths = sorted({line.split()[-1] for line in maps.read_text().splitlines()
                    if "openblas" in line.lower() and line.split()[-1].startswith("/")})
    controls = []
    for path in paths:
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix in _PREFIXES:
            for suffix in _SUFFIXES:
                getter = getattr(library, f"{prefix}_get_num_threads{suffix}", None)
                setter = getattr(library, f"{prefix}_set_num_threads{suffix}", None)
                if getter is not None and setter is not None:
                    controls.append((getter, setter))
    return controls


@contextmanager
def single_threaded_blas():
    controls = _openblas_controls()
    previous = [getter() for getter, _ in controls]
    for _, setter in controls:
        setter(1)
    try:
        yield
    finally:
        for (_, setter), count in zip(controls, previous):
            setter(count)
