"""Run ids: stable across code versions, blind to settings that do not change the result."""
import dataclasses
import os
from pathlib import Path

from lab.config import RunConfig
from lab.runs import run_id, run_lock


def _with_train(cfg: RunConfig, **changes) -> RunConfig:
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, **changes))


def test_the_default_run_keeps_its_recorded_id():
    # Recorded runs are found by id: a change here orphans every run directory users have, so it
    # is only right when their results are stale or their identity was wrong (last: eval_every
    # left the id, which changes nothing in a run; warmup_tokens, cooldown and decay_shape joined it).
    assert run_id(RunConfig()) == "d128-l4-t2e06-q1-72eca0b585"


def test_settings_that_do_not_change_the_result_leave_the_id_alone():
    base = RunConfig()
    for changes in ({"eval_every": 200}, {"log_every": 7}, {"checkpoint_every": 3}, {"threads": 2},
                    {"progress": "none"}, {"compile": True}, {"keep_checkpoints": 9}):
        assert run_id(_with_train(base, **changes)) == run_id(base), changes
    assert run_id(dataclasses.replace(base, out_dir="elsewhere", name="label")) == run_id(base)
    moved = dataclasses.replace(base, corpus=dataclasses.replace(base.corpus, cache_dir="/elsewhere", workers=7))
    assert run_id(moved) == run_id(base)


def test_settings_that_change_the_result_change_the_id():
    base = RunConfig()
    for changes in ({"lr": 1e-3}, {"tokens": 1e6}, {"seq_len": 128}, {"precision": "fp32"}):
        assert run_id(_with_train(base, **changes)) != run_id(base), changes
    assert run_id(dataclasses.replace(base, seed=1)) != run_id(base)


def test_local_data_is_part_of_the_id(tmp_path):
    """An edited local corpus is a new run: with the path alone a rerun reported the old
    results as finished."""
    from corpora.config import CorpusConfig

    data = tmp_path / "corpus.txt"
    data.write_text("The fox ran home.\n\nThe dog sat down.\n")
    cfg = dataclasses.replace(RunConfig(), corpus=CorpusConfig(name="local", path=str(data)))
    before = run_id(cfg)
    assert run_id(cfg) == before  # stable while the data is
    mtime = data.stat().st_mtime_ns
    data.write_text("The fox ran home.\n\nThe cat sat down.\n")  # same size, new content
    os.utime(data, ns=(mtime + 10**9, mtime + 10**9))  # as a later edit (the hash is kept per mtime)
    edited = run_id(cfg)
    assert edited != before
    # Same size, mtime put back (cp -p, rsync -a): the ctime still moves, so it is hashed again.
    data.write_text("The fox ran home.\n\nThe cow sat down.\n")
    os.utime(data, ns=(mtime + 10**9, mtime + 10**9))
    assert run_id(cfg) not in (before, edited)


def test_local_data_names_runs_by_content_not_location(tmp_path):
    from corpora.config import CorpusConfig

    for where in ("a", "b"):
        (tmp_path / where).mkdir()
        (tmp_path / where / "corpus.txt").write_text("The fox ran home.\n\nThe dog sat down.\n")
    ids = [run_id(dataclasses.replace(RunConfig(), corpus=CorpusConfig(name="local", path=str(tmp_path / where))))
           for where in ("a", "b")]
    assert ids[0] == ids[1]  # moved, copied or mounted elsewhere: the same runs
    floats = [run_id(dataclasses.replace(RunConfig(), corpus=CorpusConfig(quality=q))) for q in (1, 1.0)]
    assert floats[0] == floats[1]


def _claim_as_rank(rank: int, world: int, port: int, run_dir: str, outcomes) -> None:
    import torch.distributed as dist

    from common.errors import RunLocked
    from lab.single_run import claim_run

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        with claim_run(Path(run_dir), rank, world) as finished:
            outcomes.put((rank, "claimed", finished))
    except RunLocked as e:
        outcomes.put((rank, "locked", str(e)))
    finally:
        dist.destroy_process_group()


def _claim_with_two_ranks(run_dir: Path) -> list:
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    context = mp.get_context("spawn")
    outcomes = context.Queue()
    procs = [context.Process(target=_claim_as_rank, args=(rank, 2, port, str(run_dir), outcomes))
             for rank in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    hung = [p for p in procs if p.is_alive()]
    for p in hung:
        p.kill()
    assert not hung, "a rank was left waiting"
    return sorted(outcomes.get(timeout=5) for _ in procs)


def test_every_rank_learns_that_another_process_holds_the_run(tmp_path):
    # Under torchrun/SLURM only rank 0 takes the lock: when it is held elsewhere, rank 1 must
    # stop too, not enter training and wait for rank 0 in a collective forever.
    with run_lock(tmp_path):
        outcomes = _claim_with_two_ranks(tmp_path)
    assert [(rank, what) for rank, what, _ in outcomes] == [(0, "locked"), (1, "locked")]
    assert all("being trained by another process" in reason for _, _, reason in outcomes)
    # Free: both ranks go on; finished since the first check: both see it.
    assert _claim_with_two_ranks(tmp_path) == [(0, "claimed", False), (1, "claimed", False)]
    (tmp_path / "final.json").write_text('{"status": "done"}')
    assert _claim_with_two_ranks(tmp_path) == [(0, "claimed", True), (1, "claimed", True)]
