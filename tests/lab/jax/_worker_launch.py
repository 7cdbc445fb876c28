"""Starting _sharding_worker.py processes for the sharding and distributed tests, and reading them."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from tests.helpers import ROOT

WORKER = Path(__file__).with_name("_sharding_worker.py")
TIMEOUT = 120  # seconds: a hung collective fails the test instead of stalling the suite
# Set by a launcher or cluster, and read by initialize_distributed: never inherited by a worker.
_DISTRIBUTED_VARS = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID", "JAX_LOCAL_DEVICE_IDS",
                     "SLURM_JOB_ID", "SLURM_NTASKS", "SLURM_STEP_NUM_TASKS")


def worker_env(devices: int = 1, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _DISTRIBUTED_VARS}
    # Read once, when JAX first starts its CPU backend: hence a fresh process per device count.
    env["XLA_FLAGS"] = f"--xla_cpu_multi_thread_eigen=false --xla_force_host_platform_device_count={devices}"
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.update(extra)
    return env


def start(mesh: dict | None, out: Path, env: dict, *args: str) -> subprocess.Popen:
    """A worker writing OUT.* files; its output goes to a log file (a pipe nobody reads while
    waiting on the others could fill and block it)."""
    log = Path(f"{out}.{env.get('JAX_PROCESS_ID', 0)}.log")
    with log.open("w") as f:
        proc = subprocess.Popen([sys.executable, str(WORKER), json.dumps(mesh), str(out), *args], cwd=ROOT,
                                env=env, stdout=f, stderr=subprocess.STDOUT)
    proc.log = log
    return proc


_reference: Path | None = None  # the one-device run, shared by both test files in a session


def start_reference(tmp_path_factory) -> tuple[Path, list[subprocess.Popen]]:
    """The run both tests compare with, TrainStep without a mesh on one device in one process:
    (its output prefix, the process to wait for, none when this session already ran it)."""
    if _reference is not None:
        return _reference, []
    out = tmp_path_factory.mktemp("one_device") / "one"
    return out, [start(None, out, worker_env(1))]


def reference_done(out: Path) -> None:
    global _reference
    _reference = out


def wait_all(procs: list[subprocess.Popen]) -> None:
    """Wait for every worker, up to TIMEOUT in all; at the first failure (a peer of a dead
    process would wait for it until its own timeout) or at the deadline, kill the rest and
    fail with the workers' output."""
    deadline = time.monotonic() + TIMEOUT
    while any(p.poll() is None for p in procs) and not any(p.returncode for p in procs):
        if time.monotonic() > deadline:
            break
        time.sleep(0.1)
    late = time.monotonic() > deadline
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    failures = [f"{proc.log.name} exited {proc.returncode}{f' (killed after {TIMEOUT} s)' if late else ''}:\n"
                f"{proc.log.read_text()[-4000:]}" for proc in procs if proc.returncode]
    assert not failures, "\n".join(failures)


def read(out: Path, process: int = 0) -> dict:
    return json.loads(Path(f"{out}.{process}.json").read_text())


def params(out: Path, which: str) -> dict[str, np.ndarray]:
    with np.load(f"{out}.npz") as z:
        return {k[len(which):]: z[k] for k in z.files if k.startswith(which)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def assert_trained_alike(got: dict[str, np.ndarray], want: dict[str, np.ndarray], lr: float) -> None:
    """Final parameters of two runs that reduce in different orders: within 1e-5, except for
    the odd weight whose gradient is near Adam's eps (1e-8), where the ~1e-10 reassociation
    error of the gradient moves g / (|g| + eps), so the update, by a few % of lr."""
    assert got.keys() == want.keys()
    far = 0
    for name, value in want.items():
        diff = np.abs(got[name] - value)
        assert diff.max() <= 0.1 * lr, name
        far += int((diff > 1e-5).sum())
    assert far <= 1e-3 * sum(v.size for v in want.values()), f"{far} weights differ by more than 1e-5"
