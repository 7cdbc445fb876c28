"""The JAX side of a run: lab.trainer's Loop drives it exactly as it drives lab/torch_backend.py.

The loop owns the schedule, logging, validation cadence, snapshots, checkpoints' timing and
final.json; this class offers the same few methods over a Flax NNX model, an optax optimizer,
a device mesh (lab.jax.sharding) and orbax checkpoints (lab.jax.checkpoint). What a run
records is the torch run's format: metrics.jsonl, final.json, and the final weights as a
safetensors file in lab/model.py's naming, so lab.export, lab.evaluate and the analysis read a
JAX run unchanged.
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from common.errors import ConfigError
from lab import checkpoint as torch_format
from lab.config import RunConfig
from lab.data import WindowSampler, token_byte_lengths
from lab.jax import sharding
from lab.jax.checkpoint import CheckpointStore, copy_step, save_snapshot, write_weights
from lab.jax.data import eval_blocks, step_batch
from lab.jax.model import Llama
from lab.jax.optim import build_optimizer
from lab.jax.step import TrainStep, split_model
from lab.jax.weights import to_torch_state_dict
from lab.plan import Plan
from lab.precision import Precision, cpu_has_native_bf16, gpu_peak_flops
from lab.precision import peak_flops as torch_peak_flops
from lab.trainer import Resumed

EVAL_LOGIT_ELEMENTS = 2 ** 28  # per validation forward, as lab.torch_backend (1 GiB of fp32 logits)
_PLATFORM_NAMES = {"cpu": "cpu", "gpu": "cuda", "cuda": "cuda", "tpu": "tpu"}


def select_devices(device: str) -> list:
    """train.device as JAX devices: auto = JAX's default platform, cpu, or cuda (its GPUs)."""
    if device == "auto":
        return jax.devices()
    try:
        return jax.devices("cpu" if device == "cpu" else "gpu")
    except RuntimeError:
        raise ConfigError("train.device", f"{device} was asked for but JAX sees no such device "
                                          f"(it has: {jax.default_backend()})") from None


def build_mesh(cfg: RunConfig):
    """The run's device mesh, checked against its micro batch: a mesh the devices cannot form,
    or a micro batch that does not split over it, fails here (lab.single_run calls this before
    the run directory is written) with one line naming the field."""
    t = cfg.train
    mesh = sharding.make_mesh(t.mesh, select_devices(t.device))
    micro = t.micro_batch_size or t.batch_size  # the one-process plan's: the mesh splits it
    if micro % mesh.size:
        raise ConfigError("train.micro_batch_size", f"a micro batch of {micro} sequences does not split over "
                                                    f"the mesh's {mesh.size} devices")
    return mesh


def choose_precision(t_precision: str, device) -> Precision:
    """train.precision for JAX: auto is bf16 matmuls on a TPU or a GPU that has them (compute
    capability 8.0 and up, as torch.cuda.is_bf16_supported), fp32 on a CPU (XLA's CPU dots gain
    nothing reliable from bf16); parameters, norms, softmax and loss stay fp32."""
    kind = _PLATFORM_NAMES.get(device.platform, device.platform)
    if t_precision != "auto":
        return Precision(kind, t_precision, "set in the config")
    if kind == "cpu":
        return Precision(kind, "fp32", "JAX on a CPU computes in fp32")
    if kind == "cuda":
        capability = getattr(device, "compute_capability", None)
        if capability is not None and float(capability) < 8.0:
            return Precision(kind, "fp32", f"GPU lacks bf16 (compute capability {capability})")
        return Precision(kind, "bf16", "GPU supports bf16")
    return Precision(kind, "bf16", f"{kind.upper()} runs bf16 matmuls natively")


class JaxBackend:
    """One run's model, optimizer state and batches on a mesh over this JAX program's devices.

    rank is this process's index (only process 0 writes the run directory) and world the
    number of devices, which MFU divides the peak over. initial_weights (a torch state_dict, as
    lab.model.Llama's) replaces the seeded initialisation: a parity test starts both backends
    from the same weights."""

    name = "jax"

    def __init__(self, cfg: RunConfig, corpus, sampler: WindowSampler, plan: Plan, *,
                 initial_weights: dict | None = None):
        t = cfg.train
        self.cfg, self.corpus, self.sampler, self.plan = cfg, corpus, sampler, plan
        self.mesh = build_mesh(cfg)
        devices = list(self.mesh.devices.flat)
        self.rank, self.world = jax.process_index(), self.mesh.size
        self.precision = choose_precision(t.precision, devices[0])
        self.device_kind = devices[0].device_kind
        compute = jnp.bfloat16 if self.precision.dtype == "bf16" else jnp.float32
        # Initialised on the host from the seed, then placed: the same weights on any mesh.
        with jax.default_device(jax.local_devices(backend="cpu")[0]):  # this process's own host
            model = Llama(cfg.model, rngs=nnx.Rngs(cfg.seed), compute_dtype=compute)
            if initial_weights is not None:
                from lab.jax.weights import load_torch_state_dict

                load_torch_state_dict(model, initial_weights)
        self.graphdef, params = split_model(model)
        self.tx = build_optimizer(t, plan.steps)
        self.param_shardings = sharding.param_sharding(self.mesh, params)
        self.params = sharding.place_params(self.mesh, params, self.param_shardings)
        self.opt_shardings = sharding.opt_state_sharding(self.mesh, self.tx, self.params)
        self.opt_state = sharding.init_opt_state(self.tx, self.params, self.opt_shardings)
        self.train_step = TrainStep(self.graphdef, self.tx, mesh=self.mesh, param_shardings=self.param_shardings,
                                    opt_shardings=self.opt_shardings)
        self._eval_sum = jax.jit(self._nll_sum)
        self.byte_lengths = token_byte_lengths(corpus.tokenizer_path)
        self.store: CheckpointStore | None = None

    # ------------------------------------------------------------------ the loop's interface
    def precision_warning(self) -> str | None:
        p = self.precision
        if p.device == "cpu" and p.dtype == "bf16" and not cpu_has_native_bf16():
            return "warning: train.precision=bf16 on a CPU without native bf16 (emulated, far slower than fp32)"
        return None

    def peak_flops(self) -> float:
        if self.precision.device == "cpu":  # this machine's measured matmul peak, as the torch backend's MFU
            return torch_peak_flops(self.precision)
        if self.precision.device == "cuda":
            return gpu_peak_flops(self.device_kind, self.precision.dtype)
        return float("nan")  # a TPU: no listed peak here, MFU unknown

    def restore(self, run_dir: Path, is_writer: bool) -> Resumed | None:
        """The newest finalized checkpoint in run_dir restored into the live shardings, if any;
        the writer first clears snapshots a kill left half written (orbax cleans its own)."""
        if is_writer:
            torch_format.remove_partial_writes(run_dir)
            for path, problem in torch_format.remove_damaged_snapshots(run_dir):
                print(f"{path}: damaged snapshot ({problem}); removed", file=sys.stderr)
        self.store = CheckpointStore(run_dir, self.cfg.train.keep_checkpoints, self.cfg.train.keep_steps)
        found = self.store.restore_latest(self._abstract_state())
        if found is None:
            return None
        step, state, loop = found
        self.params, self.opt_state = state["params"], state["opt_state"]
        if step == self.plan.steps:
            self._complete_final_weights(run_dir)
        return Resumed(step, loop["elapsed_s"], list(loop.get("window_losses", [])), loop.get("log_every"),
                       f"step_{step:08d}")

    def start(self) -> None:
        """Nothing to wrap: the step was jitted at construction and compiles on its first call."""

    def step(self, step: int, lr: float) -> tuple[float, float]:
        inputs, targets = step_batch(self.sampler, self.plan, step, self.cfg.train.batch_size)
        inputs, targets = sharding.place_batch(self.mesh, inputs, targets)
        self.params, self.opt_state, metrics = self.train_step(self.params, self.opt_state, inputs, targets)
        used = float(metrics["lr"])
        # The optimizer tabulates lab.schedule.lr_at itself (inside the jitted step); the loop's
        # rate is logged. They must be the same number, or the schedule's step offset is wrong.
        if not math.isclose(used, lr, rel_tol=1e-6, abs_tol=1e-12):
            raise RuntimeError(f"step {step}: the optimizer used lr {used}, the loop's schedule says {lr}")
        return float(metrics["loss"]), float(metrics["grad_norm"])

    def evaluate(self, split: str) -> dict:
        """Held-out loss (nats per token) and bits per byte, as torch_backend.evaluate."""
        t = self.cfg.train
        devices = self.mesh.size
        cap = max(1, EVAL_LOGIT_ELEMENTS // (t.seq_len * self.cfg.model.vocab_size))
        rows = max(devices, (min(t.micro_batch_size or t.batch_size, cap) // devices) * devices)
        nats, n_tokens, n_bytes = 0.0, 0, 0
        for inputs, targets in eval_blocks(self.corpus.tokens(split), t.seq_len, t.eval_tokens, rows):
            n = len(inputs)
            n_tokens += targets.size
            n_bytes += int(self.byte_lengths[targets].sum())
            if n < rows:  # one shape for every block (one compilation), the padding masked by target -1
                inputs = np.concatenate([inputs, np.zeros((rows - n, t.seq_len), np.int32)])
                targets = np.concatenate([targets, np.full((rows - n, t.seq_len), -1, np.int32)])
            x, y = sharding.place_batch(self.mesh, inputs[None], targets[None])
            nats += float(self._eval_sum(self.params, x[0], y[0]))
        return {"loss": nats / n_tokens, "bpb": nats / math.log(2) / max(1, n_bytes), "tokens": n_tokens}

    def has_checkpoint(self, run_dir: Path, step: int | None = None) -> bool:
        return CheckpointStore.exists(run_dir, step)

    def adopt(self, trunk_dir: Path, step: int, run_dir: Path) -> bool:
        return copy_step(trunk_dir, step, run_dir)

    def barrier(self) -> None:
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils

            multihost_utils.sync_global_devices("lab.jax.barrier")

    def writer_says(self, answer: bool) -> bool:
        """Process 0's answer on every process: work that follows it may be collective."""
        if jax.process_count() == 1:
            return answer
        from jax.experimental import multihost_utils

        return bool(multihost_utils.broadcast_one_to_all(np.bool_(answer)))

    def save(self, run_dir: Path, step: int, loop_state: dict) -> None:
        """An orbax checkpoint (collective: every process calls it); at the last step also the
        weights in torch format, so the run's final checkpoint reads like a torch run's."""
        self.store.save(step, {"params": self.params, "opt_state": self.opt_state}, loop_state)
        if step == self.plan.steps:
            self.store.wait()
            self._write_final_weights(run_dir, step)

    def _write_final_weights(self, run_dir: Path, step: int) -> None:
        weights = self._torch_weights()  # on every process: gathering shards is collective
        if self.rank == 0:
            write_weights(run_dir / "checkpoints" / f"step_{step:08d}", weights, {"step": step})

    def _complete_final_weights(self, run_dir: Path) -> None:
        """A kill after the final orbax checkpoint landed but before its torch-format weights
        did leaves a run the loop finds finished (it resumes at the last step and saves
        nothing): the weights are written from the restored state instead, so final.json never
        points at a checkpoint lab.export cannot read."""
        step_dir = run_dir / "checkpoints" / f"step_{self.plan.steps:08d}"
        missing = torch_format.verify(step_dir) is not None if self.rank == 0 else False
        if self.writer_says(missing):
            self._write_final_weights(run_dir, self.plan.steps)

    def finish(self) -> None:
        if self.store is not None:
            self.store.wait()
            self.store.close()

    def save_snapshot(self, run_dir: Path, name: str, step: int, tokens: int) -> None:
        weights = self._torch_weights()  # on every process, as in save()
        if self.rank == 0:
            save_snapshot(run_dir, name, step, tokens, weights)

    # ------------------------------------------------------------------ internals
    def _abstract_state(self):
        state = {"params": self.params, "opt_state": self.opt_state}
        return jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=a.sharding), state)

    def _torch_weights(self) -> dict[str, np.ndarray]:
        if jax.process_count() > 1:  # FSDP shards live on other hosts too: gathered (collectively) first
            from jax.experimental import multihost_utils

            params = multihost_utils.process_allgather(self.params, tiled=True)
        else:
            params = jax.device_get(self.params)
        return to_torch_state_dict(nnx.merge(self.graphdef, params))

    def _nll_sum(self, params, inputs, targets):
        """Summed next-token nats over the targets >= 0 (the rest is padding)."""
        model = nnx.merge(self.graphdef, params)
        valid = targets >= 0
        losses = model.token_losses(inputs, jnp.where(valid, targets, 0))
        return jnp.sum(jnp.where(valid, losses, 0.0), dtype=jnp.float32)
