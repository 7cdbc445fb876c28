"""The optimizer of lab/torch_backend.py in optax: AdamW, clipping, and lab/schedule.py's rate.

Three details decide whether a run matches the torch one step for step
(tests/lab/jax/test_jax_train_step.py):

- weight decay on matrices only: torch_backend.build_optimizer decays every parameter with
  ``dim() >= 2`` (the embeddings and linear weights) and no 1-D one (norm gains);
- clipping as ``torch.nn.utils.clip_grad_norm_``: the gradients are scaled by
  min(1, max_norm / (norm + 1e-6)); optax.clip_by_global_norm scales by max_norm / norm. The
  gap is 1e-6 / norm relative, too small for a few AdamW steps to show (Adam all but cancels a
  uniform scale), so the test compares the transform with torch's at norms near 1e-6;
- the rate of optimizer step s (0-based) is ``lab.schedule.lr_at(s, total_steps, t)``: the
  trainer hands lr_at(step) to step ``step``, and optax's update count is 0 at the first
  update. Adam's bias correction counts from 1 in both.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lab.config import TrainConfig
from lab.schedule import lr_at

# torch.nn.utils.clip_grad_norm_ adds this to the norm before dividing.
TORCH_CLIP_EPS = 1e-6


def clip_by_global_norm_like_torch(max_norm: float) -> optax.GradientTransformation:
    """Scale the gradients by min(1, max_norm / (global norm + 1e-6)), as torch does."""

    def update(updates, state, params=None):
        del params
        norm = optax.tree.norm(updates)
        scale = jnp.minimum(1.0, max_norm / (norm + TORCH_CLIP_EPS))
        return jax.tree.map(lambda g: g * scale.astype(g.dtype), updates), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def lr_schedule(t: TrainConfig, total_steps: int) -> optax.Schedule:
    """lab.schedule.lr_at as an optax schedule of the update count (0 at the first update).

    lr_at is plain Python, so its value at every step of the run is tabulated once; a count
    past the end keeps the last rate."""
    table = jnp.asarray(np.array([lr_at(s, total_steps, t) for s in range(total_steps)], dtype=np.float32))
    return lambda count: table[jnp.minimum(count, total_steps - 1)]


def decay_mask(params):
    """True for the parameters torch_backend.build_optimizer decays: matrices (ndim >= 2)."""
    return jax.tree.map(lambda p: p.ndim >= 2, params)


def build_optimizer(t: TrainConfig, total_steps: int) -> optax.GradientTransformation:
    """Clip (when t.grad_clip > 0), then AdamW at lr_at(step) with decoupled weight decay on
    matrices. The rate each update used is kept in the state (``learning_rate(opt_state)``)."""
    # mask is static: inject_hyperparams would take any other callable for a schedule.
    adamw = optax.inject_hyperparams(optax.adamw, static_args=("mask",))(
        learning_rate=lr_schedule(t, total_steps), b1=t.beta1, b2=t.beta2,
        eps=1e-8, weight_decay=t.weight_decay, mask=decay_mask)  # eps: torch's default
    if t.grad_clip <= 0:  # torch clips at infinity: a scale of exactly 1
        return optax.chain(optax.identity(), adamw)  # same state layout: learning_rate() reads [1]
    return optax.chain(clip_by_global_norm_like_torch(t.grad_clip), adamw)


def learning_rate(opt_state) -> jax.Array:
    """The rate the last update used (the schedule's value at its count), from build_optimizer's state."""
    return opt_state[1].hyperparams["learning_rate"]
