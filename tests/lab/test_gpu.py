"""Checks that mean something only on a GPU: run by `bench/gpu_check.sh` (`pytest -m gpu`), skipped
without CUDA. `bash bench/gpu_check.sh --dry-run` runs them on the CPU (LAB_GPU_TESTS_ON_CPU=1),
so their code is exercised everywhere; the CUDA-only memory probe is skipped there."""
import os

import pytest
import torch

from lab.config import ModelConfig, TrainConfig
from lab.fused_loss import linear_cross_entropy
from lab.model import Llama
from lab.precision import choose

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def device() -> str:
    if torch.cuda.is_available():
        return "cuda"
    if os.environ.get("LAB_GPU_TESTS_ON_CPU") == "1":
        return "cpu"
    pytest.skip("needs a CUDA device (bench/gpu_check.sh runs these on one)")


def _reference_loss_and_grads(hidden, weight, targets):
    """Cross-entropy of hidden @ weight.T in float64 on the CPU: the independent reference."""
    h = hidden.detach().cpu().double().requires_grad_()
    w = weight.detach().cpu().double().requires_grad_()
    loss = torch.nn.functional.cross_entropy(h @ w.T, targets.cpu())
    loss.backward()
    return loss.item(), h.grad, w.grad


@pytest.mark.parametrize("dtype,tolerance", [(torch.float32, 1e-5), (torch.bfloat16, 2e-2)])
def test_the_fused_loss_matches_a_float64_reference_on_the_device(device, dtype, tolerance):
    torch.manual_seed(0)
    # More rows than one GPU chunk would hold at a small vocabulary: several chunks are summed.
    rows, width, vocab = 3000, 64, 1000
    hidden = (torch.randn(rows, width, device=device) / 4).to(dtype).requires_grad_()
    weight = (torch.randn(vocab, width, device=device) / 4).to(dtype).requires_grad_()
    targets = torch.randint(0, vocab, (rows,), device=device)
    loss = linear_cross_entropy(hidden, weight, targets, chunk=1024)
    loss.backward()
    expected, grad_hidden, grad_weight = _reference_loss_and_grads(hidden, weight, targets)
    assert loss.item() == pytest.approx(expected, rel=tolerance)
    scale = grad_weight.abs().max().item()
    assert (weight.grad.cpu().double() - grad_weight).abs().max().item() <= tolerance * scale * 10
    assert (hidden.grad.cpu().double() - grad_hidden).abs().max().item() <= tolerance * grad_hidden.abs().max().item() * 10


def test_bf16_training_follows_fp32(device):
    # Twenty AdamW steps on the same batches from the same weights: bf16 autocast tracks fp32.
    from lab.data import WindowSampler
    from lab.plan import make_plan
    from lab.torch_backend import build_optimizer, train_step

    cfg = ModelConfig(d_model=64, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=512)
    t = TrainConfig(batch_size=8, seq_len=64, tokens=8 * 64 * 20, lr=3e-3)
    # A text whose next token follows from the last one (a walk through the vocabulary in steps
    # of 7, restarted at random points): learnable within twenty steps.
    rng = torch.Generator().manual_seed(1)
    starts = torch.randint(0, 512, (200,), generator=rng)
    tokens = ((starts[:, None] + 7 * torch.arange(100)[None, :]) % 512).reshape(-1).numpy()
    losses = {}
    for precision in ("fp32", "bf16"):
        p = choose(device, precision)
        torch.manual_seed(0)
        model = Llama(cfg).to(device)
        optimizer = build_optimizer(model, t, device)
        sampler = WindowSampler(tokens, t.seq_len, 0)
        plan = make_plan(t, sampler)
        losses[precision] = [train_step(model, optimizer, sampler, plan, step, t.lr, t, p)[0] for step in range(20)]
    assert losses["fp32"][-1] < losses["fp32"][0] - 1.0  # it learned something
    for a, b in zip(losses["fp32"], losses["bf16"]):
        # 2e-4 measured on an AVX-512 CPU with native bf16; a GPU's kernels differ more, a broken
        # bf16 path (overflow, a lost cast) by far more.
        assert b == pytest.approx(a, rel=1e-2)


def test_the_memory_probe_finds_the_largest_micro_batch_that_fits(device, tmp_path):
    if device != "cuda":
        pytest.skip("the memory probe measures CUDA memory")
    from lab import micro_batch

    # A shape whose whole batch cannot fit any GPU (4096 sequences of 8192 tokens), so the bisection
    # has a real boundary to find.
    cfg = ModelConfig(d_model=256, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=32768)
    model = Llama(cfg).to(device)
    precision = choose(device, "bf16")
    params = sum(p.numel() for p in model.parameters())
    fits = micro_batch.torch_fits(model, 8 * params, 8192, cfg.vocab_size, precision, torch.device(device))
    shape = {"model": "probe test", "seq_len": 8192, "device_name": torch.cuda.get_device_name()}
    found = micro_batch.resolve(shape, 4096, fits, tmp_path / micro_batch.CACHE_FILE)
    assert 1 <= found < 4096 and fits(found) and not fits(found * 2)


def test_a_checkpoint_taken_on_the_device_resumes_on_a_cpu(device, tmp_path):
    # Optimizer state is loaded onto the CPU first (map_location) and moved to each parameter's
    # device by load_state_dict: a GPU run resumes on a CPU-only machine, each rank on its own GPU.
    from lab import checkpoint
    from lab.torch_backend import build_optimizer

    cfg = ModelConfig(d_model=32, n_layers=1, n_heads=4, n_kv_heads=2, vocab_size=128)
    x = torch.randint(0, 128, (2, 16))

    def one_step(model, optimizer, on):
        loss = model(x.to(on), x.to(on))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.item()

    torch.manual_seed(0)
    model = Llama(cfg).to(device)
    optimizer = build_optimizer(model, TrainConfig(), device)
    one_step(model, optimizer, device)
    checkpoint.save(tmp_path, 1, model, {"optimizer": optimizer.state_dict()}, keep=1)
    expected = one_step(model, optimizer, device)

    restored = Llama(cfg)
    ckpt = checkpoint.load_latest(tmp_path)
    checkpoint.load_model_weights(restored, ckpt.model_state)
    cpu_optimizer = build_optimizer(restored, TrainConfig(), "cpu")
    cpu_optimizer.load_state_dict(ckpt.train_state["optimizer"])
    assert all(v.device.type == "cpu" for state in cpu_optimizer.state.values() for v in state.values()
               if isinstance(v, torch.Tensor))
    assert one_step(restored, cpu_optimizer, "cpu") == pytest.approx(expected, rel=1e-4)
