"""Exclusive locks as files, safe on a filesystem several nodes share (NFS, Lustre, GPFS), where
flock() may be local to one client or not implemented at all.

A lock is a file that exists while it is held. It is created whole in one step: the holder's
record is written to a private file, then hard-linked to the lock's name (link fails if the name
exists, atomically, on every network filesystem; O_EXCL is the fallback where links are refused).
The record says who holds it: host, pid, the process's start time, the SLURM job and its restart
count, and a random token. While held, a thread touches the file every HEARTBEAT_S seconds.

A lock left by a process that died (SIGKILL, a node lost) is stale and may be broken:
- on the same host, when its pid is gone, or now names a process started at another time;
- of the same SLURM job but an earlier restart (a requeued job: SLURM killed the earlier one);
- from another host, when its heartbeat is older than STALE_AFTER_S (its pid cannot be checked
  from here). Clocks of the nodes must agree to well within that (NTP does).
A record that cannot be read is a lock being created (O_EXCL fallback) unless older than a minute;
the bare pid the earlier flock() scheme left in the file is stale unless a process of that scheme
still holds its flock() (an upgrade while old code runs).
Breaking is serialised by a second lock file (name + ".break") and checks, after moving the
stale lock aside, that it moved the record it judged: a fresh lock moved by mistake goes back.
"""
from __future__ import annotations

import errno
import json
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

HEARTBEAT_S = 30.0
STALE_AFTER_S = 300.0  # ten missed heartbeats
_UNREADABLE_GRACE_S = 60.0


class LockHeld(Exception):
    """The lock is held by a live process; the message says which."""


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), telling a pid's reuse apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22; the name before ")" may hold spaces


def _pid_alive(pid: int, started: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        pass
    return started is None or _start_time(pid) in (None, started)


def _flock_held(path: Path) -> bool:
    """Whether a process of the earlier scheme still holds its flock() on the file (code from
    before this module, still running during an upgrade)."""
    import fcntl

    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        # Shared: it conflicts with the holder's exclusive lock all the same, and needs only read
        # access (NFS emulates flock() with fcntl locks, whose exclusive kind needs write access).
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:  # flock() not offered here: nothing to ask
        return False
    finally:
        os.close(fd)  # closing releases a lock taken here
    return False


def _my_record(token: str) -> dict:
    return {"host": socket.gethostname(), "pid": os.getpid(), "started": _start_time(os.getpid()),
            "slurm_job": os.environ.get("SLURM_JOB_ID"), "slurm_restart": int(os.environ.get("SLURM_RESTART_COUNT", "0")),
            "time": time.time(), "token": token}


def read_lock(path: Path) -> tuple[dict | None, float] | None:
    """(record or None when unreadable, mtime) of the lock file, or None when there is none."""
    try:
        mtime = path.stat().st_mtime
        text = path.read_text()
    except FileNotFoundError:
        return None
    if text.strip().isdigit():  # the bare pid of the earlier flock() scheme
        return {"legacy_pid": int(text), "legacy_held": _flock_held(path)}, mtime
    try:
        record = json.loads(text)
    except ValueError:
        record = None
    return (record if isinstance(record, dict) else None), mtime


def stale_reason(record: dict | None, mtime: float) -> str | None:
    """Why the lock's holder is gone (see the module's rules), or None while it may be alive."""
    age = time.time() - mtime
    if record is None:
        return f"unreadable for {age:.0f}s" if age > _UNREADABLE_GRACE_S else None
    if "legacy_pid" in record:
        return None if record.get("legacy_held") else "left by the earlier flock() scheme, whose holder is gone"
    job = os.environ.get("SLURM_JOB_ID")
    if job and record.get("slurm_job") == job and \
            record.get("slurm_restart", 0) < int(os.environ.get("SLURM_RESTART_COUNT", "0")):
        return f"held by an earlier run of SLURM job {job}, which was requeued"
    if record.get("host") == socket.gethostname():
        return None if _pid_alive(int(record["pid"]), record.get("started")) else f"process {record['pid']} is gone"
    return f"no heartbeat from {record.get('host')} for {age:.0f}s" if age > STALE_AFTER_S else None


def describe(record: dict | None) -> str:
    if not record or "pid" not in record:
        return "another process"
    job = f", SLURM job {record['slurm_job']}" if record.get("slurm_job") else ""
    return f"process {record['pid']} on {record.get('host')}{job}"


def _create(path: Path, record: dict) -> bool:
    """Create the lock file holding `record` in one step; False if it exists."""
    private = path.with_name(f".{path.name}.{record['token']}")
    private.write_text(json.dumps(record))
    try:
        os.link(private, path)
        return True
    except FileExistsError:
        return False
    except OSError as e:  # a filesystem without hard links
        if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise
        return _create_exclusive(path, record)
    finally:
        private.unlink(missing_ok=True)


def _create_exclusive(path: Path, record: dict) -> bool:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(record))
    return True


def _break_if_stale(path: Path) -> None:
    """Remove the lock when its holder is gone; a live one, or a breaker at work, is left alone."""
    breaker = path.with_name(path.name + ".break")
    token = uuid.uuid4().hex
    if not _create(breaker, _my_record(token)):
        found = read_lock(breaker)
        if found is not None and time.time() - found[1] > _UNREADABLE_GRACE_S:  # a breaker that died
            breaker.unlink(missing_ok=True)
        return
    try:
        found = read_lock(path)
        if found is None or stale_reason(*found) is None:
            return
        judged = (found[0] or {}).get("token")
        aside = path.with_name(f".{path.name}.stale.{token}")
        try:
            os.rename(path, aside)
        except FileNotFoundError:
            return
        moved = read_lock(aside)
        if moved is not None and (moved[0] or {}).get("token") != judged:  # a fresh lock: put it back
            try:
                os.link(aside, path)
            except OSError:
                pass
        aside.unlink(missing_ok=True)
    finally:
        breaker.unlink(missing_ok=True)


def try_acquire(path: Path) -> str:
    """Take the lock now or raise LockHeld; returns the token that release() needs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex
    for _ in range(3):  # a stale lock is broken, then claimed (unless someone else was faster)
        if _create(path, _my_record(token)):
            return token
        found = read_lock(path)
        # Our own record: a link that succeeded but whose reply was lost (NFS retries it, EEXIST).
        if found is not None and (found[0] or {}).get("token") == token:
            return token
        if found is not None and stale_reason(*found) is None:
            raise LockHeld(describe(found[0]))
        _break_if_stale(path)
    found = read_lock(path)
    raise LockHeld(describe(found[0] if found else None))


def holds(path: Path, token: str) -> bool:
    found = read_lock(path)
    return found is not None and (found[0] or {}).get("token") == token


def release(path: Path, token: str) -> None:
    """Remove the lock if it is still ours (a lock broken and retaken by another is theirs)."""
    if holds(path, token):
        path.unlink(missing_ok=True)


def is_held(path: Path) -> bool:
    """Whether a live process holds the lock right now."""
    found = read_lock(path)
    return found is not None and stale_reason(*found) is None


class _Heartbeat(threading.Thread):
    """Touches the lock file so other hosts see its holder alive; if the lock was taken over
    (this process stopped, e.g. suspended, past STALE_AFTER_S), says so and interrupts the main
    thread rather than let two processes work on what the lock guards."""

    def __init__(self, path: Path, token: str):
        super().__init__(daemon=True, name=f"lock-heartbeat {path.name}")
        self.path, self.token, self.stop = path, token, threading.Event()

    def run(self) -> None:
        import _thread

        while not self.stop.wait(HEARTBEAT_S):
            try:
                ours = holds(self.path, self.token)
            except OSError:  # the filesystem, not the lock: try again at the next beat
                continue
            if not ours:
                print(f"lock {self.path} was taken over by {describe((read_lock(self.path) or (None,))[0])}: "
                      "stopping", file=sys.stderr, flush=True)
                _thread.interrupt_main()
                return
            try:
                os.utime(self.path)
            except OSError:
                pass


@contextmanager
def held(path: Path, wait: bool = False, poll_s: float = 0.2) -> Iterator[None]:
    """The lock for a with block: LockHeld at once if taken (wait=False), else wait for it."""
    while True:
        try:
            token = try_acquire(path)
            break
        except LockHeld:
            if not wait:
                raise
            time.sleep(poll_s)
            poll_s = min(2.0, poll_s * 1.5)
    beat = _Heartbeat(path, token)
    with _interruptible():
        beat.start()
        try:
            yield
        finally:
            beat.stop.set()
            release(path, token)


@contextmanager
def _interruptible() -> Iterator[None]:
    """Python's SIGINT handler for the block, where SIGINT was ignored or left to the OS: the
    heartbeat stops a taken-over holder with _thread.interrupt_main(), which does nothing then.
    A process started in the background by a shell without job control (`nohup python ... &` in
    a script, a CI step) inherits SIGINT ignored, so the lock would not have stopped it."""
    import signal

    if threading.current_thread() is not threading.main_thread():  # only the main thread may set it
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    if previous in (signal.SIG_IGN, signal.SIG_DFL):
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        if previous in (signal.SIG_IGN, signal.SIG_DFL):
            signal.signal(signal.SIGINT, previous)
