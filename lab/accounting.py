"""Parameter and FLOP accounting, and the size picker that turns a parameter count into a shape.

Conventions (written out because Kaplan and Chinchilla count differently):
- ``total_params``: every trainable tensor, the tied embedding counted once (Chinchilla's N).
- ``non_embedding_params``: total minus the input embedding and, when untied, minus the output
  projection (Kaplan's N); norms are included.
- ``flops_per_token`` (training, forward + backward = 3x forward):
  6 * matmul_params + 12 * n_layers * seq_len * d_model, where matmul_params are the weights
  that multiply an activation (every non-embedding matrix plus the output projection, which is
  real compute even when tied; the embedding lookup costs nothing) and the second term is the
  attention scores and weighted sum (QK^T and AV: 2 * 2 * T * d per layer forward), counted
  over the full T x T square as PaLM and nanoGPT do, without halving for the causal mask.
- ``compute_6nd``: C = 6 N D with N = ``total_params``, the lab's one definition of a run's
  compute (Kaplan's and Chinchilla's approximation): the isoflop grid sizes its runs by it and
  the analysis fits against it. ``flops_per_token`` stays the count of the work actually done
  (MFU, wall-time estimates); it is 1.1-1.2x 6N at the preset grids' shapes, the gap being attention.
"""
from __future__ import annotations

import dataclasses
import math

from common.errors import ConfigError
from lab.config import ModelConfig


def ffn_hidden_size(cfg: ModelConfig) -> int:
    if cfg.ffn_hidden is not None:
        return cfg.ffn_hidden
    # SwiGLU has three matrices, so 8/3 * d keeps the MLP at the 2-matrix 4*d cost (Llama).
    hidden = int(8 * cfg.d_model / 3)
    m = cfg.ffn_multiple_of
    return m * ((hidden + m - 1) // m)


def _layer_params(cfg: ModelConfig) -> int:
    head_dim = cfg.d_model // cfg.n_heads
    attn = cfg.d_model * head_dim * (2 * cfg.n_heads + 2 * cfg.n_kv_heads)  # q, o + k, v
    mlp = 3 * cfg.d_model * ffn_hidden_size(cfg)
    norms = 2 * cfg.d_model
    return attn + mlp + norms


def non_embedding_params(cfg: ModelConfig) -> int:
    return cfg.n_layers * _layer_params(cfg) + cfg.d_model  # + final norm


def embedding_params(cfg: ModelConfig) -> int:
    per_table = cfg.vocab_size * cfg.d_model
    return per_table if cfg.tie_embeddings else 2 * per_table


def total_params(cfg: ModelConfig) -> int:
    return non_embedding_params(cfg) + embedding_params(cfg)


def flops_per_token(cfg: ModelConfig, seq_len: int) -> float:
    norms = (2 * cfg.n_layers + 1) * cfg.d_model
    matmul_params = non_embedding_params(cfg) - norms + cfg.vocab_size * cfg.d_model
    attention = 12 * cfg.n_layers * seq_len * cfg.d_model
    return 6.0 * matmul_params + attention


def compute_6nd(cfg: ModelConfig, tokens: float) -> float:
    return 6.0 * total_params(cfg) * tokens


def training_flops(cfg: ModelConfig, seq_len: int, tokens: float) -> float:
    return flops_per_token(cfg, seq_len) * tokens


def shape_for_depth(cfg: ModelConfig, n_layers: int) -> ModelConfig:
    """The picker's one rule: d_model = aspect_ratio * n_layers, rounded up to whole heads of
    head_dim and to a head count that is a multiple of kv_group; n_kv_heads = n_heads / kv_group.

    Every size keeps the configured grouping: falling back to full multi-head attention where
    the head count was odd made neighbouring sizes of one grid mix MQA, GQA and MHA, a second
    variable along the size axis. When head_dim * kv_group divides aspect_ratio (the scale
    presets choose it so) no rounding happens and d_model / n_layers is the same at every depth."""
    heads = max(1, math.ceil(cfg.aspect_ratio * n_layers / cfg.head_dim))
    n_heads = cfg.kv_group * math.ceil(heads / cfg.kv_group)
    return dataclasses.replace(cfg, d_model=n_heads * cfg.head_dim, n_layers=n_layers, n_heads=n_heads,
                               n_kv_heads=n_heads // cfg.kv_group, params=None)


def attention_kind(cfg: ModelConfig) -> str:
    """"mha" (a key/value head per query head), else "gqa<G>" with G query heads per key/value
    head: the grouping the size picker keeps across a grid (a 2-head gqa2 model has one K/V head,
    multi-query by structure, and is still labelled by its grouping)."""
    group = cfg.n_heads // cfg.n_kv_heads
    return "mha" if group == 1 else f"gqa{group}"


def shape_for_params(cfg: ModelConfig, target: float) -> ModelConfig:
    """The depth whose shape_for_depth total parameter count is closest to target in log space."""
    if target <= 0:
        raise ConfigError("model.params", f"must be > 0, got {target}")
    for name in ("aspect_ratio", "kv_group"):
        if getattr(cfg, name) < 1:
            raise ConfigError(f"model.{name}", f"must be >= 1, got {getattr(cfg, name)}")
    best, best_gap = None, math.inf
    for depth in range(1, 97):
        shaped = shape_for_depth(cfg, depth)
        gap = abs(math.log(total_params(shaped)) - math.log(target))
        if gap < best_gap:
            best, best_gap = shaped, gap
    assert best is not None
    best = dataclasses.replace(best, params=target)  # keep the target on record
    smallest = total_params(shape_for_depth(cfg, 1))
    if target < smallest / 2:
        raise ConfigError("model.params", f"{target:.3g} is below the smallest shape "
                          f"({smallest} parameters at 1 layer with vocab {cfg.vocab_size})")
    return best


def resolve_shape(cfg: ModelConfig) -> ModelConfig:
    """Apply the size picker when a target parameter count is given."""
    return shape_for_params(cfg, cfg.params) if cfg.params is not None else cfg


def describe(cfg: ModelConfig, seq_len: int) -> dict:
    return {
        "params": total_params(cfg),
        "non_embedding_params": non_embedding_params(cfg),
        "embedding_params": embedding_params(cfg),
        "flops_per_token": flops_per_token(cfg, seq_len),
        "d_model": cfg.d_model,
        "n_layers": cfg.n_layers,
        "n_heads": cfg.n_heads,
        "n_kv_heads": cfg.n_kv_heads,
        "ffn_hidden": ffn_hidden_size(cfg),
    }
