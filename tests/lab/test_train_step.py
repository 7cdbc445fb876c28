"""One optimizer step: a gradient that overflows while the loss stays finite is not applied."""
import math

import numpy as np
import pytest
import torch

from lab.config import ModelConfig, TrainConfig
from lab.data import WindowSampler
from lab.model import Llama
from lab.precision import choose
from lab.plan import make_plan
from lab.torch_backend import build_optimizer, train_step


def _setup():
    torch.manual_seed(0)
    model = Llama(ModelConfig(d_model=32, n_layers=1, n_heads=2, n_kv_heads=1, vocab_size=64))
    t = TrainConfig(tokens=4 * 16 * 4, batch_size=4, seq_len=16, precision="fp32", warmup=0)
    sampler = WindowSampler(np.random.default_rng(0).integers(0, 64, 4096).astype(np.uint16), t.seq_len, 0)
    return model, t, sampler, make_plan(t, sampler), build_optimizer(model, t, "cpu"), choose("cpu", "fp32")


def test_a_finite_gradient_moves_the_weights():
    model, t, sampler, plan, optimizer, precision = _setup()
    before = [p.detach().clone() for p in model.parameters()]
    loss, grad_norm = train_step(model, optimizer, sampler, plan, 0, 1e-3, t, precision)
    assert math.isfinite(loss) and math.isfinite(grad_norm)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_an_overflowing_gradient_is_reported_and_not_applied():
    model, t, sampler, plan, optimizer, precision = _setup()
    model.norm.weight.register_hook(lambda g: g * float("inf"))  # the loss itself stays finite
    before = [p.detach().clone() for p in model.parameters()]
    loss, grad_norm = train_step(model, optimizer, sampler, plan, 0, 1e-3, t, precision)
    assert math.isfinite(loss) and not math.isfinite(grad_norm)
    for a, b in zip(before, model.parameters()):
        assert torch.equal(a, b) and torch.isfinite(b).all()
    # Skipped on the device (no wait for the norm before the update): the step is not counted.
    assert all(state["step"].item() == 0 for state in optimizer.state.values())


def test_validation_caps_rows_per_forward_and_gives_the_same_loss(monkeypatch):
    from lab import torch_backend

    model, t, sampler, plan, optimizer, precision = _setup()
    tokens = sampler.tokens[:1000]
    byte_lengths = np.ones(64, dtype=np.int64)
    whole = torch_backend.evaluate(model, tokens, byte_lengths, t, precision)
    seen = []
    original = torch_backend.eval_batches

    def recording(*args):
        for x, y in original(*args):
            seen.append(x.shape[0])
            yield x, y

    monkeypatch.setattr(torch_backend, "eval_batches", recording)
    monkeypatch.setattr(torch_backend, "EVAL_LOGIT_ELEMENTS", 2 * t.seq_len * 64)  # two rows of logits
    capped = torch_backend.evaluate(model, tokens, byte_lengths, t, precision)
    assert max(seen) == 2 and capped["tokens"] == whole["tokens"]
    assert capped["loss"] == pytest.approx(whole["loss"], rel=1e-6)


def test_a_snapshot_is_due_at_the_step_its_count_is_reached():
    # Taken later under its name it would hold more training than the name says (chck_1M).
    from lab.plan import snapshot_steps

    model, t, sampler, plan, optimizer, precision = _setup()
    counts = {"s1": 2 * plan.tokens_per_step, "s1b": 2 * plan.tokens_per_step - 1, "past": 10 * plan.tokens_per_step}
    t = TrainConfig(**{**t.__dict__, "snapshots": counts})
    assert snapshot_steps(t, plan, 1.0) == {"s1": 2, "s1b": 2, "past": plan.steps}
    words = TrainConfig(**{**t.__dict__, "tokens": None, "words": 100.0, "snapshots": {"w": 32}})
    assert snapshot_steps(words, plan, 2.0) == {"w": 1}  # 32 words = 64 tokens, one step of 64


def test_a_snapshot_already_on_disk_is_not_taken_again(tmp_path):
    # A resume that replays the snapshot's step finds it taken: retaking would rewrite it.
    from lab.config import RunConfig
    from lab.trainer import Loop

    model, t, sampler, plan, optimizer, precision = _setup()
    t = TrainConfig(**{**t.__dict__, "snapshots": {"s1": 2 * plan.tokens_per_step}})

    class Recorder:
        def __init__(self):
            self.taken = []

        def save_snapshot(self, run_dir, name, step, tokens):
            self.taken.append((name, step, tokens))

        def writer_says(self, answer):
            return answer

    backend = Recorder()
    loop = Loop(RunConfig(train=t), tmp_path, backend, plan, 1.0)
    for done in (1, 2, 3):
        loop._take_snapshots(done)
    assert backend.taken == [("s1", 2, 2 * plan.tokens_per_step)]
    (tmp_path / "snapshots" / "s1").mkdir(parents=True)
    loop._take_snapshots(2)
    assert len(backend.taken) == 1
