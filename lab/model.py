"""A Llama-style decoder: RMSNorm, rotary positions, SwiGLU, grouped-query attention.

Computes the same function as ``transformers.LlamaForCausalLM`` (same rotary convention, same
norm, no biases; fp32 logits agree to ~1e-6, the order of some multiplies differs), so weights
move between the two by renaming alone (lab/hf.py).

Initialisation (``Llama.init_weights``): every linear and the embedding ~ N(0, init_std);
the two projections that write into the residual stream (attention ``wo``, MLP ``w_down``)
are scaled by 1/sqrt(2 * n_layers) so the residual variance does not grow with depth
(GPT-2's scheme); norm gains start at 1.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from lab.accounting import ffn_hidden_size
from lab.attention import causal_attention
from lab.config import ModelConfig
from lab.fused import rms_norm, rotary, swiglu
from lab.fused_loss import linear_cross_entropy
from lab.precision import active_compute_dtype


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor, apply_gain: bool = True) -> torch.Tensor:
        """apply_gain=False leaves out the gain, for a caller that folds it into the weight of the
        matmul reading the output: W @ (g * x) == (W * g) @ x, a multiply on a (out, d) weight
        instead of on every token, forward and backward."""
        # Under autocast the output only feeds matmuls: cast it once here rather than once per
        # projection that reads it. The statistics are fp32 either way.
        out_dtype = active_compute_dtype(x.device.type, x.dtype)
        return rms_norm(x, self.weight if apply_gain else None, self.eps, out_dtype)


class RotaryEmbedding(nn.Module):
    """Rotation tables for the half-split rotation (HF's ``rotate_half`` convention)."""

    def __init__(self, head_dim: int, theta: float):
        super().__init__()
        inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def forward(self, seq_len: int, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """(cos, cos) and (-sin, sin) of position x frequency, (T, 1, hd): the second carries
        rotate_half's sign, so a rotation is x * cos + swap_halves(x) * sin (lab.fused.rotary).
        Computed in fp32, returned in the activations' dtype (bf16 under autocast, as HF)."""
        t = torch.arange(seq_len, device=device, dtype=torch.float32)
        freqs = torch.outer(t, self.inv_freq.to(device))
        cos, sin = freqs.cos(), freqs.sin()
        return torch.cat((cos, cos), -1)[:, None].to(dtype), torch.cat((-sin, sin), -1)[:, None].to(dtype)


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n_heads = cfg.n_heads
        self.n_kv_heads = cfg.n_kv_heads
        self.head_dim = cfg.d_model // cfg.n_heads
        self.wq = nn.Linear(cfg.d_model, cfg.n_heads * self.head_dim, bias=False)
        self.wk = nn.Linear(cfg.d_model, cfg.n_kv_heads * self.head_dim, bias=False)
        self.wv = nn.Linear(cfg.d_model, cfg.n_kv_heads * self.head_dim, bias=False)
        self.wo = nn.Linear(cfg.n_heads * self.head_dim, cfg.d_model, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                in_gain: torch.Tensor | None = None) -> torch.Tensor:
        """in_gain: the preceding RMSNorm's gain, folded into the projection (RMSNorm.forward)."""
        B, T, _ = x.shape
        H, Hkv, hd = self.n_heads, self.n_kv_heads, self.head_dim
        # One matmul for q, k and v: their weights stay separate parameters (HF's layout).
        # 1/sqrt(hd) rides on q's weight rows: a (d, d) multiply instead of one on every query.
        weight = torch.cat((self.wq.weight * hd ** -0.5, self.wk.weight, self.wv.weight))
        if in_gain is not None:
            weight = weight * in_gain
        qk, v = F.linear(x, weight).split(((H + Hkv) * hd, Hkv * hd), dim=-1)
        # q and k rotate together: one pass over both with the same tables.
        q, k = rotary(qk.view(B, T, H + Hkv, hd), cos, sin).split((H, Hkv), dim=2)
        y = causal_attention(q, k, v.view(B, T, Hkv, hd))  # (B, T, H * hd)
        return self.wo(y)


class SwiGLU(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        hidden = ffn_hidden_size(cfg)
        self.w_gate = nn.Linear(cfg.d_model, hidden, bias=False)
        self.w_up = nn.Linear(cfg.d_model, hidden, bias=False)
        self.w_down = nn.Linear(hidden, cfg.d_model, bias=False)

    def forward(self, x: torch.Tensor, in_gain: torch.Tensor | None = None) -> torch.Tensor:
        # gate and up in one matmul, as for q/k/v.
        weight = torch.cat((self.w_gate.weight, self.w_up.weight))
        if in_gain is not None:
            weight = weight * in_gain
        return self.w_down(swiglu(F.linear(x, weight)))


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.attn_norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.attn = Attention(cfg)
        self.mlp_norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.mlp = SwiGLU(cfg)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        # The norms' gains are folded into the projections that read them (RMSNorm.forward).
        x = x + self.attn(self.attn_norm(x, apply_gain=False), cos, sin, in_gain=self.attn_norm.weight)
        return x + self.mlp(self.mlp_norm(x, apply_gain=False), in_gain=self.mlp_norm.weight)


class Llama(nn.Module):
    def __init__(self, cfg: ModelConfig, activation_checkpointing: bool = False):
        """activation_checkpointing: keep only each block's input in training and recompute the
        block in the backward pass (train.activation_checkpointing)."""
        super().__init__()
        self.cfg = cfg
        self.activation_checkpointing = activation_checkpointing
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.embed.weight
        self.rotary = RotaryEmbedding(cfg.d_model // cfg.n_heads, cfg.rope_theta)
        self.init_weights()

    @torch.no_grad()
    def init_weights(self) -> None:
        std = self.cfg.init_std
        residual_std = std / math.sqrt(2 * self.cfg.n_layers)
        for name, p in self.named_parameters():
            if name.endswith("norm.weight"):
                p.fill_(1.0)
            elif name.endswith(("attn.wo.weight", "mlp.w_down.weight")):
                nn.init.normal_(p, mean=0.0, std=residual_std)
            else:
                nn.init.normal_(p, mean=0.0, std=std)

    def hidden_states(self, idx: torch.Tensor) -> torch.Tensor:
        """idx: (B, T) -> final normalised hidden states (B, T, d), before the output projection."""
        dtype = active_compute_dtype(idx.device.type, self.embed.weight.dtype)
        cos, sin = self.rotary(idx.shape[1], idx.device, dtype)
        x = self.embed(idx)  # (B, T, d)
        recompute = self.activation_checkpointing and self.training and torch.is_grad_enabled()
        for block in self.blocks:
            # Non-reentrant checkpointing: works with FSDP's hooks, torch.compile, and inputs
            # that need no gradient; the recomputation gives bit-identical activations.
            x = checkpoint(block, x, cos, sin, use_reentrant=False) if recompute else block(x, cos, sin)
        return self.norm(x)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
        """idx: (B, T) token ids -> logits (B, T, V); with targets (B, T), the mean next-token
        cross-entropy in nats instead, computed without materialising the logits."""
        h = self.hidden_states(idx)
        if targets is None:
            return self.lm_head(h)
        return linear_cross_entropy(h.reshape(-1, h.size(-1)), self.lm_head.weight, targets.reshape(-1))

    def loss(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self(idx, targets)
