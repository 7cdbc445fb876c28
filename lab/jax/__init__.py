"""The JAX/Flax NNX backend (``train.backend=jax``), parity-tested against the torch path.

lab.trainer's Loop drives it exactly as it drives lab/torch_backend.py; one module per concern:

- ``model``: lab/model.py's Llama in Flax NNX (same function, same init scheme); fp32
  parameters, a compute dtype for the matmuls, fp32 norms, softmax, logits and loss.
- ``weights``: parameters to and from lab/model.py's state_dict naming.
- ``optim``: optax AdamW with torch_backend.build_optimizer's decay split, torch's clipping
  rule, and lab.schedule.lr_at as the schedule.
- ``step``: one jitted train step, gradient accumulation by ``lax.scan``, optionally with
  explicit shardings over a mesh and donated state.
- ``data``: the step's global batch from lab.data's window order.
- ``sharding``: the device mesh (data, fsdp), FSDP annotations, batch placement, and
  jax.distributed for several processes.
- ``checkpoint``: orbax checkpoints with checksums, pruning and branch adoption as torch's.
- ``train``: JaxBackend, the few methods the loop calls.

JAX comes from the ``jax`` extra; lab.config refuses ``train.backend=jax`` without it.
"""
