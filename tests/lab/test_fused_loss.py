"""The chunked output-projection + cross-entropy against a float64 recomputation."""
import pytest
import torch
import torch.nn.functional as F

from lab.config import ModelConfig
from lab.fused_loss import linear_cross_entropy
from lab.model import Llama


@pytest.mark.parametrize("n,chunk", [(37, 8), (64, 64), (100, 1024)])
def test_loss_and_gradients_match_float64_reference(n, chunk):
    torch.manual_seed(n)
    hidden = torch.randn(n, 16, requires_grad=True)
    weight = torch.randn(50, 16, requires_grad=True)
    targets = torch.randint(0, 50, (n,))
    loss = linear_cross_entropy(hidden, weight, targets, chunk=chunk)
    (loss * 3.0).backward()  # a non-unit upstream gradient must scale both gradients

    h64, w64 = hidden.detach().double().requires_grad_(), weight.detach().double().requires_grad_()
    ref = F.cross_entropy(h64 @ w64.t(), targets)
    (ref * 3.0).backward()
    assert loss.item() == pytest.approx(ref.item(), abs=1e-5)
    assert torch.allclose(hidden.grad.double(), h64.grad, atol=1e-6)
    assert torch.allclose(weight.grad.double(), w64.grad, atol=1e-6)


@pytest.mark.parametrize("tie", [True, False])
def test_model_loss_equals_cross_entropy_of_its_logits(tie):
    torch.manual_seed(0)
    model = Llama(ModelConfig(d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=97, tie_embeddings=tie))
    x, y = torch.randint(0, 97, (3, 20)), torch.randint(0, 97, (3, 20))
    fused = model.loss(x, y)
    fused.backward()
    grads = {k: p.grad.clone() for k, p in model.named_parameters()}
    model.zero_grad()
    plain = F.cross_entropy(model(x).view(-1, 97), y.view(-1))
    plain.backward()
    assert fused.item() == pytest.approx(plain.item(), abs=1e-5)
    for k, p in model.named_parameters():
        assert torch.allclose(grads[k], p.grad, atol=1e-5), k


def test_bf16_autocast_stays_close_to_fp32():
    torch.manual_seed(0)
    hidden, weight = torch.randn(64, 32), torch.randn(200, 32) * 0.2
    targets = torch.randint(0, 200, (64,))
    exact = linear_cross_entropy(hidden, weight, targets)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = linear_cross_entropy(hidden, weight, targets)
    assert low.dtype == torch.float32
    assert abs(low.item() - exact.item()) / exact.item() < 0.01
