"""Hand-written backward passes (lab/fused.py) against autograd, and against plain formulas."""
import torch

from lab.fused import rms_norm, rotary, swiglu


def test_rms_norm_gradients_pass_gradcheck():
    torch.manual_seed(0)
    x = torch.randn(3, 5, 8, dtype=torch.float64, requires_grad=True)
    w = torch.randn(8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, w: rms_norm(x, w, 1e-6, torch.float64), (x, w))


def test_rms_norm_matches_its_formula_and_casts_once():
    torch.manual_seed(0)
    x, w = torch.randn(4, 16), torch.randn(16)
    expected = w * x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5)
    assert torch.allclose(rms_norm(x, w, 1e-5, torch.float32), expected, atol=1e-6)
    low = rms_norm(x, w, 1e-5, torch.bfloat16)
    assert low.dtype == torch.bfloat16 and torch.allclose(low.float(), expected, rtol=1e-2, atol=1e-2)


def test_rotary_gradients_pass_gradcheck_and_match_rotate_half():
    torch.manual_seed(0)
    T, hd = 6, 8
    angles = torch.rand(T, 1, hd // 2, dtype=torch.float64) * 6
    cos, sin = angles.cos(), angles.sin()
    table_cos, table_sin = torch.cat((cos, cos), -1), torch.cat((-sin, sin), -1)  # RotaryEmbedding's tables
    x = torch.randn(2, T, 3, hd, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: rotary(x, table_cos, table_sin), (x,))
    # transformers' formulation: x * cos + rotate_half(x) * sin over full-width tables
    full_cos, full_sin = torch.cat((cos, cos), -1), torch.cat((sin, sin), -1)
    rotate_half = torch.cat((-x[..., hd // 2:], x[..., :hd // 2]), -1)
    assert torch.allclose(rotary(x, table_cos, table_sin), x * full_cos + rotate_half * full_sin, atol=1e-12)
    # on a non-contiguous view (q and k rotate as a slice of the qkv projection)
    qkv = torch.randn(2, T, 5 * hd, dtype=torch.float64)
    qk = qkv[..., :3 * hd].view(2, T, 3, hd)
    assert torch.allclose(rotary(qk, table_cos, table_sin), rotary(qk.contiguous(), table_cos, table_sin))


def test_rms_norm_without_gain_passes_gradcheck_and_divides_only():
    torch.manual_seed(0)
    x = torch.randn(3, 5, 8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: rms_norm(x, None, 1e-6, torch.float64), (x,))
    expected = x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)
    assert torch.allclose(rms_norm(x, None, 1e-6, torch.float64), expected, atol=1e-12)
    assert rms_norm(x.float(), None, 1e-6, torch.bfloat16).dtype == torch.bfloat16


def test_swiglu_passes_gradcheck_and_matches_its_formula():
    torch.manual_seed(0)
    gate_up = torch.randn(2, 7, 12, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(swiglu, (gate_up,))
    gate, up = gate_up[..., :6], gate_up[..., 6:]
    assert torch.allclose(swiglu(gate_up), gate * torch.sigmoid(gate) * up, atol=1e-12)


def test_plain_formulas_taken_under_torch_compile_match_the_functions(monkeypatch):
    """Under torch.compile each function returns its plain formula (the compiler fuses it): same
    values and gradients as the hand-written Functions."""
    from lab.attention import blocked_attention

    torch.manual_seed(0)
    x = torch.randn(2, 9, 8, dtype=torch.float64)
    w = torch.randn(8, dtype=torch.float64)
    angles = torch.rand(9, 1, 4, dtype=torch.float64) * 6
    cos, sin = torch.cat((angles.cos(),) * 2, -1), torch.cat((-angles.sin(), angles.sin()), -1)
    q, k, v = (torch.randn(2, 9, h, 8, dtype=torch.float64) for h in (4, 2, 2))
    cases = {
        "rms_norm": (lambda x, w: rms_norm(x, w, 1e-6, torch.float64), (x, w)),
        "rms_norm, no gain": (lambda x: rms_norm(x, None, 1e-6, torch.float64), (x,)),
        "rotary": (lambda x: rotary(x.view(2, 9, 1, 8), cos, sin), (x,)),
        "swiglu": (swiglu, (x,)),
        "attention": (lambda q, k, v: blocked_attention(q, k, v, block=4), (q, k, v)),
    }

    def run(fn, inputs):
        inputs = [t.clone().requires_grad_() for t in inputs]
        out = fn(*inputs)
        grads = torch.autograd.grad(out, inputs, torch.ones_like(out))
        return out.detach(), grads

    eager = {name: run(*case) for name, case in cases.items()}
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    for name, case in cases.items():
        out, grads = run(*case)
        assert torch.allclose(out, eager[name][0], atol=1e-12), name
        for g, ref in zip(grads, eager[name][1]):
            assert torch.allclose(g, ref, atol=1e-12), name
