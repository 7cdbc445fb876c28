"""Live dashboards (logger=[...]): TensorBoard read back from its event files, W&B from the
records of its offline run file; both against the run's own metrics.jsonl and final.json."""
import json
import math
import struct
import sys
from pathlib import Path

import numpy as np
import pytest

from common.cli import compose, main_guard
from common.errors import ConfigError
from experiments.run import main, register
from lab.config import validate_run
from lab.loggers import Dashboards
from lab.runs import run_id
from lab.single_run import run_single
from lab.sweep.runner import EntryConfig, base_run_config, run_grid
from tests.helpers import TINY, rewind_checkpoints

RUN = ["train.precision=fp32", "train.log_every=5", "train.eval_every=10", "train.checkpoint_every=7",
       "train.keep_checkpoints=9", "train.tokens=3840", "train.progress=none"]  # 30 steps of 4 x 32 tokens


@pytest.fixture(autouse=True)
def offline_wandb(tmp_path, monkeypatch):
    """W&B never reaches the network and says nothing here."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb-home"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-home"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb-home"))


def _entry(cache: Path, out: Path, *extra: str) -> EntryConfig:
    return compose("config", [*TINY, f"corpus.cache_dir={cache}", f"out_dir={out}", *RUN, *extra], register,
                   EntryConfig)


def _run(cache: Path, out: Path, *extra: str) -> tuple[Path, list[dict], dict]:
    cfg = base_run_config(_entry(cache, out, *extra))
    run_single(cfg, log=lambda *_: None)
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    return run_dir, *_records(run_dir)


def _records(run_dir: Path) -> tuple[list[dict], dict]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return rows, json.loads((run_dir / "final.json").read_text())


def _same(logged: float, value: float) -> bool:
    return (math.isnan(logged) and math.isnan(value)) or logged == value


# --- TensorBoard --------------------------------------------------------------------------------

def _events(run_dir: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    return acc


def _check_tensorboard(run_dir: Path, rows: list[dict], final: dict) -> None:
    acc = _events(run_dir)
    keys = {k for row in rows for k in row if k != "step"}
    assert keys and keys <= set(acc.Tags()["scalars"])
    for key in keys:
        logged = [(e.step, e.value) for e in acc.Scalars(key)]
        expected = [(row["step"], float(np.float32(row[key]))) for row in rows if key in row]
        assert [s for s, _ in logged] == [s for s, _ in expected], key  # each step once, in order
        assert all(_same(a, b) for (_, a), (_, b) in zip(logged, expected)), key
    for key in ("final_val_loss", "final_val_bpb", "final_train_loss", "flops", "params"):
        (event,) = acc.Scalars(f"final/{key}")
        assert event.step == final["steps"] and event.value == np.float32(final[key]), key
    config_text = acc.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    config = json.loads("\n".join(line[4:] for line in config_text.splitlines()))
    assert config["config"] == json.loads((run_dir / "config.json").read_text())["config"]
    # The HParams tab: the config's fields against the final losses.
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

    start = HParamsPluginData.FromString(acc.SummaryMetadata("_hparams_/session_start_info").plugin_data.content)
    hparams = start.session_start_info.hparams
    assert hparams["config.model.d_model"].number_value == config["config"]["model"]["d_model"]
    assert hparams["config.train.lr"].number_value == config["config"]["train"]["lr"]


def test_dashboards_mirror_every_row_and_a_resumed_run_continues_them_without_duplicate_steps(tmp_path,
                                                                                             corpus_cache):
    out = tmp_path / "runs"
    run_dir, first_rows, first_final = _run(corpus_cache, out, "logger=[tensorboard,wandb]")
    assert first_final["status"] == "done" and [r["step"] for r in first_rows] == [5, 10, 15, 20, 25, 30]
    assert sum("val_loss" in r for r in first_rows) == 2  # validation rows at 10 and 20 (30's is final.json's)
    _check_tensorboard(run_dir, first_rows, first_final)
    # As if killed right after step 14's checkpoint: rows 15..30 were logged and are trained again.
    assert 14 in rewind_checkpoints(run_dir, 14).values()
    (run_dir / "final.json").unlink()
    _, rows, final = _run(corpus_cache, out, "logger=[tensorboard,wandb]")
    # Resumed (not restarted): the first session's event file stays, its rows past 14 purged by the reader.
    assert len(list((run_dir / "tensorboard").glob("events.out.tfevents.*"))) == 2
    assert [r["step"] for r in rows] == [r["step"] for r in first_rows]
    _check_tensorboard(run_dir, rows, final)
    first, second = sorted((run_dir / "wandb").glob("offline-run-*/run-*.wandb"))
    _check_wandb_history(_wandb(first), first_rows)
    assert _wandb(first)["run"].run_id == _wandb(second)["run"].run_id  # the same W&B run, continued
    assert _wandb(second)["run"].run_id == (run_dir / "wandb" / "run_id").read_text().strip()
    _check_wandb_history(_wandb(second), rows)


# --- Weights & Biases ---------------------------------------------------------------------------

def _wandb(path: Path) -> dict:
    """The records of a W&B run file: a leveldb-style log (a 7-byte ":W&B" header, then 32 KiB
    blocks of chunks, each with a 7-byte header: crc32, length, kind) of protobuf Records."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    ident, magic, version = struct.unpack("<4sHB", data[:7])
    assert (ident, magic, version) == (b":W&B", 0xBEE1, 0)
    block, pos, chunk, records = 32768, 7, b"", []
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if length == 0 and kind == 0:
            break
        chunk += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a full record, or the last chunk of one
            record = pb.Record()
            record.ParseFromString(chunk)
            records.append(record)
            chunk = b""
    out = {"run": None, "history": [], "summary": {}}
    for record in records:
        kind = record.WhichOneof("record_type")
        if kind == "run":
            out["run"] = record.run
        elif kind == "history":
            out["history"].append({item.key or "/".join(item.nested_key): json.loads(item.value_json)
                                   for item in record.history.item})
        elif kind == "summary":
            out["summary"].update({item.key or "/".join(item.nested_key): json.loads(item.value_json)
                                   for item in record.summary.update})
    return out


def _check_wandb_history(run: dict, rows: list[dict]) -> None:
    assert [h["_step"] for h in run["history"]] == [r["step"] for r in rows]
    for logged, row in zip(run["history"], rows):
        assert set(row) - {"step"} == {k for k in logged if not k.startswith("_")}
        assert all(_same(logged[k], v) for k, v in row.items() if k != "step"), row["step"]  # float64, exact


def test_wandb_groups_a_grid_run_by_its_grid_and_mirrors_its_files(tmp_path, corpus_cache):
    # One run through the real grid path: runner -> spec.json -> a local worker process.
    entry = _entry(corpus_cache, tmp_path / "runs", "grid=token_budget", "grid.sizes=[3.0e4]",
                   "grid.budgets=[3840]", "grid.branching=false", "grid.report=false", "grid.eval_pairs=false",
                   "launcher.poll_s=0.2", "logger=[wandb]")
    assert run_grid(entry) == 0
    (run_dir,) = (tmp_path / "runs" / "token_budget-smoke" / "runs").iterdir()
    rows, final = _records(run_dir)
    (path,) = (run_dir / "wandb").glob("offline-run-*/run-*.wandb")
    run = _wandb(path)
    assert run["run"].run_group == "token_budget" and run["run"].display_name == run_dir.name
    config = {item.key: json.loads(item.value_json) for item in run["run"].config.update}
    recorded = json.loads((run_dir / "config.json").read_text())["config"]
    assert config["run_id"] == run_dir.name
    assert all(config[section] == recorded[section] for section in ("model", "train", "corpus", "seed"))
    assert config["logger"] == ["wandb"] and config["axes"]["size"] == 3.0e4
    _check_wandb_history(run, rows)
    for key in ("final_val_loss", "final_val_bpb", "final_train_loss", "wall_s"):
        assert run["summary"][f"final/{key}"] == final[key], key
    assert run["summary"]["final/status"] == "done"


# --- refusals and failures ------------------------------------------------------------------------

def test_logger_is_checked_before_compute_and_leaves_the_run_id_alone(tmp_path):
    plain = base_run_config(_entry(tmp_path, tmp_path / "runs"))
    both = base_run_config(_entry(tmp_path, tmp_path / "runs", "logger=[tensorboard,wandb]"))
    assert both.logger == ["tensorboard", "wandb"] and run_id(both) == run_id(plain)
    for bad, words in (("logger=[mlflow]", "unknown logger 'mlflow'"), ("logger=[wandb,wandb]", "twice")):
        with pytest.raises(ConfigError) as e:
            validate_run(base_run_config(_entry(tmp_path, tmp_path / "runs", bad)))
        assert e.value.field == "logger" and words in e.value.reason


@pytest.mark.parametrize("grid", [[], ["grid=token_budget"]], ids=["run", "grid"])
def test_a_missing_package_exits_2_naming_its_extra_before_anything_is_written(tmp_path, monkeypatch, capsys,
                                                                                grid):
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb fails, as where it is not installed
    out = tmp_path / "runs"
    with pytest.raises(SystemExit) as e:
        main_guard(lambda: main([*TINY, f"corpus.cache_dir={tmp_path / 'cache'}", f"out_dir={out}",
                                 "logger=[tensorboard,wandb]", *grid]))
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert e.value.code == 2
    assert err == ["error: logger: logger=wandb needs the wandb package: pip install -e '.[wandb]'"]
    assert not out.exists() and not (tmp_path / "cache").exists()


class _Recording:
    name = "recording"

    def __init__(self):
        self.rows, self.closed = [], None

    def row(self, row):
        self.rows.append(row["step"])

    def final(self, final):
        pass

    def close(self, ok):
        self.closed = ok


class _Broken(_Recording):
    name = "broken"

    def row(self, row):
        if row["step"] >= 10:
            raise OSError("disk full")
        super().row(row)


def test_a_failing_dashboard_warns_once_and_the_others_go_on(capsys):
    broken, recording = _Broken(), _Recording()
    with Dashboards([broken, recording], label="run") as board:
        for step in (5, 10, 15, 20):
            board.write({"step": step, "loss": 1.0})
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "the broken dashboard failed (row): OSError: disk full" in err[0]
    assert broken.rows == [5] and broken.closed is False
    assert recording.rows == [5, 10, 15, 20] and recording.closed is True
