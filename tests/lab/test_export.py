"""Hugging Face export and run-level pair scoring, on a run directory built by hand (tiny model,
checkpoint + snapshot written with lab.checkpoint, config.json/final.json as lab.runs writes
them, a prepared-corpus directory with its manifest) instead of a training subprocess."""
import dataclasses
import functools
import json
import os
import subprocess
import sys

import pytest
import torch
from test_evaluate import EOS, _overfit, _pairs, make_tokenizer

from common.errors import ConfigError
from common.files import sha256_file
from corpora.config import CorpusConfig
from lab import checkpoint
from lab.config import ModelConfig, RunConfig, TrainConfig
from lab.export import export_hf
from lab.export import main as export_main
from lab.model import Llama
from lab.run_model import load_run_model
from lab.runs import read_final, write_json
from lab.scoring import score_pairs
from lab.sweep.pairs import evaluate_run_pairs, evaluate_snapshot_pairs

STEPS = 7


def make_corpus(root, with_pairs=True):
    """A prepared-corpus directory in corpora.prepare's layout (manifest + checksummed files)."""
    from corpora.keys import FORMAT_VERSION

    root.mkdir(parents=True)
    tok = make_tokenizer(root / "tokenizer.json")
    files = {"tokenizer.json": sha256_file(root / "tokenizer.json")}
    pairs = None
    if with_pairs:
        (root / "pairs.jsonl").write_text("".join(json.dumps(p) + "\n" for p in _pairs()))
        files["pairs.jsonl"] = sha256_file(root / "pairs.jsonl")
        pairs = {"file": "pairs.jsonl", "count": len(_pairs())}
    manifest = {"format": FORMAT_VERSION, "special": {"pad_id": 0, "bos_id": 1, "eos_id": 2},
                "tokenizer": {"file": "tokenizer.json", "vocab_size": tok.get_vocab_size()},
                "splits": {}, "pairs": pairs, "files": files}
    (root / "manifest.json").write_text(json.dumps(manifest))
    return tok


@functools.lru_cache(maxsize=None)
def _trained_state(tie):
    """Weights overfit on the good sentences (trained once per test session and shape)."""
    torch.manual_seed(0)
    model = Llama(ModelConfig(d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=300,
                              tie_embeddings=tie, init_std=0.02, rope_theta=5000.0))
    _overfit(model, make_tokenizer(), [p["sentence_good"] for p in _pairs()], steps=60)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def make_run(tmp_path, name="run", with_pairs=True, tie=True, status="done"):
    """A finished run: config.json (record_start's layout), final checkpoint, snapshot, final.json."""
    corpus_dir = tmp_path / f"corpus-{name}"
    tok = make_corpus(corpus_dir, with_pairs)
    cfg = RunConfig(model=ModelConfig(d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=300,
                                      tie_embeddings=tie, init_std=0.02, rope_theta=5000.0),
                    train=TrainConfig(tokens=STEPS * 64, batch_size=2, seq_len=32,
                                      snapshots={"chck_1": 64}),
                    corpus=CorpusConfig(vocab_size=300))
    run_dir = tmp_path / name
    run_dir.mkdir()
    write_json(run_dir / "config.json", {"config": dataclasses.asdict(cfg), "run_id": name,
                                         "code_version": "test", "argv": [], "corpus_dir": str(corpus_dir),
                                         "versions": {}})
    torch.manual_seed(0)
    model = Llama(cfg.model)
    checkpoint.save_snapshot(run_dir, "chck_1", 1, 64, model)  # the untrained weights
    checkpoint.load_model_weights(model, _trained_state(tie))
    checkpoint.save(run_dir, STEPS, model, {"step": STEPS}, keep=2)
    if status is not None:
        write_json(run_dir / "final.json", {"status": status, "steps": STEPS, "tokens": STEPS * 64,
                                            "params": 12345, "final_val_loss": 1.2345, "final_val_bpb": 0.5,
                                            "run_id": name, "corpus_dir": str(corpus_dir)})
    return run_dir, model.eval(), tok


@pytest.mark.parametrize("tie", [True, False])
def test_export_loads_offline_with_same_logits_and_tokens(tmp_path, tie, monkeypatch):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    run_dir, model, tok = make_run(tmp_path, tie=tie)
    out = export_hf(run_dir, tmp_path / "export" / "hf")
    assert sorted(p.name for p in (tmp_path / "export").iterdir()) == ["hf"]  # no temp dirs left
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "README.md"} <= names

    hf = AutoModelForCausalLM.from_pretrained(out, local_files_only=True).eval()
    hf_tok = AutoTokenizer.from_pretrained(out, local_files_only=True)
    assert hf.config.tie_word_embeddings == tie
    assert json.loads((out / "config.json").read_text())["rope_theta"] == 5000.0  # also for transformers 4.x
    assert json.loads((out / "tokenizer_config.json").read_text())["tokenizer_class"] == "PreTrainedTokenizerFast"
    idx = torch.randint(0, 300, (2, 19))
    with torch.no_grad():
        # These overfit weights sit at fp32's noise floor: transformers' own fp32 logits are
        # ~1.1e-5 from a float64 evaluation of the same model, and ours are as close to it as
        # theirs. A wrong mapping (name, transpose, rope theta, tying) is off by O(1).
        assert (hf(input_ids=idx).logits - model(idx)).abs().max().item() <= 3e-5
    # The initial weights (the chck_1 snapshot), away from that floor: the 1e-5.
    snapshot_out = export_hf(run_dir, tmp_path / "export" / "hf_chck_1", snapshot="chck_1")
    hf_initial = AutoModelForCausalLM.from_pretrained(snapshot_out, local_files_only=True).eval()
    torch.manual_seed(0)
    initial = Llama(model.cfg).eval()  # make_run saved exactly these weights as chck_1
    with torch.no_grad():
        assert (hf_initial(input_ids=idx).logits - initial(idx)).abs().max().item() <= 1e-5

    text = "the big dog sees the small cat ."
    ids = hf_tok(text)["input_ids"]
    assert ids == [EOS, *tok.encode(text, add_special_tokens=False).ids]  # the training context first
    assert hf_tok.bos_token_id == EOS and hf_tok.eos_token_id == EOS and hf_tok.pad_token_id == 0
    assert hf_tok.decode(ids, skip_special_tokens=True) == text
    quoted = "the tag </s> ends nothing"  # text, as the shards encode it (corpora.tokenizer.load)
    tok.encode_special_tokens = True  # as corpora.tokenizer.load gives it
    assert hf_tok(quoted)["input_ids"] == [EOS, *tok.encode(quoted, add_special_tokens=False).ids]
    assert EOS not in hf_tok(quoted)["input_ids"][1:]
    # a sentence scored through the exported pair gives lab's minimal-pair log-probability
    with torch.no_grad():
        logp = torch.log_softmax(hf(input_ids=torch.tensor([ids])).logits[0].double(), -1)
    hf_score = sum(logp[t - 1, ids[t]].item() for t in range(1, len(ids)))
    ours = score_pairs(model, tok, [{"sentence_good": text, "sentence_bad": "x"}], details=True)
    assert abs(ours["pairs"][0]["logprob_good"] - hf_score) <= 1e-4

    card = (out / "README.md").read_text()
    assert "`run`" in card and "1.2345" in card and "448" in card  # run id, val loss, tokens


def test_export_snapshot_and_replace_previous_export(tmp_path):
    run_dir, model, _ = make_run(tmp_path)
    out = tmp_path / "hf"
    export_hf(run_dir, out)
    export_hf(run_dir, out, snapshot="chck_1")  # replaces the earlier export in place
    from safetensors.torch import load_file

    exported = load_file(out / "model.safetensors")["model.embed_tokens.weight"]
    snap = load_file(run_dir / "snapshots" / "chck_1" / "model.safetensors")["embed.weight"]
    assert torch.equal(exported, snap) and not torch.equal(exported, model.embed.weight.detach())
    assert "chck_1" in (out / "README.md").read_text()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_export_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    run_dir, _, _ = make_run(tmp_path)
    unfinished, _, _ = make_run(tmp_path, name="unfinished", status=None)
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "notes.txt").write_text("keep me")
    cases = [
        ([str(tmp_path / "nope"), str(tmp_path / "o1")], "error: run_dir: "),
        ([str(unfinished), str(tmp_path / "o2")], "error: run_dir: "),
        ([str(run_dir), str(tmp_path / "o3"), "--snapshot", "chck_9"], "error: snapshot: "),
        ([str(run_dir), str(tmp_path / "precious")], "error: out_dir: "),
    ]
    from common.cli import main_guard

    for argv, prefix in cases:
        with pytest.raises(SystemExit) as exit_info:
            main_guard(lambda: export_main(argv))
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith(prefix) and err.count("\n") == 1, err
    assert (tmp_path / "precious" / "notes.txt").read_text() == "keep me"
    assert not any((tmp_path / f"o{i}").exists() for i in (1, 2, 3))
    # the real command line, once
    proc = subprocess.run([sys.executable, "-m", "lab.export", str(tmp_path / "nope"), str(tmp_path / "o")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.startswith("error: run_dir: ") and proc.stderr.count("\n") == 1


def test_evaluate_run_pairs_records_accuracy(tmp_path):
    run_dir, _, _ = make_run(tmp_path)
    final = read_final(run_dir)
    updated = evaluate_run_pairs(run_dir, final, device="cpu")
    assert updated["pairs"] == 1.0  # the final weights were trained on the good sentences
    assert updated["pairs_by_phenomenon"] == {"agreement": 1.0, "word_order": 1.0}
    assert updated["pairs_macro"] == 1.0 and updated["pairs_ties"] == 0
    assert read_final(run_dir) == json.loads(json.dumps(updated))
    details = json.loads((run_dir / "pairs.json").read_text())
    assert details["n"] == 5 and len(details["pairs"]) == 5 and details["step"] == STEPS
    assert details["bos_id"] == EOS
    # a snapshot (the untrained weights) is scored into its own directory, from the same code
    snap = evaluate_snapshot_pairs(run_dir, "chck_1", device="cpu")
    assert snap["n"] == 5 and snap["step"] == 1 and snap["accuracy"] < 1.0
    assert json.loads((run_dir / "snapshots" / "chck_1" / "pairs.json").read_text())["step"] == 1
    assert checkpoint.verify(run_dir / "snapshots" / "chck_1") is None


def test_evaluate_run_pairs_without_pairs_leaves_final_alone(tmp_path):
    run_dir, _, _ = make_run(tmp_path, with_pairs=False)
    before = (run_dir / "final.json").read_text()
    final = read_final(run_dir)
    assert evaluate_run_pairs(run_dir, final, device="cpu") == final
    assert (run_dir / "final.json").read_text() == before and not (run_dir / "pairs.json").exists()


def test_load_run_model_refuses_a_corrupt_final_checkpoint(tmp_path):
    run_dir, _, _ = make_run(tmp_path)
    blob = run_dir / "checkpoints" / f"step_{STEPS:08d}" / "model.safetensors"
    data = bytearray(blob.read_bytes())
    data[-3] ^= 0xFF
    blob.write_bytes(bytes(data))
    with pytest.raises(ConfigError, match="checksum mismatch"):
        load_run_model(run_dir)


def _write_pairs(path, pairs):
    path.write_text("".join(json.dumps(p) + "\n" for p in pairs))
    return path


def test_scorer_gives_the_same_answers_through_the_exported_hf_folder(tmp_path, monkeypatch):
    """Issue: our scorer through our model and through the export agree (accuracy; log-probs 1e-4)."""
    from lab.scorable import evaluate_path

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    run_dir, _, _ = make_run(tmp_path, tie=False)
    hf_dir = export_hf(run_dir, tmp_path / "hf")
    pairs_file = _write_pairs(tmp_path / "pairs.jsonl", _pairs())
    ours = evaluate_path(run_dir, pairs_file, device="cpu", details=True)
    theirs = evaluate_path(hf_dir, pairs_file, device="cpu", details=True)
    assert ours["kind"] == "run" and theirs["kind"] == "hf"
    assert ours["bos_id"] == theirs["bos_id"] == EOS
    assert ours["accuracy"] == theirs["accuracy"] == 1.0
    for key in ("n", "correct", "n_ties", "macro_accuracy", "accuracy_norm", "by_phenomenon"):
        assert ours[key] == theirs[key], key
    for a, b in zip(ours["pairs"], theirs["pairs"]):
        assert (a["tokens_good"], a["tokens_bad"]) == (b["tokens_good"], b["tokens_bad"])
        assert abs(a["logprob_good"] - b["logprob_good"]) <= 1e-4
        assert abs(a["logprob_bad"] - b["logprob_bad"]) <= 1e-4
    # a snapshot through the run directory is the snapshot's score (untrained: not all correct)
    snap = evaluate_path(run_dir, pairs_file, device="cpu", snapshot="chck_1")
    assert snap["accuracy"] < 1.0 and snap["step"] == 1

    # the command line on the HF folder, in a real subprocess, prints the same numbers as JSON
    proc = subprocess.run([sys.executable, "-m", "lab.evaluate", str(hf_dir), "--pairs", str(pairs_file), "--json",
                           "--device", "cpu"], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr
    cli = json.loads(proc.stdout)
    assert cli["accuracy"] == ours["accuracy"] and cli["by_phenomenon"] == ours["by_phenomenon"]
    assert cli["n_ties"] == 0 and cli["macro_accuracy"] == 1.0


def test_evaluate_cli_table_directory_of_pairs_and_bad_input(tmp_path, capsys):
    from common.cli import main_guard
    from lab.evaluate import main as evaluate_main

    run_dir, _, _ = make_run(tmp_path)
    blimp = tmp_path / "blimp"
    blimp.mkdir()  # BLiMP's layout: one file per paradigm, phenomenon in linguistics_term or the name
    pairs = _pairs()
    _write_pairs(blimp / "sv_agreement.jsonl", [{k: v for k, v in p.items() if k != "phenomenon"} | {"UID": None}
                                                 for p in pairs[:3]])
    _write_pairs(blimp / "order.jsonl", [{**{k: v for k, v in p.items() if k != "phenomenon"},
                                          "linguistics_term": "word_order"} for p in pairs[3:]])
    assert evaluate_main([str(run_dir), "--pairs", str(blimp), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "sv_agreement" in out and "word_order" in out and "macro average" in out and "100.00" in out

    (tmp_path / "bad.jsonl").write_text('{"sentence_good": "a"}\n')
    cases = [
        ([str(run_dir), "--pairs", str(tmp_path / "missing.jsonl")], "error: pairs: "),
        ([str(run_dir), "--pairs", str(tmp_path / "bad.jsonl")], "error: pairs: "),
        ([str(tmp_path / "nope"), "--pairs", str(blimp)], "error: model: "),
        ([str(run_dir), "--pairs", str(blimp), "--snapshot", "chck_9"], "error: snapshot: "),
        ([str(run_dir), "--pairs", str(blimp), "--device", "tpu"], "error: device: "),
    ]
    for argv, prefix in cases:
        with pytest.raises(SystemExit) as exit_info:
            main_guard(lambda: evaluate_main(argv))
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith(prefix) and err.count("\n") == 1, err


def test_worker_keeps_a_finished_run_done_when_pair_scoring_fails(tmp_path, monkeypatch, capsys):
    from lab.sweep import pairs, worker

    run_dir, _, _ = make_run(tmp_path)
    final = read_final(run_dir)

    def broken(*args, **kwargs):
        raise RuntimeError("tokenizer went missing\nsecond line")

    monkeypatch.setattr(pairs, "evaluate_run_pairs", broken)
    updated = worker.evaluate_pairs(run_dir, final)
    assert updated["status"] == "done" and updated["pairs_error"] == "RuntimeError: tokenizer went missing"
    assert "pairs" not in updated and read_final(run_dir) == json.loads(json.dumps(updated))
    assert "minimal-pair evaluation failed: RuntimeError: tokenizer went missing" in capsys.readouterr().err
