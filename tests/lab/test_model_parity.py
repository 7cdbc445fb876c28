"""Our Llama against transformers' LlamaForCausalLM with the same weights: same logits."""
import pytest
import torch

from lab.config import ModelConfig
from lab.hf import from_hf_state_dict, to_hf_model, to_hf_state_dict
from lab.model import Llama

SHAPES = [
    # d_model, n_layers, n_heads, n_kv_heads, tie
    (64, 2, 4, 1, True),      # multi-query
    (64, 2, 4, 2, False),     # grouped
    (96, 3, 6, 6, True),      # multi-head
    (128, 2, 8, 2, False),
]


@pytest.mark.parametrize("d_model,n_layers,n_heads,n_kv_heads,tie", SHAPES)
def test_logits_match_transformers_llama(d_model, n_layers, n_heads, n_kv_heads, tie):
    torch.manual_seed(0)
    cfg = ModelConfig(d_model=d_model, n_layers=n_layers, n_heads=n_heads, n_kv_heads=n_kv_heads,
                      vocab_size=211, tie_embeddings=tie, rope_theta=5000.0, init_std=0.05)
    ours = Llama(cfg).eval()
    hf = to_hf_model(ours)
    idx = torch.randint(0, cfg.vocab_size, (3, 37))
    with torch.no_grad():
        a = ours(idx)
        b = hf(input_ids=idx).logits
    assert a.shape == b.shape == (3, 37, cfg.vocab_size)
    assert (a - b).abs().max().item() <= 1e-5


def test_state_dict_round_trip_is_lossless():
    cfg = ModelConfig(d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=50, tie_embeddings=False)
    model = Llama(cfg)
    sd = model.state_dict()
    back = from_hf_state_dict(to_hf_state_dict(sd, cfg), cfg)
    assert set(back) == set(sd)
    for k in sd:
        assert torch.equal(back[k], sd[k])


def test_causality_future_tokens_do_not_change_past_logits():
    cfg = ModelConfig(d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=50)
    model = Llama(cfg).eval()
    idx = torch.randint(0, 50, (1, 16))
    changed = idx.clone()
    changed[0, 10:] = (changed[0, 10:] + 1) % 50
    with torch.no_grad():
        assert torch.allclose(model(idx)[0, :10], model(changed)[0, :10], atol=1e-6)
