"""Seed derivation and fast weighted choice: the two random primitives of the generator."""
from __future__ import annotations

import bisect
import hashlib
import itertools
import random
from typing import Generic, Sequence, TypeVar

T = TypeVar("T")

_MASK64 = (1 << 64) - 1


def mix_seed(*parts: int) -> int:
    """A 64-bit seed from integers (SplitMix64 finaliser over each part).

    Stable across processes and Python versions, unlike ``hash()``, so document ``i`` of a
    split gets the same random stream whichever worker makes it.
    """
    state = 0x9E3779B97F4A7C15
    for part in parts:
        state = (state ^ (part & _MASK64)) & _MASK64
        state = (state + 0x9E3779B97F4A7C15) & _MASK64
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
        state = z ^ (z >> 31)
    return state


def stable_code(name: str) -> int:
    """A 64-bit integer for a name ("train", "pairs"), the same in every process."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "little")


class ZipfChoice(Generic[T]):
    """Pick from `items` with weight 1 / (rank + offset) ** exponent.

    Natural text draws each word class from a Zipf-like law; the offset flattens the head so
    the single most common item does not swamp its class. Sampling is one bisect.
    """

    def __init__(self, items: Sequence[T], exponent: float = 1.0, offset: float = 2.0):
        if not items:
            raise ValueError("ZipfChoice needs at least one item")
        self.items = tuple(items)
        weights = [1.0 / (rank + offset) ** exponent for rank in range(len(self.items))]
        self._cumulative = list(itertools.accumulate(weights))
        self._total = self._cumulative[-1]

    def __call__(self, rng: random.Random) -> T:
        index = bisect.bisect_right(self._cumulative, rng.random() * self._total)
        return self.items[min(index, len(self.items) - 1)]

    def __len__(self) -> int:
        return len(self.items)


class WeightedChoice(Generic[T]):
    """Pick from explicit (item, weight) pairs, e.g. the mix of sentence types."""

    def __init__(self, weighted: Sequence[tuple[T, float]]):
        self.items = tuple(item for item, _ in weighted)
        self._cumulative = list(itertools.accumulate(weight for _, weight in weighted))
        self._total = self._cumulative[-1]

    def __call__(self, rng: random.Random) -> T:
        index = bisect.bisect_right(self._cumulative, rng.random() * self._total)
        return self.items[min(index, len(self.items) - 1)]
