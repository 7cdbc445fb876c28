"""Parameter and FLOP accounting against independent counts: the module itself, HF, and
torch's FLOP counter over a real forward+backward."""
import math

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from common.errors import ConfigError
from lab.accounting import (
    attention_kind,
    compute_6nd,
    flops_per_token,
    non_embedding_params,
    shape_for_depth,
    shape_for_params,
    total_params,
)
from lab.config import ModelConfig
from lab.hf import to_hf_model
from lab.model import Llama


@pytest.mark.parametrize("tie", [True, False])
def test_parameter_counts_match_module_and_hf(tie):
    cfg = ModelConfig(d_model=64, n_layers=3, n_heads=4, n_kv_heads=2, vocab_size=300, tie_embeddings=tie)
    model = Llama(cfg)
    counted = sum(p.numel() for p in model.parameters())  # shared tensors counted once
    assert total_params(cfg) == counted
    assert to_hf_model(model).num_parameters() == counted
    embedding = 300 * 64 * (1 if tie else 2)
    assert non_embedding_params(cfg) == counted - embedding


@pytest.mark.parametrize("n_kv_heads", [1, 2, 4])
def test_flops_per_token_matches_torch_flop_counter(n_kv_heads):
    cfg = ModelConfig(d_model=64, n_layers=2, n_heads=4, n_kv_heads=n_kv_heads, vocab_size=128)
    model = Llama(cfg)
    T = 32
    idx = torch.randint(0, 128, (1, T))
    # The math backend decomposes attention into matmuls the counter sees (the fused CPU
    # kernel is invisible to it).
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model.loss(idx, idx).backward()
    measured = counter.get_total_flops() / T
    # The counter sees only matmuls; elementwise work (norms, softmax, SiLU) is ignored by both.
    assert measured == pytest.approx(flops_per_token(cfg, T), rel=1e-9)


def test_size_picker_follows_its_rule_and_hits_targets():
    base = ModelConfig(vocab_size=4096, head_dim=16)
    for depth in (1, 2, 3, 4, 8):
        shaped = shape_for_depth(base, depth)
        assert shaped.d_model == 32 * depth and shaped.n_layers == depth
        assert shaped.n_heads * 16 == shaped.d_model
        assert shaped.n_heads == 2 * shaped.n_kv_heads
    for target in (3e5, 1e6, 5e6, 3e7):
        got = total_params(shape_for_params(base, target))
        assert 0.6 < got / target < 1.6
    # monotone: a larger target never picks a smaller model
    sizes = [total_params(shape_for_params(base, t)) for t in (2e5, 5e5, 1e6, 4e6, 1e7)]
    assert sizes == sorted(sizes)


def test_size_picker_refuses_impossible_targets():
    with pytest.raises(ConfigError, match="model.params"):
        shape_for_params(ModelConfig(vocab_size=4096), 1000)


@pytest.mark.parametrize("kv_group", [1, 2, 3, 4])
def test_size_picker_keeps_the_kv_grouping_at_every_depth(kv_group):
    """Odd head counts used to fall back to multi-head attention, so a grid's sizes mixed MQA, GQA
    and MHA; now the head count is rounded up to a multiple of the group instead."""
    base = ModelConfig(vocab_size=1024, head_dim=32, aspect_ratio=32, kv_group=kv_group)
    kinds = set()
    for depth in range(1, 13):
        shaped = shape_for_depth(base, depth)
        assert shaped.n_heads == kv_group * shaped.n_kv_heads
        assert shaped.d_model == 32 * shaped.n_heads
        # the narrowest width of whole groups of heads at or above aspect_ratio x depth
        assert 32 * depth <= shaped.d_model < 32 * depth + 32 * kv_group
        kinds.add(attention_kind(shaped))
    assert kinds == {"mha" if kv_group == 1 else f"gqa{kv_group}"}
    assert shape_for_depth(base, 3).n_heads == kv_group * math.ceil(3 / kv_group)


def test_attention_kind_and_6nd():
    cfg = ModelConfig(d_model=64, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=128)
    assert attention_kind(cfg) == "gqa2"
    assert attention_kind(ModelConfig(n_heads=4, n_kv_heads=4)) == "mha"
    assert attention_kind(ModelConfig(n_heads=4, n_kv_heads=1)) == "gqa4"
    assert compute_6nd(cfg, 1000) == 6 * total_params(cfg) * 1000


def test_size_picker_refuses_a_group_below_one():
    with pytest.raises(ConfigError, match="model.kv_group"):
        shape_for_params(ModelConfig(vocab_size=4096, kv_group=0), 1e6)
