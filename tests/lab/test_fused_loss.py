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


def test_chunk_size_follows_the_device():
    from lab.fused_loss import FP32_CHUNK_ROWS, GPU_CHUNK_ELEMENTS, LOW_PRECISION_CHUNK_ROWS, chunk_rows

    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    assert chunk_rows(cpu, torch.float32, 32768) == FP32_CHUNK_ROWS
    assert chunk_rows(cpu, torch.bfloat16, 32768) == LOW_PRECISION_CHUNK_ROWS
    # On a GPU: a block of logits of bounded size, far more rows than on a CPU, and never a
    # small matmul (a floor of rows at a huge vocabulary).
    assert chunk_rows(gpu, torch.bfloat16, 32768) * 32768 == GPU_CHUNK_ELEMENTS
    assert chunk_rows(gpu, torch.float32, 4096) == GPU_CHUNK_ELEMENTS // 4096 > FP32_CHUNK_ROWS
    assert chunk_rows(gpu, torch.bfloat16, 2 ** 20) == 1024


def test_under_torch_compile_the_loss_is_the_plain_formula():
    # What the compiler is handed (dynamo's graph, run eagerly: no code generation needed to
    # see it) holds the cross-entropy as an op it can fuse, and gives the same loss and gradients.
    graphs = []

    def record(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    torch.manual_seed(0)
    hidden = torch.randn(40, 16, requires_grad=True)
    weight = torch.randn(50, 16, requires_grad=True)
    targets = torch.randint(0, 50, (40,))
    compiled = torch.compile(linear_cross_entropy, backend=record, fullgraph=True)(hidden, weight, targets)
    compiled.backward()
    grads = hidden.grad.clone(), weight.grad.clone()
    hidden.grad = weight.grad = None
    eager = linear_cross_entropy(hidden, weight, targets)
    eager.backward()
    (graph,) = graphs
    assert "cross_entropy" in graph.code and "LinearCrossEntropy" not in graph.code
    assert compiled.item() == pytest.approx(eager.item(), abs=1e-6)
    assert torch.allclose(grads[0], hidden.grad, atol=1e-6) and torch.allclose(grads[1], weight.grad, atol=1e-6)
