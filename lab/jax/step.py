"""One jitted optimizer step over the global batch, as lab/torch_backend.train_step.

The model is split once into its static graph and its parameters (``nnx.split``); the step is a
pure function of (params, optimizer state, batch), traced and compiled once per run, with the
micro-batches of gradient accumulation as a ``jax.lax.scan`` inside it. Token losses and token
counts are summed over the micro-batches and divided once, so the loss and the gradient are the
mean over every token of the global batch (torch's train_step: the mean of equal-sized
micro-batch means).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from lab.data import WindowSampler
from lab.jax.optim import learning_rate
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
    """

    def __init__(self, graphdef: nnx.GraphDef, tx: optax.GradientTransformation):
        self.graphdef, self.tx = graphdef, tx
        self.traces = 0
        self._jitted = jax.jit(self._step, donate_argnums=(0, 1))

    def __call__(self, params, opt_state, inputs, targets):
        return self._jitted(params, opt_state, inputs, targets)

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
            return (jax.tree.map(jnp.add, grad_sum, grads), loss_sum + loss, count + n), None

        start = (jax.tree.map(jnp.zeros_like, params), jnp.zeros((), jnp.float32), jnp.zeros((), jnp.int32))
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
