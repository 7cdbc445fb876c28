"""Run ids: stable across code versions, blind to settings that do not change the result."""
import dataclasses
import os
import signal
from pathlib import Path

from lab.config import RunConfig
from lab.runs import run_id, run_lock


def _with_train(cfg: RunConfig, **changes) -> RunConfig:
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, **changes))


def test_the_default_run_keeps_its_recorded_id():
    # Recorded runs are found by id: a change here orphans every run directory users have, so it
    # is only right when their results are stale or their identity was wrong (last: the corpus's
    # GENERATOR_REVISION 3, pairs held out of training text; 2 gave d128-l4-t2e06-q1-72eca0b585).
    assert run_id(RunConfig()) == "d128-l4-t2e06-q1-76a75cab4f"


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


# The run lock on a shared filesystem (common.locks): a file that exists while held, broken only
# once its holder is known to be gone.
HOLD = """import sys, time
from pathlib import Path
from lab.runs import run_lock
with run_lock(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(600)
"""


def _lock_record(run_dir: Path, age_s: float = 0.0, **fields) -> None:
    import json
    import time

    record = {"host": "other-node", "pid": 4242, "started": None, "slurm_job": None, "slurm_restart": 0,
              "time": time.time() - age_s, "token": "theirs", **fields}
    (run_dir / "lock").write_text(json.dumps(record))
    os.utime(run_dir / "lock", (time.time() - age_s, time.time() - age_s))


def test_a_lock_of_a_killed_process_is_broken_and_a_live_one_is_not(tmp_path):
    import signal
    import subprocess
    import sys

    import pytest

    from common.errors import RunLocked
    from lab.runs import is_locked
    from tests.helpers import ROOT

    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert is_locked(tmp_path)
        with pytest.raises(RunLocked, match=f"being trained by another process .*process {holder.pid} on"):
            with run_lock(tmp_path):
                pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert (tmp_path / "lock").exists()  # SIGKILL: nothing removed it, but its process is gone
    assert not is_locked(tmp_path)
    with run_lock(tmp_path):
        assert is_locked(tmp_path)
    assert not (tmp_path / "lock").exists() and not is_locked(tmp_path)


def test_a_lock_of_another_host_holds_until_its_heartbeat_is_stale(tmp_path):
    import pytest

    from common.errors import RunLocked
    from common.locks import STALE_AFTER_S
    from lab.runs import is_locked

    _lock_record(tmp_path, age_s=STALE_AFTER_S - 60)  # its pid cannot be checked from here: trusted
    assert is_locked(tmp_path)
    with pytest.raises(RunLocked, match="process 4242 on other-node"):
        with run_lock(tmp_path):
            pass
    _lock_record(tmp_path, age_s=STALE_AFTER_S + 60)
    assert not is_locked(tmp_path)
    with run_lock(tmp_path):
        assert is_locked(tmp_path)


def test_a_requeued_slurm_job_takes_over_the_lock_of_its_earlier_run(tmp_path, monkeypatch):
    import pytest

    from common.errors import RunLocked

    monkeypatch.setenv("SLURM_JOB_ID", "777")
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    _lock_record(tmp_path, slurm_job="777", slurm_restart=1)  # this very run of the job, elsewhere
    with pytest.raises(RunLocked):
        with run_lock(tmp_path):
            pass
    _lock_record(tmp_path, slurm_job="778", slurm_restart=0)  # another job
    with pytest.raises(RunLocked):
        with run_lock(tmp_path):
            pass
    _lock_record(tmp_path, slurm_job="777", slurm_restart=0)  # before the requeue: SLURM killed it
    with run_lock(tmp_path):
        pass


def test_a_reused_pid_and_the_old_flock_file_do_not_hold_the_run(tmp_path):
    import socket

    from common.locks import _start_time
    from lab.runs import is_locked

    me = socket.gethostname()
    _lock_record(tmp_path, host=me, pid=os.getpid(), started=_start_time(os.getpid()))
    assert is_locked(tmp_path)  # this process, alive
    _lock_record(tmp_path, host=me, pid=os.getpid(), started="1")  # the same pid, another process
    assert not is_locked(tmp_path)
    (tmp_path / "lock").write_text("12345\n")  # what the flock() scheme left in every run directory
    assert not is_locked(tmp_path)
    with run_lock(tmp_path):
        pass


def test_a_process_of_the_old_flock_scheme_still_holds_its_run(tmp_path):
    # During an upgrade, code from before common.locks may still be training: its flock() counts.
    import fcntl

    import pytest

    from common.errors import RunLocked
    from lab.runs import is_locked

    (tmp_path / "lock").write_text("12345\n")
    fd = os.open(tmp_path / "lock", os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # another open file: conflicts as another process's would
    try:
        assert is_locked(tmp_path)
        with pytest.raises(RunLocked):
            with run_lock(tmp_path):
                pass
    finally:
        os.close(fd)
    assert not is_locked(tmp_path)


def test_a_lock_whose_link_reply_was_lost_is_still_ours(tmp_path, monkeypatch):
    # NFS retries a LINK whose reply was lost; the retry fails with EEXIST though the first took.
    import common.locks

    real_link = os.link

    def link_then_lose_the_reply(src, dst):
        real_link(src, dst)
        raise FileExistsError(dst)

    monkeypatch.setattr(common.locks.os, "link", link_then_lose_the_reply)
    token = common.locks.try_acquire(tmp_path / "lock")
    assert common.locks.holds(tmp_path / "lock", token)


def test_a_lock_taken_over_is_neither_removed_nor_kept_working_on(tmp_path, monkeypatch):
    import time

    import pytest

    import common.locks

    monkeypatch.setattr(common.locks, "HEARTBEAT_S", 0.05)
    # interrupt_main() does nothing while SIGINT is ignored, as it is in a process a script starts
    # in the background (`cmd &` without job control): the lock installs Python's handler itself.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with pytest.raises(KeyboardInterrupt):
            with run_lock(tmp_path):
                _lock_record(tmp_path)  # as if this process had been suspended and its lock broken
                deadline = time.time() + 10
                while time.time() < deadline:
                    time.sleep(0.05)
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN  # given back as it was
    finally:
        signal.signal(signal.SIGINT, previous)
    assert '"token": "theirs"' in (tmp_path / "lock").read_text()  # their lock stays


RACE = """import sys, time
from pathlib import Path
from common.locks import LockHeld, held
path, go = Path(sys.argv[1]), Path(sys.argv[2])
while not go.exists():
    time.sleep(0.01)
try:
    with held(path):
        print("won", flush=True)
        while not (go.parent / "stop").exists():
            time.sleep(0.05)
except LockHeld:
    print("lost", flush=True)
"""


def test_racing_claimants_of_a_stale_lock_leave_exactly_one_holder(tmp_path):
    """Six processes break the same stale lock at once: one holds it, the others are refused
    (none deletes the fresh lock of another after judging the old one stale)."""
    import subprocess
    import sys

    from common.locks import STALE_AFTER_S
    from tests.helpers import ROOT

    _lock_record(tmp_path, age_s=STALE_AFTER_S + 60)
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", RACE, str(tmp_path / "lock"), str(go)], cwd=ROOT,
                              stdout=subprocess.PIPE, text=True) for _ in range(6)]
    go.touch()
    try:
        answers = sorted(p.stdout.readline().strip() for p in procs)
    finally:
        (tmp_path / "stop").touch()
        for p in procs:
            p.wait(timeout=30)
    assert answers == ["lost"] * 5 + ["won"]


def test_corpus_preparation_waits_for_a_holder_and_outlives_a_killed_one(tmp_path):
    """corpora.publish.file_lock uses the same lock, waiting instead of refusing."""
    import signal
    import subprocess
    import sys
    import threading

    from corpora.publish import file_lock
    from tests.helpers import ROOT

    path = tmp_path / ".key.lock"
    hold = "import sys, time\nfrom pathlib import Path\nfrom corpora.publish import file_lock\n" \
           "with file_lock(Path(sys.argv[1])):\n    print('held', flush=True)\n    time.sleep(600)\n"
    holder = subprocess.Popen([sys.executable, "-c", hold, str(path)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    entered = threading.Event()

    def prepare():
        with file_lock(path):
            entered.set()

    try:
        assert holder.stdout.readline().strip() == "held"
        waiter = threading.Thread(target=prepare, daemon=True)
        waiter.start()
        assert not entered.wait(1.0)  # the holder is alive: wait
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert entered.wait(10.0)  # its lock is broken once its process is gone
    waiter.join(5)
    assert not path.exists()
