import pytest
import torch

from zerosum.learner import Learner, LearnerSettings
from zerosum.magnet import Magnet
from zerosum.scoring import Sample, micro_batches, response_logprobs
from zerosum.snapshot import Snapshot


def make_samples(tokenizer):
    enc = lambda t: tokenizer.encode(t, add_special_tokens=False)  # noqa: E731
    eos = tokenizer.eos_token_id
    return [
        Sample(enc("Your card is K. Bet or check?"), enc("bet") + [eos], 1.0),
        Sample(enc("Your card is J. Bet or check?"), enc("check") + [eos], 1.0),
        Sample(enc("Your card is J. Facing a bet."), enc("call") + [eos], -1.0),
    ]


def prefixed_samples(tokenizer) -> tuple[list[int], list[Sample]]:
    """Three turns whose prompts share a long start (the rules), and that start."""
    enc = lambda t: tokenizer.encode(t, add_special_tokens=False)  # noqa: E731
    eos = tokenizer.eos_token_id
    rules = enc("Kuhn Poker is played with three cards, J, Q and K. " * 3)
    views = ["Your card is K. Bet or check?", "Your card is J.", "Facing a bet, you hold Q."]
    answers = [enc("bet") + [eos], enc("check") + [eos], enc("I call, my card is fine") + [eos]]
    adv = (1.0, -1.0, 0.5)
    return rules, [Sample(rules + enc(v), a, x) for v, a, x in zip(views, answers, adv)]


@pytest.mark.parametrize("loss", ["reinforce", "ppo"])
def test_one_step_changes_parameters_and_lowers_the_loss(tiny, tokenizer, loss):
    samples = make_samples(tokenizer)
    opt = torch.optim.AdamW(tiny.parameters(), lr=1e-2)
    learner = Learner(
        tiny, opt, LearnerSettings(loss=loss, epochs=2, aggregation="mean"), tokenizer.pad_token_id
    )
    before = {k: v.detach().clone() for k, v in tiny.state_dict().items()}
    loss_before = learner.surrogate_loss(samples)
    stats = learner.step(samples)
    loss_after = learner.surrogate_loss(samples)
    changed = [k for k, v in tiny.state_dict().items() if not torch.equal(v, before[k])]
    assert len(changed) >= len(before) // 2
    assert loss_after < loss_before
    assert stats["loss/tokens"] == sum(len(s.response_ids) for s in samples)
    assert stats["loss/grad_norm"] > 0


def test_lora_step_trains_only_the_adapter(tiny, tokenizer):
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(tiny, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    Learner(model, opt, LearnerSettings(loss="reinforce"), tokenizer.pad_token_id).step(
        make_samples(tokenizer)
    )
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and changed <= trainable  # the base weights are frozen
    assert any("lora_B" in n for n in changed)


def test_micro_batches_respect_the_token_budget():
    lengths = [10, 50, 12, 48, 11, 200]
    batches = micro_batches(lengths, budget=100)
    assert sorted(i for b in batches for i in b) == list(range(6))
    for b in batches:
        assert len(b) == 1 or len(b) * max(lengths[i] for i in b) <= 100
    assert [5] in batches  # longer than the budget: alone
    assert any(set(b) == {1, 3} for b in batches)  # similar lengths share a batch


def test_planned_micro_batches_count_the_tokens_their_passes_run():
    """Three rows of 23, 23 and 25 tokens whose prompts share their first 20, counted by
    hand: with the shared prefix it runs once and each row's rest (3, 3 and 5 tokens) is
    padded to 5; without it every row is padded to 25, and a budget of 50 tokens splits
    them by length. The learner's statistics are those counts."""
    from zerosum.learner import _plan_stats
    from zerosum.scoring import MicroBatch, plan_batch

    rules = list(range(100, 120))
    samples = [
        Sample(rules + [1], [5, 6], 1.0),
        Sample(rules + [2, 3], [5], 1.0),
        Sample(rules + [4], [5, 6, 7, 8], 1.0),
    ]
    [shared] = plan_batch(samples, budget=10_000, shared_prefix=True)
    assert shared == MicroBatch(rows=[0, 1, 2], prefix=20, padded=20 + 3 * 5, real=71)
    assert shared.saved == 2 * 20
    assert plan_batch(samples, budget=10_000, shared_prefix=False) == [
        MicroBatch(rows=[2, 0, 1], prefix=0, padded=3 * 25, real=71)
    ]
    assert plan_batch(samples, budget=50, shared_prefix=False) == [
        MicroBatch(rows=[2, 0], prefix=0, padded=2 * 25, real=48),
        MicroBatch(rows=[1], prefix=0, padded=23, real=23),
    ]
    assert _plan_stats([shared], merged=3, turns=4) == {
        "perf/pad_fraction": 1 - (71 - 40) / 35,
        "perf/shared_prefix_fraction": 40 / 71,
        "perf/forward_tokens": 35.0,
        "loss/micro_batches": 1.0,
        "perf/duplicate_turns": 1 - 3 / 4,
    }


def test_empty_batch_is_a_no_op(tiny, tokenizer):
    opt = torch.optim.AdamW(tiny.parameters(), lr=1e-2)
    before = [p.detach().clone() for p in tiny.parameters()]
    stats = Learner(tiny, opt, LearnerSettings(), tokenizer.pad_token_id).step([])
    assert stats == {"loss/skipped_empty_batch": 1.0}
    assert all(torch.equal(a, b) for a, b in zip(before, tiny.parameters()))


@pytest.mark.parametrize("lora", [False, True])
def test_magnet_pulls_the_policy_back(tiny, tokenizer, lora):
    """With only the magnet term (zero advantages), a policy moved away from its magnet is
    pulled back: the KL to the magnet falls step by step. LoRA snapshots the adapter only."""
    from peft import LoraConfig, get_peft_model

    model = tiny
    if lora:
        model = get_peft_model(tiny, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"))
    magnet = Magnet(model, alpha=1.0)
    snap = magnet.snapshot
    assert set(snap.weights) == {n for n, p in model.named_parameters() if p.requires_grad}
    assert snap.weights and all("lora_" in n for n in snap.weights) == lora
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():  # move the policy away from the magnet, reproducibly
        for p in model.parameters():
            if p.requires_grad:  # LoRA: A and B random (B starts at 0)
                noise = torch.randn(p.shape, generator=gen)
                p.copy_(noise * 0.5) if lora else p.add_(noise * 0.05)
    samples = [Sample(s.prompt_ids, s.response_ids, 0.0) for s in make_samples(tokenizer)]
    opt = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=5e-2 if lora else 1e-2
    )
    settings = LearnerSettings(loss="reinforce", aggregation="mean")
    learner = Learner(model, opt, settings, tokenizer.pad_token_id, magnet)
    kls = [learner.step(samples)["loss/magnet_kl"] for _ in range(16)]
    assert kls[0] > 1e-3 and kls[-1] < kls[0] / 2, kls
    snap.refresh(8)
    assert learner.step(samples)["loss/magnet_kl"] == 0.0  # the magnet is the policy now


@pytest.mark.parametrize("lora", [False, True])
def test_under_bf16_autocast_the_policy_pass_uses_its_own_weights_after_the_magnets(
    tiny, tokenizer, lora
):
    """Autocast caches each weight's bf16 copy by parameter; the magnet's pass (its weights
    swapped into the same parameters) must not leave its copies to the policy's pass. Found
    on SmolLM2 (bf16 on AMX): the KL was exactly 0 and only norms and embeddings trained."""
    from peft import LoraConfig, get_peft_model

    model = tiny
    if lora:
        model = get_peft_model(tiny, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"))
    magnet = Snapshot(model)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in magnet.params.values():
            p.add_(torch.randn(p.shape, generator=gen) * (0.5 if lora else 0.05))
    samples = make_samples(tokenizer)
    bf16 = torch.autocast("cpu", dtype=torch.bfloat16)
    with bf16:
        own = response_logprobs(model, samples, pad_id=tokenizer.pad_token_id)
    with bf16:
        scores = response_logprobs(model, samples, pad_id=tokenizer.pad_token_id, magnet=magnet)
    assert torch.equal(scores.logp, own.logp)
    assert float(scores.magnet_kl.detach().sum()) > 1e-3
    scores.logp.sum().backward()
    linear = [n for n, p in magnet.params.items() if "proj" in n and p.grad is not None]
    assert linear and all(float(magnet.params[n].grad.abs().sum()) > 0 for n in linear), linear


def test_a_fresh_magnet_skips_its_forward_pass_and_steps_the_same(tiny, tokenizer):
    """A magnet of age 0 (just replaced, or the first step: it is the policy) uses the policy's own
    log-probs as the magnet's on the first PPO epoch: KL exactly 0 and the same update as the
    magnet's forward pass gives (which can round differently from the policy's, by 1e-7 on
    some CPUs); the second epoch, after the policy moved, does run the magnet."""
    import copy

    results = []
    for step in (None, 1):  # unknown age, then the first step: the magnet is the policy
        model = copy.deepcopy(tiny)
        magnet = Magnet(model, alpha=1.0)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
        settings = LearnerSettings(loss="ppo", epochs=2)
        learner = Learner(model, opt, settings, tokenizer.pad_token_id, magnet)
        forwards: list[bool] = []
        hook = model.register_forward_hook(
            lambda *_, seen=forwards: seen.append(torch.is_grad_enabled())
        )
        torch.manual_seed(0)
        stats = learner.step(make_samples(tokenizer), step=step)
        hook.remove()
        results.append(([p.detach().clone() for p in model.parameters()], stats, forwards))
    (full, full_stats, full_fw), (fresh, fresh_stats, fresh_fw) = results
    assert 0 < fresh_fw.count(False) < full_fw.count(False)  # no magnet pass in epoch 1
    moved = max(float((a - b.detach()).abs().max()) for a, b in zip(fresh, tiny.parameters()))
    diff = max(float((a - b).abs().max()) for a, b in zip(fresh, full))
    # Bitwise equal weights and KL on an AMD EPYC (0.0 measured; the weights move by 2e-2);
    # 1e-6 and relative 1e-4 allow another CPU's 1e-7 rounding to pass through Adam's step.
    assert moved > 1e-3 and diff <= 1e-6, (moved, diff)
    assert fresh_stats["loss/magnet_kl"] > 0  # the second epoch's, against the moved policy
    assert fresh_stats["loss/magnet_kl"] == pytest.approx(full_stats["loss/magnet_kl"], rel=1e-4)


def test_magnet_with_alpha_zero_trains_exactly_as_no_regularizer(tiny, tokenizer):
    """Same samples, same seed: a magnet of weight 0 leaves every parameter bit-identical to a
    learner without a magnet (the magnet's forward pass changes nothing)."""
    import copy

    results = []
    for magnet_on in (False, True):
        model = copy.deepcopy(tiny)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
        magnet = Magnet(model, alpha=0.0) if magnet_on else None
        with torch.no_grad():  # the magnet differs from the policy, so its KL is not 0
            next(model.parameters()).add_(0.1)
        learner = Learner(model, opt, LearnerSettings(), tokenizer.pad_token_id, magnet)
        stats = [learner.step(make_samples(tokenizer)) for _ in range(3)]
        results.append(([p.detach().clone() for p in model.parameters()], stats))
    (plain, plain_stats), (zero, zero_stats) = results
    assert all(torch.equal(a, b) for a, b in zip(plain, zero))
    assert "loss/magnet_kl" not in plain_stats[-1] and zero_stats[-1]["loss/magnet_kl"] > 0


@pytest.mark.parametrize(("loss", "aggregation"), [("reinforce", "mean"), ("ppo", "sum")])
def test_identical_turns_are_scored_once_with_the_same_update(tiny, tokenizer, loss, aggregation):
    """A batch that repeats turns (as 256 Kuhn Poker games do) is merged (`merge_duplicates`)
    and steps exactly as the same batch scored row by row. The reference keeps every row apart
    by giving each its own engine log-probs, which the loss does not read without TIS. Both
    advantage signs of one turn, the magnet's KL and the entropy bonus are in play."""
    import copy
    from dataclasses import replace

    a, b, c = make_samples(tokenizer)
    batch = [a, a, replace(a, advantage=-0.5), b, c, c, c, replace(a, advantage=2.0)]
    apart = [replace(x, logprobs=[float(i)] * len(x.response_ids)) for i, x in enumerate(batch)]
    params, stats = [], []
    for rows in (batch, apart):
        model = copy.deepcopy(tiny)
        magnet = Magnet(model, alpha=0.5)
        with torch.no_grad():  # a magnet unlike the policy
            next(model.parameters()).add_(0.1)
        # SGD: Adam's first step is about lr x sign(gradient), which float rounding flips
        # wherever a gradient is near 0.
        opt = torch.optim.SGD(model.parameters(), lr=0.05)
        settings = LearnerSettings(
            loss=loss, aggregation=aggregation, norm_constant=8.0, entropy_coef=0.1,
            grad_clip=1e9,
        )  # fmt: skip
        stats.append(Learner(model, opt, settings, tokenizer.pad_token_id, magnet).step(rows))
        params.append([p.detach() for p in model.parameters()])
    merged, reference = stats
    assert merged["perf/duplicate_turns"] == pytest.approx(1 - 4 / 8)  # rows a+ (x3), a-, b, c (x3)
    assert reference["perf/duplicate_turns"] == 0.0
    # Float32 rounding of sums in another order, measured on an AMD EPYC: the magnet KL 8.2e-6
    # relative (a small mean), the others at most 7.8e-7; the weights 1.2e-7 (one ulp at 1)
    # after moving by 0.12. So a 12-fold margin for the KL and 8-fold for the weights.
    for key in ("loss/total", "loss/grad_norm", "loss/magnet_kl", "loss/entropy", "loss/tokens"):
        assert merged[key] == pytest.approx(reference[key], rel=1e-4), key
    assert all(torch.allclose(x, y, atol=1e-6) for x, y in zip(*params))
    assert not all(torch.equal(x, y) for x, y in zip(params[0], [p for p in tiny.parameters()]))


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_response_logprobs_and_entropy_match_a_direct_computation(tiny, tokenizer, temperature):
    """Each response token's log-prob and the entropy of its next-token distribution, read
    one sample at a time from the model's full logits, equal the batched (padded, sliced,
    realigned) computation; a restricted sample is scored over its allowed tokens only."""
    samples = make_samples(tokenizer)
    eos = tokenizer.eos_token_id
    bet, check = samples[0].response_ids, samples[1].response_ids
    allowed = [sorted({bet[0], check[0]}), [bet[1]] if len(bet) > 2 else [eos]]
    samples.append(Sample(samples[0].prompt_ids, bet[:1] + [eos], 1.0, allowed))
    long_reply = tokenizer.encode("I bet, my card is high", add_special_tokens=False) + [eos]
    samples.append(Sample(samples[1].prompt_ids, long_reply, -1.0))  # responses of 2 and 8
    logp, mask, ent, _ = response_logprobs(tiny, samples, temperature, tokenizer.pad_token_id)
    with torch.no_grad():
        for i, s in enumerate(samples):
            seq = torch.tensor([s.prompt_ids + s.response_ids])
            logits = tiny(seq).logits[0, len(s.prompt_ids) - 1 : -1] / temperature  # [n, V]
            if s.allowed is not None:
                keep = torch.zeros_like(logits, dtype=torch.bool)
                for t, ok in enumerate(s.allowed):
                    keep[t, ok] = True
                logits = logits.masked_fill(~keep, float("-inf"))
            full = torch.log_softmax(logits, -1)
            n = len(s.response_ids)
            want = full.gather(-1, torch.tensor(s.response_ids)[:, None]).squeeze(-1)
            want_ent = -(full.exp() * full.nan_to_num(neginf=0.0)).sum(-1)
            # Padded batch vs one row, float32 (not measured here): as the shared prefix below
            # (9.5e-7 and 5.7e-6 on an AMD EPYC); the entropy sums 49,152 terms of p log p.
            assert torch.allclose(logp[i, :n], want, atol=1e-5)
            assert torch.allclose(ent[i, :n], want_ent, atol=1e-4)
            assert mask[i, :n].sum() == n and mask[i, n:].sum() == 0
            assert (logp[i, n:] == 0).all() and (ent[i, n:] == 0).all()
    # Two allowed tokens at most: log 2, plus float32 rounding of a two-term sum (~1e-7).
    assert ent[3, 0] <= torch.log(torch.tensor(2.0)) + 1e-5


@pytest.mark.parametrize("constrained", [False, True])
def test_shared_prefix_gives_the_same_scores_and_gradients(tiny, tokenizer, constrained):
    """The prompt prefix all samples share runs once: log-probs, entropies and gradients
    equal those of every sample run whole (to float rounding)."""
    from zerosum.batching import shared_prefix_len
    from zerosum.scoring import _batch_inputs

    rules, samples = prefixed_samples(tokenizer)
    eos = tokenizer.eos_token_id
    if constrained:
        samples = [Sample(s.prompt_ids, s.response_ids[:2], s.advantage, [[s.response_ids[0], eos], [eos]]) for s in samples[:2]]  # fmt: skip
    assert shared_prefix_len([s.prompt_ids for s in samples]) >= len(rules)
    assert "prefix_ids" in _batch_inputs(samples, tokenizer.pad_token_id, "cpu", True)
    results = []
    for shared in (False, True):
        tiny.zero_grad()
        scores = response_logprobs(
            tiny, samples, 0.7, tokenizer.pad_token_id, entropy_grad=True, shared_prefix=shared
        )
        adv = torch.tensor([s.advantage for s in samples])[:, None]
        (-(adv * scores.logp).sum() - scores.entropy.sum()).backward()
        grads = [p.grad.clone() for p in tiny.parameters()]
        results.append((scores.logp.detach(), scores.entropy.detach(), scores.mask, grads))
    (lp0, ent0, mask0, g0), (lp1, ent1, mask1, g1) = results
    assert torch.equal(mask0, mask1)
    # Float32, the prefix's keys and values from a batch of another shape: on an AMD EPYC
    # log-probs 9.5e-7 apart, entropies 5.7e-6, gradients 9.5e-7 (up to 4.1 in size), so
    # margins of 10 or more.
    assert torch.allclose(lp0, lp1, atol=1e-5) and torch.allclose(ent0, ent1, atol=1e-4)
    assert all(torch.allclose(a, b, atol=1e-5, rtol=1e-4) for a, b in zip(g0, g1))
    assert any(a.abs().sum() > 0 for a in g0)


@pytest.mark.parametrize("shared,lora", [(False, False), (True, False), (True, True)])
def test_activation_checkpointing_gives_the_same_scores_and_gradients(
    tiny, tokenizer, shared, lora
):
    """With activation checkpointing every decoder layer runs again in the backward pass
    (counted), over the shared prefix's keys and values too, and the scores and gradients
    equal those of the plain forward, in full fine-tuning and with LoRA."""
    from peft import LoraConfig, get_peft_model

    from zerosum.models import enable_activation_checkpointing

    _, samples = prefixed_samples(tokenizer)
    model = tiny
    if lora:  # B initialised non-zero, so the adapter's gradients depend on the whole graph
        config = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
        model = get_peft_model(tiny, config)
    calls = []
    layer = tiny.model.layers[0]
    forward = layer.forward  # counted here: module hooks do not fire when it is recomputed
    layer.forward = lambda *a, **k: (calls.append(1), forward(*a, **k))[1]
    model.train()
    results = []
    for checkpointing in (False, True):
        if checkpointing:
            enable_activation_checkpointing(model)
        model.zero_grad()
        calls.clear()
        scores = response_logprobs(
            model, samples, 0.7, tokenizer.pad_token_id, entropy_grad=True, shared_prefix=shared
        )
        adv = torch.tensor([s.advantage for s in samples])[:, None]
        (-(adv * scores.logp).sum() - scores.entropy.sum()).backward()
        grads = [p.grad.clone() for p in model.parameters() if p.requires_grad]
        results.append((scores.logp.detach(), grads, len(calls)))
    (lp0, g0, calls0), (lp1, g1, calls1) = results
    assert calls1 == 2 * calls0 - (1 if shared else 0)  # the prefix's own forward is not redone
    # The recomputation runs the same float32 kernels on the same inputs, so equal but for a
    # kernel summing in another order (not measured): 1e-6 is 8 ulps at magnitude 1.
    assert torch.allclose(lp0, lp1, atol=1e-6)
    assert all(torch.allclose(a, b, atol=1e-6, rtol=1e-5) for a, b in zip(g0, g1))
    assert any(a.abs().sum() > 0 for a in g0)


def test_prefix_micro_batches_group_prompts_that_share_a_long_prefix():
    """Prompts of the same seat (a long common start) share micro-batches; prompts that share
    nothing long are packed together as usual, and so are groups whose union costs few extra
    tokens; every sample is in exactly one batch."""
    from zerosum.scoring import prefix_micro_batches

    seat0 = list(range(100, 160))  # 60 shared tokens, then the seat's own tail
    seat1 = list(range(100, 110)) + list(range(300, 350))
    samples = [Sample(seat0 + [i], [1, 2], 1.0) for i in range(3)]
    samples += [Sample(seat1 + [i], [1, 2, 3], 1.0) for i in range(3)]
    samples += [Sample([7, i, 8] * 60, [1], 1.0) for i in range(2)]  # unrelated prompts
    batches = prefix_micro_batches(samples, budget=10_000)
    assert sorted(i for b in batches for i in b) == list(range(8))
    as_sets = [set(b) for b in batches]
    assert {0, 1, 2} in as_sets and {3, 4, 5} in as_sets and {6, 7} in as_sets
    # The budget counts tokens after the shared prefix: 3 x 3 suffix tokens fit in 9.
    assert {0, 1, 2} in [set(b) for b in prefix_micro_batches(samples[:3], budget=9)]
    assert len(prefix_micro_batches(samples[:3], budget=8)) == 2
    # Two small groups (40 shared tokens each, 20 across) cost fewer tokens together than apart
    # and a pass more (20 + 4 x 23 = 112 against 2 x 46 + 160): one pass; not past the budget.
    # (The seat groups above did not: 10 + 6 x 54 = 334 tokens against 69 + 72 + 160.)
    start = list(range(500, 520))
    pairs = [start + [a] * 20 + [i] for a in (1, 2) for i in (0, 1)]
    small = [Sample(p, [1, 2], 1.0) for p in pairs]
    assert [sorted(b) for b in prefix_micro_batches(small, budget=10_000)] == [[0, 1, 2, 3]]
    assert len(prefix_micro_batches(small, budget=91)) == 2


def test_prefix_micro_batches_run_each_repeated_prompt_once_when_the_group_is_too_large():
    """Many answers to a few prompts (a small game's information sets in free text): the
    group sharing the rules does not fit the budget, and cutting it where the prompts part
    runs fewer tokens than cutting it by length (6 x (100 + 70 + a pass) against 8 x (60 +
    376 + a pass)), so each micro-batch holds the answers to one prompt, its whole prompt run
    once. A group of growing prompts (a dialogue), which share little, stays cut by length."""
    from zerosum.scoring import PASS_TOKENS, prefix_micro_batches

    rules = list(range(1000, 1060))
    prompts = [rules + [card] * 20 + [seen] * 20 for card in (1, 2, 3) for seen in (7, 8)]
    samples = [Sample(prompts[k % 6], [5] * (5 + k % 3), 1.0) for k in range(60)]
    batches = prefix_micro_batches(samples, budget=400)
    assert sorted(i for b in batches for i in b) == list(range(60))
    assert len(batches) == 6
    for b in batches:
        assert len({tuple(samples[i].prompt_ids) for i in b}) == 1
    # Identical prompts too many for one pass are cut by length.
    same = [Sample(rules, [5] * 6, 1.0) for _ in range(30)]
    assert sorted(map(len, prefix_micro_batches(same, budget=60))) == [10, 10, 10]
    # Growing prompts of 100-220 tokens: parted, the shortest alone (100 + 30 + a pass) and
    # the rest (140 + 3 x 110 + a pass), 920 tokens; by length, the two longest (180 + 2 x
    # 70 + a pass) and the two shortest (100 + 2 x 70 + a pass), 880: by length it is.
    grow = [Sample(rules + [9] * (40 * k), [5] * 30, 1.0) for k in range(1, 5)]
    batches = prefix_micro_batches(grow, budget=380)
    assert sorted(map(sorted, batches)) == [[0, 1], [2, 3]] and PASS_TOKENS == 160


def test_learner_reports_the_share_of_tokens_the_shared_prefix_saves(tiny, tokenizer):
    enc = lambda t: tokenizer.encode(t, add_special_tokens=False)  # noqa: E731
    rules = enc("Kuhn Poker is played with three cards, J, Q and K. " * 3)
    samples = [Sample(rules + enc(v), enc("bet"), 1.0) for v in ("K.", "Q.", "J.")]
    opt = torch.optim.AdamW(tiny.parameters(), lr=1e-3)
    on = Learner(tiny, opt, LearnerSettings(), tokenizer.pad_token_id).step(samples)
    off = Learner(tiny, opt, LearnerSettings(shared_prefix=False), tokenizer.pad_token_id).step(
        samples
    )
    total = sum(len(s) for s in samples)
    prefix = on["perf/shared_prefix_fraction"] * total / 2  # run once instead of 3 times
    assert prefix >= len(rules) and off["perf/shared_prefix_fraction"] == 0.0
    assert on["perf/forward_tokens"] < off["perf/forward_tokens"] == 3 * max(map(len, samples))


def test_truncated_importance_sampling_in_the_learner(tokenizer):
    """Async mode: each token's policy-gradient term is weighted by min(pi_learner /
    pi_engine, cap). Engine log-probabilities equal to the learner's give weight 1 (the same
    update as without TIS); an engine that found every token e^3 times less likely gives
    ratios e^3, cut to the cap 2 (every token clipped; with SGD and no clipping of the
    gradient norm, exactly twice the update)."""
    from zerosum.models import tiny_model

    samples = make_samples(tokenizer)

    def step(tis_cap, shift=None):
        model = tiny_model(tokenizer, hidden_size=32, layers=1, heads=2, seed=0)
        if shift is None:
            batch = samples
        else:
            with torch.no_grad():
                logp = response_logprobs(model, samples, 1.0, tokenizer.pad_token_id).logp
            batch = [
                Sample(s.prompt_ids, s.response_ids, s.advantage, s.allowed,
                       [float(v) - shift for v in logp[i, : len(s.response_ids)]])
                for i, s in enumerate(samples)
            ]  # fmt: skip
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        settings = LearnerSettings(loss="reinforce", grad_clip=1e9, tis_cap=tis_cap)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        stats = Learner(model, opt, settings, tokenizer.pad_token_id).step(batch)
        return {n: p.detach() - before[n] for n, p in model.named_parameters()}, stats

    plain, plain_stats = step(None)
    assert "async/tis_clip_frac" not in plain_stats
    same, stats = step(2.0, shift=0.0)
    assert stats["async/tis_clip_frac"] == 0.0
    # Weights exactly 1 and updates bitwise equal on an AMD EPYC (the engine's log-probs are
    # the learner's, computed again); the doubled update is 1.2e-7 off, an ulp of the weights
    # near 1 that the updates (at most 1.3e-4) are differences of: 1e-6 is an 8-fold margin.
    assert stats["async/tis_weight_mean"] == pytest.approx(1.0, abs=1e-5)
    assert all(torch.allclose(same[n], d, atol=1e-7) for n, d in plain.items())
    doubled, stats = step(2.0, shift=3.0)
    assert stats["async/tis_clip_frac"] == pytest.approx(1.0)
    assert stats["async/tis_weight_mean"] == pytest.approx(2.0)
    assert all(torch.allclose(doubled[n], 2 * d, atol=1e-6) for n, d in plain.items())
    assert max(float(d.abs().max()) for d in plain.values()) > 1e-4  # the update is not empty


def test_a_magnet_model_gives_the_first_magnet_its_weights(tokenizer, tmp_path):
    """`algo.magnet_model`: the magnet starts as that model (not the policy), a checkpoint's
    magnet still wins on resume, and a model of another shape is a one-line error."""
    from zerosum.assembly import build_learner
    from zerosum.checkpoint import TrainState
    from zerosum.config import load_config
    from zerosum.models import tiny_model, trainable_parameters

    for name, hidden in (("base", 32), ("wider", 64)):
        tiny_model(tokenizer, hidden_size=hidden, layers=1, heads=2, seed=1).save_pretrained(
            tmp_path / name
        )
        tokenizer.save_pretrained(tmp_path / name)
    policy = tiny_model(tokenizer, hidden_size=32, layers=1, heads=2, seed=0)
    base = trainable_parameters(tiny_model(tokenizer, hidden_size=32, layers=1, heads=2, seed=1))
    opt = torch.optim.SGD(policy.parameters(), lr=0.0)

    def learner(model_dir, state=None):
        over = ["algo.regularizer=magnet", f"algo.magnet_model={model_dir}", "optim.bf16=false",
                "algo.loss=reinforce"]  # fmt: skip
        return build_learner(load_config(None, over), policy, opt, tokenizer, state or TrainState())

    def magnet(model_dir, state=None):
        return learner(model_dir, state).magnet.snapshot

    snap = magnet(tmp_path / "base")
    assert all(torch.equal(snap.weights[n], p) for n, p in base.items())
    # step 1 is pulled to it (a magnet of the policy's own is the policy there: KL 0)
    assert learner(tmp_path / "base").step(make_samples(tokenizer), step=1)["loss/magnet_kl"] > 0
    own = trainable_parameters(policy)
    assert not all(torch.equal(snap.weights[n], p) for n, p in own.items())
    saved = Snapshot(policy, step=3).state_dict()  # a resumed run's magnet
    assert magnet(tmp_path / "base", TrainState(magnet=saved)).step == 3
    with pytest.raises(ValueError, match="'algo.magnet_model' = '.*wider' does not fit model"):
        magnet(tmp_path / "wider")
