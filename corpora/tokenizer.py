"""Byte-level BPE tokenizers trained with `tokenizers`, saved as one tokenizer.json.

Byte-level means every string is encodable (256 byte symbols are always in the vocabulary),
so the tokenizer never fails on unseen text and bits per byte are exact. The file loads in
`transformers.PreTrainedTokenizerFast(tokenizer_file=..., bos_token="<s>", eos_token="</s>",
pad_token="<pad>")`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

# Special tokens come first so their ids are the same for every vocabulary size.
PAD, BOS, EOS = "<pad>", "<s>", "</s>"
SPECIAL_TOKENS = (PAD, BOS, EOS)
BYTE_ALPHABET = 256
MIN_VOCAB = BYTE_ALPHABET + len(SPECIAL_TOKENS)


def train_bpe(texts: Iterable[str], vocab_size: int, path: Path, *, length: int | None = None,
              progress: bool = False):
    """Train a byte-level BPE on `texts` and save it to `path`; returns the Tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    if vocab_size < MIN_VOCAB:
        raise ValueError(f"vocab_size {vocab_size} < {MIN_VOCAB} (byte alphabet + specials)")
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  min_frequency=2, show_progress=progress)
    tokenizer.train_from_iterator(texts, trainer, length=length)
    tokenizer.save(str(path))
    tokenizer.encode_special_tokens = True  # as `load` gives it
    return tokenizer


def load(path: Path):
    """The tokenizer for encoding text: special-token strings in the text ("</s>" quoted on a web
    page) are plain text, never the special ids, which only we place (EOS between documents).
    The setting is not saved in tokenizer.json: every loader for encoding goes through here."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.encode_special_tokens = True
    return tokenizer


def special_ids(tokenizer) -> dict[str, int]:
    return {"pad_id": tokenizer.token_to_id(PAD), "bos_id": tokenizer.token_to_id(BOS),
            "eos_id": tokenizer.token_to_id(EOS)}


def token_dtype(vocab_size: int) -> np.dtype:
    """uint16 while every id fits, uint32 above: half the disk and page cache for small vocabs."""
    return np.dtype(np.uint16) if vocab_size <= 65536 else np.dtype(np.uint32)


def encode_documents(tokenizer, texts: Iterable[str], eos_id: int, batch: int = 2048
                     ) -> Iterator[tuple[np.ndarray, int]]:
    """(ids of one batch of documents, each followed by EOS, number of documents), in order.

    encode_batch runs in tokenizers' Rust thread pool, which is where the speed comes from.
    """
    chunk: list[str] = []
    for text in texts:
        chunk.append(text)
        if len(chunk) == batch:
            yield _encode_chunk(tokenizer, chunk, eos_id), len(chunk)
            chunk = []
    if chunk:
        yield _encode_chunk(tokenizer, chunk, eos_id), len(chunk)


def _encode_chunk(tokenizer, texts: list[str], eos_id: int) -> np.ndarray:
    encodings = tokenizer.encode_batch_fast(texts, add_special_tokens=False) \
        if hasattr(tokenizer, "encode_batch_fast") else tokenizer.encode_batch(texts, add_special_tokens=False)
    pieces = []
    for enc in encodings:
        pieces.append(np.asarray(enc.ids, dtype=np.int64))
        pieces.append(np.array([eos_id], dtype=np.int64))
    return np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int64)
