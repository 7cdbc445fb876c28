"""One jitted optimizer step over the global batch, as lab/torch_backend.train_step.

The model is split once into its static graph and its parameters (``nnx.split``); the step is a
pure function of (params, optimizer state, batch), traced and compiled once per run, with the
micro-batches of gradient accumulation as a ``jax.lax.scan`` inside it. Token losses and token
counts are summed over the micro-batches and divided once, so the loss and the gradient are the
mean over every token of the global batch (torch's train_step: the mean of equal-sized
micro-batch means).

Over a device mesh (lab.jax.sharding), the same step is jitted with explicit shardings: the
parameters and optimizer state in and out as the FSDP rule places them (donated), the batch
split over the mesh, the metrics replicated; the accumulated gradients are constrained to
their parameters' shardings, so each device sums only its shard of them over the micro-batches.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from lab.jax.optim import learning_rate

if TYPE_CHECKING:  # annotations only: lab.data and lab.plan import torch, the step needs none
    from lab.data import WindowSampler
    from lab.plan import Plan


def split_model(model: nnx.Module) -> tuple[nnx.GraphDef, nnx.State]:
    """(graph, parameters): the parameters are all of the model's state (it has no buffers)."""
    return nnx.split(model, nnx.Param)


def micro_batches(sampler: WindowSampler, plan: Plan, step: int, batch_size: int,
                  rank: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The sequences torch_backend.train_step reads at `step`, as (inputs, targets), each
    (accumulation, micro_batch, T) int32: the same sampler calls in the same order."""
    first = step * batch_size + rank * plan.micro_batch * plan.accumulation
    pairs = [sampler.batch(first + i * plan.micro_batch, plan.micro_batch) for i in range(plan.accumulation)]
    inputs = np.stack([x.numpy() for x, _ in pairs]).astype(np.int32)
    targets = np.stack([y.numpy() for _, y in pairs]).astype(np.int32)
    return inputs, targets


class TrainStep:
    """``step(params, opt_state, inputs, targets) -> (params, opt_state, metrics)``, jitted.

    inputs/targets: (accumulation, micro_batch, T) token ids. metrics: ``loss`` (mean nats per
    token), ``grad_norm`` (global, before clipping) and ``lr`` (the rate the update used, from
    the optimizer's schedule: a caller driven by lab.trainer can check it against lr_at).
    params and opt_state are donated: the caller keeps only the returned ones. ``traces``
    counts how often JAX traced the step (once per run unless a shape or dtype changes).

    With a ``mesh`` (lab.jax.sharding.make_mesh) the step is jitted with explicit in and out
    shardings: ``param_shardings`` and ``opt_shardings`` (default: lab.jax.sharding's FSDP
    rule, from the first call's arguments), the batch as ``batch_sharding``, the metrics
    replicated. The arguments should already be placed so (place_params, init_opt_state,
    place_batch); across processes they must be.
    """

    def __init__(self, graphdef: nnx.GraphDef, tx: optax.GradientTransformation, mesh=None,
                 param_shardings=None, opt_shardings=None):
        self.graphdef, self.tx = graphdef, tx
        self.traces = 0
        self.mesh, self.param_shardings, self.opt_shardings = mesh, param_shardings, opt_shardings
        # With a mesh the jit waits for the first call when shardings must come from its arguments.
        self._jitted = jax.jit(self._step, donate_argnums=(0, 1)) if mesh is None else None

    def __call__(self, params, opt_state, inputs, targets):
        if self._jitted is None:
            self._jitted = self._sharded_jit(params, opt_state)
        return self._jitted(params, opt_state, inputs, targets)

    def _sharded_jit(self, params, opt_state):
        from lab.jax import sharding

        if self.param_shardings is None:
            self.param_shardings = sharding.param_sharding(self.mesh, params)
        if self.opt_shardings is None:
            self.opt_shardings = jax.tree.map(lambda x: sharding.sharding_for(self.mesh, x.shape), opt_state)
        batch = sharding.batch_sharding(self.mesh)
        return jax.jit(self._step, donate_argnums=(0, 1),
                       in_shardings=(self.param_shardings, self.opt_shardings, batch, batch),
                       out_shardings=(self.param_shardings, self.opt_shardings, sharding.replicated(self.mesh)))

    def _as_params(self, grads):
        """Gradients constrained to their parameters' shardings (identity without a mesh)."""
        if self.mesh is None:
            return grads
        return jax.lax.with_sharding_constraint(grads, self.param_shardings)

    def _token_loss_sum(self, params, inputs, targets):
        model = nnx.merge(self.graphdef, params)
        losses = model.token_losses(inputs, targets)  # (micro, T) fp32
        # The count is where a padding mask would enter; with none it is every target.
        return jnp.sum(losses), jnp.asarray(losses.size, jnp.int32)

    def _gradients(self, params, inputs, targets):
        """Summed over the micro-batches, then divided once by the token count."""
        grad_fn = jax.value_and_grad(self._token_loss_sum, has_aux=True)

        def accumulate(carry, batch):
            grad_sum, loss_sum, count = carry
            (loss, n), grads = grad_fn(params, *batch)
            return (jax.tree.map(jnp.add, grad_sum, self._as_params(grads)), loss_sum + loss, count + n), None

        zeros = self._as_params(jax.tree.map(jnp.zeros_like, params))
        start = (zeros, jnp.zeros((), jnp.float32), jnp.zeros((), jnp.int32))
        (grad_sum, loss_sum, count), _ = jax.lax.scan(accumulate, start, (inputs, targets))
        count = count.astype(jnp.float32)
        return loss_sum / count, jax.tree.map(lambda g: g / count, grad_sum)

    def _step(self, params, opt_state, inputs, targets):
        self.traces += 1  # Python runs this body only while tracing
        loss, grads = self._gradients(params, inputs, targets)
        grad_norm = optax.tree.norm(grads)
        updates, new_opt_state = self.tx.update(grads, opt_state, params)
        new_params = optax.apply_updates(params, updates)
        # As torch's train_step: a non-finite gradient norm skips the update (the loop then
        # records the run as diverged) instead of writing NaN into every weight and moment.
        finite = jnp.isfinite(grad_norm)
        keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(finite, a, b), new, old)
        metrics = {"loss": loss, "grad_norm": grad_norm, "lr": learning_rate(new_opt_state)}
        return keep(new_params, params), keep(new_opt_state, opt_state), metrics
