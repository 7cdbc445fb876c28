"""Weights by name: NNX -> torch naming -> torch model gives the NNX logits; loads refuse misfits."""
import numpy as np
import pytest

jax = pytest.importorskip("jax")

import jax.numpy as jnp
import torch
from flax import nnx
from safetensors.numpy import save_file
from safetensors.torch import load_file

from lab.checkpoint import load_model_weights
from lab.config import ModelConfig
from lab.jax.model import Llama
from lab.jax.weights import load_torch_state_dict, to_torch_state_dict
from lab.model import Llama as TorchLlama


def tiny(n_kv_heads: int, tie: bool) -> ModelConfig:
    return ModelConfig(d_model=32, n_layers=2, n_heads=4, n_kv_heads=n_kv_heads, vocab_size=64,
                       tie_embeddings=tie, init_std=0.1)


def logits(model, tokens) -> np.ndarray:
    """The model's forward, jitted: one compile instead of one per eager op (and the path training takes)."""
    graphdef, state = nnx.split(model)
    return np.asarray(jax.jit(lambda s, x: nnx.merge(graphdef, s)(x))(state, jnp.asarray(tokens, jnp.int32)))


@pytest.mark.parametrize("n_kv_heads,tie", [(1, True), (2, False), (4, True)])
def test_nnx_weights_through_a_safetensors_file_give_the_same_logits_in_torch(tmp_path, n_kv_heads, tie):
    cfg = tiny(n_kv_heads, tie)
    jax_model = Llama(cfg, rngs=nnx.Rngs(3))
    state = to_torch_state_dict(jax_model)
    # The key set of a torch checkpoint's model.safetensors: a tied lm_head is stored once, as embed.
    torch_keys = set(TorchLlama(cfg).state_dict()) - ({"lm_head.weight"} if tie else set())
    assert set(state) == torch_keys
    save_file(state, str(tmp_path / "model.safetensors"))
    torch_model = TorchLlama(cfg).eval()
    load_model_weights(torch_model, load_file(tmp_path / "model.safetensors"))  # lab.checkpoint's loader
    tokens = np.random.default_rng(0).integers(0, cfg.vocab_size, (2, 16))
    with torch.no_grad():
        expected = torch_model(torch.from_numpy(tokens)).numpy()
    got = logits(jax_model, tokens)
    assert np.abs(got - expected).max() <= 1e-5 * np.abs(got).max()


def test_torch_to_nnx_to_torch_is_lossless():
    cfg = tiny(2, tie=False)
    torch.manual_seed(0)
    original = TorchLlama(cfg).state_dict()
    model = Llama(cfg, rngs=nnx.Rngs(0))
    load_torch_state_dict(model, original)
    back = to_torch_state_dict(model)
    assert set(back) == set(original)
    for name, value in back.items():
        assert np.array_equal(value, original[name].numpy()), name


def test_a_load_refuses_missing_extra_or_misshapen_weights():
    cfg = tiny(2, tie=True)
    state = {k: v.clone() for k, v in TorchLlama(cfg).state_dict().items()}
    model = Llama(cfg, rngs=nnx.Rngs(0))
    with pytest.raises(KeyError, match="blocks.1.mlp.w_up.weight"):
        load_torch_state_dict(model, {k: v for k, v in state.items() if k != "blocks.1.mlp.w_up.weight"})
    with pytest.raises(KeyError, match="stray"):
        load_torch_state_dict(model, {**state, "stray.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match="blocks.0.attn.wk.weight"):
        load_torch_state_dict(model, {**state, "blocks.0.attn.wk.weight": torch.zeros(32, 16)})
    with pytest.raises(ValueError, match="tied"):
        load_torch_state_dict(model, {**state, "lm_head.weight": torch.zeros(64, 32)})
