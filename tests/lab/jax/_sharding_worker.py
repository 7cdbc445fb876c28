"""A few sharded train steps of a tiny model, run in a subprocess by test_jax_sharding.py and
test_jax_distributed.py: the device count (XLA_FLAGS) and the jax.distributed variables must
be in the environment before JAX is imported, so each configuration gets its own process.

    python _sharding_worker.py MESH_JSON OUT_PREFIX [checks]     (MESH_JSON null: no mesh)

writes OUT_PREFIX.<process index>.json (losses, mesh, per-parameter specs and local shard
shapes) and, from process 0, OUT_PREFIX.npz (initial and final parameters, gathered).
``checks`` adds what needs several devices but no training: other mesh specs, the batch
divisibility error.
"""
import json
import sys
import time

START = time.perf_counter()

import numpy as np

from lab.jax.sharding import initialize_distributed

process, processes = initialize_distributed()  # before anything touches a device

import jax
from flax import nnx
from jax.experimental import multihost_utils

from common.errors import ConfigError
from lab.config import ModelConfig, TrainConfig
from lab.jax import sharding
from lab.jax.model import Llama
from lab.jax.optim import build_optimizer
from lab.jax.step import TrainStep, split_model

STEPS, ACCUMULATION, MICRO, SEQ, VOCAB, LR = 3, 4, 4, 16, 64, 1e-3


def flat(tree) -> dict[str, np.ndarray]:
    """Parameters by path, gathered to full numpy arrays on every process."""
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    gathered = multihost_utils.process_allgather([leaf for _, leaf in leaves], tiled=True)
    return {jax.tree_util.keystr(path): np.asarray(value) for (path, _), value in zip(leaves, gathered)}


def device_checks(host_params) -> dict:
    meshes = {json.dumps(spec): dict(sharding.make_mesh(spec).shape)
              for spec in ({"data": 4}, {"fsdp": -1}, {"data": 2, "fsdp": -1}, {})}
    data4 = sharding.make_mesh({"data": 4})
    replicated_on_data = all(s.spec == jax.sharding.PartitionSpec()
                             for s in jax.tree.leaves(sharding.param_sharding(data4, host_params)))
    mesh = sharding.make_mesh({"data": 2, "fsdp": 2})
    try:
        sharding.place_batch(mesh, np.zeros((2, 6, 8), np.int32), np.zeros((2, 6, 8), np.int32))
        batch_error = None
    except ConfigError as e:
        batch_error = [e.field, e.reason]
    return {"meshes": meshes, "replicated_on_data": replicated_on_data, "batch_error": batch_error}


def main(mesh_spec: dict | None, out: str, checks: bool = False) -> None:
    """mesh_spec None: today's plain step on the default device (the reference); else the
    sharded path, every argument placed and the step jitted with explicit shardings."""
    cfg = ModelConfig(d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=VOCAB, init_std=0.05)
    t = TrainConfig(tokens=STEPS * ACCUMULATION * MICRO * SEQ, batch_size=ACCUMULATION * MICRO,
                    micro_batch_size=MICRO, seq_len=SEQ, lr=LR, warmup=1, schedule="cosine",
                    weight_decay=0.1, grad_clip=0.5, precision="fp32")
    graphdef, host_params = split_model(Llama(cfg, rngs=nnx.Rngs(0)))
    tx = build_optimizer(t, STEPS)
    report = {"lr": LR, "process": process, "processes": processes, "devices": jax.device_count(),
              "local_devices": jax.local_device_count()}
    if mesh_spec is None:
        params, opt_state, step = host_params, tx.init(host_params), TrainStep(graphdef, tx)
        place = lambda x, y: (jax.numpy.asarray(x), jax.numpy.asarray(y))
    else:
        mesh = sharding.make_mesh(mesh_spec)
        shardings = sharding.param_sharding(mesh, host_params)
        params = sharding.place_params(mesh, host_params, shardings)
        opt_shardings = sharding.opt_state_sharding(mesh, tx, params)
        opt_state = sharding.init_opt_state(tx, params, opt_shardings)
        step = TrainStep(graphdef, tx, mesh, shardings, opt_shardings)
        place = lambda x, y: sharding.place_batch(mesh, x, y)
        report["mesh"] = dict(mesh.shape)
        report["expected_specs"] = {jax.tree_util.keystr(p): repr(s.spec)
                                    for p, s in jax.tree_util.tree_flatten_with_path(shardings)[0]}
        report["opt_specs_match"] = all(x.sharding.is_equivalent_to(s, x.ndim) for x, s in
                                        zip(jax.tree.leaves(opt_state), jax.tree.leaves(opt_shardings)))
    initial = flat(params)
    rng = np.random.default_rng(0)  # the same global batches on every process and device count
    losses, norms = [], []
    for _ in range(STEPS):
        tokens = rng.integers(0, VOCAB, (ACCUMULATION, MICRO, SEQ + 1)).astype(np.int32)
        inputs, targets = place(tokens[..., :-1], tokens[..., 1:])
        donated = jax.tree.leaves(params)[0]
        params, opt_state, metrics = step(params, opt_state, inputs, targets)
        losses.append(float(metrics["loss"]))  # replicated: readable on every process
        norms.append(float(metrics["grad_norm"]))
    leaves = jax.tree_util.tree_flatten_with_path(params)[0]
    report.update({
        "losses": losses, "grad_norms": norms, "traces": step.traces, "donated": donated.is_deleted(),
        "specs": {jax.tree_util.keystr(p): repr(x.sharding.spec) for p, x in leaves if mesh_spec is not None},
        "shard_shapes": {jax.tree_util.keystr(p): [list(s.data.shape) for s in x.addressable_shards]
                         for p, x in leaves},
        "shapes": {jax.tree_util.keystr(p): list(x.shape) for p, x in leaves},
        "batch_shard_shapes": [list(s.data.shape) for s in inputs.addressable_shards],
    })
    final = flat(params)
    if checks:
        report["checks"] = device_checks(host_params)
    report["seconds"] = time.perf_counter() - START
    with open(f"{out}.{process}.json", "w") as f:
        json.dump(report, f)
    if process == 0:
        np.savez(f"{out}.npz", **{f"initial{k}": v for k, v in initial.items()},
                 **{f"final{k}": v for k, v in final.items()})


if __name__ == "__main__":
    main(json.loads(sys.argv[1]), sys.argv[2], sys.argv[3:] == ["checks"])
