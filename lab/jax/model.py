"""lab/model.py's Llama in Flax NNX: RMSNorm, rotary positions, SwiGLU, grouped-query attention.

The same function as the PyTorch model (tests/lab/jax/test_jax_model.py checks the logits with
the same weights), with the same initialisation scheme (lab.model's docstring): every linear
and the embedding ~ N(0, init_std), attention ``wo`` and MLP ``w_down`` ~ N(0, init_std /
sqrt(2 * n_layers)), norm gains 1.

Layout for XLA's CPU backend: the residual stream is one (B * T, d) matrix (linear layers and
their weight gradients are then plain GEMMs), and on a CPU attention is
``blocked_causal_attention`` (no work on most of the masked triangle) instead of
``jax.nn.dot_product_attention``, which GPUs and TPUs keep. bench/RESULTS.md has the timings.

Precision follows torch's autocast: parameters and the residual stream are fp32; matmul
operands are cast to ``compute_dtype`` (bf16 on accelerators, fp32 on CPU); norm statistics,
rotary angles, the attention softmax, the logits and the loss are fp32 whatever it is.

Attribute names mirror the torch module tree (embed, blocks.i.attn.wq, ..., norm, lm_head) so
lab.jax.weights moves weights by name. Flax layouts differ: a Linear's ``kernel`` is the
transpose of torch's ``weight`` (in, out), the embedding is ``embedding``, a norm gain ``scale``.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from lab.config import ModelConfig
from lab.accounting import ffn_hidden_size  # the one width rule, shared with the torch model


def default_compute_dtype() -> jnp.dtype:
    """bf16 where matmuls run it natively (GPU, TPU), fp32 on CPU (as lab.precision.choose)."""
    return jnp.bfloat16 if jax.default_backend() in ("gpu", "tpu") else jnp.float32


class RMSNorm(nnx.Module):
    def __init__(self, dim: int, eps: float):
        self.eps = eps
        self.scale = nnx.Param(jnp.ones((dim,), jnp.float32))

    def __call__(self, x: jax.Array, out_dtype) -> jax.Array:
        # Statistics in fp32 at least: a mean of squares underflows in bf16.
        xf = x.astype(jnp.promote_types(x.dtype, jnp.float32))
        y = xf * jax.lax.rsqrt(jnp.mean(jnp.square(xf), axis=-1, keepdims=True) + self.eps)
        return (y * self.scale[...]).astype(out_dtype)


def rotary_tables(seq_len: int, head_dim: int, theta: float, dtype) -> tuple[jax.Array, jax.Array]:
    """cos and sin of position x frequency, (T, 1, hd) in the half-split layout (each half
    repeats the hd/2 frequencies). Angles in fp32, returned in the activations' dtype (as HF)."""
    inv_freq = 1.0 / (theta ** (jnp.arange(0, head_dim, 2, dtype=jnp.float32) / head_dim))
    angles = jnp.outer(jnp.arange(seq_len, dtype=jnp.float32), inv_freq)  # (T, hd/2)
    angles = jnp.concatenate((angles, angles), axis=-1)[:, None, :]  # (T, 1, hd)
    return jnp.cos(angles).astype(dtype), jnp.sin(angles).astype(dtype)


def rotate(x: jax.Array, cos: jax.Array, sin: jax.Array) -> jax.Array:
    """x (B, T, heads, hd) rotated by position: x * cos + rotate_half(x) * sin, where
    rotate_half([x1 | x2]) = [-x2 | x1] (HF's convention, so weights move without permuting)."""
    half = x.shape[-1] // 2
    rotated_half = jnp.concatenate((-x[..., half:], x[..., :half]), axis=-1)
    return x * cos + rotated_half * sin


def _linear(d_in: int, d_out: int, std: float, dtype, rngs: nnx.Rngs) -> nnx.Linear:
    # Plain normal, not truncated: torch's nn.init.normal_.
    return nnx.Linear(d_in, d_out, use_bias=False, dtype=dtype, param_dtype=jnp.float32,
                      kernel_init=nnx.initializers.normal(std), rngs=rngs)


class Attention(nnx.Module):
    """Causal grouped-query attention: query head h reads K/V head h // (n_heads / n_kv_heads)
    (transformers' repeat_kv), 1 = multi-query, n_heads = multi-head."""

    def __init__(self, cfg: ModelConfig, dtype, rngs: nnx.Rngs):
        self.n_heads, self.n_kv_heads = cfg.n_heads, cfg.n_kv_heads
        self.head_dim = cfg.d_model // cfg.n_heads
        std, residual_std = cfg.init_std, cfg.init_std / math.sqrt(2 * cfg.n_layers)
        self.wq = _linear(cfg.d_model, cfg.n_heads * self.head_dim, std, dtype, rngs)
        self.wk = _linear(cfg.d_model, cfg.n_kv_heads * self.head_dim, std, dtype, rngs)
        self.wv = _linear(cfg.d_model, cfg.n_kv_heads * self.head_dim, std, dtype, rngs)
        self.wo = _linear(cfg.n_heads * self.head_dim, cfg.d_model, residual_std, dtype, rngs)

    def __call__(self, x: jax.Array, cos: jax.Array, sin: jax.Array, batch: int) -> jax.Array:
        """x (batch * T, d), rows in (sequence, position) order -> the same shape."""
        B, T = batch, x.shape[0] // batch
        H, Hkv, hd = self.n_heads, self.n_kv_heads, self.head_dim
        q = rotate(self.wq(x).reshape(B, T, H, hd), cos, sin)
        k = rotate(self.wk(x).reshape(B, T, Hkv, hd), cos, sin)
        v = self.wv(x).reshape(B, T, Hkv, hd)
        # Chosen by the platform the step is compiled for (a CPU mesh on a GPU host is a CPU).
        # jax.nn.dot_product_attention groups query heads as (Hkv, G) like repeat_kv and takes
        # the softmax in fp32; on a GPU in bf16 it may pick cuDNN's fused kernel.
        y = jax.lax.platform_dependent(
            q, k, v, cpu=lambda q, k, v: blocked_causal_attention(q, k, v, causal_blocks(T)),
            default=lambda q, k, v: jax.nn.dot_product_attention(q, k, v, scale=hd ** -0.5, is_causal=True))
        return self.wo(y.reshape(B * T, H * hd))


def causal_blocks(seq_len: int) -> int:
    """How many query blocks the CPU attention splits a sequence into: up to 8, each of at
    least 32 positions, dividing the length (1 when nothing does)."""
    fits = [n for n in (8, 4, 2) if seq_len % n == 0 and seq_len // n >= 32]
    return fits[0] if fits else 1


def blocked_causal_attention(q: jax.Array, k: jax.Array, v: jax.Array, n_blocks: int) -> jax.Array:
    """Causal grouped-query attention, q (B, T, H, hd), k and v (B, T, Hkv, hd) -> (B, T, H, hd).

    The same function as jax.nn.dot_product_attention(is_causal=True), arranged for XLA's CPU
    backend, which has no fused attention kernel: query block i (of ``n_blocks``) is scored
    only against the keys it can see, 0 .. its end, so most of the masked triangle is never
    computed (as torch's CPU flash kernel skips it), and the G query heads that share a K/V head
    are stacked as rows of one matrix per K/V head, so no K/V copy is made (repeat_kv's
    grouping: query head h reads K/V head h // G). Scores, softmax and the mask in fp32.
    """
    B, T, H, hd = q.shape
    Hkv = k.shape[2]
    G, c = H // Hkv, T // n_blocks
    q = q.reshape(B, n_blocks, c, Hkv, G, hd).transpose(0, 3, 1, 4, 2, 5)  # (B, Hkv, blocks, G, c, hd)
    k, v = k.transpose(0, 2, 1, 3), v.transpose(0, 2, 1, 3)  # (B, Hkv, T, hd)
    blocks = []
    for i in range(n_blocks):
        seen = (i + 1) * c  # keys 0 .. seen-1 are visible to some query of this block
        rows = q[:, :, i].reshape(B, Hkv, G * c, hd)
        scores = jnp.einsum("bkrd,bksd->bkrs", rows, k[:, :, :seen],
                            preferred_element_type=jnp.float32) * hd ** -0.5
        position = i * c + jnp.tile(jnp.arange(c), G)  # each row's query position
        scores = jnp.where(position[:, None] >= jnp.arange(seen)[None, :], scores, -jnp.inf)
        weights = jax.nn.softmax(scores, axis=-1).astype(v.dtype)
        blocks.append(jnp.einsum("bkrs,bksd->bkrd", weights, v[:, :, :seen]).reshape(B, Hkv, G, c, hd))
    y = jnp.stack(blocks, axis=2)  # (B, Hkv, blocks, G, c, hd)
    return y.transpose(0, 2, 4, 1, 3, 5).reshape(B, T, H, hd)


class SwiGLU(nnx.Module):
    def __init__(self, cfg: ModelConfig, dtype, rngs: nnx.Rngs):
        hidden = ffn_hidden_size(cfg)
        residual_std = cfg.init_std / math.sqrt(2 * cfg.n_layers)
        self.w_gate = _linear(cfg.d_model, hidden, cfg.init_std, dtype, rngs)
        self.w_up = _linear(cfg.d_model, hidden, cfg.init_std, dtype, rngs)
        self.w_down = _linear(hidden, cfg.d_model, residual_std, dtype, rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.w_down(jax.nn.silu(self.w_gate(x)) * self.w_up(x))


class Block(nnx.Module):
    def __init__(self, cfg: ModelConfig, dtype, rngs: nnx.Rngs):
        self.dtype = dtype
        self.attn_norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.attn = Attention(cfg, dtype, rngs)
        self.mlp_norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.mlp = SwiGLU(cfg, dtype, rngs)

    def __call__(self, x: jax.Array, cos: jax.Array, sin: jax.Array, batch: int) -> jax.Array:
        # x is the fp32 residual stream; each branch returns compute dtype and is added in fp32,
        # as under torch's autocast.
        x = x + self.attn(self.attn_norm(x, self.dtype), cos, sin, batch)
        return x + self.mlp(self.mlp_norm(x, self.dtype))


class Llama(nnx.Module):
    def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs, compute_dtype=jnp.float32):
        self.cfg, self.dtype = cfg, compute_dtype
        # The lookup stays fp32: the residual stream it starts is fp32.
        self.embed = nnx.Embed(cfg.vocab_size, cfg.d_model, param_dtype=jnp.float32,
                               embedding_init=nnx.initializers.normal(cfg.init_std), rngs=rngs)
        self.blocks = nnx.List([Block(cfg, compute_dtype, rngs) for _ in range(cfg.n_layers)])
        self.norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        # Tied: the head reads the embedding matrix (there is no lm_head attribute at all).
        self.lm_head = None if cfg.tie_embeddings else _linear(cfg.d_model, cfg.vocab_size, cfg.init_std,
                                                              compute_dtype, rngs)

    def _flat_hidden_states(self, tokens: jax.Array) -> jax.Array:
        """tokens (B, T) int -> final normalised hidden states (B * T, d) in compute dtype.

        The residual stream is kept as one (B * T, d) matrix, reshaped to (B, T, heads, hd)
        only inside attention: XLA's CPU backend runs a linear layer and its weight gradient
        as plain GEMMs on a matrix, but pays layout copies for (B, T, d) operands (SwiGLU's
        forward and backward at the bench's shape: 19 ms flat against 43 ms in 3-D)."""
        B, T = tokens.shape
        cos, sin = rotary_tables(T, self.cfg.d_model // self.cfg.n_heads, self.cfg.rope_theta, self.dtype)
        x = self.embed(tokens.reshape(B * T))  # (B * T, d) fp32
        for block in self.blocks:
            x = block(x, cos, sin, B)
        return self.norm(x, self.dtype)

    def hidden_states(self, tokens: jax.Array) -> jax.Array:
        """tokens (B, T) int -> final normalised hidden states (B, T, d) in compute dtype."""
        return self._flat_hidden_states(tokens).reshape(*tokens.shape, -1)

    def _flat_logits(self, tokens: jax.Array) -> jax.Array:
        h = self._flat_hidden_states(tokens)
        head = self.embed.embedding[...].T if self.lm_head is None else self.lm_head.kernel[...]  # (d, V)
        return jnp.dot(h, head.astype(self.dtype), preferred_element_type=jnp.float32)

    def __call__(self, tokens: jax.Array) -> jax.Array:
        """tokens (B, T) -> logits (B, T, V) in fp32 (compute-dtype operands, fp32 result)."""
        return self._flat_logits(tokens).reshape(*tokens.shape, -1)

    def token_losses(self, tokens: jax.Array, targets: jax.Array) -> jax.Array:
        """Next-token cross-entropy of every position, (B, T) fp32 nats."""
        logits = self._flat_logits(tokens)  # (B * T, V)
        target_logit = jnp.take_along_axis(logits, targets.reshape(-1, 1), axis=-1)[:, 0]
        return (jax.nn.logsumexp(logits, axis=-1) - target_logit).reshape(tokens.shape)

    def loss(self, tokens: jax.Array, targets: jax.Array) -> jax.Array:
        """Mean next-token cross-entropy in nats (lab.model.Llama.loss)."""
        return jnp.mean(self.token_losses(tokens, targets))
