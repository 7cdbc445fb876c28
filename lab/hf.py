"""Weight and config mapping between our Llama and transformers' LlamaForCausalLM.

The two modules compute the same function, so the mapping is a renaming of tensors. It backs
both the parity test and the Hugging Face export.
"""
from __future__ import annotations

import torch

from lab.config import ModelConfig
from lab.accounting import ffn_hidden_size

# our per-layer name -> HF per-layer name
_LAYER_NAMES = {
    "attn_norm.weight": "input_layernorm.weight",
    "attn.wq.weight": "self_attn.q_proj.weight",
    "attn.wk.weight": "self_attn.k_proj.weight",
    "attn.wv.weight": "self_attn.v_proj.weight",
    "attn.wo.weight": "self_attn.o_proj.weight",
    "mlp_norm.weight": "post_attention_layernorm.weight",
    "mlp.w_gate.weight": "mlp.gate_proj.weight",
    "mlp.w_up.weight": "mlp.up_proj.weight",
    "mlp.w_down.weight": "mlp.down_proj.weight",
}


def hf_config_dict(cfg: ModelConfig, bos_id: int | None = None, eos_id: int | None = None,
                   pad_id: int | None = None, max_position_embeddings: int = 2048) -> dict:
    """The ``config.json`` of the equivalent LlamaForCausalLM (GQA via num_key_value_heads)."""
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.d_model,
        "intermediate_size": ffn_hidden_size(cfg),
        "num_hidden_layers": cfg.n_layers,
        "num_attention_heads": cfg.n_heads,
        "num_key_value_heads": cfg.n_kv_heads,
        "head_dim": cfg.d_model // cfg.n_heads,
        "hidden_act": "silu",
        "max_position_embeddings": max_position_embeddings,
        "rms_norm_eps": cfg.norm_eps,
        "rope_theta": cfg.rope_theta,
        "rope_parameters": {"rope_type": "default", "rope_theta": cfg.rope_theta},
        "attention_bias": False,
        "mlp_bias": False,
        "tie_word_embeddings": cfg.tie_embeddings,
        "initializer_range": cfg.init_std,
        "bos_token_id": bos_id,
        "eos_token_id": eos_id,
        "pad_token_id": pad_id,
        "torch_dtype": "float32",
    }


def to_hf_state_dict(state: dict[str, torch.Tensor], cfg: ModelConfig) -> dict[str, torch.Tensor]:
    out = {"model.embed_tokens.weight": state["embed.weight"], "model.norm.weight": state["norm.weight"]}
    if not cfg.tie_embeddings:
        out["lm_head.weight"] = state["lm_head.weight"]
    for i in range(cfg.n_layers):
        for ours, theirs in _LAYER_NAMES.items():
            out[f"model.layers.{i}.{theirs}"] = state[f"blocks.{i}.{ours}"]
    return out


def from_hf_state_dict(state: dict[str, torch.Tensor], cfg: ModelConfig) -> dict[str, torch.Tensor]:
    out = {"embed.weight": state["model.embed_tokens.weight"], "norm.weight": state["model.norm.weight"]}
    out["lm_head.weight"] = state["model.embed_tokens.weight" if cfg.tie_embeddings else "lm_head.weight"]
    for i in range(cfg.n_layers):
        for ours, theirs in _LAYER_NAMES.items():
            out[f"blocks.{i}.{ours}"] = state[f"model.layers.{i}.{theirs}"]
    return out


def to_hf_model(model, bos_id=None, eos_id=None, pad_id=None):
    """Build a transformers LlamaForCausalLM holding this model's weights (needs the hf extra)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    hf_cfg = LlamaConfig(**hf_config_dict(model.cfg, bos_id, eos_id, pad_id))
    hf = LlamaForCausalLM(hf_cfg)
    state = {k: v.detach().clone() for k, v in to_hf_state_dict(model.state_dict(), model.cfg).items()}
    missing, unexpected = hf.load_state_dict(state, strict=False)
    # With tied embeddings HF derives lm_head from embed_tokens, so only that key may be absent.
    assert not unexpected and set(missing) <= {"lm_head.weight"}, (missing, unexpected)
    if model.cfg.tie_embeddings:
        hf.tie_weights()
    return hf.eval()
