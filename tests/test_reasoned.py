"""`reasoned` answers (zerosum.prompts.reason_then_choose): the model reasons in words, then
a legal move is decoded under the constraint after a fixed cue. No format forfeits; the
learner scores every token as it was sampled (the move exactly given the reasoning); the
mode works in rollouts, model players and the sampled policy."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from zerosum.engines.base import Generation, SamplingParams
from zerosum.engines.hf import HFEngine
from zerosum.games import load_game
from zerosum.prompts import REASONED_CUE, Prompting, read_answer, reason_then_choose
from zerosum.rollout import RolloutSettings, play_games
from zerosum.scoring import Sample, response_logprobs, token_weights

REASONED = RolloutSettings(
    prompting=Prompting(answer_mode="reasoned", prompt_format="plain", include_rules=False)
)


def test_the_answer_is_reasoning_then_cue_then_a_legal_move(tokenizer):
    """Hand-built: a reasoning of 3 tokens ended by end-of-sequence (dropped), the cue
    (forced: log-probability 0), then the move with its allowed sets."""
    eos = tokenizer.eos_token_id
    thought = tokenizer.encode("I hold K", add_special_tokens=False)
    move = tokenizer.encode("bet", add_special_tokens=False) + [eos]
    calls = []

    def generate(prompts, choices, seeds, reasoning=False):
        calls.append((prompts, choices, seeds, reasoning))
        if choices is None:
            ids = thought + [eos]
            return [Generation(ids, [-0.1, -0.2, -0.3, -0.4][: len(ids)], "stop", "I hold K")]
        allowed = [[t] for t in move]
        return [Generation(move, [-0.7] + [0.0] * (len(move) - 1), "stop", "bet", allowed)]

    assert len(thought) == 3
    (gen,) = reason_then_choose(generate, tokenizer, [[1, 2]], [["check", "bet"]], [42])
    cue = tokenizer.encode(REASONED_CUE, add_special_tokens=False)
    assert gen.token_ids == thought + cue + move
    assert gen.logprobs == [-0.1, -0.2, -0.3] + [0.0] * len(cue) + [-0.7] + [0.0] * (len(move) - 1)
    assert gen.allowed == [[], [], []] + [[c] for c in cue] + [[t] for t in move]
    assert gen.text == "I hold K" + REASONED_CUE + "bet"
    (first, second) = calls
    assert first == ([[1, 2]], None, [42], True)  # asked for as a reasoning
    assert second[0] == [[1, 2, *thought, *cue]] and second[1] == [["check", "bet"]]
    assert second[2] != [42] and second[3] is False  # the move: a seed of its own, no reasoning


def test_the_move_is_read_after_the_last_cue_only():
    legal = ["check", "bet"]
    forged = f"They will fold.{REASONED_CUE}bet, surely.{REASONED_CUE}check"
    assert read_answer(forged, legal, "reasoned") == ("check", None)
    assert read_answer(f"thinking{REASONED_CUE}", legal, "reasoned")[0] is None


def test_reasoned_mode_refuses_free_text_games(tokenizer):
    with pytest.raises(ValueError, match="answer_mode 'reasoned' needs a game with finite"):
        play_games(
            None, tokenizer, [("simple_negotiation", 0)], params=SamplingParams(),
            settings=REASONED, seed=0,
        )  # fmt: skip


@pytest.fixture(scope="module")
def played(tokenizer):
    """A tiny model's reasoned self-play: 6 games of Kuhn Poker, 6 reasoning tokens a turn."""
    from zerosum.models import tiny_model

    model = tiny_model(tokenizer, hidden_size=32, layers=1, heads=2, seed=0)
    params = SamplingParams(temperature=1.0, max_new_tokens=6)
    turns, episodes = play_games(
        HFEngine(model, tokenizer), tokenizer, [("kuhn_poker", s) for s in range(6)], params=params,
        settings=REASONED, seed=3,
    )  # fmt: skip
    return model, turns, episodes


def test_reasoned_self_play_never_forfeits_and_moves_are_legal(played, tokenizer):
    _, turns, episodes = played
    cue = tokenizer.encode(REASONED_CUE, add_special_tokens=False)
    assert all(e.outcome.forfeit_seat is None for e in episodes)
    assert all(t.valid and t.action in ("check", "bet", "call", "fold") for t in turns)
    for t in turns:
        n = (
            len(t.response_ids)
            - len(cue)
            - len(tokenizer.encode(t.action, add_special_tokens=False))
            - 1
        )
        assert 0 <= n <= 6  # the reasoning, at most the budget
        assert t.allowed[:n] == [[]] * n and t.response_ids[n : n + len(cue)] == cue
        assert all(t.allowed[n:])  # cue and move: constrained steps


def test_the_learner_scores_every_reasoned_token_as_it_was_sampled(played, tokenizer):
    """Sampling log-probabilities equal the learner's: the reasoning's under the whole
    vocabulary, the cue's 0, the move's under its legal continuations."""
    model, turns, _ = played
    samples = [Sample(t.prompt_ids, t.response_ids, 1.0, t.allowed) for t in turns]
    logp, mask, _, _ = response_logprobs(model, samples, 1.0, tokenizer.pad_token_id)
    for i, t in enumerate(turns):
        assert int(mask[i].sum()) == len(t.logprobs)
        # float32 rounding between hf's incremental decoding and one forward pass: up to
        # 2e-6 measured on an AMD EPYC (the hf engine's test allows 1e-4 likewise)
        assert torch.allclose(logp[i, : len(t.logprobs)], torch.tensor(t.logprobs), atol=1e-4)
    reasoning = [lp for t in turns for lp, a in zip(t.logprobs, t.allowed) if a == []]
    assert reasoning and max(reasoning) < 0  # sampled from the whole vocabulary


def test_token_weights_weigh_the_reasoning_alone():
    allowed = [[], [], [11], [7, 8], [2]]  # reasoning, reasoning, cue, move, end
    reasoned = Sample([1], [3, 4, 11, 7, 2], 1.0, allowed)
    assert token_weights(reasoned, 0.25) == [0.25, 0.25, 1.0, 1.0, 1.0]
    assert token_weights(reasoned, 1.0) == [1.0] * 5
    assert token_weights(reasoned, 1.0, 0.0) == [1.0, 1.0, 0.0, 0.0, 0.0]  # the cue, move, end
    free = Sample([1], [3, 4, 5], 1.0)
    assert token_weights(free, 0.0) == [1.0] * 3  # no reasoning steps to weigh


@pytest.mark.parametrize("reasoning_weight", [0.0, 0.3])
def test_the_learner_weighs_the_reasoning_tokens_by_the_reasoning_weight(
    played, tokenizer, reasoning_weight
):
    """The learner's gradient is that of the advantage-weighted log-probabilities with each
    reasoning token weighed `reasoning_weight` (0: the move's tokens alone), over the weighed
    token count; with the weight left at 1 it differs."""
    import copy

    from zerosum.learner import Learner, LearnerSettings

    model, turns, _ = played
    samples = [
        Sample(t.prompt_ids, t.response_ids, (-1.0) ** i * (1 + i / 4), t.allowed)
        for i, t in enumerate(turns)
    ]
    direct = copy.deepcopy(model)
    logp, mask, _, _ = response_logprobs(direct, samples, 1.0, tokenizer.pad_token_id)
    w = torch.zeros_like(mask)
    for i, x in enumerate(samples):
        w[i, : len(x.response_ids)] = torch.tensor(token_weights(x, reasoning_weight))
    adv = torch.tensor([x.advantage for x in samples])[:, None]
    (-(adv * logp * mask * w).sum() / (mask * w).sum()).backward()
    expected = [p.grad for p in direct.parameters()]

    grads = {}
    for weight in (reasoning_weight, 1.0):
        learned = copy.deepcopy(model)
        settings = LearnerSettings(
            loss="reinforce", aggregation="mean", reasoning_weight=weight, grad_clip=1e9
        )
        opt = torch.optim.SGD(learned.parameters(), lr=0.0)  # keeps the step's gradient
        Learner(learned, opt, settings, tokenizer.pad_token_id).step(samples)
        grads[weight] = [p.grad for p in learned.parameters()]
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(grads[reasoning_weight], expected))
    assert not all(torch.allclose(a, b, atol=1e-6) for a, b in zip(grads[1.0], expected))


@pytest.mark.parametrize(
    ("reasoning_weight", "kl_weight", "move_kl_weight"), [(0.0, 1.0, 1.0), (1.0, 1.0, 0.0)]
)
def test_the_magnet_kl_is_weighed_apart_from_the_advantage(
    played, tokenizer, reasoning_weight, kl_weight, move_kl_weight
):
    """The gradient is that of the advantage term, each token at `reasoning_weight` (the
    reasoning) or 1 (the move), plus the magnet's KL, each token at `reasoning_kl_weight` or
    `move_kl_weight`, over the advantage's token count: the magnet holds the reasoning while
    only the move learns from the advantage (`reasoning_weight` 0), or holds the words alone
    (`move_kl_weight` 0). Without the KL's own weights the gradient differs."""
    import copy

    from zerosum.learner import Learner, LearnerSettings
    from zerosum.magnet import Magnet

    model, turns, _ = played
    samples = [
        Sample(t.prompt_ids, t.response_ids, (-1.0) ** i * (1 + i / 4), t.allowed)
        for i, t in enumerate(turns)
    ]
    start = Magnet(model, alpha=0.5).state_dict()  # the magnet: the policy before it moved
    model = copy.deepcopy(model)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.02)
    direct = copy.deepcopy(model)
    magnet = Magnet(direct, alpha=0.5, saved=start)
    logp, mask, _, kl = response_logprobs(
        direct, samples, 1.0, tokenizer.pad_token_id, magnet=magnet.snapshot
    )
    pg, by_kl = torch.zeros_like(mask), torch.zeros_like(mask)
    for i, x in enumerate(samples):
        pg[i, : len(x.response_ids)] = torch.tensor(token_weights(x, reasoning_weight))
        weights = token_weights(x, kl_weight, move_kl_weight)
        by_kl[i, : len(x.response_ids)] = torch.tensor(weights)
    adv = torch.tensor([x.advantage for x in samples])[:, None]
    (((-adv * logp * pg) + 0.5 * kl * by_kl) * mask).sum().div((mask * pg).sum()).backward()
    expected = [p.grad for p in direct.parameters()]

    grads = {}
    for apart in (True, False):
        learned = copy.deepcopy(model)
        settings = LearnerSettings(
            loss="reinforce", aggregation="mean", reasoning_weight=reasoning_weight,
            reasoning_kl_weight=kl_weight if apart else None,
            move_kl_weight=move_kl_weight if apart else 1.0, grad_clip=1e9,
        )  # fmt: skip
        opt = torch.optim.SGD(learned.parameters(), lr=0.0)  # keeps the step's gradient
        magnet = Magnet(learned, alpha=0.5, saved=start)
        Learner(learned, opt, settings, tokenizer.pad_token_id, magnet).step(samples)
        grads[apart] = [p.grad for p in learned.parameters()]
    assert float(kl.detach().sum()) > 1e-4  # the magnet pulls
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(grads[True], expected))
    assert not all(torch.allclose(a, b, atol=1e-6) for a, b in zip(grads[False], expected))


@pytest.mark.parametrize("reasoning_temperature", [0.5, 2.0])
def test_a_reasoning_temperature_is_sampled_and_scored_alike(tokenizer, reasoning_temperature):
    """The reasoning sampled at its own temperature, the move at the sampling temperature: the
    learner, told the reasoning temperature, scores every token as it was sampled. Scored at
    one temperature instead, the reasoning's log-probabilities differ (so the policy trained
    would not be the one sampled) while the move's, at the same temperature, agree."""
    from zerosum.models import tiny_model

    model = tiny_model(tokenizer, hidden_size=32, layers=1, heads=2, seed=0)
    params = SamplingParams(
        temperature=1.0, max_new_tokens=6, reasoning_temperature=reasoning_temperature
    )
    turns, _ = play_games(
        HFEngine(model, tokenizer), tokenizer, [("kuhn_poker", s) for s in range(4)],
        params=params, settings=REASONED, seed=3,
    )  # fmt: skip
    samples = [Sample(t.prompt_ids, t.response_ids, 1.0, t.allowed) for t in turns]
    pad = tokenizer.pad_token_id
    scored = response_logprobs(
        model, samples, 1.0, pad, reasoning_temperature=reasoning_temperature
    )
    at_one = response_logprobs(model, samples, 1.0, pad)
    thinking = 0
    for i, t in enumerate(turns):
        n = len(t.logprobs)
        # float32 rounding between incremental decoding and one pass (see the test above)
        assert torch.allclose(scored.logp[i, :n], torch.tensor(t.logprobs), atol=1e-4)
        reasoning = torch.tensor([a == [] for a in t.allowed])
        thinking += int(reasoning.sum())
        gap = (at_one.logp[i, :n] - torch.tensor(t.logprobs)).abs()
        assert float(gap[~reasoning].max()) < 1e-4  # the cue and the move: one temperature
        if reasoning.any():
            assert float(gap[reasoning].max()) > 1e-2
    assert thinking > 0


def test_the_sampled_policy_of_reasoned_answers(tokenizer):
    """Every answer reasons, then picks: the policy has no invalid answer."""
    from zerosum.evaluation.policy import sampled_policy
    from zerosum.models import tiny_model

    model = tiny_model(tokenizer, hidden_size=32, layers=1, heads=2, seed=1)
    asking = Prompting(answer_mode="reasoned", prompt_format="plain", include_rules=False)
    table, stats = sampled_policy(
        HFEngine(model, tokenizer), tokenizer, "kuhn_poker",
        SamplingParams(max_new_tokens=3), k=4, prompting=asking,
    )  # fmt: skip
    assert stats["invalid_rate"] == 0.0
    assert table.action_probability_array.sum(axis=1).tolist() == pytest.approx([1.0] * 12)


def test_a_model_player_answers_in_reasoned_mode(tokenizer):
    import numpy as np

    from zerosum.models import tiny_model
    from zerosum.players.model import ModelPlayer, engine_generate

    model = tiny_model(tokenizer, hidden_size=32, layers=1, heads=2, seed=2)
    asking = Prompting(answer_mode="reasoned", prompt_format="plain", include_rules=False)
    generate = engine_generate(HFEngine(model, tokenizer), SamplingParams(max_new_tokens=5))
    player = ModelPlayer("tiny", tokenizer, generate, asking)
    state = load_game("kuhn_poker").new_episode(0)
    move = player.act(state, np.random.default_rng(0))
    assert move.action in ("check", "bet") and REASONED_CUE in move.response


def test_a_run_is_played_as_it_was_trained(tmp_path):
    """`model:RUN` players (zerosum match, play, the arena) ask as the run's rollout did."""
    import json

    from zerosum.players import run_prompting

    run = tmp_path / "run"
    (run / "checkpoints" / "step-000002" / "model").mkdir(parents=True)
    rollout = {"answer_mode": "reasoned", "prompt_format": "plain", "include_rules": False}
    (run / "config.json").write_text(json.dumps({"rollout": {**rollout, "games_per_step": 8}}))
    (run / "metrics.jsonl").write_text("")
    want = Prompting("reasoned", "plain", False)
    for path in (run, run / "checkpoints" / "step-000002", run / "checkpoints/step-000002/model"):
        assert run_prompting(str(path)) == want
    assert run_prompting(str(tmp_path)) is None  # not a run: asked as any model


def test_a_reasoning_prefix_starts_every_answer_as_part_of_the_prompt(tokenizer):
    """`reasoning_prefix`: every turn's prompt is the prompt without it followed by its tokens
    (the model continues it; it is never sampled nor trained), and the response and its text
    do not repeat it."""
    from zerosum.models import tiny_model

    prefix = "My card is"
    asked = Prompting(answer_mode="reasoned", prompt_format="plain", include_rules=False,
                      reasoning_prefix=prefix)  # fmt: skip
    model = tiny_model(tokenizer, hidden_size=32, layers=1, heads=2, seed=0)
    turns, episodes = play_games(
        HFEngine(model, tokenizer), tokenizer, [("kuhn_poker", s) for s in range(4)],
        params=SamplingParams(temperature=1.0, max_new_tokens=4),
        settings=RolloutSettings(prompting=asked), seed=3,
    )  # fmt: skip
    ids = tokenizer.encode(prefix, add_special_tokens=False)
    game = load_game("kuhn_poker")
    for t in turns:
        assert t.prompt_ids[-len(ids) :] == ids
        state = game.new_episode(episodes[t.episode].seed)
        for _, move in episodes[t.episode].moves[: t.turn]:
            state.apply_action(move)
        assert t.prompt_ids[: -len(ids)] == REASONED.prompting.prompt(tokenizer, state, t.seat)
        assert not t.text.startswith(prefix) and t.response_ids[: len(ids)] != ids


def test_a_reasoning_prefix_needs_reasoned_answers():
    with pytest.raises(ValueError, match="reasoning_prefix = 'I hold' needs answer_mode reasoned"):
        Prompting(answer_mode="constrained", reasoning_prefix="I hold")


def test_a_reasoning_prefix_is_an_arena_player_setting_that_keeps_old_identities():
    from zerosum.arena.config import LocalPlayerConfig

    player = LocalPlayerConfig(name="m", model="m", answer_mode="reasoned")
    assert "reasoning_prefix" not in player.identity()  # as registered before the setting
    prefixed = dataclasses.replace(player, reasoning_prefix="My card is")
    assert prefixed.identity()["reasoning_prefix"] == "My card is"
    assert prefixed.prompting.reasoning_prefix == "My card is"
