"""Minimal-pair scoring: log-probabilities against an independent float64 recomputation with
transformers, padding invariance, a hand-computable model, and pairs with a known answer."""
import json

import pytest
import torch
from torch import nn

from lab.config import ModelConfig
from lab.hf import to_hf_model
from lab.model import Llama
from lab.pair_sources import read_pairs
from lab.scoring import (
    continuation_logprobs,
    encode_texts,
    evaluate_pairs_file,
    score_pairs,
    sentence_logprobs,
)

SENTENCES = ["the dog runs .", "the dogs run .", "a cat sleeps .", "the cats sleep .",
             "the big dog sees the small cat .", "a bird sings .", "the birds sing ."]
PAD, BOS, EOS = 0, 1, 2


def make_tokenizer(path=None):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<pad>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), min_frequency=1,
                                  show_progress=False)
    tok.train_from_iterator(SENTENCES * 5, trainer)
    assert (tok.token_to_id("<pad>"), tok.token_to_id("<s>"), tok.token_to_id("</s>")) == (PAD, BOS, EOS)
    if path is not None:
        tok.save(str(path))
    return tok


def tiny_model(seed=0, vocab=300, tie=True, init_std=0.2):
    torch.manual_seed(seed)
    cfg = ModelConfig(d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=vocab,
                      tie_embeddings=tie, init_std=init_std)
    return Llama(cfg).eval()


def reference_logprob(hf, tokens, bos):
    """Independent: one unpadded sequence at a time through transformers, in float64."""
    ids = torch.tensor([[bos, *tokens]])
    with torch.no_grad():
        logits = hf(input_ids=ids).logits[0].double()
    logp = torch.log_softmax(logits, dim=-1)
    return sum(logp[t, tokens[t]].item() for t in range(len(tokens)))


@pytest.mark.parametrize("tie", [True, False])
def test_logprobs_match_transformers_float64_with_mixed_lengths(tie):
    model = tiny_model(seed=1, tie=tie)
    hf = to_hf_model(model).double()
    g = torch.Generator().manual_seed(0)
    lengths = [1, 9, 3, 14, 2, 7, 14, 5]
    token_lists = [torch.randint(3, 300, (n,), generator=g).tolist() for n in lengths]
    ours = sentence_logprobs(model, token_lists, BOS, "cpu", batch_size=3)  # batches mix lengths
    ref = [reference_logprob(hf, toks, BOS) for toks in token_lists]
    for a, b in zip(ours, ref):
        assert abs(a - b) <= 1e-4, (a, b)
    # the values are far from trivial (so the tolerance means something)
    assert all(r < -1.0 for r in ref)
    # padding and batching do not change a sentence's score
    one_by_one = sentence_logprobs(model, token_lists, BOS, "cpu", batch_size=1)
    all_at_once = sentence_logprobs(model, token_lists, BOS, "cpu", batch_size=64)
    for a, b, c in zip(ours, one_by_one, all_at_once):
        assert abs(a - b) <= 1e-5 and abs(a - c) <= 1e-5
    # the context token matters: the first token is conditioned on it
    other = sentence_logprobs(model, token_lists, EOS, "cpu", batch_size=3)
    assert any(abs(a - b) > 1e-3 for a, b in zip(ours, other))


class Bigram(nn.Module):
    """logits[b, t] = table[idx[b, t]]: log p(next | prev) is log_softmax(table[prev])."""

    def __init__(self, table):
        super().__init__()
        self.table = nn.Parameter(table)

    def forward(self, idx):
        return self.table[idx]


def test_hand_computed_bigram_scores_and_empty_sentence():
    torch.manual_seed(0)
    table = torch.randn(6, 6, dtype=torch.float64) * 2
    model = Bigram(table)
    lp = torch.log_softmax(table, dim=-1)
    sentences = [[3, 4, 5], [5], [], [4, 4]]
    expected = [lp[1, 3] + lp[3, 4] + lp[4, 5], lp[1, 5], 0.0, lp[1, 4] + lp[4, 4]]
    got = sentence_logprobs(model, sentences, bos_id=1, device="cpu", batch_size=2)
    assert got == pytest.approx([float(e) for e in expected], abs=1e-6)
    assert model.training  # the model's mode is restored


def test_continuation_logprobs_score_only_the_continuation():
    torch.manual_seed(0)
    table = torch.randn(6, 6, dtype=torch.float64) * 2
    lp = torch.log_softmax(table, dim=-1)
    got = continuation_logprobs(Bigram(table), [[3, 4], [], [5]], [[5, 2], [4], []], bos_id=1, device="cpu",
                                batch_size=2)
    # the context is read (it conditions the first continuation token) but not scored
    assert got == pytest.approx([float(lp[4, 5] + lp[5, 2]), float(lp[1, 4]), 0.0], abs=1e-6)
    # on a transformer: log p(context + continuation) - log p(context), with mixed lengths
    model = tiny_model(seed=7)
    g = torch.Generator().manual_seed(2)
    contexts = [torch.randint(3, 300, (n,), generator=g).tolist() for n in (4, 0, 11, 2)]
    conts = [torch.randint(3, 300, (n,), generator=g).tolist() for n in (3, 6, 1, 9)]
    whole = sentence_logprobs(model, [c + t for c, t in zip(contexts, conts)], EOS, "cpu")
    alone = sentence_logprobs(model, contexts, EOS, "cpu")
    got = continuation_logprobs(model, contexts, conts, EOS, "cpu", batch_size=3)
    assert got == pytest.approx([w - a for w, a in zip(whole, alone)], abs=1e-4)
    assert all(g < -1.0 for g in got)
    with pytest.raises(ValueError, match="2 contexts for 1 continuations"):
        continuation_logprobs(model, [[1], [2]], [[3]], EOS, "cpu")


def _pairs():
    # the good sentence is what the model is trained on; the bad one swaps words/morphology
    return [
        {"sentence_good": "the dog runs .", "sentence_bad": "the dog run .", "phenomenon": "agreement",
         "UID": "sv_agr", "pair_id": 0},
        {"sentence_good": "the dogs run .", "sentence_bad": "the dogs runs .", "phenomenon": "agreement",
         "UID": "sv_agr", "pair_id": 1},
        {"sentence_good": "the cats sleep .", "sentence_bad": "the cats sleeps .", "phenomenon": "agreement",
         "UID": "sv_agr", "pair_id": 2},
        {"sentence_good": "a bird sings .", "sentence_bad": "bird a sings .", "phenomenon": "word_order",
         "UID": "det_noun", "pair_id": 3},
        {"sentence_good": "the big dog sees the small cat .", "sentence_bad": "the dog big sees the cat small .",
         "phenomenon": "word_order", "UID": "adj_noun", "pair_id": 4},
    ]


def _overfit(model, tok, texts, steps=60):
    ids = [[EOS, *ids, EOS] for ids in encode_texts(tok, texts)]
    width = max(map(len, ids))
    batch = torch.full((len(ids), width), PAD)
    for i, row in enumerate(ids):
        batch[i, :len(row)] = torch.tensor(row)
    targets = batch[:, 1:].clone()
    targets[targets == PAD] = -100
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(steps):
        logits = model(batch[:, :-1])
        loss = nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return loss.item()


def test_known_ground_truth_trained_model_prefers_good_sentences(tmp_path):
    tok = make_tokenizer()
    pairs = _pairs()
    model = tiny_model(seed=3, init_std=0.02)
    untrained = score_pairs(model, tok, pairs, bos_id=EOS, details=True)
    loss = _overfit(model, tok, [p["sentence_good"] for p in pairs])
    assert loss < 0.5
    res = score_pairs(model, tok, pairs, bos_id=EOS, batch_size=4, details=True)
    assert res["accuracy"] == 1.0 and res["n"] == 5 and res["correct"] == 5
    counts = {k: {f: row[f] for f in ("accuracy", "n", "correct", "n_ties")} for k, row in res["by_phenomenon"].items()}
    assert counts == {"agreement": {"accuracy": 1.0, "n": 3, "correct": 3, "n_ties": 0},
                      "word_order": {"accuracy": 1.0, "n": 2, "correct": 2, "n_ties": 0}}
    assert res["macro_accuracy"] == 1.0 and res["n_ties"] == 0
    assert res["by_uid"]["sv_agr"]["n"] == 3 and res["by_uid"]["adj_noun"]["n"] == 1
    assert all(r["logprob_good"] > r["logprob_bad"] + 1.0 for r in res["pairs"])
    # swapping good and bad turns every answer wrong: the score reads the pair's direction
    swapped = [{**p, "sentence_good": p["sentence_bad"], "sentence_bad": p["sentence_good"]} for p in pairs]
    assert score_pairs(model, tok, swapped, bos_id=EOS)["accuracy"] == 0.0
    # training is what made the difference: the untrained model's margins were much smaller
    margin = lambda r: r["logprob_good"] - r["logprob_bad"]  # noqa: E731
    assert sum(map(margin, res["pairs"])) > sum(map(margin, untrained["pairs"])) + 10.0

    # the file-based entry point gives the same numbers
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs))
    tok.save(str(tmp_path / "tokenizer.json"))
    from_file = evaluate_pairs_file(model, tmp_path / "tokenizer.json", tmp_path / "pairs.jsonl", bos_id=EOS)
    assert from_file["accuracy"] == 1.0 and from_file["by_phenomenon"] == res["by_phenomenon"]


def test_ties_are_counted_and_reported_not_resolved_and_default_context_is_eos():
    tok = make_tokenizer()
    model = tiny_model(seed=4)
    same = [{"sentence_good": "the dog runs .", "sentence_bad": "the dog runs .", "phenomenon": "x"}]
    res = score_pairs(model, tok, same, details=True)
    assert res["accuracy"] == 0.0 and res["bos_id"] == EOS
    assert res["n_ties"] == 1 and res["by_phenomenon"]["x"]["n_ties"] == 1 and res["n_ties_norm"] == 1
    assert res["pairs"][0]["tie"] and not res["pairs"][0]["correct"]
    assert res["pairs"][0]["logprob_good"] == res["pairs"][0]["logprob_bad"]
    empty = score_pairs(model, tok, [])
    assert empty["accuracy"] is None and empty["macro_accuracy"] is None and empty["n_ties"] == 0


class Constant(nn.Module):
    """The same distribution at every position: sentences of equal length and equal tokens tie."""

    def __init__(self, vocab=300):
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(vocab))

    def forward(self, idx):
        return self.logits.expand(*idx.shape, -1)


def test_ties_per_phenomenon_macro_average_and_length_normalisation():
    tok = make_tokenizer()
    model = Constant()  # uniform: a sentence's score is -len(tokens) * log(300)
    pairs = [
        # a permutation of the same tokens: an exact tie under a uniform model
        {"sentence_good": "the dog runs .", "sentence_bad": ". runs dog the", "phenomenon": "order"},
        {"sentence_good": "a cat sleeps .", "sentence_bad": "a cat sleeps .", "phenomenon": "order"},
        # shorter good sentence: right on raw scores, a tie once normalised by length
        {"sentence_good": "the dog runs .", "sentence_bad": "the big dog sees the small cat .", "phenomenon": "length"},
    ]
    res = score_pairs(model, tok, pairs, bos_id=EOS, details=True)
    assert res["n"] == 3 and res["correct"] == 1 and res["n_ties"] == 2
    assert res["by_phenomenon"]["order"] == {"accuracy": 0.0, "n": 2, "correct": 0, "n_ties": 2, "n_nan": 0,
                                             "accuracy_norm": 0.0, "n_ties_norm": 2}
    assert res["by_phenomenon"]["length"]["accuracy"] == 1.0
    assert res["macro_accuracy"] == pytest.approx(0.5) and res["accuracy"] == pytest.approx(1 / 3)
    # normalised by length, every sentence scores -log(300) per token: all ties, none correct
    assert res["accuracy_norm"] == 0.0 and res["n_ties_norm"] == 3
    r = res["pairs"][2]
    assert r["logprob_good"] / r["tokens_good"] == pytest.approx(r["logprob_bad"] / r["tokens_bad"])


class SpyBigram(Bigram):
    """A bigram table that records the dtype it computes in."""

    seen = None

    def forward(self, idx):
        SpyBigram.seen = (self.table.dtype, torch.is_autocast_enabled("cpu"))
        return self.table[idx]


def test_scores_are_float32_whatever_the_model_dtype_or_autocast():
    torch.manual_seed(0)
    table = (torch.randn(6, 6) * 2).to(torch.bfloat16)
    model = SpyBigram(table.clone())
    lp = torch.log_softmax(table.double(), dim=-1)  # the stored (rounded) weights, exactly
    got = sentence_logprobs(model, [[3, 4, 5], [2]], bos_id=1, device="cpu")
    assert SpyBigram.seen == (torch.float32, False)
    assert got == pytest.approx([float(lp[1, 3] + lp[3, 4] + lp[4, 5]), float(lp[1, 2])], abs=1e-6)
    assert model.table.dtype == torch.bfloat16  # the caller's model is left as it was
    # an enclosing bf16 autocast (as in training) does not leak into scoring
    llama = tiny_model(seed=6)
    toks = [[5, 9, 11, 40], [7, 8]]
    ref = sentence_logprobs(llama, toks, EOS, "cpu")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert sentence_logprobs(llama, toks, EOS, "cpu") == pytest.approx(ref, abs=1e-6)


def test_fresh_model_is_near_chance_on_many_random_pairs():
    tok = make_tokenizer()
    model = tiny_model(seed=5, init_std=0.02)
    g = torch.Generator().manual_seed(1)
    words = ["dog", "cat", "bird", "runs", "sleeps", "the", "a", "sees", "big", "small"]
    pairs = []
    for i in range(200):
        w = [words[j] for j in torch.randint(0, len(words), (5,), generator=g).tolist()]
        v = [words[j] for j in torch.randint(0, len(words), (5,), generator=g).tolist()]
        pairs.append({"sentence_good": " ".join(w), "sentence_bad": " ".join(v), "phenomenon": "random"})
    acc = score_pairs(model, tok, pairs, bos_id=EOS)["accuracy"]
    assert 0.3 <= acc <= 0.7


def test_read_pairs_rejects_malformed_lines(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"sentence_good": "a", "sentence_bad": "b"}) + "\n\n"
                    + json.dumps({"sentence_good": "a"}) + "\n")
    with pytest.raises(ValueError, match=r"p.jsonl:3: pair lacks sentence_bad"):
        read_pairs(path)
