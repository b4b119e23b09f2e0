import math

import pytest
import torch

from zerosum.engines.base import ChoiceTrie, SamplingParams
from zerosum.engines.hf import HFEngine, top_p_filter
from zerosum.learner import Sample, response_logprobs


def prompts(tokenizer):
    texts = [
        "Hello there, how are",
        "Tic tac",
        "A much longer prompt about poker and cards and bets",
    ]
    return [tokenizer.encode(t, add_special_tokens=False) for t in texts]


def test_sampling_logprobs_match_the_learner(tiny, tokenizer):
    engine = HFEngine(tiny, tokenizer)
    ps = prompts(tokenizer)
    for temperature in (1.0, 0.7):
        gens = engine.generate(
            ps, SamplingParams(temperature=temperature, max_new_tokens=6), seed=1
        )
        samples = [Sample(p, g.token_ids, 0.0) for p, g in zip(ps, gens)]
        logp, mask, _ = response_logprobs(tiny, samples, temperature, tokenizer.pad_token_id)
        for i, g in enumerate(gens):
            assert len(g.token_ids) == len(g.logprobs) == int(mask[i].sum())
            assert torch.allclose(logp[i, : len(g.token_ids)], torch.tensor(g.logprobs), atol=1e-4)


def test_same_seed_same_samples_and_length_finish(tiny, tokenizer):
    engine = HFEngine(tiny, tokenizer)
    params = SamplingParams(max_new_tokens=5)
    a = engine.generate(prompts(tokenizer), params, seed=3)
    b = engine.generate(prompts(tokenizer), params, seed=3)
    c = engine.generate(prompts(tokenizer), params, seed=4)
    assert [g.token_ids for g in a] == [g.token_ids for g in b]
    assert [g.token_ids for g in a] != [g.token_ids for g in c]
    # A random tiny model almost never emits end-of-sequence within 5 tokens.
    assert all(g.finish_reason == "length" and len(g.token_ids) == 5 for g in a)


def test_constrained_mode_only_emits_allowed_answers(tiny, tokenizer):
    engine = HFEngine(tiny, tokenizer)
    choices = [["check", "bet"], ["fold", "call"], [str(i) for i in range(9)]]
    seen = set()
    for seed in range(10):
        gens = engine.generate(
            prompts(tokenizer), SamplingParams(max_new_tokens=8), choices, seed=seed
        )
        for g, allowed in zip(gens, choices):
            assert g.text in allowed
            assert g.finish_reason == "stop" and g.token_ids[-1] == tokenizer.eos_token_id
            assert len(g.allowed) == len(g.token_ids)
            seen.add(g.text)
    assert {"check", "bet"} <= seen  # both answers are actually sampled


def test_constrained_logprobs_match_the_learner(tiny, tokenizer):
    engine = HFEngine(tiny, tokenizer)
    ps = prompts(tokenizer)
    choices = [["check", "bet"], ["fold", "call"], ["bid 1-2", "bid 1-3", "liar"]]
    gens = engine.generate(ps, SamplingParams(max_new_tokens=8), choices, seed=0)
    samples = [Sample(p, g.token_ids, 0.0, g.allowed) for p, g in zip(ps, gens)]
    logp, _, _ = response_logprobs(tiny, samples, 1.0, tokenizer.pad_token_id)
    for i, g in enumerate(gens):
        assert torch.allclose(logp[i, : len(g.token_ids)], torch.tensor(g.logprobs), atol=1e-4)


def test_choice_trie():
    trie = ChoiceTrie([[1, 2, 0], [1, 3, 0], [4, 0]])
    assert trie.allowed([]) == [1, 4]
    assert trie.allowed([1]) == [2, 3]
    assert trie.allowed([4]) == [0]
    assert trie.allowed([9]) == []
    with pytest.raises(ValueError, match="at least one allowed answer"):
        ChoiceTrie([])


def test_top_p_filter_hand_computed():
    logp = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    out = top_p_filter(logp, 0.7).exp()[0]
    # 0.5 alone is < 0.7, so 0.3 joins; the rest is dropped and the kept mass renormalised.
    assert out.tolist() == pytest.approx([0.625, 0.375, 0.0, 0.0])
    assert top_p_filter(logp, 1.0) is logp
    assert math.isclose(top_p_filter(logp, 0.01).exp()[0, 0].item(), 1.0)
