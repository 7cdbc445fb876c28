"""Multiple-choice scoring: file reading, the context/choice token split, hand-computed scores
with a bigram table (raw vs length-normalised accuracy), ties, groups and intervals, and the
same log-probabilities as an independent float64 scoring through the exported transformers
model."""
import json
import math

import pytest
import torch
from test_evaluate import EOS, Bigram, Constant, make_tokenizer, tiny_model
from test_export import make_run

from lab.choices import (
    read_choices,
    score_choices,
    split_context_choice,
    wilson_interval,
)
from lab.scoring import encode_texts


def _write(path, items):
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in items))
    return path


# ---------------------------------------------------------------- reading


def test_read_choices_keeps_extra_keys_and_skips_blank_lines(tmp_path):
    item = {"context": "the dog", "choices": [" runs", " sleeps"], "answer": 1, "hops": 2, "relation": "does"}
    path = _write(tmp_path / "c.jsonl", [item, "", {**item, "answer": 0}])
    assert read_choices(path) == [item, {**item, "answer": 0}]


@pytest.mark.parametrize("bad, reason", [
    ({"context": "a", "choices": [" b", " c"], "answer": 2}, "answer must be an index into the 2 choices, got 2"),
    ({"context": "a", "choices": [" b", " c"], "answer": -1}, "answer must be an index"),
    ({"context": "a", "choices": [" b", " c"], "answer": True}, "answer must be an index"),
    ({"context": "a", "choices": [" b", " c"], "answer": "0"}, "answer must be an index"),
    ({"context": "a", "choices": [" b"], "answer": 0}, "at least 2"),
    ({"context": "a", "choices": " b c", "answer": 0}, "at least 2"),
    ({"context": "a", "choices": [" b", ""], "answer": 0}, "non-empty string"),
    ({"context": "a", "choices": [" b", 3], "answer": 0}, "non-empty string"),
    ({"choices": [" b", " c"]}, "item lacks context, answer"),
    ({"context": 7, "choices": [" b", " c"], "answer": 0}, "context is not a string"),
    ('["context"]', "not a JSON object"),
    ('{"context": ', "not JSON"),
])
def test_read_choices_names_file_and_line_of_a_bad_item(tmp_path, bad, reason):
    good = {"context": "a", "choices": [" b", " c"], "answer": 0}
    path = _write(tmp_path / "bad.jsonl", [good, "", bad])
    with pytest.raises(ValueError) as err:
        read_choices(path)
    assert str(err.value).startswith(f"{path}:3: ") and reason in str(err.value), str(err.value)


# ---------------------------------------------------------------- tokenization


def test_split_covers_the_whole_text_and_a_merge_across_the_boundary():
    tok = make_tokenizer()
    token = tok.id_to_token
    # "the dog" + "s run ." encodes whole as the, Ġdogs, Ġrun, Ġ. : the merged token is scored
    (ctx, cont), = split_context_choice(tok, "the dog", ["s run ."])
    assert [token(i) for i in ctx] == ["the"] and [token(i) for i in cont] == ["Ġdogs", "Ġrun", "Ġ."]
    # no merge: the context keeps all its tokens, the choice gets its own
    (ctx, cont), = split_context_choice(tok, "the dog", [" runs ."])
    assert [token(i) for i in ctx] == ["the", "Ġdog"] and [token(i) for i in cont] == ["Ġruns", "Ġ."]
    # a trailing space moves to the choice (Ġ attaches to the next word), as in the harness
    assert split_context_choice(tok, "the dog ", ["runs ."]) == [(ctx, cont)]
    # always: context tokens + continuation = the whole text's encoding
    for context, choice in [("a cat", " sleeps ."), ("the big", "gest dog"), ("", "the dog")]:
        (c, t), = split_context_choice(tok, context, [choice])
        assert c + t == encode_texts(tok, [context + choice])[0] and t


# ---------------------------------------------------------------- hand-computed scores


def _word_tokenizer(words):
    """Whitespace-split words, one id each after the three special tokens: token ids by hand."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, **{w: 3 + i for i, w in enumerate(words)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<pad>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return tok, vocab


def _bigram_from_probs(probs, vocab_size):
    """A Bigram whose next-token distribution after token a is probs[a] (each row sums to 1;
    every other token gets e^-30, a negligible mass)."""
    table = torch.full((vocab_size, vocab_size), -30.0, dtype=torch.float64)
    for prev, row in probs.items():
        for nxt, p in row.items():
            table[prev, nxt] = math.log(p)
    return Bigram(table)


def test_hand_computed_scores_and_raw_versus_length_normalised_accuracy():
    tok, v = _word_tokenizer(["q", "yes", "no", "very", "long"])
    # after "q": yes 0.5, no 0.2, very 0.25; after "very" and after "long": long 0.9
    model = _bigram_from_probs({v["q"]: {v["yes"]: 0.5, v["no"]: 0.2, v["very"]: 0.25, v["long"]: 0.05},
                                v["very"]: {v["long"]: 0.9, v["yes"]: 0.1}, v["long"]: {v["long"]: 0.9, v["no"]: 0.1},
                                EOS: {v["q"]: 1.0}}, len(v))
    short, long_ = " yes", " very long long long"  # 4 and 20 bytes
    lp_short = math.log(0.5)
    lp_long = math.log(0.25) + 3 * math.log(0.9)  # less likely in total, more likely per byte
    lp_no = math.log(0.2)
    assert lp_short > lp_long and lp_short / 4 < lp_long / 20 and lp_no / 3 < lp_long / 20
    items = [{"context": "q", "choices": [short, long_, " no"], "answer": 1, "hops": 1},  # right only normalised
             {"context": "q", "choices": [short, long_, " no"], "answer": 0, "hops": 2},  # right only raw
             {"context": "q ", "choices": ["no", "yes"], "answer": 1, "hops": 2}]  # right both ways
    res = score_choices(model, tok, items, bos_id=EOS, device="cpu", details=True)
    assert res["items"][0]["logprobs"] == pytest.approx([lp_short, lp_long, lp_no], abs=1e-6)
    assert res["items"][0]["bytes"] == [4, 20, 3] and res["items"][0]["tokens"] == [1, 4, 1]
    assert res["items"][2]["logprobs"] == pytest.approx([lp_no, lp_short], abs=1e-6)
    assert res["items"][2]["bytes"] == [2, 3]  # the bytes of the choice as written
    assert [r["prediction"] for r in res["items"]] == [0, 0, 1]
    assert [r["prediction_norm"] for r in res["items"]] == [1, 1, 1]
    assert (res["correct"], res["correct_norm"], res["n"]) == (2, 2, 3)
    assert res["accuracy"] == pytest.approx(2 / 3) and res["accuracy_norm"] == pytest.approx(2 / 3)
    assert res["chance"] == pytest.approx((1 / 3 + 1 / 3 + 1 / 2) / 3)
    one, two = res["by_group"]["1"], res["by_group"]["2"]
    assert (one["accuracy"], one["accuracy_norm"], one["n"]) == (0.0, 1.0, 1)
    assert (two["accuracy"], two["accuracy_norm"], two["n"]) == (1.0, 0.5, 2)
    assert two["chance"] == pytest.approx((1 / 3 + 1 / 2) / 2)
    assert res["n_ties"] == 0 and res["bos_id"] == EOS
    assert res["items"][1]["hops"] == 2 and "context" not in res["items"][1]  # extra keys kept, text not


def test_ties_are_not_correct_and_a_tie_elsewhere_is_wrong():
    tok, v = _word_tokenizer(["a", "b", "c", "long"])
    model = Constant(len(v))  # uniform: every token scores -log V, so equal token counts tie exactly
    items = [{"context": "a", "choices": [" b", " c"], "answer": 0},  # a tie that includes the answer
             {"context": "a", "choices": [" b c", " c", " b"], "answer": 0},  # two others tie ahead: wrong
             {"context": "a", "choices": [" b", " long"], "answer": 1},  # tie raw, " long" best per byte
             {"context": "a", "choices": [" b c", " c"], "answer": 1}]  # right raw, tie per byte
    res = score_choices(model, tok, items, bos_id=EOS, device="cpu", details=True)
    assert [r["tie"] for r in res["items"]] == [True, False, True, False]
    assert [r["correct"] for r in res["items"]] == [False, False, False, True]
    assert [r["prediction"] for r in res["items"]] == [None, None, None, 1]
    assert [r["correct_norm"] for r in res["items"]] == [False, False, True, False]
    assert [r["prediction_norm"] for r in res["items"]] == [None, None, 1, None]
    assert (res["correct"], res["n_ties"], res["correct_norm"], res["n_ties_norm"]) == (1, 2, 1, 3)
    assert res["items"][2]["logprobs"] == pytest.approx([-math.log(len(v))] * 2)
    assert "by_group" not in res and res["n_nan"] == 0
    empty = score_choices(model, tok, [], bos_id=EOS)
    assert empty["accuracy"] is None and empty["accuracy_ci"] is None and empty["n"] == 0


def test_wilson_interval_matches_scipy():
    from scipy.stats import binomtest

    for k, n in [(0, 10), (5, 10), (81, 263), (7, 9), (10, 10), (1, 1)]:
        ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
        assert wilson_interval(k, n) == pytest.approx([ci.low, ci.high], abs=1e-9), (k, n)
    assert wilson_interval(0, 0) is None
    tok, v = _word_tokenizer(["a", "b", "c"])
    res = score_choices(Constant(len(v)), tok, [{"context": "a", "choices": [" b", " b c"], "answer": 0}] * 10,
                        bos_id=EOS)
    assert res["accuracy"] == 1.0 and res["accuracy_ci"] == pytest.approx(wilson_interval(10, 10))
    z2 = 1.959963984540054 ** 2  # at 0 successes Wilson's upper bound is z^2 / (n + z^2)
    assert res["accuracy_norm"] == 0.0 and res["accuracy_norm_ci"] == pytest.approx([0.0, z2 / (10 + z2)])
    assert res["n_ties_norm"] == 10  # -log V per 2 bytes either way


def test_batching_and_padding_do_not_change_scores():
    tok = make_tokenizer()
    model = tiny_model(seed=2)
    items = [{"context": c, "choices": [" runs .", " sleep .", " sees the small cat ."], "answer": i % 3}
             for i, c in enumerate(["the dog", "a cat", "the big dog sees the small cat . the dogs", ""])]
    one = score_choices(model, tok, items, bos_id=EOS, batch_size=1, details=True)
    many = score_choices(model, tok, items, bos_id=EOS, batch_size=5, details=True)
    for a, b in zip(one["items"], many["items"]):
        assert a["logprobs"] == pytest.approx(b["logprobs"], abs=1e-5)


# ---------------------------------------------------------------- against transformers


def _reference_logprob(hf, hf_tok, context, choice):
    """Independent path: encode context + choice once with the exported fast tokenizer (which
    prepends the bos context), take the tokens whose character span reaches past the context's
    last non-space character, and sum log_softmax in float64 over them."""
    stripped = context.rstrip()
    text = stripped + context[len(stripped):] + choice
    enc = hf_tok(text, return_offsets_mapping=True)
    ids, spans = enc["input_ids"], enc["offset_mapping"]
    assert ids[0] == hf_tok.bos_token_id
    scored = [t for t in range(1, len(ids)) if spans[t][1] > len(stripped)]
    with torch.no_grad():
        logp = torch.log_softmax(hf(input_ids=torch.tensor([ids])).logits[0].double(), dim=-1)
    return sum(logp[t - 1, ids[t]].item() for t in scored), len(scored)


def test_scores_match_an_independent_transformers_float64_scoring(tmp_path, monkeypatch):
    from transformers import AutoTokenizer, LlamaForCausalLM

    from lab.export import export_hf
    from lab.scorable import evaluate_choices_path

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    run_dir, _, _ = make_run(tmp_path, tie=False)  # weights overfit on the test sentences
    hf_dir = export_hf(run_dir, tmp_path / "hf")
    items = [{"context": "the dog", "choices": [" runs .", " run .", " sleeps ."], "answer": 0, "hops": 1},
             {"context": "the dogs", "choices": [" runs .", " run ."], "answer": 1, "hops": 1},
             {"context": "the big dog sees the", "choices": [" small cat .", " cats sleep .", " dog"], "answer": 0,
              "hops": 2},
             {"context": "the dog", "choices": ["s run .", " sleeps ."], "answer": 0, "hops": 2},  # merged
             {"context": "a bird ", "choices": ["sings .", "sing .", "runs ."], "answer": 0, "hops": 1},
             {"context": "the dogs", "choices": [" run .", " runs ."], "answer": 1, "hops": 2}]  # a wrong key
    path = _write(tmp_path / "choices.jsonl", items)
    ours = evaluate_choices_path(run_dir, path, device="cpu", details=True)
    via_hf = evaluate_choices_path(hf_dir, path, device="cpu", details=True)

    hf = LlamaForCausalLM.from_pretrained(hf_dir, local_files_only=True).double().eval()
    hf_tok = AutoTokenizer.from_pretrained(hf_dir, local_files_only=True)
    correct = correct_norm = 0
    for item, got, got_hf in zip(items, ours["items"], via_hf["items"]):
        ref = [_reference_logprob(hf, hf_tok, item["context"], c) for c in item["choices"]]
        assert got["tokens"] == got_hf["tokens"] == [n for _, n in ref]
        for lp, lp_hf, (want, _) in zip(got["logprobs"], got_hf["logprobs"], ref):
            assert abs(lp - want) <= 1e-4 and abs(lp_hf - want) <= 1e-4, (item, lp, lp_hf, want)
        raw = [lp for lp, _ in ref]
        norm = [lp / len(c.encode()) for (lp, _), c in zip(ref, item["choices"])]
        assert got["prediction"] == got_hf["prediction"] == raw.index(max(raw))
        assert got["prediction_norm"] == got_hf["prediction_norm"] == norm.index(max(norm))
        correct += raw.index(max(raw)) == item["answer"]
        correct_norm += norm.index(max(norm)) == item["answer"]
    assert ours["correct"] == via_hf["correct"] == correct and ours["correct_norm"] == correct_norm
    # the model was overfit on these sentences: it answers all but the deliberately wrong key
    assert correct == 5 and ours["by_group"]["2"]["correct"] == 2 and ours["by_group"]["1"]["accuracy"] == 1.0
    assert ours["kind"] == "run" and via_hf["kind"] == "hf" and ours["bos_id"] == via_hf["bos_id"] == EOS


def test_evaluate_cli_choices_alone_with_pairs_and_bad_input(tmp_path, capsys):
    from test_evaluate import _pairs

    from common.cli import main_guard
    from lab.evaluate import main as evaluate_main

    run_dir, _, _ = make_run(tmp_path, tie=False)
    items = [{"context": "the dog", "choices": [" runs .", " run ."], "answer": 0, "hops": 1},
             {"context": "the dogs", "choices": [" runs .", " run ."], "answer": 1, "hops": 2}]
    choices = _write(tmp_path / "facts.jsonl", items)
    pairs = _write(tmp_path / "pairs.jsonl", _pairs())

    assert evaluate_main([str(run_dir), "--choices", str(choices), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "1 hop " in out and "2 hops" in out and "all" in out and "100.00" in out and "phenomenon" not in out

    assert evaluate_main([str(run_dir), "--choices", str(choices), "--json", "--device", "cpu"]) == 0
    alone = json.loads(capsys.readouterr().out)
    assert alone["accuracy"] == 1.0 and alone["n"] == 2 and alone["by_group"]["2"]["n"] == 1
    assert alone["choices_source"] == str(choices) and alone["kind"] == "run"

    assert evaluate_main([str(run_dir), "--pairs", str(pairs), "--choices", str(choices), "--json"]) == 0
    both = json.loads(capsys.readouterr().out)
    assert both["choices"]["accuracy"] == 1.0 and both["pairs"]["accuracy"] == 1.0
    assert both["pairs"]["by_phenomenon"]["agreement"]["n"] == 3
    assert evaluate_main([str(run_dir), "--pairs", str(pairs), "--choices", str(choices)]) == 0
    out = capsys.readouterr().out
    assert "phenomenon" in out and "2 hops" in out

    (tmp_path / "bad.jsonl").write_text('{"context": "a", "choices": [" b", " c"], "answer": 5}\n')
    (tmp_path / "empty.jsonl").write_text("\n")
    cases = [
        ([str(run_dir)], "error: pairs: give --pairs, --choices, or both"),
        ([str(run_dir), "--choices", str(tmp_path / "missing.jsonl")], "error: choices: "),
        ([str(run_dir), "--choices", str(tmp_path / "bad.jsonl")], f"error: choices: {tmp_path / 'bad.jsonl'}:1: "),
        ([str(run_dir), "--choices", str(tmp_path / "empty.jsonl")], "error: choices: "),
        ([str(run_dir), "--choices", str(tmp_path)], "error: choices: "),
        ([str(run_dir), "--pairs", str(pairs), "--choices", str(tmp_path / "bad.jsonl")], "error: choices: "),
        ([str(tmp_path / "nope"), "--choices", str(choices)], "error: model: "),
    ]
    for argv, prefix in cases:
        with pytest.raises(SystemExit) as exit_info:
            main_guard(lambda argv=argv: evaluate_main(argv))
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith(prefix) and err.count("\n") == 1, err
