"""Work split over processes (2 gloo ranks on the CPU): validation shares its windows and gives
the one-process number; FSDP (train.parallel=fsdp) trains as DDP does, and its whole-state
checkpoints resume exactly."""
import json
import os
import socket
import subprocess
import sys
import traceback
from pathlib import Path

import numpy as np
import pytest
import torch

from lab.config import ModelConfig, TrainConfig
from lab.data import WindowSampler
from lab.model import Llama
from lab.plan import make_plan
from lab.precision import choose
from tests.helpers import ROOT, TINY, rewind_checkpoints

CFG = ModelConfig(d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=64)
# Micro batches of 1 per rank, 2 accumulated: gradient sync skipped on the first of each step.
TRAIN = TrainConfig(tokens=4 * 16 * 4, batch_size=4, micro_batch_size=1, seq_len=16, precision="fp32", warmup=0,
                    eval_tokens=10_000)
# 7 windows of 16 tokens in blocks of 3 rows (micro_batch_size=3): shares of 3 and 4 windows, one
# block and two; and a split of a single window, which leaves rank 0 nothing to validate.
VAL_SPLITS = {"uneven": 7 * 16 + 1, "one window": 16 + 1}
VAL_TRAIN = TrainConfig(**{**TRAIN.__dict__, "micro_batch_size": 3, "batch_size": 3})


def _tokens(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, CFG.vocab_size, n).astype(np.uint16)


def _model(seed: int = 0) -> Llama:
    torch.manual_seed(seed)
    return Llama(CFG)


def _validations(world: int, rank: int, shard: bool) -> dict:
    from lab.distributed import shard_model
    from lab.torch_backend import evaluate

    model = _model()
    if shard:
        shard_model(model, world, "cpu")
    byte_lengths = np.arange(CFG.vocab_size, dtype=np.int64) % 5  # uneven bytes per token, some 0
    return {name: evaluate(model, _tokens(n, 1), byte_lengths, VAL_TRAIN, choose("cpu", "fp32"), rank, world)
            for name, n in VAL_SPLITS.items()}


def _train(model, steps: range, rank: int, world: int, optimizer=None):
    from lab.torch_backend import build_optimizer, train_step

    sampler = WindowSampler(_tokens(4096), TRAIN.seq_len, 0)
    optimizer = optimizer or build_optimizer(model, TRAIN, "cpu")
    plan = make_plan(TRAIN, sampler, world)
    out = [train_step(model, optimizer, sampler, plan, s, 1e-2, TRAIN, choose("cpu", "fp32"), rank, world)
           for s in steps]
    return out, optimizer


def _checks(rank: int, world: int, scratch: Path) -> dict:
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from lab import distributed
    from lab.torch_backend import build_optimizer

    results = {"val_ddp": _validations(world, rank, False), "val_fsdp": _validations(world, rank, True)}

    ddp_model = _model()
    ddp_steps, ddp_optimizer = _train(DistributedDataParallel(ddp_model), range(4), rank, world)
    sharded = _model()
    distributed.shard_model(sharded, world, "cpu")
    fsdp_steps, fsdp_optimizer = _train(sharded, range(2), rank, world)
    # A checkpoint after 2 steps, as the backend writes and reads one: whole, by rank 0, every rank loading it.
    model_state = distributed.full_model_state(sharded)
    optimizer_state = distributed.full_optimizer_state(sharded, fsdp_optimizer)
    if rank == 0:
        torch.save({"model": model_state, "optimizer": optimizer_state}, scratch / "state.pt")
    dist.barrier()
    saved = torch.load(scratch / "state.pt", weights_only=True, map_location="cpu")
    more, _ = _train(sharded, range(2, 4), rank, world, fsdp_optimizer)
    fsdp_steps += more
    resumed = _model(seed=1)  # other initial weights: everything must come from the checkpoint
    distributed.shard_model(resumed, world, "cpu")
    resumed_optimizer = build_optimizer(resumed, TRAIN, "cpu")
    distributed.load_full_state(resumed, resumed_optimizer, saved["model"], saved["optimizer"])
    resumed_steps, _ = _train(resumed, range(2, 4), rank, world, resumed_optimizer)

    recomputing = Llama(CFG, activation_checkpointing=True)
    recomputing.load_state_dict(_model().state_dict())
    distributed.shard_model(recomputing, world, "cpu")  # blocks recomputed inside FSDP's gathers
    recomputed_steps, _ = _train(recomputing, range(2), rank, world)

    final, resumed_final = distributed.full_model_state(sharded), distributed.full_model_state(resumed)
    final_optimizer = distributed.full_optimizer_state(sharded, fsdp_optimizer)
    if rank == 0:
        results.update(
            ddp_steps=ddp_steps, fsdp_steps=fsdp_steps, resumed_steps=resumed_steps, recomputed_steps=recomputed_steps,
            weights_fsdp_vs_ddp=max((final[k] - v).abs().max().item() for k, v in ddp_model.state_dict().items()),
            resumed_weights_equal=all(torch.equal(final[k], resumed_final[k]) for k in final),
            same_optimizer_layout=_same_layout(final_optimizer, ddp_optimizer.state_dict()),
            saved_keys_equal=set(saved["model"]) == set(ddp_model.state_dict()))
    return results


def _same_layout(sharded: dict, plain: dict) -> float | str:
    """The largest difference between the two optimizer states, or what differs in their layout."""
    if sharded["param_groups"] != plain["param_groups"] or set(sharded["state"]) != set(plain["state"]):
        return "param groups or indices differ"
    diff = 0.0
    for i, state in plain["state"].items():
        for key, value in state.items():
            if sharded["state"][i][key].shape != value.shape:
                return f"{i}.{key}: shape"
            diff = max(diff, (sharded["state"][i][key].float() - value.float()).abs().max().item())
    return diff


def _rank_main(rank: int, world: int, port: int, scratch: str, results) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        results.put((rank, _checks(rank, world, Path(scratch))))
    except Exception:
        results.put((rank, traceback.format_exc()))
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory) -> dict:
    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    context = mp.get_context("spawn")
    results = context.Queue()
    scratch = tmp_path_factory.mktemp("two-ranks")
    procs = [context.Process(target=_rank_main, args=(rank, 2, port, str(scratch), results)) for rank in range(2)]
    for p in procs:
        p.start()
    out = dict(results.get(timeout=300) for _ in procs)
    for p in procs:
        p.join(timeout=30)
        if p.is_alive():
            p.kill()
    for rank, result in out.items():
        assert isinstance(result, dict), f"rank {rank} failed:\n{result}"
    return out


@pytest.mark.parametrize("split", list(VAL_SPLITS))
@pytest.mark.parametrize("mode", ["val_ddp", "val_fsdp"])
def test_validation_split_over_two_ranks_gives_the_one_rank_number(two_ranks, split, mode):
    one = _validations(1, 0, False)[split]
    for rank in (0, 1):  # every rank gets the whole result, not its share's
        got = two_ranks[rank][mode][split]
        assert got["tokens"] == one["tokens"]
        assert got["loss"] == pytest.approx(one["loss"], abs=1e-6, rel=0)
        assert got["bpb"] == pytest.approx(one["bpb"], abs=1e-6, rel=0)


def test_one_rank_validation_is_the_mean_over_its_windows():
    # The independent reference: cross-entropy of the logits over every window, in float64.
    tokens = _tokens(VAL_SPLITS["uneven"], 1)
    windows = torch.from_numpy(tokens[:7 * 16 + 1].astype(np.int64))
    x, y = windows[:-1].view(7, 16), windows[1:].view(7, 16)
    with torch.no_grad():
        logits = _model()(x).double()
    expected = torch.nn.functional.cross_entropy(logits.view(-1, CFG.vocab_size), y.reshape(-1)).item()
    assert _validations(1, 0, False)["uneven"]["loss"] == pytest.approx(expected, abs=1e-6, rel=0)


def test_fsdp_trains_as_ddp_does(two_ranks):
    r = two_ranks[0]
    # (loss, gradient norm) of each step
    assert np.array(r["fsdp_steps"]) == pytest.approx(np.array(r["ddp_steps"]), abs=1e-5, rel=0)
    assert r["weights_fsdp_vs_ddp"] < 1e-5
    assert r["same_optimizer_layout"] == pytest.approx(0.0, abs=1e-5)  # same indices, groups and values
    assert r["saved_keys_equal"]


def test_fsdp_with_activation_checkpointing_trains_as_without(two_ranks):
    r = two_ranks[0]
    assert np.array(r["recomputed_steps"]) == pytest.approx(np.array(r["fsdp_steps"][:2]), abs=1e-6, rel=0)


def test_fsdp_resumes_exactly_from_a_whole_state_checkpoint(two_ranks):
    r = two_ranks[0]
    assert r["resumed_steps"] == r["fsdp_steps"][2:]
    assert r["resumed_weights_equal"]


def _torchrun(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           str(ROOT / "experiments" / "run.py"), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def test_torchrun_fsdp_run_matches_ddp_and_resumes_exactly(tmp_path, corpus_cache):
    """The issue's check: `torchrun --nproc_per_node=2 experiments/run.py train.parallel=fsdp` against
    the same run under DDP; then the FSDP run, rewound to a mid-run checkpoint, resumed."""
    common = [*TINY, "train.tokens=1280", "train.precision=fp32", "train.micro_batch_size=1", "train.log_every=5",
              "train.checkpoint_every=5", "train.keep_checkpoints=10", "+train.snapshots.s1=640",
              f"corpus.cache_dir={corpus_cache}"]
    runs = {}
    for parallel in ("ddp", "fsdp"):
        result = _torchrun([*common, f"train.parallel={parallel}", f"out_dir={tmp_path / parallel}"], tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr
        (runs[parallel],) = (tmp_path / parallel).iterdir()
    assert runs["ddp"].name == runs["fsdp"].name  # how the work is spread is not part of the run
    final = {k: json.loads((d / "final.json").read_text()) for k, d in runs.items()}
    rows = {k: [json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines()] for k, d in runs.items()}
    assert final["fsdp"]["world_size"] == 2 and final["fsdp"]["steps"] == 10
    for key in ("final_train_loss", "final_val_loss", "final_val_own_loss"):
        assert final["fsdp"][key] == pytest.approx(final["ddp"][key], abs=1e-5, rel=0), key
    assert [r["step"] for r in rows["fsdp"]] == [5, 10]
    assert [r["loss"] for r in rows["fsdp"]] == pytest.approx([r["loss"] for r in rows["ddp"]], abs=1e-5, rel=0)
    # The sharded run's files are the DDP run's: whole weights under the same names.
    from safetensors.torch import load_file

    for where in ("checkpoints/step_00000005", "snapshots/s1"):
        ddp, fsdp = (load_file(runs[k] / where / "model.safetensors") for k in ("ddp", "fsdp"))
        assert set(fsdp) == set(ddp)
        assert max((fsdp[k] - ddp[k]).abs().max().item() for k in ddp) < 1e-5

    entries = rewind_checkpoints(runs["fsdp"], 5)
    assert 5 in entries.values(), sorted(entries)
    (runs["fsdp"] / "final.json").unlink()
    resumed = _torchrun([*common, "train.parallel=fsdp", f"out_dir={tmp_path / 'fsdp'}"], tmp_path)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "resumed from step 5 " in resumed.stdout + resumed.stderr
    again = json.loads((runs["fsdp"] / "final.json").read_text())
    for key in ("final_train_loss", "final_val_loss", "final_val_own_loss"):
        assert again[key] == final["fsdp"][key], key


@pytest.mark.parametrize("changes,field", [({"parallel": "zero3"}, "train.parallel"),
                                           ({"backend": "jax", "parallel": "fsdp"}, "train.parallel"),
                                           ({"backend": "jax", "activation_checkpointing": True},
                                            "train.activation_checkpointing")])
def test_a_parallel_mode_that_cannot_run_is_refused_before_any_compute(changes, field):
    from common.errors import ConfigError
    from lab.config import validate_train

    with pytest.raises(ConfigError) as refused:
        validate_train(TrainConfig(**{**TRAIN.__dict__, **changes}))
    assert refused.value.field == field
