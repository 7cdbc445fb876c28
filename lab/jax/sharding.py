"""Spreading the JAX step over devices and processes: the mesh, FSDP annotation, batch placement.

- The mesh has two axes, ``data`` and ``fsdp`` (``train.mesh``; empty = every device on data).
  The batch is split over both together; parameters and optimizer moments are split over fsdp
  and replicated over data, so fsdp=1 is plain data parallelism.
- FSDP rule, a function of an array's shape only: an array of ndim >= 2 is split over fsdp
  along its largest dimension divisible by the fsdp size (the first on a tie); anything else
  (norm gains, scalars, a matrix with no divisible dimension) is replicated. Optax's moments
  have their parameters' shapes, so the same rule gives them their parameters' shardings.
- Host values in, global arrays out: every process passes the same full (global) numpy value,
  and ``jax.make_array_from_callback`` keeps only the slices its own devices hold. So initial
  weights (one seeded init on the host) and batches (a pure function of seed and sequence
  index) are identical whatever the device or process count. The micro batch is the global
  one, over every device: plan with world_size=1 and read lab.jax.step.micro_batches at rank 0.
  (An init jitted instead of eager differs in the last ulp, so init one way throughout.)
- Multi-process: ``initialize_distributed()`` joins ``jax.distributed`` when the environment
  says this is one of several processes (SLURM with several tasks, JAX_NUM_PROCESSES > 1, a
  Cloud TPU VM); the caller lets only process 0 write the run directory.
"""
from __future__ import annotations

import math
import os

import jax
import numpy as np
import optax
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from common.errors import ConfigError

AXES = ("data", "fsdp")
BATCH_AXES = AXES  # the micro-batch dimension is split over both mesh axes together


def make_mesh(spec: dict[str, int] | None = None, devices=None) -> Mesh:
    """A (data, fsdp) mesh over `devices` (default: every device of every process).

    spec: axis -> size; -1 = the devices the other axis leaves; a missing axis is 1, except
    that an empty spec puts every device on data. The sizes must multiply to the device count
    exactly: a mesh over a subset would leave devices idle without saying so."""
    devices = list(jax.devices() if devices is None else devices)
    n = len(devices)
    spec = dict(spec or {"data": -1})
    unknown = sorted(set(spec) - set(AXES))
    if unknown:
        raise ConfigError("train.mesh", f"unknown axis {unknown[0]!r}; the axes are data and fsdp")
    sizes = {axis: spec.get(axis, 1) for axis in AXES}
    for axis, size in sizes.items():
        if isinstance(size, bool) or not isinstance(size, int) or (size < 1 and size != -1):
            raise ConfigError("train.mesh", f"{axis}={size!r}: a device count >= 1, or -1 for the remaining devices")
    free = [axis for axis, size in sizes.items() if size == -1]
    if len(free) > 1:
        raise ConfigError("train.mesh", "at most one axis may be -1")
    if free:
        fixed = math.prod(size for size in sizes.values() if size != -1)
        if n % fixed:
            raise ConfigError("train.mesh", f"{_show(sizes)} does not divide the {n} devices")
        sizes[free[0]] = n // fixed
    if math.prod(sizes.values()) != n:
        raise ConfigError("train.mesh", f"{_show(sizes)} needs {math.prod(sizes.values())} devices, "
                                        f"there are {n}")
    # Auto axes: jax.make_mesh's default (Explicit) makes sharding part of each array's type,
    # which with_sharding_constraint refuses and ambiguous ops would need spelled out; with
    # Auto the compiler propagates shardings from the step's in/out shardings.
    return jax.make_mesh(tuple(sizes[a] for a in AXES), AXES, axis_types=(AxisType.Auto,) * len(AXES),
                         devices=devices)


def _show(sizes: dict) -> str:
    return " x ".join(f"{axis}={size}" for axis, size in sizes.items())


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def fsdp_spec(shape: tuple[int, ...], fsdp: int) -> P:
    """The FSDP rule (module docstring): split the largest dimension divisible by `fsdp`."""
    if fsdp == 1 or len(shape) < 2:
        return P()
    candidates = [d for d in range(len(shape)) if shape[d] % fsdp == 0]
    if not candidates:
        return P()
    dim = max(candidates, key=lambda d: (shape[d], -d))
    return P(*(("fsdp" if d == dim else None) for d in range(len(shape))))


def sharding_for(mesh: Mesh, shape) -> NamedSharding:
    return NamedSharding(mesh, fsdp_spec(tuple(shape), mesh.shape["fsdp"]))


def param_sharding(mesh: Mesh, params):
    """A NamedSharding per parameter (same tree as `params`; leaves need only ``.shape``)."""
    return jax.tree.map(lambda p: sharding_for(mesh, p.shape), params)


def opt_state_sharding(mesh: Mesh, tx: optax.GradientTransformation, params):
    """A NamedSharding per leaf of ``tx.init(params)``: moments as their parameters, scalars
    (counts, injected hyperparameters) replicated. Traced abstractly: nothing is allocated."""
    abstract = jax.eval_shape(tx.init, params)
    return jax.tree.map(lambda leaf: sharding_for(mesh, leaf.shape), abstract)


def _global_array(value, sharding: NamedSharding) -> jax.Array:
    value = np.asarray(value)
    # Each process fills only its own devices' slices of the global value.
    return jax.make_array_from_callback(value.shape, sharding, lambda index: value[index])


def place_params(mesh: Mesh, params, shardings=None):
    """Host (or single-device) parameter values as global arrays in `shardings` (default: the
    FSDP rule). Every process must pass the same values: init the model from the same seed."""
    shardings = param_sharding(mesh, params) if shardings is None else shardings
    return jax.tree.map(_global_array, params, shardings)


def init_opt_state(tx: optax.GradientTransformation, params, shardings):
    """``tx.init(params)`` computed straight into `shardings` (opt_state_sharding's), so no
    device ever holds the whole state."""
    return jax.jit(tx.init, out_shardings=shardings)(params)


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """(accumulation, micro_batch, T) token arrays: micro_batch split over data and fsdp."""
    return NamedSharding(mesh, P(None, BATCH_AXES, None))


def place_batch(mesh: Mesh, inputs: np.ndarray, targets: np.ndarray) -> tuple[jax.Array, jax.Array]:
    """The GLOBAL (accumulation, micro_batch, T) batch, identical on every process, as global
    arrays split by batch_sharding. Each process reads its own rows only (any process count)."""
    devices = mesh.devices.size
    if inputs.shape[1] % devices:
        raise ConfigError("train.micro_batch_size", f"a micro batch of {inputs.shape[1]} sequences does not "
                                                    f"split over the mesh's {devices} devices "
                                                    f"({_show(dict(mesh.shape))})")
    sharding = batch_sharding(mesh)
    return _global_array(inputs, sharding), _global_array(targets, sharding)


def initialize_distributed() -> tuple[int, int]:
    """(process index, process count), joining jax.distributed first when this is one of
    several processes. Call it before anything touches a device (the backend must start
    after it). Safe to call twice. Several processes means:

    - JAX_NUM_PROCESSES > 1: explicit, with JAX_COORDINATOR_ADDRESS (host:port, read by JAX
      itself) and JAX_PROCESS_ID (passed through: JAX reads neither count nor id);
    - an srun step of several tasks, SLURM_STEP_NUM_TASKS > 1 (submitit, launcher.procs_per_run):
      JAX reads SLURM's variables; it makes each task see one local GPU, SLURM_LOCALID
      (JAX_LOCAL_DEVICE_IDS overrides that);
    - a Cloud TPU VM: JAX finds the pod's hosts from the TPU metadata (one host: 1 process).

    Otherwise nothing is initialised and the answer is (0, 1).
    """
    if jax.distributed.is_initialized():
        return jax.process_index(), jax.process_count()
    explicit = int(os.environ.get("JAX_NUM_PROCESSES", "1"))
    # The tasks of an srun step (submitit's), not the allocation: a lone process in a batch script
    # of a many-task allocation is not one of several, and would wait for peers that never come.
    slurm = "SLURM_JOB_ID" in os.environ and int(os.environ.get("SLURM_STEP_NUM_TASKS", "1")) > 1
    if explicit <= 1 and not slurm and not _on_cloud_tpu():
        return 0, 1
    # Gloo is JAX's default for cross-process collectives on CPU; a config that unset it would
    # leave CPU processes unable to reduce anything, so set it back (before the backend starts).
    if jax.config.jax_cpu_collectives_implementation is None:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    if explicit > 1:
        address, process = os.environ.get("JAX_COORDINATOR_ADDRESS"), os.environ.get("JAX_PROCESS_ID")
        if not address or process is None:
            raise RuntimeError(f"JAX_NUM_PROCESSES={explicit} needs JAX_COORDINATOR_ADDRESS (host:port of "
                               "process 0) and JAX_PROCESS_ID (0 .. JAX_NUM_PROCESSES-1)")
        jax.distributed.initialize(address, num_processes=explicit, process_id=int(process))
    else:
        jax.distributed.initialize()
    return jax.process_index(), jax.process_count()


def _on_cloud_tpu() -> bool:
    try:  # set by JAX at import when libtpu and TPU chips are present; no public equivalent
        from jax._src.cloud_tpu_init import running_in_cloud_tpu_vm
    except ImportError:
        return False
    return bool(running_in_cloud_tpu_vm)
