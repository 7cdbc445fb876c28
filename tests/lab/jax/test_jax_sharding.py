"""Sharding over a device mesh (issue 17, test 6): the same run on 4 host CPU devices and on 1.

XLA reads the device count once, before JAX starts, so each configuration runs in its own
process (tests/lab/jax/_sharding_worker.py), both at once; the one-device run is shared with
test_jax_distributed.py when both run in a session. Mesh-spec errors are checked here, without
devices.
"""
import numpy as np
import pytest

pytest.importorskip("jax")

from jax.sharding import PartitionSpec as P

from common.errors import ConfigError
from lab.jax.sharding import fsdp_spec, make_mesh
from tests.lab.jax._worker_launch import (assert_trained_alike, params, read, reference_done, start, start_reference,
                                         wait_all, worker_env)

MESH = {"data": 2, "fsdp": 2}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    four = tmp_path_factory.mktemp("sharding") / "four"
    one, reference = start_reference(tmp_path_factory)
    wait_all([start(MESH, four, worker_env(4), "checks"), *reference])
    reference_done(one)
    return four, one


def test_parameters_are_sharded_as_annotated(runs):
    four, _ = runs
    report = read(four)
    assert report["devices"] == 4 and report["mesh"] == MESH
    assert report["specs"] == report["expected_specs"] and report["opt_specs_match"]
    split = 0
    for name, spec in report["specs"].items():
        shape, shards = report["shapes"][name], report["shard_shapes"][name]
        assert len(shards) == 4
        if "fsdp" in spec:  # split in two over fsdp, each half on the 2 data replicas
            split += 1
            dim = [i for i, (a, b) in enumerate(zip(shape, shards[0])) if a != b]
            assert len(dim) == 1 and shards[0][dim[0]] * 2 == shape[dim[0]], name
            assert all(s == shards[0] for s in shards), name
        else:
            assert len(shape) == 1 and all(s == shape for s in shards), name
    assert split == 15  # every matrix (7 per block, the embedding); the 5 norm gains replicated
    assert report["batch_shard_shapes"] == [[4, 1, 16]] * 4  # micro batch of 4 over 4 devices


def test_four_devices_train_as_one(runs):
    four, one = runs
    sharded, single = read(four), read(one)
    assert single["devices"] == 1 and "mesh" not in single  # TrainStep as before sharding existed
    assert sharded["traces"] == single["traces"] == 1 and sharded["donated"] and single["donated"]
    # rel 1e-6: the shards reduce in another order, a few 1e-7 nats apart by the third step.
    assert sharded["losses"] == pytest.approx(single["losses"], rel=1e-6, abs=0)
    assert sharded["grad_norms"] == pytest.approx(single["grad_norms"], rel=1e-5)
    initial_four, initial_one = params(four, "initial"), params(one, "initial")
    assert initial_four.keys() == initial_one.keys() and len(initial_one) == 20
    for name, value in initial_one.items():
        assert np.array_equal(initial_four[name], value), name
    final_four, final_one = params(four, "final"), params(one, "final")
    for name, value in final_one.items():
        assert np.abs(value - initial_one[name]).max() > 1e-3, name  # trained, not just placed
    assert_trained_alike(final_four, final_one, single["lr"])


def test_mesh_specs_and_placement_on_four_devices(runs):
    checks = read(runs[0])["checks"]
    assert checks["meshes"] == {'{"data": 4}': {"data": 4, "fsdp": 1}, '{"fsdp": -1}': {"data": 1, "fsdp": 4},
                                '{"data": 2, "fsdp": -1}': {"data": 2, "fsdp": 2},
                                "{}": {"data": 4, "fsdp": 1}}
    assert checks["replicated_on_data"]  # fsdp=1: every parameter replicated
    field, reason = checks["batch_error"]
    assert field == "train.micro_batch_size" and "6" in reason and "4 devices" in reason


@pytest.mark.parametrize("spec, why", [
    ({"data": 3}, "needs 3 devices, there are 4"),
    ({"data": 2, "fsdp": 3}, "needs 6 devices"),
    ({"fsdp": -1, "data": -1}, "at most one axis may be -1"),
    ({"data": 3, "fsdp": -1}, "does not divide the 4 devices"),
    ({"model": 4}, "unknown axis 'model'"),
    ({"data": 0}, "data=0"),
    ({"fsdp": -2}, "fsdp=-2"),
    ({"data": 2.0, "fsdp": 2}, "data=2.0"),
])
def test_a_mesh_spec_that_cannot_be_met_is_a_config_error(spec, why):
    with pytest.raises(ConfigError) as e:
        make_mesh(spec, devices=[object()] * 4)  # refused before any device is looked at
    assert e.value.field == "train.mesh" and why in e.value.reason and "\n" not in str(e.value)


def test_default_mesh_puts_every_device_on_data():
    import jax

    mesh = make_mesh(None)
    assert mesh.axis_names == ("data", "fsdp") and dict(mesh.shape) == {"data": jax.device_count(), "fsdp": 1}
    assert dict(make_mesh({}).shape) == dict(mesh.shape)


def test_fsdp_rule():
    assert fsdp_spec((64, 32), 2) == P("fsdp", None)  # the largest dimension
    assert fsdp_spec((32, 96), 4) == P(None, "fsdp")
    assert fsdp_spec((32, 32), 2) == P("fsdp", None)  # a tie: the first
    assert fsdp_spec((30, 96), 4) == P(None, "fsdp") and fsdp_spec((96, 30), 4) == P("fsdp", None)
    assert fsdp_spec((30, 8), 4) == P(None, "fsdp")  # the largest that divides, not the largest
    assert fsdp_spec((30, 6), 4) == P()  # none divides: replicated
    assert fsdp_spec((32,), 2) == P() and fsdp_spec((), 2) == P()
    assert fsdp_spec((64, 32), 1) == P()


def test_a_mesh_step_derives_its_shardings_from_its_first_arguments():
    """On this process's one device: TrainStep given only a mesh takes the FSDP rule's
    shardings from its first call's arguments and keeps the state in them."""
    import jax
    from flax import nnx

    from lab.config import ModelConfig, TrainConfig
    from lab.jax import sharding
    from lab.jax.model import Llama
    from lab.jax.optim import build_optimizer
    from lab.jax.step import TrainStep, split_model

    cfg = ModelConfig(d_model=16, n_layers=1, n_heads=2, n_kv_heads=1, vocab_size=32)
    t = TrainConfig(tokens=2 * 4 * 8, batch_size=4, micro_batch_size=2, seq_len=8, warmup=0, precision="fp32")
    tx = build_optimizer(t, 2)
    graphdef, host = split_model(Llama(cfg, rngs=nnx.Rngs(0)))
    tokens = np.random.default_rng(0).integers(0, 32, (2, 2, 9)).astype(np.int32)
    mesh = sharding.make_mesh({})
    params = sharding.place_params(mesh, host)
    opt_state = sharding.init_opt_state(tx, params, sharding.opt_state_sharding(mesh, tx, params))
    step = TrainStep(graphdef, tx, mesh)
    first = jax.tree.leaves(params)[0]
    new_params, new_state, metrics = step(params, opt_state, *sharding.place_batch(mesh, tokens[..., :-1],
                                                                                    tokens[..., 1:]))
    assert first.is_deleted()  # donated: the state was already where the step wants it
    assert step.param_shardings == sharding.param_sharding(mesh, host) and step.traces == 1
    assert step.opt_shardings == sharding.opt_state_sharding(mesh, tx, host)
    for tree, shardings in ((new_params, step.param_shardings), (new_state, step.opt_shardings)):
        assert all(x.sharding == s for x, s in zip(jax.tree.leaves(tree), jax.tree.leaves(shardings)))
    assert metrics["loss"].sharding == sharding.replicated(mesh) and np.isfinite(float(metrics["loss"]))
