from dataclasses import dataclass

import pytest

from zerosum.engines.base import Generation, SamplingParams
from zerosum.rollout import (
    InvalidMovePolicy,
    RolloutSettings,
    play_games,
    rollout_metrics,
    schedule_games,
)


@dataclass
class ScriptEngine:
    """Answers each prompt with a function of the prompt text; records batch sizes."""

    tokenizer: object
    answer: object
    batches: list

    def generate(self, prompts, params, choices=None, seed=0):
        self.batches.append(len(prompts))
        out = []
        for p in prompts:
            text = self.answer(self.tokenizer.decode(p))
            ids = self.tokenizer.encode(text, add_special_tokens=False)
            out.append(Generation(ids, [-0.5] * len(ids), "stop", text))
        return out

    def offload(self):
        return None

    def sync_weights(self):
        return None


def first_legal(prompt: str) -> str:
    legal = prompt.rsplit("Legal actions: ", 1)[1].split("\n")[0]
    return "I think. \\boxed{" + legal.split(", ")[0].strip("[]") + "}"


PARAMS = SamplingParams(max_new_tokens=8)


def test_games_run_concurrently_and_returns_reach_every_turn(tokenizer):
    engine = ScriptEngine(tokenizer, first_legal, [])
    schedule = schedule_games({"kuhn_poker": 1.0, "tic_tac_toe": 1.0}, 10, seed=0, step=1)
    turns, episodes = play_games(
        engine, tokenizer, schedule, PARAMS, RolloutSettings(max_concurrent=4), seed=0
    )
    assert engine.batches[0] == 4 and max(engine.batches) == 4
    assert len(episodes) == 10 and all(e.outcome is not None for e in episodes)
    assert {e.game for e in episodes} == {"kuhn_poker", "tic_tac_toe"}
    for t in turns:
        assert t.ret == episodes[t.episode].outcome.returns[t.seat] and t.valid
    assert {t.seat for t in turns} == {0, 1}
    m = rollout_metrics(turns, episodes)
    assert m["rollout/invalid_rate"] == 0.0 and m["rollout/games"] == 10


def test_seats_are_mixed_within_one_batch(tokenizer):
    # Kuhn games end after 2 or 3 moves; with refills, one batch holds both seats.
    seats_per_batch = []

    class Spy(ScriptEngine):
        def generate(self, prompts, params, choices=None, seed=0):
            seats_per_batch.append({"Player 1 in" in self.tokenizer.decode(p) for p in prompts})
            return super().generate(prompts, params, choices, seed)

    def answer(prompt: str) -> str:
        if "[check]" in prompt.split("Legal actions")[-1]:
            return "\\boxed{bet}" if "card is K" in prompt else "\\boxed{check}"
        return "\\boxed{call}"

    engine = Spy(tokenizer, answer, [])
    play_games(
        engine,
        tokenizer,
        schedule_games({"kuhn_poker": 1.0}, 12, 0, 1),
        PARAMS,
        RolloutSettings(max_concurrent=5),
        seed=0,
    )
    assert any(len(s) == 2 for s in seats_per_batch)


def test_invalid_answers_forfeit_with_training_rewards(tokenizer):
    engine = ScriptEngine(tokenizer, lambda p: "I refuse to answer", [])
    settings = RolloutSettings(invalid=InvalidMovePolicy("forfeit", loss=-1.5, win=0.5))
    turns, episodes = play_games(engine, tokenizer, [("kuhn_poker", 1)], PARAMS, settings, seed=0)
    assert episodes[0].outcome.returns == (-1.5, 0.5)
    assert len(turns) == 1 and not turns[0].valid and turns[0].ret == -1.5
    m = rollout_metrics(turns, episodes)
    assert m["rollout/invalid_rate"] == 1.0
    assert m["rollout/invalid_reason/no_boxed_answer_or_bracketed_legal_action"] == 1.0


def test_retry_records_every_attempt(tokenizer):
    answers = iter(["nonsense", "\\boxed{bet}", "\\boxed{fold}"])
    engine = ScriptEngine(tokenizer, lambda p: next(answers), [])
    settings = RolloutSettings(invalid=InvalidMovePolicy("retry", retries=2))
    turns, episodes = play_games(engine, tokenizer, [("kuhn_poker", 1)], PARAMS, settings, seed=0)
    assert [t.valid for t in turns] == [False, True, True]
    assert "Your last answer was invalid" in tokenizer.decode(turns[1].prompt_ids)
    assert episodes[0].outcome.returns == (1.0, -1.0)  # seat 1 folded to the bet


def test_turn_limit_makes_a_draw(tokenizer):
    engine = ScriptEngine(tokenizer, first_legal, [])
    settings = RolloutSettings(max_turns=3)
    turns, episodes = play_games(engine, tokenizer, [("connect_four", 0)], PARAMS, settings, seed=0)
    assert episodes[0].outcome.truncated and episodes[0].outcome.returns == (0.0, 0.0)
    assert len(turns) == 3 and all(t.ret == 0.0 for t in turns)


def test_schedule_is_a_function_of_seed_and_step():
    a = schedule_games({"kuhn_poker": 1.0, "tic_tac_toe": 3.0}, 200, 0, 5)
    assert a == schedule_games({"kuhn_poker": 1.0, "tic_tac_toe": 3.0}, 200, 0, 5)
    assert a != schedule_games({"kuhn_poker": 1.0, "tic_tac_toe": 3.0}, 200, 0, 6)
    share = sum(g == "tic_tac_toe" for g, _ in a) / 200
    assert 0.65 < share < 0.85  # weights 1:3


def test_constrained_mode_refuses_free_text_games(tokenizer):
    engine = ScriptEngine(tokenizer, first_legal, [])
    with pytest.raises(
        ValueError, match="needs a game with finite legal actions, not 'simple_negotiation'"
    ):
        play_games(
            engine,
            tokenizer,
            [("simple_negotiation", 0)],
            PARAMS,
            RolloutSettings(answer_mode="constrained"),
            0,
        )


def test_language_games_pass_only_the_extracted_move(tokenizer):
    """A TextArena game in a rollout: the boxed move (not the reasoning) reaches the game, and
    a move the game itself rejects ends it as a forfeit with the training rewards."""
    engine = ScriptEngine(
        tokenizer, lambda p: "My secret plan is X. \\boxed{[Offer: 50 Gold -> 1 Wood]}", []
    )
    settings = RolloutSettings(invalid=InvalidMovePolicy("forfeit", loss=-1.5, win=0.5))
    turns, episodes = play_games(
        engine, tokenizer, [("simple_negotiation", 3)], PARAMS, settings, seed=0
    )
    outcome = episodes[0].outcome
    assert outcome.forfeit_seat == 0 and outcome.returns == (-1.5, 0.5)
    assert not turns[0].valid and turns[0].reason  # judged invalid by TextArena
    engine = ScriptEngine(tokenizer, lambda p: "Hidden reasoning. \\boxed{Hello there}", [])
    turns, episodes = play_games(
        engine, tokenizer, [("simple_negotiation", 3)], PARAMS, settings, seed=0
    )
    assert episodes[0].outcome.forfeit_seat is None and all(t.valid for t in turns)
    assert "Hidden reasoning" not in tokenizer.decode(turns[1].prompt_ids)
    assert "Hello there" in tokenizer.decode(turns[1].prompt_ids)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"max_concurrent": 0}, "max_concurrent = 0 is invalid; allowed: an integer >= 1"),
        ({"max_turns": 0}, "max_turns = 0 is invalid; allowed: an integer >= 1"),
        ({"max_turns": True}, "max_turns = True is invalid"),
        ({"answer_mode": "boxed"}, "answer_mode = 'boxed' is invalid; allowed: free, constrained"),
        ({"prompt_format": "json"}, "prompt_format = 'json' is invalid; allowed: chat, plain"),
        ({"parser_fallback": "x"}, "parser_fallback = 'x' is invalid; allowed: last_bracket"),
    ],
)
def test_settings_that_would_stall_the_loop_are_rejected(kwargs, message):
    # max_concurrent=0 used to spin forever: no game ever started.
    with pytest.raises(ValueError, match=message):
        RolloutSettings(**kwargs)


def test_constrained_moves_are_not_truncated_by_a_small_token_cap(tiny, tokenizer):
    """The tiny recipe's cap of 4 tokens is shorter than `bid 2-3` plus end-of-sequence; in
    constrained mode every move must still be a whole legal action (no forfeit at turn 0)."""
    from zerosum.engines.hf import HFEngine

    assert len(tokenizer.encode("bid 2-3", add_special_tokens=False)) + 1 > 4
    settings = RolloutSettings(answer_mode="constrained", prompt_format="plain", max_concurrent=6)
    turns, episodes = play_games(
        HFEngine(tiny, tokenizer),
        tokenizer,
        [("liars_dice", s) for s in range(6)],
        SamplingParams(max_new_tokens=4),
        settings,
        seed=0,
    )
    assert all(t.valid and t.finish_reason == "stop" for t in turns)
    assert all(e.outcome.forfeit_seat is None and e.outcome.turns >= 2 for e in episodes)
    assert any(m.startswith("bid") for e in episodes for _, m in e.moves)
