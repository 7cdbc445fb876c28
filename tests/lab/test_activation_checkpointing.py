"""train.activation_checkpointing: blocks recomputed in the backward pass give the same loss and
gradients as blocks whose activations were kept."""
import numpy as np
import pytest
import torch

from lab.config import ModelConfig, TrainConfig
from lab.data import WindowSampler
from lab.model import Llama
from lab.plan import make_plan
from lab.precision import choose
from lab.torch_backend import build_optimizer, train_step

CFG = ModelConfig(d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=97)


def _loss_and_grads(recompute: bool, precision: str):
    torch.manual_seed(0)
    model = Llama(CFG, activation_checkpointing=recompute)
    x, y = torch.randint(0, 97, (3, 24)), torch.randint(0, 97, (3, 24))
    with choose("cpu", precision).autocast():
        loss = model(x, y)
    loss.backward()
    return loss.item(), {name: p.grad.clone() for name, p in model.named_parameters()}


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_recomputed_blocks_give_the_same_loss_and_gradients(precision):
    kept_loss, kept = _loss_and_grads(False, precision)
    recomputed_loss, recomputed = _loss_and_grads(True, precision)
    assert recomputed_loss == pytest.approx(kept_loss, abs=1e-6)
    for name, grad in kept.items():
        assert torch.allclose(recomputed[name], grad, atol=1e-6, rtol=0), name


def test_recomputation_keeps_fewer_activations():
    # What it is for: with it, the graph holds each block's input, not its every intermediate.
    def saved_bytes(recompute: bool) -> int:
        torch.manual_seed(0)
        model = Llama(CFG, activation_checkpointing=recompute)
        total = 0

        def pack(t):
            nonlocal total
            total += t.numel() * t.element_size()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            model(torch.randint(0, 97, (4, 64)), torch.randint(0, 97, (4, 64)))
        return total

    assert saved_bytes(True) < 0.5 * saved_bytes(False)


def test_a_training_step_with_recomputation_is_the_step_without():
    def steps(recompute: bool):
        torch.manual_seed(0)
        model = Llama(CFG, activation_checkpointing=recompute)
        t = TrainConfig(tokens=4 * 16 * 2, batch_size=4, micro_batch_size=2, seq_len=16, precision="fp32", warmup=0)
        sampler = WindowSampler(np.random.default_rng(0).integers(0, 97, 4096).astype(np.uint16), t.seq_len, 0)
        plan, optimizer = make_plan(t, sampler), build_optimizer(model, t, "cpu")
        out = [train_step(model, optimizer, sampler, plan, s, 1e-2, t, choose("cpu", "fp32")) for s in range(2)]
        return out, [p.detach().clone() for p in model.parameters()]

    (kept_out, kept_weights), (recomputed_out, recomputed_weights) = steps(False), steps(True)
    assert recomputed_out == pytest.approx(kept_out, abs=1e-6)
    for a, b in zip(kept_weights, recomputed_weights):
        assert torch.allclose(a, b, atol=1e-6, rtol=0)
