"""Batches of token windows drawn from a prepared corpus, addressed by a sequence counter.

The training split is cut into non-overlapping windows of seq_len + 1 tokens. Epoch e visits
them in a permutation seeded by (seed, e), so the k-th sequence of a run is a pure function of
(seed, k): the data position saved in a checkpoint is one integer, and a resumed run reads
exactly the batches the uninterrupted run would have.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch


@dataclass
class WindowSampler:
    tokens: np.ndarray  # 1-D memmap of token ids
    seq_len: int
    seed: int

    @property
    def n_windows(self) -> int:
        return (len(self.tokens) - 1) // self.seq_len

    @lru_cache(maxsize=4)
    def _order(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(self.n_windows)

    def epochs_for(self, n_sequences: int) -> float:
        return n_sequences / self.n_windows

    def windows(self, first_sequence: int, count: int) -> np.ndarray:
        """Sequences first_sequence .. first_sequence+count-1 as one (count, T+1) int64 array:
        what every backend reads, so torch and JAX runs of one seed see the same batches."""
        rows = []
        for k in range(first_sequence, first_sequence + count):
            epoch, position = divmod(k, self.n_windows)
            start = int(self._order(epoch)[position]) * self.seq_len
            rows.append(self.tokens[start:start + self.seq_len + 1])
        return np.stack(rows).astype(np.int64)

    def batch(self, first_sequence: int, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        """windows() as torch (inputs, targets), each (count, T)."""
        block = torch.from_numpy(self.windows(first_sequence, count))
        return block[:, :-1], block[:, 1:]

    __hash__ = object.__hash__  # lru_cache on a method needs a hashable instance


def eval_window_range(tokens: np.ndarray, seq_len: int, max_tokens: int, rank: int = 0,
                      world: int = 1) -> range:
    """The held-out windows (by index) that process `rank` of `world` validates: a contiguous
    share of the first max_tokens' windows; shares differ by one window at most, some may be empty."""
    n = min((len(tokens) - 1) // seq_len, max(1, max_tokens // seq_len))
    return range(rank * n // world, (rank + 1) * n // world)


def eval_windows(tokens: np.ndarray, seq_len: int, max_tokens: int, batch_size: int,
                 rank: int = 0, world: int = 1):
    """The first max_tokens of a held-out split as fixed, non-overlapping windows (this rank's
    share of them, eval_window_range), in blocks of up to batch_size rows: (rows, T+1) int64 arrays."""
    share = eval_window_range(tokens, seq_len, max_tokens, rank, world)
    for first in range(share.start, share.stop, batch_size):
        rows = [tokens[i * seq_len:i * seq_len + seq_len + 1] for i in range(first, min(share.stop, first + batch_size))]
        yield np.stack(rows).astype(np.int64)


def eval_batches(tokens: np.ndarray, seq_len: int, max_tokens: int, batch_size: int,
                 rank: int = 0, world: int = 1):
    """eval_windows() as torch (inputs, targets)."""
    for block in eval_windows(tokens, seq_len, max_tokens, batch_size, rank, world):
        block = torch.from_numpy(block)
        yield block[:, :-1], block[:, 1:]


def token_byte_lengths(tokenizer_path) -> np.ndarray:
    """UTF-8 bytes each token id stands for (0 for special tokens), for exact bits per byte.

    In byte-level BPE every character of a vocabulary entry stands for exactly one byte.
    """
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_path))
    special = {t.content for t in tok.get_added_tokens_decoder().values()}
    lengths = np.zeros(tok.get_vocab_size(), dtype=np.int64)
    for token, idx in tok.get_vocab().items():
        lengths[idx] = 0 if token in special else len(token)
    return lengths
