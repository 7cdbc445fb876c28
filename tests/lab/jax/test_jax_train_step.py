"""The jitted JAX step against lab/torch_backend's train_step and AdamW: same losses, same weights.

Both start from the same weights and read the same batches (the same WindowSampler calls); the
torch side is the real train_step and build_optimizer, driven as lab.trainer drives them
(lr_at(step) at step `step`). Warmup makes the first two rates differ, so an off-by-one schedule
moves every weight; a low clip threshold makes every step clip.
"""
import math

import numpy as np
import pytest

jax = pytest.importorskip("jax")

import jax.numpy as jnp
import optax
import torch
from flax import nnx

from lab.config import ModelConfig, TrainConfig
from lab.data import WindowSampler
from lab.jax.model import Llama
from lab.jax.optim import build_optimizer, clip_by_global_norm_like_torch, decay_mask
from lab.jax.step import TrainStep, micro_batches, split_model
from lab.jax.weights import from_torch_state_dict, to_torch_state_dict
from lab.model import Llama as TorchLlama
from lab.plan import make_plan
from lab.precision import choose
from lab.schedule import lr_at
from lab.torch_backend import build_optimizer as torch_optimizer
from lab.torch_backend import train_step

STEPS = 4


def setup(tie: bool, n_kv_heads: int, grad_clip: float = 0.5):
    cfg = ModelConfig(d_model=32, n_layers=2, n_heads=4, n_kv_heads=n_kv_heads, vocab_size=64,
                      tie_embeddings=tie, init_std=0.05)
    # 4 sequences a step in 2 micro-batches of 2; warmup of 2 steps, then cosine to 10%.
    t = TrainConfig(tokens=STEPS * 4 * 16, batch_size=4, micro_batch_size=2, seq_len=16, lr=1e-2, warmup=2,
                    schedule="cosine", weight_decay=0.1, grad_clip=grad_clip, precision="fp32")
    sampler = WindowSampler(np.random.default_rng(0).integers(0, 64, 4096).astype(np.uint16), t.seq_len, 0)
    return cfg, t, sampler, make_plan(t, sampler)


def run_torch(cfg, t, sampler, plan):
    torch.manual_seed(0)
    model = TorchLlama(cfg)
    initial = {k: v.detach().clone() for k, v in model.state_dict().items()}
    optimizer = torch_optimizer(model, t, "cpu")
    precision = choose("cpu", "fp32")
    losses, norms = [], []
    for step in range(plan.steps):
        loss, norm = train_step(model, optimizer, sampler, plan, step, lr_at(step, plan.steps, t), t, precision)
        losses.append(loss)
        norms.append(norm)
    final = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    return initial, losses, norms, final


def run_jax(cfg, t, sampler, plan, initial):
    model = from_torch_state_dict(cfg, initial)
    graphdef, params = split_model(model)
    tx = build_optimizer(t, plan.steps)
    opt_state = tx.init(params)
    step_fn = TrainStep(graphdef, tx)
    history = []
    for step in range(plan.steps):
        inputs, targets = micro_batches(sampler, plan, step, t.batch_size)
        params, opt_state, metrics = step_fn(params, opt_state, jnp.asarray(inputs), jnp.asarray(targets))
        history.append({k: float(v) for k, v in metrics.items()})
    nnx.update(model, params)
    return history, to_torch_state_dict(model), step_fn


@pytest.fixture(scope="module", params=[(True, 2), (False, 1)], ids=["tied-gqa", "untied-mqa"])
def both_runs(request):
    """(config, torch run, JAX run) from the same initial weights; one compile per shape."""
    cfg, t, sampler, plan = setup(*request.param)
    torch_run = run_torch(cfg, t, sampler, plan)
    return (t, plan), torch_run, run_jax(cfg, t, sampler, plan, torch_run[0])


def test_steps_match_torch_train_step(both_runs):
    (t, plan), (initial, torch_losses, torch_norms, torch_final), (history, jax_final, _) = both_runs
    assert plan.steps == STEPS and plan.accumulation == 2
    assert all(norm > t.grad_clip for norm in torch_norms)  # every step exercised the clip
    for step, row in enumerate(history):
        assert row["lr"] == pytest.approx(lr_at(step, plan.steps, t), rel=1e-6)
        assert row["loss"] == pytest.approx(torch_losses[step], rel=1e-5)
        assert row["grad_norm"] == pytest.approx(torch_norms[step], rel=1e-5)
    assert set(jax_final) <= set(torch_final) and set(torch_final) - set(jax_final) <= {"lm_head.weight"}
    for name, value in jax_final.items():
        moved = np.abs(torch_final[name] - initial[name].numpy()).max()
        assert moved > 1e-3, name  # every weight trained, so a match is not a match of initial weights
        assert np.abs(value - torch_final[name]).max() <= 1e-5 * max(1.0, np.abs(torch_final[name]).max()), name


def test_one_trace_over_several_steps(both_runs):
    history, _, step_fn = both_runs[2]
    assert len(history) == STEPS > 1 and step_fn.traces == 1
    assert all(math.isfinite(row["loss"]) for row in history)


@jax.custom_vjp
def infinite_gradient(x):
    return x


infinite_gradient.defvjp(lambda x: (x, None), lambda _, g: (g * jnp.inf,))


class PoisonedStep(TrainStep):
    """The final norm's gain gets an infinite gradient while the loss stays finite (as
    tests/lab/test_train_step.py's hook does on the torch side)."""

    def _token_loss_sum(self, params, inputs, targets):
        params = jax.tree_util.tree_map_with_path(
            lambda path, p: infinite_gradient(p) if path[0].key == "norm" else p, params)
        return super()._token_loss_sum(params, inputs, targets)


def test_an_overflowing_gradient_is_reported_and_not_applied():
    cfg, t, sampler, plan = setup(True, 2)
    torch.manual_seed(0)
    graphdef, params = split_model(from_torch_state_dict(cfg, TorchLlama(cfg).state_dict()))
    tx = build_optimizer(t, plan.steps)
    opt_state = tx.init(params)
    before = [np.array(leaf) for leaf in jax.tree.leaves((params, opt_state))]
    inputs, targets = micro_batches(sampler, plan, 0, t.batch_size)
    params, opt_state, metrics = PoisonedStep(graphdef, tx)(params, opt_state, inputs, targets)
    assert math.isfinite(float(metrics["loss"])) and not math.isfinite(float(metrics["grad_norm"]))
    after = jax.tree.leaves((params, opt_state))
    assert len(after) == len(before) and all(np.array_equal(a, b) for a, b in zip(after, before))


def test_clip_matches_torch_where_its_epsilon_matters():
    # At a norm near 1e-6 torch's norm + 1e-6 halves the scale; optax's own clip would not.
    grads = [np.full((3, 2), 4e-7, np.float32), np.full((5,), -2e-7, np.float32)]
    max_norm = 5e-7
    tensors = [torch.zeros_like(torch.from_numpy(g), requires_grad=True) for g in grads]
    for tensor, g in zip(tensors, grads):
        tensor.grad = torch.from_numpy(g.copy())
    torch.nn.utils.clip_grad_norm_(tensors, max_norm)
    ours, _ = clip_by_global_norm_like_torch(max_norm).update([jnp.asarray(g) for g in grads], optax.EmptyState())
    plain, _ = optax.clip_by_global_norm(max_norm).update([jnp.asarray(g) for g in grads], optax.EmptyState())
    for tensor, mine, theirs in zip(tensors, ours, plain):
        np.testing.assert_allclose(np.asarray(mine), tensor.grad.numpy(), rtol=1e-6)
        assert not np.allclose(np.asarray(theirs), tensor.grad.numpy(), rtol=1e-2)


def test_decay_covers_exactly_the_parameters_torch_decays():
    cfg, t, _, _ = setup(False, 2)
    torch.manual_seed(0)
    reference = TorchLlama(cfg)
    decayed_tensors = {id(p) for p in torch_optimizer(reference, t, "cpu").param_groups[0]["params"]}
    torch_decayed = {name for name, p in reference.named_parameters() if id(p) in decayed_tensors}
    model = nnx.eval_shape(lambda: Llama(cfg, rngs=nnx.Rngs(0)))  # the mask needs shapes only
    mask = to_torch_state_dict_of(decay_mask(nnx.state(model, nnx.Param)))
    assert {name for name, decayed in mask.items() if decayed} == torch_decayed
    assert {name for name, decayed in mask.items() if not decayed} == {
        name for name, _ in reference.named_parameters()} - torch_decayed


def to_torch_state_dict_of(tree) -> dict:
    """A State of per-parameter flags, keyed by torch name."""
    from lab.jax.weights import torch_name

    return {torch_name(path)[0]: bool(v.get_value()) for path, v in nnx.to_flat_state(tree)}
