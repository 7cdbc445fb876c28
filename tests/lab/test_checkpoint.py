"""Checkpoints: atomic layout, checksums, fallback past a corrupt newest one."""
import torch

from lab import checkpoint
from lab.config import ModelConfig
from lab.model import Llama


def _model(seed):
    torch.manual_seed(seed)
    return Llama(ModelConfig(d_model=32, n_layers=1, n_heads=2, n_kv_heads=1, vocab_size=40))


def test_save_load_round_trip_and_pruning(tmp_path):
    for step in (10, 20, 30):
        checkpoint.save(tmp_path, step, _model(step), {"step": step, "x": torch.arange(3)}, keep=2)
    names = [p.name for p in checkpoint.list_checkpoints(tmp_path)]
    assert names == ["step_00000020", "step_00000030"]
    assert not [p for p in (tmp_path / "checkpoints").iterdir() if p.name.startswith(".tmp")]
    ck = checkpoint.load_latest(tmp_path)
    assert ck.step == 30 and torch.equal(ck.train_state["x"], torch.arange(3))
    fresh = _model(0)
    checkpoint.load_model_weights(fresh, ck.model_state)
    for a, b in zip(fresh.state_dict().values(), _model(30).state_dict().values()):
        assert torch.equal(a, b)
    assert fresh.lm_head.weight is fresh.embed.weight  # tying survives a load


def test_corrupt_newest_falls_back_with_message(tmp_path):
    checkpoint.save(tmp_path, 1, _model(1), {"step": 1}, keep=3)
    newest = checkpoint.save(tmp_path, 2, _model(2), {"step": 2}, keep=3)
    blob = bytearray((newest / "model.safetensors").read_bytes())
    blob[-5] ^= 0xFF
    (newest / "model.safetensors").write_bytes(bytes(blob))
    messages = []
    ck = checkpoint.load_latest(tmp_path, log=messages.append)
    assert ck.step == 1
    assert len(messages) == 1 and "checksum mismatch" in messages[0] and "step_00000002" in messages[0]


def test_pruning_never_removes_the_checkpoint_just_written_for_a_damaged_newer_one(tmp_path):
    checkpoint.save(tmp_path, 50, _model(50), {"step": 50}, keep=1)
    damaged = checkpoint.save(tmp_path, 100, _model(100), {"step": 100}, keep=2)
    (damaged / "model.safetensors").write_bytes(b"torn")
    assert checkpoint.load_latest(tmp_path, log=lambda m: None).step == 50  # the resume falls back
    written = checkpoint.save(tmp_path, 60, _model(60), {"step": 60}, keep=1)
    assert checkpoint.list_checkpoints(tmp_path) == [written]  # kept; the damaged step 100 went
    assert checkpoint.load_latest(tmp_path).step == 60


def test_a_damaged_snapshot_is_removed_so_the_run_takes_it_again(tmp_path):
    good = checkpoint.save_snapshot(tmp_path, "chck_1M", 10, 1000, _model(1))
    bad = checkpoint.save_snapshot(tmp_path, "chck_2M", 20, 2000, _model(2))
    (bad / "model.safetensors").write_bytes(b"torn")
    assert checkpoint.list_snapshots(tmp_path) == [good]  # hidden, but still "there" by name
    removed = checkpoint.remove_damaged_snapshots(tmp_path)
    assert [path for path, _ in removed] == [bad] and "checksum" in removed[0][1]
    assert not bad.exists() and good.exists()


def test_half_written_checkpoint_is_ignored(tmp_path):
    checkpoint.save(tmp_path, 5, _model(5), {"step": 5}, keep=3)
    # a kill between writing files and the rename leaves only a hidden temp directory
    (tmp_path / "checkpoints" / ".tmp-step_00000006-123").mkdir()
    # a directory with a valid name but no meta.json (never produced by save) is also skipped
    (tmp_path / "checkpoints" / "step_00000007").mkdir()
    messages = []
    assert checkpoint.load_latest(tmp_path, log=messages.append).step == 5
    assert "meta.json" in messages[0]


def test_partial_writes_of_a_killed_process_are_removed(tmp_path):
    kept = checkpoint.save(tmp_path, 5, _model(5), {"step": 5}, keep=3)
    snap = checkpoint.save_snapshot(tmp_path, "chck_1", 5, 320, _model(5))
    for leftover in (tmp_path / "checkpoints" / ".tmp-step_00000006-123", tmp_path / "snapshots" / ".tmp-chck_2-77"):
        leftover.mkdir()
        (leftover / "model.safetensors").write_bytes(b"half")
    removed = checkpoint.remove_partial_writes(tmp_path)
    assert sorted(p.name for p in removed) == [".tmp-chck_2-77", ".tmp-step_00000006-123"]
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [kept.name]
    assert sorted(p.name for p in (tmp_path / "snapshots").iterdir()) == [snap.name]
    assert checkpoint.remove_partial_writes(tmp_path / "no-run-here") == []
