"""Helpers shared by tests: the entry point as a subprocess, and tiny run settings."""
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Small enough to prepare in seconds, large enough for a few hundred steps of seq 32.
TINY = ["scale=smoke", "model.vocab_size=384", "corpus.train_words=40000", "corpus.val_words=4000",
        "corpus.pairs_per_phenomenon=20", "train.seq_len=32", "train.batch_size=4", "train.eval_tokens=2048",
        "train.threads=1", "train.progress=lines"]


def run_entry(args: list[str], cwd: Path, timeout: float = 300, **popen) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, str(ROOT / "experiments" / "run.py"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout, **popen)


def kill_entry_after(args: list[str], cwd: Path, marker: str) -> None:
    """Run the entry point and SIGKILL it as soon as a line of its output contains `marker`."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, str(ROOT / "experiments" / "run.py"), *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in proc.stdout:
        if marker in line:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def rewind_checkpoints(run_dir: Path, step: int) -> dict[str, int]:
    """Delete every checkpoint entry newer than `step` (finished, or a half-written temporary:
    any name holding step_<digits>), as if a kill had landed right after step's save. Returns
    what was there, name -> step."""
    entries = {p: int(re.search(r"step_(\d+)", p.name).group(1)) for p in (run_dir / "checkpoints").iterdir()}
    for path, at in entries.items():
        if at > step:
            shutil.rmtree(path)
    return {path.name: at for path, at in entries.items()}
