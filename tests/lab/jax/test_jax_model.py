"""The NNX Llama against lab/model.py's with the same weights: same logits, same init scheme."""
import numpy as np
import pytest

jax = pytest.importorskip("jax")

import jax.numpy as jnp
import torch
from flax import nnx

from lab.config import ModelConfig
from lab.jax.model import Llama, blocked_causal_attention, causal_blocks, rotary_tables
from lab.jax.weights import from_torch_state_dict
from lab.model import Llama as TorchLlama

# n_kv_heads of 4 query heads: 1 = multi-query, 2 = grouped, 4 = multi-head; tied or not.
SHAPES = [(1, True), (1, False), (2, True), (2, False), (4, True), (4, False)]


def tiny(n_kv_heads: int = 2, tie: bool = True) -> ModelConfig:
    # init_std 0.1: logits of order 1, so a relative tolerance means something.
    return ModelConfig(d_model=32, n_layers=2, n_heads=4, n_kv_heads=n_kv_heads, vocab_size=64,
                       tie_embeddings=tie, init_std=0.1, rope_theta=500.0)


def torch_and_jax(cfg: ModelConfig, compute_dtype=jnp.float32):
    torch.manual_seed(0)
    torch_model = TorchLlama(cfg).eval()
    return torch_model, from_torch_state_dict(cfg, torch_model.state_dict(), compute_dtype)


def logits(model, tokens) -> np.ndarray:
    """The model's forward, jitted: one compile instead of one per eager op (and the path training takes)."""
    graphdef, state = nnx.split(model)
    return np.asarray(jax.jit(lambda s, x: nnx.merge(graphdef, s)(x))(state, jnp.asarray(tokens, jnp.int32)))


def relative_gap(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / np.abs(a).max())


@pytest.mark.parametrize("n_kv_heads,tie", SHAPES)
def test_logits_match_the_torch_model(n_kv_heads, tie):
    cfg = tiny(n_kv_heads, tie)
    torch_model, jax_model = torch_and_jax(cfg)
    tokens = torch.randint(0, cfg.vocab_size, (3, 16), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = torch_model(tokens).numpy()
    got = logits(jax_model, tokens.numpy())
    assert got.shape == expected.shape == (3, 16, cfg.vocab_size) and got.dtype == np.float32
    assert np.abs(expected).max() > 1.0  # a gap relative to something not small
    assert relative_gap(expected, got) <= 1e-5


@pytest.mark.parametrize("n_kv_heads", [1, 2, 4])
@pytest.mark.parametrize("n_blocks", [1, 2, 4])
def test_blocked_attention_is_torch_sdpa_in_value_and_gradient(n_kv_heads, n_blocks):
    # The CPU attention skips most of the masked triangle block by block and stacks grouped
    # query heads as rows; checked against torch's own causal SDPA with repeat_kv grouping.
    B, T, H, hd = 2, 64, 4, 8
    rng = np.random.default_rng(n_kv_heads * 10 + n_blocks)
    q, k, v = (rng.standard_normal((B, T, heads, hd)).astype(np.float32) for heads in (H, n_kv_heads, n_kv_heads))
    upstream = rng.standard_normal((B, T, H, hd)).astype(np.float32)

    def jax_loss(q, k, v):
        return jnp.sum(blocked_causal_attention(q, k, v, n_blocks) * upstream)

    value = blocked_causal_attention(jnp.asarray(q), jnp.asarray(k), jnp.asarray(v), n_blocks)
    grads = jax.grad(jax_loss, argnums=(0, 1, 2))(jnp.asarray(q), jnp.asarray(k), jnp.asarray(v))
    tq, tk, tv = (torch.tensor(a).transpose(1, 2).requires_grad_() for a in (q, k, v))  # (B, heads, T, hd)
    group = H // n_kv_heads
    expected = torch.nn.functional.scaled_dot_product_attention(
        tq, tk.repeat_interleave(group, dim=1), tv.repeat_interleave(group, dim=1), is_causal=True)
    (expected * torch.tensor(upstream).transpose(1, 2)).sum().backward()
    np.testing.assert_allclose(np.asarray(value), expected.transpose(1, 2).detach().numpy(), atol=1e-5)
    for got, want in zip(grads, (tq, tk, tv)):
        np.testing.assert_allclose(np.asarray(got), want.grad.transpose(1, 2).numpy(), atol=1e-5)


def test_causal_blocks_divide_the_sequence_into_blocks_of_at_least_32():
    assert [causal_blocks(t) for t in (16, 64, 96, 100, 128, 256, 1024)] == [1, 2, 2, 2, 4, 8, 8]


@pytest.mark.parametrize("n_kv_heads", [1, 2, 4])
def test_logits_match_the_torch_model_over_several_attention_blocks(n_kv_heads):
    cfg = tiny(n_kv_heads)
    torch_model, jax_model = torch_and_jax(cfg)
    tokens = torch.randint(0, cfg.vocab_size, (2, 128), generator=torch.Generator().manual_seed(2))
    assert causal_blocks(128) == 4
    with torch.no_grad():
        expected = torch_model(tokens).numpy()
    assert relative_gap(expected, logits(jax_model, tokens.numpy())) <= 1e-5


def test_causal_future_tokens_do_not_change_past_logits():
    _, model = torch_and_jax(tiny())
    tokens = jnp.asarray(np.random.default_rng(0).integers(0, 64, (1, 16)), jnp.int32)
    changed = tokens.at[0, 10:].set((tokens[0, 10:] + 1) % 64)
    a, b = logits(model, tokens), logits(model, changed)
    assert np.array_equal(a[0, :10], b[0, :10])
    assert not np.allclose(a[0, 10:], b[0, 10:])


def test_rotary_tables_are_the_torch_ones():
    # Angles in fp32 in both: the tables agree to rounding, in the half-split layout.
    from lab.model import RotaryEmbedding

    cos_t, minus_sin_t = RotaryEmbedding(8, 500.0)(16, torch.device("cpu"), torch.float32)
    cos_j, sin_j = rotary_tables(16, 8, 500.0, jnp.float32)
    np.testing.assert_allclose(np.asarray(cos_j), cos_t.numpy(), atol=1e-6)
    # torch's second table carries rotate_half's sign on its first half: (-sin, sin).
    np.testing.assert_allclose(np.asarray(sin_j)[..., 4:], minus_sin_t.numpy()[..., 4:], atol=1e-6)
    np.testing.assert_allclose(np.asarray(sin_j)[..., :4], -minus_sin_t.numpy()[..., :4], atol=1e-6)


def test_bf16_compute_keeps_fp32_params_and_logits():
    cfg = tiny()
    _, fp32 = torch_and_jax(cfg)
    _, bf16 = torch_and_jax(cfg, jnp.bfloat16)
    tokens = jnp.asarray(np.random.default_rng(0).integers(0, 64, (2, 16)), jnp.int32)
    low, full = logits(bf16, tokens), logits(fp32, tokens)
    assert low.dtype == np.float32
    assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(nnx.state(bf16, nnx.Param)))
    # bf16 rounds each operand to 8 bits of mantissa: close to fp32, but not equal.
    assert 0 < relative_gap(full, low) < 3e-2


def test_init_scheme_matches_the_torch_model():
    """Per parameter, the spread of a fresh NNX model's weights against a fresh torch model's:
    N(0, init_std) everywhere, /sqrt(2 n_layers) on wo and w_down, gains of exactly 1."""
    from lab.jax.weights import to_torch_state_dict

    cfg = ModelConfig(d_model=64, n_layers=3, n_heads=4, n_kv_heads=2, vocab_size=256, tie_embeddings=False)
    torch.manual_seed(0)
    reference = {k: v.numpy() for k, v in TorchLlama(cfg).state_dict().items()}
    fresh = to_torch_state_dict(Llama(cfg, rngs=nnx.Rngs(0)))
    assert set(fresh) == set(reference)
    for name, value in fresh.items():
        if name.endswith("norm.weight"):
            assert np.array_equal(value, np.ones_like(value)), name
            continue
        assert value.std() == pytest.approx(reference[name].std(), rel=0.1), name
        assert abs(value.mean()) < 4 * value.std() / np.sqrt(value.size), name
    residual = fresh["blocks.0.attn.wo.weight"].std() / fresh["blocks.0.attn.wq.weight"].std()
    assert residual == pytest.approx(1 / np.sqrt(2 * cfg.n_layers), rel=0.1)
