"""JAX checkpoints (lab.jax.checkpoint): exact round trip of params and optimizer state, the
torch path's layout and pruning, killed saves ignored, damaged ones skipped by checksum, a
trunk's checkpoint adopted, and final weights that the torch loaders read."""
import json
import shutil

import numpy as np
import pytest

jax = pytest.importorskip("jax")
pytest.importorskip("orbax.checkpoint")

import jax.numpy as jnp
import optax
import torch
from flax import nnx

from lab import checkpoint as torch_checkpoint
from lab.config import ModelConfig, TrainConfig
from lab.jax.checkpoint import (
    MANIFEST,
    ORBAX_TMP_SUFFIX,
    CheckpointStore,
    copy_step,
    has_checkpoint,
    list_steps,
    save_snapshot,
    step_dir,
    verify_step,
    write_weights,
)
from lab.jax.model import Llama
from lab.jax.optim import build_optimizer
from lab.jax.weights import to_torch_state_dict
from lab.model import Llama as TorchLlama

CFG = ModelConfig(d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=64)


def loop_state(step: int) -> dict:
    return {"step": step, "window_losses": [4.5, 4.25], "elapsed_s": 1.5, "log_every": 10, "sequences_seen": 4 * step}


@pytest.fixture(scope="module")
def trained():
    """(model graph, state after two AdamW updates). The gradients are random, not the model's:
    what matters is an optimizer state with nonzero moments, a count and its hyperparameters."""
    model = Llama(CFG, rngs=nnx.Rngs(0))
    graphdef, params = nnx.split(model, nnx.Param)
    tx = build_optimizer(TrainConfig(tokens=8 * 4 * 16, batch_size=4, seq_len=16, lr=1e-2, warmup=2), 8)
    opt_state = tx.init(params)
    rng = np.random.default_rng(0)
    for _ in range(2):  # eagerly: jitting the update would compile for longer than it runs
        grads = jax.tree.map(lambda p: jnp.asarray(rng.standard_normal(p.shape, dtype=np.float32)), params)
        updates, opt_state = tx.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
    return graphdef, {"params": params, "opt_state": opt_state}


def host_copy(state) -> list[np.ndarray]:
    return [np.array(leaf) for leaf in jax.tree.leaves(state)]


def small_state(value: float):
    """A cheap stand-in where only the checkpoint bookkeeping is under test."""
    return {"params": {"w": jnp.full((3,), float(value), jnp.float32)}, "opt_state": (jnp.asarray(int(value)),)}


def saved_steps(run_dir, keep, keep_steps, steps) -> list[int]:
    with CheckpointStore(run_dir, keep, keep_steps) as store:
        for s in steps:
            store.save(s, small_state(s), loop_state(s))
    return list_steps(run_dir)


def test_round_trip_is_exact_with_optax_types_and_the_torch_layout(tmp_path, trained):
    _, state = trained
    expected = host_copy(state)
    state = jax.tree.map(jnp.copy, state)  # ours to delete below
    with CheckpointStore(tmp_path, keep=2) as store:
        store.save(120, state, loop_state(120))
        for leaf in jax.tree.leaves(state):  # as TrainStep's donation would, while the write runs
            leaf.delete()
        store.wait()
        assert store.has() and store.has(120) and not store.has(119)
    root = tmp_path / "checkpoints"
    assert [p.name for p in root.iterdir()] == ["step_00000120"]
    assert {p.name for p in (root / "step_00000120").iterdir()} >= {"state", "loop", MANIFEST}

    abstract = jax.eval_shape(lambda: trained[1])
    with CheckpointStore(tmp_path, keep=2) as fresh:
        step, restored, loop = fresh.restore_latest(abstract)
    assert step == 120 and loop == loop_state(120)
    # optax's NamedTuples (InjectStatefulHyperparamsState, ScaleByAdamState, MaskedState...) and
    # nnx.State, not dicts: the jitted step takes the restored state as it took the original.
    assert jax.tree.structure(restored) == jax.tree.structure(trained[1])
    got = host_copy(restored)
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    assert int(restored["opt_state"][1].count) == 2  # the moments are not zero: the updates ran


def test_a_killed_save_is_ignored_and_cleaned(tmp_path, monkeypatch):
    # Capture what orbax has written just before its rename (the moment a kill loses most):
    # the real temporary directory of an unfinished save, under orbax's own name.
    captured = tmp_path / "captured"
    seal = CheckpointStore._seal

    def seal_after_capture(self):
        shutil.copytree(self._sealing, captured)
        seal(self)

    saved_steps(tmp_path, 3, [], [1])
    monkeypatch.setattr(CheckpointStore, "_seal", seal_after_capture)  # (orbax holds the store's bound _seal)
    saved_steps(tmp_path, 3, [], [2])
    monkeypatch.undo()
    root = tmp_path / "checkpoints"
    shutil.rmtree(root / "step_00000002")
    killed = root / f"step_00000002{ORBAX_TMP_SUFFIX}"
    shutil.move(captured, killed)
    (root / ".tmp-step_00000003-123").mkdir()  # copy_step's staging, killed
    assert (killed / "state").is_dir()
    assert list_steps(tmp_path) == [1] and has_checkpoint(tmp_path) and not has_checkpoint(tmp_path, 2)

    with CheckpointStore(tmp_path, keep=3) as store:
        assert sorted(p.name for p in root.iterdir()) == ["step_00000001"]  # the owner clears them
        step, state, _ = store.restore_latest(jax.eval_shape(lambda: small_state(0)))
        assert step == 1 and float(state["params"]["w"][0]) == 1.0
        store.save(2, small_state(22), loop_state(2))  # the step is taken again, cleanly
    assert list_steps(tmp_path) == [1, 2] and has_checkpoint(tmp_path, 2)


def test_a_save_that_fails_before_its_rename_raises_and_prunes_nothing(tmp_path, monkeypatch):
    saved_steps(tmp_path, 1, [], [1])

    def disk_full(self):
        raise OSError("disk full")
    monkeypatch.setattr(CheckpointStore, "_seal", disk_full)
    store = CheckpointStore(tmp_path, keep=1)
    store.save(2, small_state(2), loop_state(2))  # returns: the failure is in the background
    with pytest.raises(OSError, match="disk full"):
        store.wait()
    store.close()
    assert list_steps(tmp_path) == [1] and has_checkpoint(tmp_path, 1)  # keep=1, yet 1 stays


@pytest.mark.parametrize("keep,keep_steps,steps", [
    (2, [2], [1, 2, 3, 4, 5]),
    (2, [3], [1, 2, 3]),  # a kept step is not one of the newest: 1 and 2 stay
    (1, [2, 4], [1, 2, 3, 4, 5, 6]),
    (0, [], [1, 2, 3]),  # lab.checkpoint.save's slice: keep=0 prunes nothing
])
def test_pruning_is_lab_checkpoint_saves(tmp_path, keep, keep_steps, steps):
    got = saved_steps(tmp_path / "jax", keep, keep_steps, steps)
    torch.manual_seed(0)
    model = TorchLlama(ModelConfig(d_model=8, n_layers=1, n_heads=2, n_kv_heads=1, vocab_size=16))
    for s in steps:
        torch_checkpoint.save(tmp_path / "torch", s, model, {"step": s}, keep, keep_steps)
    assert got == [torch_checkpoint._step_of(p) for p in torch_checkpoint.list_checkpoints(tmp_path / "torch")]
    if (keep, keep_steps) == (2, [2]):
        assert got == [2, 4, 5]


def test_a_save_below_the_newest_removes_the_newer_ones(tmp_path):
    saved_steps(tmp_path, 5, [], [1, 2, 3])
    (tmp_path / "checkpoints" / "step_00000003" / "state" / "_METADATA").write_text("torn")
    messages = []
    with CheckpointStore(tmp_path, keep=5) as store:
        step, _, _ = store.restore_latest(jax.eval_shape(lambda: small_state(0)), log=messages.append)
        assert step == 2 and len(messages) == 1 and "step_00000003" in messages[0]
        store.save(2, small_state(20), loop_state(2))  # a rerun of the step the resume stands on
        store.wait()
        assert list_steps(tmp_path) == [1, 2]  # 3 (damaged, past the resume) is gone
        store.save(3, small_state(30), loop_state(3))
        store.save(4, small_state(40), loop_state(4))
        store.save(3, small_state(31), loop_state(3))  # another timeline from 2: 3 and 4 superseded
        store.wait()
        assert list_steps(tmp_path) == [1, 2, 3]
        step, state, loop = store.restore_latest(jax.eval_shape(lambda: small_state(0)))
    assert step == 3 and float(state["params"]["w"][0]) == 31.0 and loop["step"] == 3


def test_a_branch_adopts_its_trunks_checkpoint(tmp_path, trained):
    _, state = trained
    trunk, branch = tmp_path / "trunk", tmp_path / "branch"
    with CheckpointStore(trunk, keep=1, keep_steps=[4]) as store:
        store.save(4, state, loop_state(4))
        store.save(6, small_state(6), loop_state(6))
    assert not copy_step(trunk, 5, branch)  # no checkpoint at 5
    assert copy_step(trunk, 4, branch)
    assert sorted(p.name for p in (branch / "checkpoints").iterdir()) == ["step_00000004"]  # no staging left
    with CheckpointStore(branch, keep=1) as store:
        step, restored, loop = store.restore_latest(jax.eval_shape(lambda: state))
    assert step == 4 and loop == loop_state(4)
    assert jax.tree.structure(restored) == jax.tree.structure(state)
    assert all(np.array_equal(a, b) for a, b in zip(host_copy(restored), host_copy(state)))

    (trunk / "checkpoints" / "step_00000006" / "loop" / "metadata").write_text("{}")
    assert not CheckpointStore.exists(trunk, 6) and not copy_step(trunk, 6, branch)  # damaged: not adopted


def test_final_weights_read_like_a_torch_checkpoint(tmp_path, trained):
    graphdef, state = trained
    with CheckpointStore(tmp_path, keep=2) as store:
        store.save(8, state, loop_state(8))
        store.wait()
        final = store.step_dir(8)
        assert torch_checkpoint.verify(final) is not None  # no meta.json: not (yet) a torch checkpoint
        weights = to_torch_state_dict(nnx.merge(graphdef, state["params"]))
        write_weights(final, weights, {"step": 8})
    assert torch_checkpoint.verify(final) is None and verify_step(final) is None
    assert json.loads((final / "meta.json").read_text())["step"] == 8

    torch_model = TorchLlama(CFG).eval()
    torch_checkpoint.load_model_weights(torch_model, torch_checkpoint.load_file(final / "model.safetensors"))
    tokens = np.random.default_rng(0).integers(0, CFG.vocab_size, (2, 16))
    with torch.no_grad():
        expected = torch_model(torch.from_numpy(tokens)).numpy()
    got = np.asarray(jax.jit(lambda p, x: nnx.merge(graphdef, p)(x))(state["params"], jnp.asarray(tokens, jnp.int32)))
    assert np.abs(got - expected).max() <= 1e-5 * np.abs(got).max()

    with CheckpointStore(tmp_path, keep=2) as store:  # the orbax state beside the weights still restores
        assert store.restore_latest(jax.eval_shape(lambda: state))[0] == 8

    snapshot = save_snapshot(tmp_path, "chck_1M", 8, 512, weights)
    assert torch_checkpoint.list_snapshots(tmp_path) == [snapshot]
    assert json.loads((snapshot / "meta.json").read_text())["tokens"] == 512


def test_a_rewrite_of_the_weights_killed_midway_is_rejected_not_wrong(tmp_path, monkeypatch):
    saved_steps(tmp_path, 2, [], [3])
    final = step_dir(tmp_path, 3)
    write_weights(final, {"embed.weight": np.ones((4, 2), np.float32)}, {"step": 3})

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # the process dies after the tensors, before meta.json
    monkeypatch.setattr(torch_checkpoint, "sha256_file", killed)
    with pytest.raises(KeyboardInterrupt):
        write_weights(final, {"embed.weight": np.zeros((4, 2), np.float32)}, {"step": 3})
    assert "meta.json" in torch_checkpoint.verify(final)


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_a_damaged_newest_checkpoint_falls_back_to_the_previous_one(tmp_path, trained, damage):
    _, state = trained
    with CheckpointStore(tmp_path, keep=3) as store:
        store.save(1, jax.tree.map(jnp.zeros_like, state), loop_state(1))
        store.save(2, state, loop_state(2))
    # The largest file holds the array data. orbax itself would restore a flipped bit silently
    # (no checksum of its own over the data); the manifest catches it.
    data = max((p for p in (step_dir(tmp_path, 2) / "state").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    blob = bytearray(data.read_bytes())
    if damage == "flip":
        blob[len(blob) // 2] ^= 0x01
    else:
        del blob[len(blob) // 2:]
    data.write_bytes(bytes(blob))
    assert not has_checkpoint(tmp_path, 2) and has_checkpoint(tmp_path, 1)

    messages = []
    with CheckpointStore(tmp_path, keep=3) as store:
        step, restored, loop = store.restore_latest(jax.eval_shape(lambda: state), log=messages.append)
    assert step == 1 and loop == loop_state(1)
    assert all(not np.any(leaf) for leaf in host_copy(restored))
    assert len(messages) == 1 and "step_00000002" in messages[0] and "checksum mismatch" in messages[0]


def wrong_target(w):
    return {"params": w, "opt_state": (jnp.asarray(0),)}


@pytest.mark.parametrize("wrong,named", [
    (wrong_target({"w": jnp.zeros((5,))}), "params.w is float32[3] there, float32[5] here"),
    (wrong_target({"w": jnp.zeros((3,), jnp.bfloat16)}), "params.w is float32[3] there, bfloat16[3] here"),
    (wrong_target({"v": jnp.zeros((3,))}), "params.v is only in the target"),
])
def test_an_intact_checkpoint_that_does_not_fit_the_target_raises(tmp_path, wrong, named):
    saved_steps(tmp_path, 2, [], [1, 2])
    messages = []
    # Not a fallback to step 1 and then to training from scratch, which would delete both; nor
    # a silent cast to another dtype, which orbax alone would do.
    with CheckpointStore(tmp_path, keep=2) as store, pytest.raises(ValueError, match="00000002 does not fit") as raised:
        store.restore_latest(jax.eval_shape(lambda: wrong), log=messages.append)
    assert named in str(raised.value)
    assert messages == [] and list_steps(tmp_path) == [1, 2]


def test_a_store_on_an_empty_run_restores_nothing(tmp_path):
    with CheckpointStore(tmp_path, keep=2) as store:
        assert store.restore_latest(jax.eval_shape(lambda: small_state(0))) is None
        assert not store.has() and not store.has(1)
