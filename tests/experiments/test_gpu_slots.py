"""The local launcher on a node with GPUs: each running run holds its own group of
launcher.procs_per_run devices, a finished run's group goes to the next, and a split of the
GPUs that cannot work is refused before any compute. GPUs are simulated (launcher.gpus,
CUDA_VISIBLE_DEVICES); the workers are cheap scripts that record the devices they were given."""
import json
import sys
from pathlib import Path

import pytest

from common.errors import ConfigError
from lab.sweep import launchers
from lab.sweep.launchers import LauncherConfig, gpu_groups, run_local, validate_launcher
from tests.helpers import TINY, run_entry

# Records the devices the launcher gave it and when it held them (its own clock), then holds them a while.
RECORDER = """import json, os, sys, time
start = time.time(); time.sleep(0.4)
json.dump({"devices": os.environ.get("CUDA_VISIBLE_DEVICES"), "start": start, "end": time.time()},
          open(os.path.join(sys.argv[1], "record.json"), "w"))"""


class _QuietDisplay:
    def started(self, run_dir): pass
    def finished(self, run_dir): pass
    def refresh(self, running): pass
    def close(self): pass


@pytest.fixture
def recording_workers(monkeypatch):
    monkeypatch.setattr(launchers, "_worker_command", lambda run_dir, procs: [sys.executable, "-c", RECORDER, str(run_dir)])


def _run(tmp_path: Path, n_runs: int, cfg: LauncherConfig, after=None) -> list[dict]:
    run_dirs = [tmp_path / f"run{i}" for i in range(n_runs)]
    for d in run_dirs:
        d.mkdir()
    run_local(run_dirs, cfg, _QuietDisplay(), after=after)
    return [json.loads((d / "record.json").read_text()) for d in run_dirs]


def _most_at_once(records: list[dict]) -> int:
    return max(sum(r["start"] <= other["start"] < r["end"] for r in records) for other in records)


def _assert_never_shared(records: list[dict]) -> None:
    for i, a in enumerate(records):
        for b in records[i + 1:]:
            if a["start"] < b["end"] and b["start"] < a["end"]:  # ran at the same time
                assert not set(a["devices"].split(",")) & set(b["devices"].split(",")), (a, b)


def test_four_gpus_two_per_run_run_two_at_a_time_on_disjoint_groups(tmp_path, monkeypatch, recording_workers):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    records = _run(tmp_path, 5, LauncherConfig(gpus=4, procs_per_run=2, poll_s=0.05))
    assert len(records) == 5  # the queue drained: every run ran
    assert {r["devices"] for r in records} == {"0,1", "2,3"}  # both groups used, returned and reused
    assert _most_at_once(records) == 2
    _assert_never_shared(records)
    assert "launcher: CUDA_VISIBLE_DEVICES=" in (tmp_path / "run0" / "worker.log").read_text()


def test_visible_device_ids_are_the_groups_and_after_still_orders_runs(tmp_path, monkeypatch, recording_workers):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5,6,7")
    # run2 follows run0 (a branch after its trunk); run1 takes the other group meanwhile.
    records = _run(tmp_path, 3, LauncherConfig(procs_per_run=2, poll_s=0.05),
                   after={tmp_path / "run2": tmp_path / "run0"})
    assert {r["devices"] for r in records} == {"4,5", "6,7"}
    assert records[2]["start"] >= records[0]["end"]
    assert _most_at_once(records) == 2
    _assert_never_shared(records)


def test_workers_caps_the_groups_in_use(tmp_path, monkeypatch, recording_workers):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    records = _run(tmp_path, 3, LauncherConfig(gpus=4, workers=1, poll_s=0.05))
    assert _most_at_once(records) == 1 and {r["devices"] for r in records} == {"0"}


def test_no_gpus_keeps_cpu_slots_and_leaves_devices_alone(tmp_path, monkeypatch, recording_workers):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # empty: no GPU visible
    assert gpu_groups(LauncherConfig()) == []
    records = _run(tmp_path, 2, LauncherConfig(workers=2, poll_s=0.05))
    assert {r["devices"] for r in records} == {""}  # inherited as it was, not assigned
    assert "launcher:" not in (tmp_path / "run0" / "worker.log").read_text()


def test_counting_reads_cuda_visible_devices_then_torch_and_an_explicit_count_reads_neither(monkeypatch):
    import torch

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 3)
    assert gpu_groups(LauncherConfig()) == [["0"], ["1"], ["2"]]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2, 5")
    assert gpu_groups(LauncherConfig(procs_per_run=2)) == [["2", "5"]]

    def untouchable():
        raise AssertionError("launcher.gpus was set: torch.cuda must not be asked")

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    monkeypatch.setattr(torch.cuda, "device_count", untouchable)
    validate_launcher(LauncherConfig(gpus=2, procs_per_run=2))
    assert gpu_groups(LauncherConfig(gpus=2)) == [["0"], ["1"]]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5,6")
    assert gpu_groups(LauncherConfig(gpus=2)) == [["4"], ["5"]]
    with pytest.raises(ConfigError, match="launcher.gpus"):
        gpu_groups(LauncherConfig(gpus=4))


@pytest.mark.parametrize("overrides, field, reason", [
    (["launcher.gpus=-1"], "launcher.gpus", "must be >= 0"),
    (["launcher.gpus=4", "launcher.procs_per_run=3"], "launcher.procs_per_run", "does not divide the node's 4"),
    (["launcher.gpus=2", "launcher.procs_per_run=4"], "launcher.procs_per_run",
     "asks for 4 GPUs per run, the node has 2"),
])
def test_a_split_of_the_gpus_that_cannot_work_is_refused_before_any_compute(tmp_path, monkeypatch, overrides,
                                                                             field, reason):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    result = run_entry([*TINY, "grid=token_budget", "grid.plan_only=true", f"out_dir={tmp_path / 'runs'}",
                        f"corpus.cache_dir={tmp_path / 'cache'}", *overrides], cwd=tmp_path, timeout=120)
    assert result.returncode == 2, result.stdout + result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: {field}: ") and reason in line
    assert not (tmp_path / "cache").exists() and not (tmp_path / "runs").exists()


def test_a_real_grid_trains_with_each_run_on_its_own_simulated_gpu(tmp_path, monkeypatch, corpus_cache):
    # On CPU a run ignores CUDA_VISIBLE_DEVICES, so real tiny runs show the wiring from the config:
    # a trunk and its two branches on 2 "GPUs", one per run, the branches after the trunk.
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    args = [*TINY, "grid=token_budget", "grid.sizes=[3.0e4]", "grid.budgets=[2560,5120]", "grid.report=false",
            "launcher.poll_s=0.2", "launcher.gpus=2", f"corpus.cache_dir={corpus_cache}", f"out_dir={tmp_path / 'runs'}"]
    result = run_entry(args, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    logs = list((tmp_path / "runs").rglob("worker.log"))
    assert len(logs) == 3  # the trunk and its two cells
    for log in logs:
        (line,) = [x for x in log.read_text().splitlines() if x.startswith("launcher: ")]
        assert line in ("launcher: CUDA_VISIBLE_DEVICES=0", "launcher: CUDA_VISIBLE_DEVICES=1")
