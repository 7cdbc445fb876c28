"""train.micro_batch_size=auto: the largest micro batch that fits, found by bisection over the
batch's divisors, measured once per shape and cached; refused where it cannot work. The memory
probe itself needs a GPU (bench/gpu_check.sh runs it); here the device is a memory budget."""
import json

import pytest

from common.errors import ConfigError
from lab import micro_batch
from lab.config import ModelConfig, RunConfig, TrainConfig, validate_run, validate_train
from lab.single_run import run_single

SHAPE = {"model": {"d_model": 64}, "seq_len": 1024, "precision": "bf16", "device_name": "simulated GPU"}


class Device:
    """A device whose memory holds `capacity` sequences: fits() counts its calls."""

    def __init__(self, capacity: int):
        self.capacity, self.calls = capacity, 0

    def fits(self, rows: int) -> bool:
        self.calls += 1
        return rows <= self.capacity


@pytest.mark.parametrize("share", [1, 12, 96, 128])
def test_bisection_finds_the_largest_fitting_divisor(share):
    for capacity in range(0, share + 3):
        device = Device(capacity)
        found = micro_batch.largest_fitting(micro_batch.candidates(share), device.fits)
        brute = max((d for d in range(1, share + 1) if share % d == 0 and d <= capacity), default=None)
        assert found == brute, (share, capacity)
        assert device.calls <= len(micro_batch.candidates(share)).bit_length()


def test_measured_once_per_shape_then_read_from_the_cache(tmp_path):
    cache, logged = tmp_path / "cache" / micro_batch.CACHE_FILE, []
    device = Device(40)
    assert micro_batch.resolve(SHAPE, 128, device.fits, cache, log=logged.append) == 32
    assert device.calls > 0 and "32 of 128" in logged[0]
    again = Device(40)
    assert micro_batch.resolve(SHAPE, 128, again.fits, cache) == 32 and again.calls == 0
    # Another shape (a longer sequence) is measured, and both stay cached.
    longer = {**SHAPE, "seq_len": 2048}
    assert micro_batch.resolve(longer, 128, Device(20).fits, cache) == 16
    assert sorted(json.loads(cache.read_text()).values()) == [16, 32]
    # A damaged cache is measured again, not trusted.
    cache.write_text("{not json")
    fresh = Device(40)
    assert micro_batch.resolve(SHAPE, 128, fresh.fits, cache) == 32 and fresh.calls > 0


def test_a_cached_answer_that_does_not_split_the_share_is_measured_again(tmp_path):
    cache = tmp_path / micro_batch.CACHE_FILE
    micro_batch.resolve(SHAPE, 128, Device(40).fits, cache)  # caches 32
    device = Device(40)
    assert micro_batch.resolve(SHAPE, 48, device.fits, cache) == 24 and device.calls > 0


def test_only_the_writer_reads_and_writes_the_cache(tmp_path):
    # The processes of one run: rank 0 reads the cache and hands its answer to the others.
    cache = tmp_path / micro_batch.CACHE_FILE
    micro_batch.resolve(SHAPE, 128, Device(40).fits, cache)  # a run before this one cached 32
    handed = []
    def from_writer(value):
        handed.append(value)
        return 32 if value is None else value  # what rank 0 broadcast
    other = Device(40)
    assert micro_batch.resolve(SHAPE, 128, other.fits, cache, writer=False, from_writer=from_writer) == 32
    assert handed == [None] and other.calls == 0  # it did not read the cache itself, nor measure
    # A measuring non-writer logs and writes nothing.
    fresh, logged = tmp_path / "fresh.json", []
    assert micro_batch.resolve(SHAPE, 128, Device(40).fits, fresh, logged.append, writer=False) == 32
    assert not fresh.exists() and logged == []


def test_nothing_fits_fails_naming_the_field(tmp_path):
    with pytest.raises(ConfigError) as e:
        micro_batch.resolve(SHAPE, 64, Device(0).fits, tmp_path / micro_batch.CACHE_FILE)
    assert e.value.field == "train.micro_batch_size" and "activation_checkpointing" in str(e.value)


@pytest.mark.parametrize("train,message", [
    (TrainConfig(micro_batch_size="big"), "must be a number of sequences or auto"),
    (TrainConfig(micro_batch_size=3), "not a multiple"),
    (TrainConfig(micro_batch_size="auto", backend="jax"), "give the JAX backend a number"),
])
def test_bad_micro_batch_settings_are_refused(train, message):
    with pytest.raises(ConfigError, match=message):
        validate_train(train)


def test_auto_on_a_cpu_trains_the_whole_batch_at_once(tmp_path, corpus_cache):
    # No device memory to measure on a CPU: auto is no accumulation, the same run as the default.
    def run(micro):
        cfg = RunConfig(model=ModelConfig(d_model=32, n_layers=1, n_heads=4, n_kv_heads=2, vocab_size=384),
                        train=TrainConfig(tokens=8 * 64 * 6, batch_size=8, seq_len=64, micro_batch_size=micro,
                                          eval_tokens=1024, device="cpu", progress="none"),
                        out_dir=str(tmp_path))
        cfg.corpus.vocab_size, cfg.corpus.train_words, cfg.corpus.val_words = 384, 20_000, 3_000
        cfg.corpus.cache_dir = str(corpus_cache)
        validate_run(cfg)
        return run_single(cfg, tmp_path / f"run-{micro}", log=lambda *_: None)

    auto, whole, split = run("auto"), run(None), run(2)
    assert auto["final_val_loss"] == pytest.approx(whole["final_val_loss"], abs=1e-6)
    assert not (corpus_cache.parent / micro_batch.CACHE_FILE).exists()  # nothing measured, nothing cached
    # (and accumulation itself still gives the same run to rounding)
    assert split["final_val_loss"] == pytest.approx(whole["final_val_loss"], abs=1e-4)
