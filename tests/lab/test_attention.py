"""The two attention paths against each other in float64, and the rule choosing between them."""
import pytest
import torch

from lab import attention
from lab.attention import (
    BLOCKED_MAX_SEQ,
    blocked_attention,
    sdpa_attention,
    use_blocked_path,
)
from lab.config import ModelConfig
from lab.model import Llama


def _naive(q, k, v):
    """Textbook attention on repeated K/V heads, float64, q already scaled."""
    B, T, H, hd = q.shape
    G = H // k.shape[2]
    k, v = k.repeat_interleave(G, dim=2), v.repeat_interleave(G, dim=2)
    scores = torch.einsum("bthd,bshd->bhts", q, k)
    scores = scores.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
    return torch.einsum("bhts,bshd->bthd", scores.softmax(-1), v).reshape(B, T, H * hd)


@pytest.mark.parametrize("T,H,Hkv,block", [(37, 4, 2, 8), (64, 4, 1, 64), (100, 6, 6, 16), (9, 2, 1, 64)])
def test_blocked_and_sdpa_paths_match_a_float64_reference(T, H, Hkv, block):
    torch.manual_seed(T)
    shape = lambda h: (3, T, h, 8)  # noqa: E731
    q, k, v = (torch.randn(shape(h), dtype=torch.float64, requires_grad=True) for h in (H, Hkv, Hkv))
    grad = torch.randn(3, T, H * 8, dtype=torch.float64)
    ref = _naive(q, k, v)
    ref_grads = torch.autograd.grad(ref, (q, k, v), grad)
    for path in (lambda *a: blocked_attention(*a, block=block), sdpa_attention):
        out = path(q, k, v)
        grads = torch.autograd.grad(out, (q, k, v), grad)
        assert torch.allclose(out, ref, atol=1e-12)
        for g, r in zip(grads, ref_grads):
            assert torch.allclose(g, r, atol=1e-12)


def test_blocked_path_only_for_short_bf16_sequences_on_cpu(monkeypatch):
    def q(T, dtype):
        return torch.zeros(1, T, 2, 4, dtype=dtype)

    # Where bf16 is emulated (no AVX512-BF16/AMX) SDPA wins: the blocked path is never taken.
    monkeypatch.setattr(attention, "cpu_has_native_bf16", lambda: False)
    assert not use_blocked_path(q(256, torch.bfloat16))
    monkeypatch.setattr(attention, "cpu_has_native_bf16", lambda: True)
    assert use_blocked_path(q(256, torch.bfloat16))
    assert not use_blocked_path(q(256, torch.float32))  # on par with SDPA there
    assert use_blocked_path(q(BLOCKED_MAX_SEQ, torch.bfloat16))
    assert not use_blocked_path(q(BLOCKED_MAX_SEQ + 1, torch.bfloat16))
    if torch.cuda.is_available():
        assert not use_blocked_path(q(256, torch.bfloat16).cuda())


def test_bf16_blocked_path_matches_float32_sdpa():
    torch.manual_seed(0)
    q, k, v = torch.randn(2, 128, 4, 16) * 0.3, torch.randn(2, 128, 2, 16), torch.randn(2, 128, 2, 16)
    exact = sdpa_attention(q, k, v)
    low = blocked_attention(q.bfloat16(), k.bfloat16(), v.bfloat16())
    assert (low.float() - exact).abs().max() < 0.03


@pytest.mark.parametrize("native_bf16", [True, False], ids=["blocked", "sdpa"])
def test_bf16_model_loss_and_gradients_track_fp32(native_bf16, monkeypatch):
    """The model under bf16 autocast (either attention path, bf16 fused loss) against fp32."""
    monkeypatch.setattr(attention, "cpu_has_native_bf16", lambda: native_bf16)
    torch.manual_seed(0)
    model = Llama(ModelConfig(d_model=64, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=256))
    x = torch.randint(0, 256, (4, 65))
    exact = model(x[:, :-1], x[:, 1:])
    exact_grads = torch.autograd.grad(exact, list(model.parameters()))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = model(x[:, :-1], x[:, 1:])
    low_grads = torch.autograd.grad(low, list(model.parameters()))
    assert abs(low.item() - exact.item()) / exact.item() < 0.005
    for g, r in zip(low_grads, exact_grads):
        cosine = torch.nn.functional.cosine_similarity(g.flatten().double(), r.flatten().double(), dim=0)
        assert cosine > 0.99
