import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from zerosum.engines.base import ChoiceTrie, SamplingParams
from zerosum.engines.hf import HFEngine, draw, top_p_filter
from zerosum.scoring import Sample, response_logprobs

# The engine's log-probs (incremental decoding, KV cache) against the learner's one forward
# pass, float32: at most 9.5e-7 in test_sampling_logprobs_match_the_learner on an AMD EPYC
# (one ulp of a log-prob between -8 and -16), so a hundredfold margin for other CPUs' kernels.
ATOL = 1e-4


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
        logp, mask, _, _ = response_logprobs(tiny, samples, temperature, tokenizer.pad_token_id)
        for i, g in enumerate(gens):
            assert len(g.token_ids) == len(g.logprobs) == int(mask[i].sum())
            assert torch.allclose(logp[i, : len(g.token_ids)], torch.tensor(g.logprobs), atol=ATOL)


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


@pytest.mark.parametrize("constrained", [False, True])
def test_per_row_seeds_make_each_row_independent_of_its_batch(tiny, tokenizer, constrained):
    """With `seeds`, a row samples what its prompt samples alone with `seed=` its seed, in any
    batch, position or `max_batch` chunk. The first prompt twice with one seed shows it within
    a batch: ignoring the seeds (one stream for the batch) would give the two rows different
    samples."""
    engine = HFEngine(tiny, tokenizer, max_batch=3)  # the 4 rows are 2 chunks
    ps = prompts(tokenizer)
    ps, seeds = [ps[0], ps[1], ps[2], ps[0]], [5, 6, 7, 5]
    params = SamplingParams(temperature=1.0, max_new_tokens=8)
    choices = [[str(i) for i in range(30)]] * 4 if constrained else None
    batch = engine.generate(ps, params, choices, seeds=seeds)
    order = [3, 1, 0, 2]
    shuffled = engine.generate(
        [ps[i] for i in order], params, choices and [choices[i] for i in order],
        seeds=[seeds[i] for i in order],
    )  # fmt: skip
    assert batch[0].token_ids == batch[3].token_ids
    if not constrained:  # (8 free tokens; a constrained answer is one of 30)
        assert len({tuple(g.token_ids) for g in batch}) == 3  # different seeds and samples
    for i, g in enumerate(batch):
        alone = engine.generate([ps[i]], params, choices and [choices[i]], seed=seeds[i])[0]
        assert g.token_ids == alone.token_ids == shuffled[order.index(i)].token_ids
        assert g.allowed == alone.allowed and g.finish_reason == alone.finish_reason
        # Batched rounding: bitwise equal on an AMD EPYC; other CPUs' kernels may round a
        # padded batch differently, within the engine-vs-learner tolerance.
        assert g.logprobs == pytest.approx(alone.logprobs, abs=ATOL)
    with pytest.raises(ValueError, match="3 seeds for 4 prompts"):
        engine.generate(ps, params, choices, seeds=seeds[:3])


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
    logp, _, _, _ = response_logprobs(tiny, samples, 1.0, tokenizer.pad_token_id)
    for i, g in enumerate(gens):
        assert torch.allclose(logp[i, : len(g.token_ids)], torch.tensor(g.logprobs), atol=ATOL)


@pytest.mark.parametrize("compact", [True, False])
def test_rows_that_stop_early_leave_the_others_unchanged(tiny, tokenizer, compact, monkeypatch):
    """Near-greedy decoding does not depend on the random stream, so every row must decode
    exactly as in a run without stops, cut at its first stop token, whether finished rows
    leave the batch and the KV cache (`compact`) or stay in it."""
    from transformers.cache_utils import Cache

    kept = []  # batch sizes the KV cache was cut down to
    select = Cache.reorder_cache
    monkeypatch.setattr(
        Cache, "reorder_cache", lambda self, idx: (kept.append(len(idx)), select(self, idx))[1]
    )
    ps = prompts(tokenizer)
    params = SamplingParams(temperature=1e-4, max_new_tokens=10)
    engine = HFEngine(tiny, tokenizer, compact=compact)
    free = [g.token_ids for g in engine.generate(ps, params)]
    stop = free[0][2]
    engine.stop_ids = {stop}
    kept.clear()
    gens = engine.generate(ps, params)
    for g, f in zip(gens, free):
        cut = f.index(stop) + 1 if stop in f else len(f)
        assert g.token_ids == f[:cut]
        assert g.finish_reason == ("stop" if stop in f else "length")
    lengths = [len(g.token_ids) for g in gens]
    assert min(lengths) <= 3 and max(lengths) == 10  # rows did finish at different steps
    live_after_stops = sorted({sum(n > k for n in lengths) for k in lengths if k < 10})
    assert kept == (live_after_stops[::-1] if compact else [])


def test_choice_trie():
    trie = ChoiceTrie([[1, 2, 0], [1, 3, 0], [4, 0]])
    assert trie.allowed([]) == [1, 4]
    assert trie.allowed([1]) == [2, 3]
    assert trie.allowed([4]) == [0]
    assert trie.allowed([9]) == []
    # The rest of the answer once only one is left.
    assert [trie.completion(p) for p in ([], [1], [1, 2], [4], [9])] == [None, None, [0], [0], None]
    assert ChoiceTrie([[5, 6, 0]]).completion([]) == [5, 6, 0]
    # Decided after one token except along [1, ...], which needs two.
    assert trie.decision_depth == 2
    assert ChoiceTrie([[1, 0], [2, 0]]).decision_depth == 1
    assert ChoiceTrie([[5, 6, 0]]).decision_depth == 1  # the first token is still sampled
    assert ChoiceTrie([[1, 0], [1, 2, 0]]).decision_depth == 2  # "1" ends where "12" goes on
    with pytest.raises(ValueError, match="at least one allowed answer"):
        ChoiceTrie([])


@given(st.lists(st.lists(st.integers(1, 3), max_size=3), min_size=1, max_size=5, unique_by=tuple))
def test_choice_trie_completion_is_the_single_answer_left(answers):
    """Along every answer, `completion` is None while another answer shares the prefix and
    then that answer's remaining tokens; following `allowed` alone reaches the same end."""
    seqs = [a + [0] for a in answers]
    trie = ChoiceTrie(seqs)
    for seq in seqs:
        for n in range(len(seq) + 1):
            rest = trie.completion(seq[:n])
            sharing = [s for s in seqs if s[:n] == seq[:n] and len(s) > n]
            assert rest == (seq[n:] if len(sharing) == 1 else None)
            if rest is not None:
                assert all(trie.allowed(seq[: n + k]) == [t] for k, t in enumerate(rest))
    # `decision_depth` tokens decide every answer (it has ended, or its rest is known), and
    # one fewer leaves some answer undecided (unless it is the minimum, one token).
    d = trie.decision_depth
    assert all(len(s) <= d or trie.completion(s[:d]) == s[d:] for s in seqs)
    assert d == 1 or any(len(s) >= d and trie.completion(s[: d - 1]) is None for s in seqs)


def test_top_p_filter_hand_computed():
    logp = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    out = top_p_filter(logp, 0.7).exp()[0]
    # 0.5 alone is < 0.7, so 0.3 joins; the rest is dropped and the kept mass renormalised.
    assert out.tolist() == pytest.approx([0.625, 0.375, 0.0, 0.0])
    assert top_p_filter(logp, 1.0) is logp
    assert math.isclose(top_p_filter(logp, 0.01).exp()[0, 0].item(), 1.0)


def test_draw_hand_computed():
    probs = torch.tensor([[0.0, 0.2, 0.0, 0.5, 0.3, 0.0]] * 5)
    u = torch.tensor([0.0, 0.19, 0.2, 0.69, 0.99])
    # cumulative mass 0, .2, .2, .7, 1, 1: the first token whose mass exceeds u
    assert draw(probs, u).tolist() == [1, 1, 3, 3, 4]
    # an unnormalised row, and u * total rounding up to the total: its last positive token
    assert draw(torch.tensor([[0.0, 2.0, 2.0, 0.0]]), torch.tensor([1.0])).tolist() == [2]


@given(
    st.lists(st.floats(0.0, 1.0), min_size=1, max_size=40).filter(lambda w: sum(w) > 1e-6),
    st.floats(0.0, 1.0, exclude_max=True, width=32),  # as torch.tensor([u]) holds it
)
def test_draw_never_picks_a_zero_probability_token(weights, u):
    probs = torch.tensor([weights])
    token = int(draw(probs, torch.tensor([u]))[0])
    assert weights[token] > 0
    # the first token whose cumulative mass exceeds u * total (else the last positive one)
    cdf = probs[0].double().cumsum(0).tolist()
    positive = [i for i, w in enumerate(probs[0].tolist()) if w > 0]
    target = u * cdf[-1]
    assert token == next((i for i in positive if cdf[i] > target), positive[-1])


def test_draw_frequencies_follow_the_distribution():
    from scipy.stats import chisquare

    probs = torch.tensor([0.5, 0.0, 0.3, 0.15, 0.05])
    n = 20000
    tokens = draw(probs.expand(n, -1), torch.rand(n, generator=torch.Generator().manual_seed(0)))
    counts = torch.bincount(tokens, minlength=5).double()
    assert counts[1] == 0
    keep = probs > 0
    # Sampling noise: a chi-square test at level 1e-3, which a correct sampler fails for one
    # seed in a thousand (the seed is fixed, so it passes or fails the same every run).
    assert chisquare(counts[keep].numpy(), (probs[keep] * n).numpy()).pvalue > 1e-3


class FakeLLM:
    """Records the calls the vllm engine makes on vLLM's `LLM` (no vLLM needed)."""

    def __init__(self):
        self.calls = []

    def __getattr__(self, name):
        def call(*args, **kw):
            extra = kw.get("tags") or ([kw["level"]] if "level" in kw else [])
            self.calls.append((name, *args, *extra))

        return call


@pytest.mark.parametrize("adapter", [False, True])
def test_vllm_sleep_mode_order(tiny, adapter):
    """GPU sleep mode (cannot run here): vLLM sleeps before the learner step (level 2 drops
    weights a full sync replaces; level 1 keeps the base under an adapter) and wakes in
    `sync_weights` weights first, then the KV cache, before serving the new policy."""
    from zerosum.engines.vllm import VLLMEngine

    engine = VLLMEngine.__new__(VLLMEngine)  # skip starting vLLM
    engine.model, engine.adapter, engine.tensor_parallel_size = tiny, adapter, 1
    engine.sleep, engine.asleep, engine.llm = True, False, FakeLLM()
    engine._publish_adapter = lambda: engine.llm.calls.append(("publish",))
    engine.offload()
    engine.offload()  # already asleep: nothing more
    engine.sync_weights()
    serve = ("publish",) if adapter else ("collective_rpc", "reload_weights")
    assert engine.llm.calls == [
        ("sleep", 1 if adapter else 2), ("wake_up", "weights"), serve, ("wake_up", "kv_cache"),
        ("reset_prefix_cache",),
    ]  # fmt: skip
    assert not engine.asleep
    engine.sleep = False
    engine.offload()  # sleep mode off: a no-op
    assert engine.llm.calls[-1] == ("reset_prefix_cache",)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"temperature": -0.1}, "temperature = -0.1 is invalid; allowed: a number in \\[0, 100\\]"),
        ({"temperature": float("nan")}, "temperature = nan is invalid"),
        ({"temperature": float("inf")}, "temperature = inf is invalid"),
        ({"top_p": 0.0}, "top_p = 0.0 is invalid; allowed: a number in \\(0, 1\\]"),
        ({"top_p": 1.5}, "top_p = 1.5 is invalid"),
        ({"max_new_tokens": 0}, "max_new_tokens = 0 is invalid; allowed: an integer >= 1"),
    ],
)
def test_sampling_params_reject_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message) as err:
        SamplingParams(**kwargs)
    assert "\n" not in str(err.value)


def test_temperature_zero_is_greedy(tiny, tokenizer):
    """Temperature 0: the argmax token at every step (checked against a plain forward pass
    without a KV cache), the same whatever the seed, with log-probabilities of the untempered
    distribution (the learner's at temperature 1)."""
    engine = HFEngine(tiny, tokenizer)
    ps = prompts(tokenizer)
    greedy = SamplingParams(temperature=0.0, max_new_tokens=6)
    gens = engine.generate(ps, greedy, seed=1)
    assert [g.token_ids for g in gens] == [g.token_ids for g in engine.generate(ps, greedy, seed=2)]
    with torch.no_grad():
        for p, g in zip(ps, gens):
            ids = list(p)
            for _ in range(6):
                ids.append(int(tiny(torch.tensor([ids])).logits[0, -1].argmax()))
            assert g.token_ids == ids[len(p) :]
    samples = [Sample(p, g.token_ids, 0.0) for p, g in zip(ps, gens)]
    logp, _, _, _ = response_logprobs(tiny, samples, 1.0, tokenizer.pad_token_id)
    for i, g in enumerate(gens):
        assert torch.allclose(logp[i, : len(g.token_ids)], torch.tensor(g.logprobs), atol=ATOL)
    sampled = engine.generate(ps, SamplingParams(temperature=1.0, max_new_tokens=6), seed=1)
    assert [g.token_ids for g in sampled] != [g.token_ids for g in gens]


def test_constrained_answers_are_not_cut_by_max_new_tokens(tiny, tokenizer):
    """`bid 2-3` plus end-of-sequence is longer than a 2-token cap; the trie sets the limit."""
    engine = HFEngine(tiny, tokenizer)
    choices = [["bid 1-2", "bid 2-3", "liar"]] * 3
    longest = max(len(tokenizer.encode(c, add_special_tokens=False)) + 1 for c in choices[0])
    assert longest > 2
    seen = set()
    for seed in range(4):
        gens = engine.generate(prompts(tokenizer), SamplingParams(max_new_tokens=2), choices, seed)
        for g in gens:
            assert g.text in choices[0] and g.finish_reason == "stop"
            seen.add(g.text)
    assert "bid 2-3" in seen or "bid 1-2" in seen  # long answers were sampled and finished
    greedy = engine.generate(
        prompts(tokenizer), SamplingParams(temperature=0.0, max_new_tokens=1), choices
    )
    assert all(g.text in choices[0] and g.finish_reason == "stop" for g in greedy)


@pytest.mark.parametrize(
    ("constrained", "repeated"), [(False, False), (False, True), (True, False), (True, True)]
)
def test_a_shared_prompt_prefix_is_prefilled_once_with_the_same_results(
    tiny, tokenizer, constrained, repeated, monkeypatch
):
    """Prompts that start alike (a chat template, a game's rules) prefill their common
    prefix once: the decoder sees it in one row instead of every row, and the samples and
    their log-probabilities are those of prompts prefilled whole (float rounding aside).
    `repeated`: prompts that occur more than once are prefilled once too."""
    enc = lambda t: tokenizer.encode(t, add_special_tokens=False)  # noqa: E731
    rules = enc("Kuhn Poker is played with three cards, J, Q and K. " * 3)
    ps = [rules + enc(v) for v in ("Your card is K.", "You hold J, facing a bet.", "Q")]
    copies = [ps[0], ps[2], ps[0]] if repeated else []
    params = SamplingParams(temperature=1.0, max_new_tokens=6)
    choices = [["bet", "check", "call", "fold"]] * (3 + len(copies)) if constrained else None
    decoder = tiny.get_decoder()
    rows_seen: list[int] = []
    forward = type(decoder).forward

    def spy(self, *args, **kwargs):
        ids = kwargs.get("input_ids")
        if ids is not None and ids.shape[1] > 1:  # a prefill, not a decode step
            rows_seen.append(ids.shape[0] * ids.shape[1])
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(type(decoder), "forward", spy)
    out = {}
    for shared in (True, False):
        rows_seen.clear()
        engine = HFEngine(tiny, tokenizer, shared_prefix=shared)
        seeds = list(range(1, 4 + len(copies)))
        out[shared] = engine.generate(ps + copies, params, choices, seeds=seeds)
        out[shared, "tokens"] = sum(rows_seen)
    whole = sum(len(p) for p in ps)
    longest = max(len(p) for p in ps)
    # every row padded to the longest prompt
    assert out[False, "tokens"] == (3 + len(copies)) * longest
    # Once for the prefix, then each row's own tail (padded to the longest tail).
    assert out[True, "tokens"] == len(rules) + 3 * (longest - len(rules))
    assert out[True, "tokens"] < whole
    for a, b in zip(out[True], out[False]):
        assert a.token_ids == b.token_ids and a.finish_reason == b.finish_reason
        # The prefix's keys and values come from a batch of another shape: float32 rounding,
        # 9.5e-7 for the learner's shared prefix on an AMD EPYC (test_learner; not measured here).
        assert a.logprobs == pytest.approx(b.logprobs, abs=1e-5)


@pytest.mark.parametrize("per_row_seeds", [False, True])
def test_forced_answer_tails_skip_the_decoder_with_the_same_samples(
    tiny, tokenizer, per_row_seeds, monkeypatch
):
    """Once every row's constrained answer is decided (one allowed answer starts with what it
    wrote), the rest is written without decode steps: the same tokens, log-probs (0 for a
    forced token) and allowed sets as decoding them one by one, in fewer forward passes."""
    ps = prompts(tokenizer) * 3
    choices = [["bid 1-2", "bid 1-3", "liar"], ["check", "bet"], ["fold", "call"]] * 3
    params = SamplingParams(temperature=1.0, max_new_tokens=8)
    engine = HFEngine(tiny, tokenizer)
    calls = []
    decode = HFEngine._decode
    monkeypatch.setattr(HFEngine, "_decode", lambda *a: (calls.append(1), decode(*a))[1])
    out = {}
    for shortcut in (True, False):
        if not shortcut:
            monkeypatch.setattr(HFEngine, "_finish_forced", lambda *a: False)
        calls.clear()
        kw = {"seeds": list(range(len(ps)))} if per_row_seeds else {"seed": 3}
        out[shortcut] = [
            (g.token_ids, g.logprobs, g.allowed, g.finish_reason, g.text)
            for g in engine.generate(ps, params, choices, **kw)
        ]
        out[shortcut, "decodes"] = len(calls)
    assert out[True] == out[False]
    assert all(text in c for (*_, text), c in zip(out[True], choices))
    assert out[True, "decodes"] < out[False, "decodes"]
