import pytest
import torch

from zerosum.learner import Learner, LearnerSettings, Sample, micro_batches


def make_samples(tokenizer):
    enc = lambda t: tokenizer.encode(t, add_special_tokens=False)  # noqa: E731
    eos = tokenizer.eos_token_id
    return [
        Sample(enc("Your card is K. Bet or check?"), enc("bet") + [eos], 1.0),
        Sample(enc("Your card is J. Bet or check?"), enc("check") + [eos], 1.0),
        Sample(enc("Your card is J. Facing a bet."), enc("call") + [eos], -1.0),
    ]


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


def test_empty_batch_is_a_no_op(tiny, tokenizer):
    opt = torch.optim.AdamW(tiny.parameters(), lr=1e-2)
    before = [p.detach().clone() for p in tiny.parameters()]
    stats = Learner(tiny, opt, LearnerSettings(), tokenizer.pad_token_id).step([])
    assert stats == {"loss/skipped_empty_batch": 1.0}
    assert all(torch.equal(a, b) for a, b in zip(before, tiny.parameters()))


def test_kl_penalty_pulls_towards_the_reference(tiny, tokenizer):
    """With only the KL term (zero advantages), a policy moved away from the reference is
    pulled back: the KL to the reference falls step by step. LoRA uses its disabled adapter."""
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(tiny, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"))
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():  # move the policy away from the reference (adapter off), reproducibly
        for n, p in model.named_parameters():
            if "lora_" in n:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
    samples = [Sample(s.prompt_ids, s.response_ids, 0.0) for s in make_samples(tokenizer)]
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    settings = LearnerSettings(loss="reinforce", kl_coef=1.0, aggregation="mean")
    learner = Learner(model, opt, settings, tokenizer.pad_token_id)
    kls = [learner.step(samples)["loss/kl_ref"] for _ in range(8)]
    assert kls[0] > 1e-3 and kls[-1] < kls[0] / 2, kls
