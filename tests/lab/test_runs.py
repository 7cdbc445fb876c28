"""Run ids: stable across code versions, blind to settings that do not change the result."""
import dataclasses
import os

from lab.config import RunConfig
from lab.runs import run_id


def _with_train(cfg: RunConfig, **changes) -> RunConfig:
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, **changes))


def test_the_default_run_keeps_its_recorded_id():
    # Recorded runs are found by id: a change here orphans every run directory users have.
    assert run_id(RunConfig()) == "d128-l4-t2e06-q1-652c298a81"


def test_settings_that_do_not_change_the_result_leave_the_id_alone():
    base = RunConfig()
    for changes in ({"eval_every": 200}, {"log_every": 7}, {"checkpoint_every": 3}, {"threads": 2},
                    {"progress": "none"}, {"compile": True}, {"keep_checkpoints": 9}):
        assert run_id(_with_train(base, **changes)) == run_id(base), changes
    assert run_id(dataclasses.replace(base, out_dir="elsewhere", name="label")) == run_id(base)


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
    assert run_id(cfg) != before
