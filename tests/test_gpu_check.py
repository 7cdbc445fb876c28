"""bench/gpu_check.sh, the one-call GPU check, runs every step on the CPU with --dry-run and writes
its summary: so the script a GPU lease depends on is known to work before the lease starts."""
import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_gpu_check_dry_run_runs_every_step_and_writes_its_summary(tmp_path):
    done = subprocess.run(["bash", str(ROOT / "bench" / "gpu_check.sh"), "--dry-run"], cwd=tmp_path,
                          env={**os.environ, "OUT": str(tmp_path / "out")}, capture_output=True, text=True,
                          timeout=600)
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert done.returncode == 0, summary + done.stderr[-2000:]
    for step in ("tests", "mfu_torch", "mfu_jax", "micro_batch_auto", "grid"):
        assert f"- {step}: ok in " in summary, summary
    assert "dry run on the CPU" in summary
    lines = summary.splitlines()
    assert any(line.startswith("- torch on cpu") and "MFU" in line for line in lines), summary
    assert any(line.startswith("- jax on cpu") and "MFU" in line for line in lines), summary
    # The gpu-marked tests ran (on the CPU), none failed; the grid branched.
    tests = next(line for line in lines if line.startswith("- tests: ") and "passed" in line)
    assert "failed" not in tests and int(tests.split()[2]) >= 3, tests
    assert any(line.startswith("- grid compute: ") and "of independent runs" in line for line in lines), summary
