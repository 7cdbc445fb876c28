"""Where a grid's runs execute: local worker processes, or SLURM / submitit's local executor.

Every launcher hands a worker nothing but a run directory (lab.sweep.worker), so a crashed,
killed or requeued run is resumed by calling the worker again on the same directory.
"""
from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from common.errors import ConfigError
from lab.distributed import DEFAULT_TIMEOUT_S, TIMEOUT_ENV
from lab.sweep.display import GridDisplay
from lab.sweep.results import JOB_LOG_FILE, SUBMITIT_DIR


@dataclass
class LauncherConfig:
    # "local" (worker processes here), "slurm" (submitit job arrays), "submitit_local".
    name: str = "local"
    # Concurrent runs; 0 = cores // (threads_per_run * procs_per_run) (local, submitit_local),
    # len(runs) (slurm, which array_parallelism limits).
    workers: int = 0
    # Intra-op threads of each run.
    threads_per_run: int = 1
    # Data-parallel processes per run (torchrun locally; on SLURM nodes x tasks_per_node, which
    # validate_launcher fills in when left at 1).
    procs_per_run: int = 1
    # GPUs the local launcher hands out, procs_per_run to a run; None counts them
    # (CUDA_VISIBLE_DEVICES if set, else torch.cuda.device_count()); 0 = CPU slots.
    gpus: int | None = None
    # SLURM settings (submitit's slurm_* parameters).
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    gpus_per_node: int = 0
    # Nodes one run spans (slurm only; its ranks are nodes x tasks_per_node SLURM tasks).
    nodes: int = 1
    # Ranks (SLURM tasks) per node; None: procs_per_run / nodes when procs_per_run > 1, else one
    # per GPU (gpus_per_node), else 1.
    tasks_per_node: int | None = None
    cpus_per_task: int = 2
    mem_gb: int = 16
    time_min: int = 60
    array_parallelism: int = 64
    # Folder for submitit's pickles and logs; must be on a filesystem the nodes share.
    folder: str | None = None
    # Wait for the jobs and then collect results (False: submit and return; rerun to collect).
    wait: bool = True
    poll_s: float = 1.0
    # Seconds a rank waits for the others (rendezvous, a collective) before its run fails instead
    # of hanging: the NCCL/gloo process-group timeout of every run this launcher starts.
    dist_timeout_s: float = DEFAULT_TIMEOUT_S


def validate_launcher(cfg: LauncherConfig) -> None:
    """Refuse a bad launcher before any compute; on slurm, fill in tasks_per_node and
    procs_per_run (a run's world size, which the plan checks read) from the layout."""
    if cfg.name not in ("local", "slurm", "submitit_local"):
        raise ConfigError("launcher.name", f"unknown launcher {cfg.name!r}; choose local, slurm or submitit_local")
    for name in ("workers",):
        if getattr(cfg, name) < 0:
            raise ConfigError(f"launcher.{name}", "must be >= 0")
    for name in ("threads_per_run", "procs_per_run", "cpus_per_task", "mem_gb", "time_min", "array_parallelism",
                 "nodes"):
        if getattr(cfg, name) < 1:
            raise ConfigError(f"launcher.{name}", "must be >= 1")
    for name in ("poll_s", "dist_timeout_s"):
        if getattr(cfg, name) <= 0:
            raise ConfigError(f"launcher.{name}", "must be > 0")
    if cfg.gpus_per_node < 0:
        raise ConfigError("launcher.gpus_per_node", "must be >= 0")
    if cfg.name == "slurm":
        cfg.tasks_per_node, cfg.procs_per_run = slurm_layout(cfg)
    elif cfg.nodes > 1:
        raise ConfigError("launcher.nodes", f"launcher={cfg.name} runs on this machine: a run over "
                                            f"{cfg.nodes} nodes needs launcher=slurm")
    elif cfg.tasks_per_node is not None and cfg.tasks_per_node != cfg.procs_per_run:
        raise ConfigError("launcher.tasks_per_node", f"launcher={cfg.name} runs procs_per_run={cfg.procs_per_run} "
                                                     "processes on this machine: set that instead")
    if cfg.gpus is not None and cfg.gpus < 0:
        raise ConfigError("launcher.gpus", "must be >= 0 (or null to count them)")
    if cfg.name == "local":
        gpu_groups(cfg)  # refuses, before any compute, a split of the GPUs that cannot work
    if cfg.name == "slurm" and shutil.which("sbatch") is None:  # else submitit fails after corpus preparation
        raise ConfigError("launcher.name", "slurm needs sbatch on PATH (run from a SLURM login node); "
                                           "here use launcher=local or launcher=submitit_local")


def slurm_layout(cfg: LauncherConfig) -> tuple[int, int]:
    """(tasks per node, ranks of one run) on SLURM: one rank per task, nodes x tasks_per_node."""
    tasks = cfg.tasks_per_node
    if tasks is None:
        if cfg.procs_per_run > 1:
            if cfg.procs_per_run % cfg.nodes:
                raise ConfigError("launcher.procs_per_run", f"{cfg.procs_per_run} processes do not split evenly "
                                                            f"over {cfg.nodes} nodes")
            tasks = cfg.procs_per_run // cfg.nodes
        else:
            tasks = cfg.gpus_per_node or 1  # a rank per GPU
    if tasks < 1:
        raise ConfigError("launcher.tasks_per_node", "must be >= 1")
    world = cfg.nodes * tasks
    if cfg.procs_per_run not in (1, world):
        raise ConfigError("launcher.procs_per_run", f"is {cfg.procs_per_run}, but nodes x tasks_per_node = "
                                                    f"{cfg.nodes} x {tasks} = {world} ranks (set one of them)")
    if cfg.gpus_per_node % tasks:
        raise ConfigError("launcher.gpus_per_node", f"{cfg.gpus_per_node} GPUs per node do not split evenly over "
                                                    f"{tasks} tasks per node")
    return tasks, world


def visible_gpus(gpus: int | None) -> list[str]:
    """The device ids this node lets the local launcher use, as CUDA_VISIBLE_DEVICES names them.
    An explicit count never touches torch.cuda (whose first call is slow, and on some hosts
    hangs); it takes the first `gpus` visible ids, or 0..gpus-1 when nothing restricts them."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    ids = None if listed is None else [d.strip() for d in listed.split(",") if d.strip()]
    if gpus is None:
        if ids is not None:
            return ids
        import torch  # lazily: counting is the only reason this module needs it

        return [str(i) for i in range(torch.cuda.device_count())]
    if ids is None:
        return [str(i) for i in range(gpus)]
    if gpus > len(ids):
        raise ConfigError("launcher.gpus", f"asks for {gpus} GPUs, CUDA_VISIBLE_DEVICES={listed!r} lists {len(ids)}")
    return ids[:gpus]


def gpu_groups(cfg: LauncherConfig) -> list[list[str]]:
    """The visible GPUs split into consecutive groups of procs_per_run, one group per running
    worker ([] on a node without GPUs); refused when the split leaves GPUs over or is empty."""
    ids = visible_gpus(cfg.gpus)
    per_run, count = cfg.procs_per_run, len(ids)
    if not count:
        return []
    if per_run > count:
        raise ConfigError("launcher.procs_per_run", f"asks for {per_run} GPUs per run, the node has {count}")
    if count % per_run:
        raise ConfigError("launcher.procs_per_run", f"{per_run} GPUs per run does not divide the node's {count} "
                                                    "GPUs (set launcher.gpus to use fewer)")
    return [ids[i:i + per_run] for i in range(0, count, per_run)]


def _worker_command(run_dir: Path, procs: int) -> list[str]:
    if procs > 1:
        return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={procs}",
                "-m", "lab.sweep.worker", str(run_dir)]
    return [sys.executable, "-m", "lab.sweep.worker", str(run_dir)]


def _project_env(threads: int, dist_timeout_s: float = DEFAULT_TIMEOUT_S) -> dict:
    env = dict(os.environ)
    env[TIMEOUT_ENV] = f"{dist_timeout_s:g}"  # lab.distributed's process-group timeout
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["OMP_NUM_THREADS"] = str(threads)
    if threads == 1 and "xla_cpu_multi_thread_eigen" not in env.get("XLA_FLAGS", ""):
        # XLA (the JAX backend) ignores OMP_NUM_THREADS: one thread per run is asked this way.
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false").strip()
    # glibc malloc: one arena, and large blocks kept for reuse instead of mmapped and unmapped at
    # every step. XLA allocates its temporaries (hundreds of MB a step) on its own threads, where
    # the defaults fault in fresh pages each time: the JAX backend's bare step ran 0.72x torch
    # without these and 0.82x with them (bench/RESULTS.md). Read at process start; a value the
    # user set wins.
    for name, value in WORKER_MALLOC.items():
        env.setdefault(name, value)
    return env


WORKER_MALLOC = {"MALLOC_ARENA_MAX": "1", "MALLOC_MMAP_THRESHOLD_": str(1 << 30),
                 "MALLOC_TRIM_THRESHOLD_": str(1 << 30)}


@contextmanager
def _stop_on_term_or_hangup():
    """SIGTERM (kill, `timeout`, a scheduler) and SIGHUP (a closed ssh session) stop the grid as
    Ctrl-C does: the workers are stopped, and the same command resumes. Left alone, they killed
    this process only, and its workers trained on unsupervised."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, _frame):
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _die_with_parent():
    """A preexec_fn: the worker gets SIGTERM when this process dies, even by SIGKILL (Linux's
    PR_SET_PDEATHSIG; elsewhere a no-op). libc is loaded here, before the fork."""
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return lambda: prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


def run_local(run_dirs: list[Path], cfg: LauncherConfig, display: GridDisplay,
              after: dict[Path, Path] | None = None) -> None:
    """Run each directory's worker in a subprocess, `workers` at a time; Ctrl-C stops them all.
    On a node with GPUs each running worker holds its own group of procs_per_run of them
    (CUDA_VISIBLE_DEVICES), so there are as many slots as groups and no two runs share a GPU.
    A run named in `after` starts only once the run it maps to has ended (a branch after its
    trunk); the others take the free slots meanwhile."""
    groups = gpu_groups(cfg)
    if groups:
        slots = min(len(groups), cfg.workers or len(groups))
    else:
        cores = os.cpu_count() or 1
        slots = cfg.workers or max(1, cores // (cfg.threads_per_run * cfg.procs_per_run))
    pending = list(run_dirs)
    running: dict[Path, subprocess.Popen] = {}
    logs = {}
    env = _project_env(cfg.threads_per_run, cfg.dist_timeout_s)
    tie_to_parent = _die_with_parent()
    try:
        with _stop_on_term_or_hangup():
            _supervise(pending, running, logs, slots, env, tie_to_parent, cfg, display, after or {}, groups)
    except KeyboardInterrupt:
        for proc in running.values():
            os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.time() + 10
        for proc in running.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        raise
    finally:
        for log in logs.values():
            log.close()
        display.close()


def _supervise(pending: list[Path], running: dict, logs: dict, slots: int, env: dict, tie_to_parent,
               cfg: LauncherConfig, display: GridDisplay, after: dict[Path, Path],
               groups: list[list[str]]) -> None:
    """Start workers while slots are free (in order, skipping runs whose prerequisite has not
    ended), each with a GPU group no running worker holds; reap finished ones, whose group goes
    back to the free ones; refresh the display."""
    held: dict[Path, list[str]] = {}
    while pending or running:
        while len(running) < slots:
            run_dir = next((d for d in pending if after.get(d) not in running and after.get(d) not in pending), None)
            if run_dir is None:
                break
            pending.remove(run_dir)
            if groups:  # slots <= len(groups), so a free group exists whenever a slot does
                held[run_dir] = next(g for g in groups if g not in held.values())
            running[run_dir] = _start_worker(run_dir, held.get(run_dir), env, logs, tie_to_parent, cfg.procs_per_run)
            display.started(run_dir)
        for run_dir, proc in list(running.items()):
            if proc.poll() is not None:
                del running[run_dir]
                held.pop(run_dir, None)
                logs.pop(run_dir).close()
                display.finished(run_dir)
        display.refresh(running=list(running))
        time.sleep(cfg.poll_s)


def _start_worker(run_dir: Path, devices: list[str] | None, env: dict, logs: dict, tie_to_parent,
                  procs: int) -> subprocess.Popen:
    """The run's worker, logging to its worker.log, restricted to `devices` when given (the
    line naming them in the log says which GPUs a run trained on)."""
    log = open(run_dir / "worker.log", "a")
    logs[run_dir] = log
    if devices is not None:
        env = {**env, "CUDA_VISIBLE_DEVICES": ",".join(devices)}
        log.write(f"launcher: CUDA_VISIBLE_DEVICES={env['CUDA_VISIBLE_DEVICES']}\n")
        log.flush()
    # A new session keeps Ctrl-C from reaching workers twice; we stop them ourselves.
    return subprocess.Popen(_worker_command(run_dir, procs), stdout=log, stderr=subprocess.STDOUT, env=env,
                            start_new_session=True, preexec_fn=tie_to_parent)


class RunJob:
    """The submitit callable: stateless (only the run directory travels), requeue-safe. On a
    job of several tasks (launcher.nodes, tasks_per_node) every task calls it: each is one rank,
    which lab.distributed reads from SLURM's variables (lab.slurm_env)."""

    def __call__(self, run_dir: str) -> str:
        from lab.sweep.worker import run_from_dir

        return run_from_dir(run_dir).get("status", "unknown")

    def checkpoint(self, run_dir: str):
        """On preemption or timeout (submitit calls it in task 0 only, then requeues the whole
        job): the same call again; every task resumes from the run's newest checkpoint. The lock
        the killed job held is recognised as its own (same job id, lower SLURM_RESTART_COUNT)."""
        import submitit

        return submitit.helpers.DelayedSubmission(RunJob(), run_dir)


@contextmanager
def _submission_env(threads: int, dist_timeout_s: float = DEFAULT_TIMEOUT_S):
    """submitit's jobs inherit the submitting process's environment (LocalExecutor starts them
    here, sbatch exports it by default): for the submission, this checkout goes first on
    PYTHONPATH and the thread count is set, as run_local does for its workers. Without it a job
    imported whichever `lab` was installed, not the code being run."""
    wanted = _project_env(threads, dist_timeout_s)
    saved = {key: os.environ.get(key) for key in ("PYTHONPATH", "OMP_NUM_THREADS", TIMEOUT_ENV)}
    os.environ.update({key: wanted[key] for key in saved})
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def run_submitit(run_dirs: list[Path], cfg: LauncherConfig, grid_dir: Path, display: GridDisplay,
                 after: dict[Path, Path] | None = None) -> list:
    """Submit every run directory as a submitit job; with cfg.wait, keep the slots filled until
    all have ended (Ctrl-C cancels them). A run in `after` follows the run it maps to (a branch
    its trunk): SLURM gets it now, as a job that depends on that run's job; submitit's local
    executor, which has no dependencies, gets it once that run has ended. Returns the jobs."""
    if after and not can_order_runs(cfg):
        raise ConfigError("launcher.wait", "submitit's local executor cannot start a run after another "
                                           "once this command has returned: use launcher.wait=true")
    executor = _executor(cfg, grid_dir)
    # SLURM schedules the whole array itself (array_parallelism); submitit's local executor would
    # start every run at once, so it gets the local launcher's slots and the next run as one ends.
    slots = len(run_dirs)
    if cfg.name == "submitit_local" and cfg.wait:  # one process per job there (tasks_per_node=1)
        slots = cfg.workers or max(1, (os.cpu_count() or 1) // cfg.threads_per_run)
    jobs = _JobQueue(executor, run_dirs, cfg, display, after or {})
    if cfg.name == "slurm":
        jobs.submit_with_dependencies()
    else:
        jobs.submit(slots)
    if not cfg.wait:
        display.close()
        return list(jobs.jobs.values())
    try:
        while jobs.queue or jobs.running():
            if jobs.queue and len(jobs.running()) < slots:
                jobs.submit(slots - len(jobs.running()))
            display.refresh(running=jobs.running())
            time.sleep(cfg.poll_s)
    except KeyboardInterrupt:
        for job in jobs.jobs.values():
            job.cancel(check=False)
        raise
    finally:
        for run_dir in jobs.jobs:
            display.finished(run_dir)
        display.close()
    return list(jobs.jobs.values())


def can_order_runs(cfg: LauncherConfig) -> bool:
    """Whether the launcher can start a run only after another has ended (a branch after its
    trunk): SLURM by job dependencies, the others by waiting here. submitit's local executor
    with launcher.wait=false can do neither. (The local launcher always waits.)"""
    return cfg.name != "submitit_local" or cfg.wait


def queued_job(run_dir: Path) -> tuple[str, str] | None:
    """(job id, state) of the run's recorded job while squeue still lists it (state as squeue
    prints it: PENDING, RUNNING, ...); None without a recorded job, without squeue, or once the
    job has left the queue."""
    job_file = run_dir / "job_id"
    if not job_file.exists() or shutil.which("squeue") is None:
        return None
    job_id = job_file.read_text().strip()
    try:
        listed = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    state = listed.stdout.strip().splitlines()
    return (job_id, state[0].strip()) if listed.returncode == 0 and state else None


def _executor(cfg: LauncherConfig, grid_dir: Path):
    """A submitit executor for cfg.name ("submitit_local" or "slurm") with its job parameters."""
    try:
        import submitit
    except ImportError:
        raise ConfigError("launcher.name", f"{cfg.name} needs submitit: pip install -e '.[slurm]'") from None
    folder = Path(cfg.folder) if cfg.folder else grid_dir / SUBMITIT_DIR
    folder.mkdir(parents=True, exist_ok=True)  # SLURM writes logs here: it must exist beforehand
    if cfg.name == "submitit_local":
        executor = submitit.LocalExecutor(folder=str(folder / "%j"))
        executor.update_parameters(timeout_min=cfg.time_min, tasks_per_node=1)
        return executor
    executor = submitit.AutoExecutor(folder=str(folder / "%j"), cluster="slurm")
    tasks, _ = slurm_layout(cfg)
    params = dict(timeout_min=cfg.time_min, nodes=cfg.nodes, tasks_per_node=tasks,
                  cpus_per_task=cfg.cpus_per_task, mem_gb=cfg.mem_gb, slurm_array_parallelism=cfg.array_parallelism)
    if cfg.gpus_per_node:
        params["gpus_per_node"] = cfg.gpus_per_node
    optional = {"slurm_partition": cfg.partition, "slurm_account": cfg.account, "slurm_qos": cfg.qos}
    params.update({key: value for key, value in optional.items() if value})
    executor.update_parameters(**params)
    return executor


class _JobQueue:
    """Run directories waiting to be submitted, and the jobs of those already submitted. A run
    in `after` waits for the run it maps to (one level: that run follows nothing)."""

    def __init__(self, executor, run_dirs: list[Path], cfg: LauncherConfig, display: GridDisplay,
                 after: dict[Path, Path]):
        self.executor, self.cfg, self.display, self.after = executor, cfg, display, after
        self.queue = list(run_dirs)
        self.jobs: dict[Path, object] = {}

    def submit(self, count: int) -> None:
        """Submit the next `count` directories whose prerequisite is neither queued nor running
        here, as one job array."""
        waiting = set(self.queue) | set(self.running())
        self._submit([d for d in self.queue if self.after.get(d) not in waiting][:count])

    def submit_with_dependencies(self) -> None:
        """SLURM: every run now, those that follow nothing first, then the followers of each run
        as one array that depends on its job (a trunk's branches). afterany, not afterok: a
        branch whose trunk failed trains from step 0 to the same result, so SLURM must not
        cancel it. A prerequisite submitted by an earlier command is followed while squeue still
        lists its job; one that has left the queue is not waited for."""
        followers: dict[Path, list[Path]] = {}
        for run_dir in self.queue:
            if run_dir in self.after:
                followers.setdefault(self.after[run_dir], []).append(run_dir)
        earlier = {p: job[0] for p in followers if p not in self.queue and (job := queued_job(p))}
        gone = {p for p in followers if p not in self.queue and p not in earlier}  # nothing to wait for
        self._submit([d for d in self.queue if d not in self.after or self.after[d] in gone])
        job_ids = {**{p: job.job_id for p, job in self.jobs.items()}, **earlier}
        for prerequisite, batch in followers.items():
            if prerequisite in job_ids:
                self._submit(batch, dependency=f"afterany:{job_ids[prerequisite]}")

    def _submit(self, batch: list[Path], dependency: str | None = None) -> None:
        """Submit `batch` as one job array, with a SLURM dependency when given (it stays set on
        the executor: batches without one are submitted first)."""
        if not batch:
            return
        for run_dir in batch:
            self.queue.remove(run_dir)
        if dependency is not None:
            self.executor.update_parameters(slurm_dependency=dependency)
        with _submission_env(self.cfg.threads_per_run, self.cfg.dist_timeout_s):
            submitted = self.executor.map_array(RunJob(), [str(d) for d in batch])
        for run_dir, job in zip(batch, submitted):
            (run_dir / "job_id").write_text(f"{job.job_id}\n")
            (run_dir / JOB_LOG_FILE).write_text(f"{job.paths.folder}\n")  # launcher.folder may move it
            self.jobs[run_dir] = job
            self.display.started(run_dir)

    def running(self) -> list[Path]:
        return [d for d, job in self.jobs.items() if not job.done()]


def run_one(cfg, launcher: LauncherConfig) -> int:
    """One run without a grid through a submitit launcher (experiments/run.py with
    launcher=slurm or submitit_local): its directory, out_dir/<run id>, gets the spec a grid
    run has and goes out as one job, e.g. of launcher.nodes x tasks_per_node ranks. Checked
    from the config before submission; with launcher.wait, the job's outcome is the exit code."""
    from types import SimpleNamespace

    from lab.runs import is_finished, read_final
    from lab.single_run import resolve, run_dir_for
    from lab.sweep.grid_plan import check_runs_from_config
    from lab.sweep.worker import write_spec

    validate_launcher(launcher)
    cfg = resolve(cfg)
    run_dir = run_dir_for(cfg)
    if is_finished(run_dir):
        print(f"{run_dir}: already finished ({read_final(run_dir)['status']}); nothing to do", flush=True)
        return 0
    if (job := queued_job(run_dir)) is not None:  # submitted before and still in SLURM's queue
        print(f"{run_dir}: job {job[0]} is {job[1].lower()}; nothing submitted", flush=True)
        return 0
    _, notes = check_runs_from_config([SimpleNamespace(cfg=cfg)], [run_dir], [run_dir], launcher.procs_per_run)
    for note in notes:
        print(f"note: {note}", flush=True)
    write_spec(run_dir, cfg, {}, eval_pairs=False)
    display = GridDisplay([run_dir], 0, mode="lines")
    (job,) = run_submitit([run_dir], launcher, run_dir.parent, display)
    print(f"{run_dir}: job {job.job_id} ({launcher.procs_per_run} processes on {launcher.nodes} node(s))", flush=True)
    if not launcher.wait:
        return 0
    final = read_final(run_dir) or {}
    return 0 if final.get("status") == "done" else 1
