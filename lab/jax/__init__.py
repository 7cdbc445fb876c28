"""The foundation of a JAX/Flax NNX backend (issue 17), parity-tested against the torch path.

What exists (one module per concern, each a building block a backend class can call):

- ``model``: lab/model.py's Llama in Flax NNX (same function, same init scheme), configured by
  lab.config.ModelConfig; fp32 parameters, a compute dtype for the matmuls, fp32 logits and loss.
- ``weights``: parameters to and from lab/model.py's state_dict naming (numpy arrays that
  ``safetensors.numpy.save_file`` writes, e.g. a checkpoint's ``model.safetensors``).
- ``optim``: optax AdamW with torch_backend.build_optimizer's decay split, torch's clipping
  rule, and lab.schedule.lr_at as the schedule.
- ``step``: one jitted train step with gradient accumulation by ``lax.scan``; the batches
  torch_backend.train_step reads at a step.

What does not exist yet: a ``train.backend`` config field and a backend class behind
lab.trainer (restore/start/step/evaluate/save), evaluation, checkpoints (orbax or
safetensors), run directories, and sharding over devices. Nothing outside this package and
its tests imports it; JAX comes from the ``jax`` extra.
"""
