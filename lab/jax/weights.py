"""Weights between the NNX model and lab/model.py's torch naming, both ways, by name.

The NNX attribute tree mirrors the torch module tree, so a parameter's torch name is its NNX
path joined with dots, the leaf renamed: a Linear's ``kernel`` is torch's ``weight``
transposed ((in, out) against (out, in)), ``embedding`` and a norm's ``scale`` are ``weight``
as they are. Tied embeddings have no lm_head in NNX; in torch naming the key is left out, as
lab.checkpoint stores a tied model (so the dict is a drop-in ``model.safetensors``).
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from flax import nnx

from lab.jax.model import Llama

_LEAF_TO_TORCH = {"kernel": ("weight", True), "embedding": ("weight", False), "scale": ("weight", False)}
_TIED_HEAD = "lm_head.weight"


def torch_name(path: tuple) -> tuple[str, bool]:
    """NNX parameter path -> (torch state_dict name, whether the array is transposed)."""
    leaf, transposed = _LEAF_TO_TORCH[path[-1]]
    return ".".join(str(part) for part in path[:-1]) + "." + leaf, transposed


def _as_numpy(value) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor: no torch import needed to read one
        value = value.detach().cpu().float().numpy()  # .float(): numpy has no bf16
    return np.asarray(value)


def _params(model: nnx.Module):
    return nnx.state(model, nnx.Param)


def load_torch_state_dict(model: nnx.Module, state_dict: dict) -> None:
    """Copy a torch state_dict (tensors or numpy arrays, lab/model.py naming) into `model`.

    Every parameter must be present with its exact shape and no unknown key may be left over:
    a silent partial load would pass a parity test by accident. A tied model's torch
    ``lm_head.weight`` (the embedding again, in ``Llama.state_dict()``) may be present and
    must then equal the embedding."""
    params = _params(model)
    flat = dict(nnx.to_flat_state(params))
    used = set()
    for path, variable in flat.items():
        name, transposed = torch_name(path)
        if name not in state_dict:
            raise KeyError(f"torch state_dict lacks {name} (for NNX {'.'.join(map(str, path))})")
        value = _as_numpy(state_dict[name])
        value = value.T if transposed else value
        if value.shape != variable.shape:
            raise ValueError(f"{name}: torch shape {value.shape[::-1] if transposed else value.shape} "
                             f"does not fit NNX shape {variable.shape}")
        flat[path] = variable.replace(jnp.asarray(value, dtype=variable.dtype))
        used.add(name)
    _check_leftovers(model, state_dict, used)
    nnx.update(model, nnx.from_flat_state(flat))


def from_torch_state_dict(cfg, state_dict: dict, compute_dtype=jnp.float32) -> nnx.Module:
    """A new NNX Llama holding a torch state_dict's weights. The model is built abstractly
    (shapes only): initialising weights that are overwritten at once would cost a compile per
    parameter shape."""
    model = nnx.eval_shape(lambda: Llama(cfg, rngs=nnx.Rngs(0), compute_dtype=compute_dtype))
    load_torch_state_dict(model, state_dict)
    return model


def _check_leftovers(model: nnx.Module, state_dict: dict, used: set) -> None:
    extra = set(state_dict) - used
    if model.cfg.tie_embeddings and _TIED_HEAD in extra:
        extra.discard(_TIED_HEAD)
        if not np.array_equal(_as_numpy(state_dict[_TIED_HEAD]), _as_numpy(state_dict["embed.weight"])):
            raise ValueError("tied model, but lm_head.weight differs from embed.weight")
    if extra:
        raise KeyError(f"torch state_dict keys with no NNX parameter: {sorted(extra)}")


def to_torch_state_dict(model: nnx.Module) -> dict[str, np.ndarray]:
    """The model's parameters in lab/model.py naming and layout, as contiguous fp32 numpy
    arrays that ``safetensors.numpy.save_file`` writes and ``torch.nn.Module.load_state_dict``
    (with lab.checkpoint.load_model_weights' tied rule) reads."""
    out = {}
    for path, variable in nnx.to_flat_state(_params(model)):
        name, transposed = torch_name(path)
        value = np.asarray(variable[...], dtype=np.float32)
        out[name] = np.ascontiguousarray(value.T if transposed else value)
    return out
