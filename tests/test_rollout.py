from dataclasses import dataclass

import pytest

from zerosum.engines.base import Generation, SamplingParams
from zerosum.players import make_player
from zerosum.prompts import Prompting
from zerosum.rollout import (
    GameRunner,
    InvalidMovePolicy,
    RolloutSettings,
    Turn,
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

    def generate(self, prompts, params, choices=None, seed=0, seeds=None):
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
        engine,
        tokenizer,
        schedule,
        params=PARAMS,
        settings=RolloutSettings(max_concurrent=4),
        seed=0,
    )
    assert engine.batches[0] == 4 and max(engine.batches) == 4
    assert len(episodes) == 10 and all(e.outcome is not None for e in episodes)
    assert {e.game for e in episodes} == {"kuhn_poker", "tic_tac_toe"}
    for t in turns:
        assert t.ret == episodes[t.episode].outcome.returns[t.seat] and t.valid
    assert {t.seat for t in turns} == {0, 1}
    m = rollout_metrics(turns, episodes)
    assert m["rollout/invalid_rate"] == 0.0 and m["rollout/games"] == 10
    for game in ("kuhn_poker", "tic_tac_toe"):  # generated tokens per game, each game's own
        games = sum(e.game == game for e in episodes)
        tokens = sum(len(t.response_ids) for t in turns if t.game == game)
        assert m[f"rollout/{game}/game_tokens"] == tokens / games > 0
    assert m["rollout/game_tokens"] == sum(len(t.response_ids) for t in turns) / 10
    assert m["rollout/tic_tac_toe/game_tokens"] > m["rollout/kuhn_poker/game_tokens"]


def test_seats_are_mixed_within_one_batch(tokenizer):
    # Kuhn games end after 2 or 3 moves; with refills, one batch holds both seats.
    seats_per_batch = []

    class Spy(ScriptEngine):
        def generate(self, prompts, params, choices=None, seed=0, seeds=None):
            seats_per_batch.append({"Player 1 in" in self.tokenizer.decode(p) for p in prompts})
            return super().generate(prompts, params, choices, seed, seeds)

    def answer(prompt: str) -> str:
        if "[check]" in prompt.split("Legal actions")[-1]:
            return "\\boxed{bet}" if "card is K" in prompt else "\\boxed{check}"
        return "\\boxed{call}"

    engine = Spy(tokenizer, answer, [])
    play_games(
        engine,
        tokenizer,
        schedule_games({"kuhn_poker": 1.0}, 12, 0, 1),
        params=PARAMS,
        settings=RolloutSettings(max_concurrent=5),
        seed=0,
    )
    assert any(len(s) == 2 for s in seats_per_batch)


def test_invalid_answers_forfeit_with_training_rewards(tokenizer):
    engine = ScriptEngine(tokenizer, lambda p: "I refuse to answer", [])
    settings = RolloutSettings(invalid=InvalidMovePolicy("forfeit", loss=-1.5, win=0.5))
    turns, episodes = play_games(
        engine, tokenizer, [("kuhn_poker", 1)], params=PARAMS, settings=settings, seed=0
    )
    assert episodes[0].outcome.returns == (-1.5, 0.5)
    assert len(turns) == 1 and not turns[0].valid and turns[0].ret == -1.5
    m = rollout_metrics(turns, episodes)
    assert m["rollout/invalid_rate"] == 1.0
    assert m["rollout/invalid_reason/no_boxed_answer_or_bracketed_legal_action"] == 1.0


def test_retry_records_every_attempt(tokenizer):
    answers = iter(["nonsense", "\\boxed{bet}", "\\boxed{fold}"])
    engine = ScriptEngine(tokenizer, lambda p: next(answers), [])
    settings = RolloutSettings(invalid=InvalidMovePolicy("retry", retries=2))
    turns, episodes = play_games(
        engine, tokenizer, [("kuhn_poker", 1)], params=PARAMS, settings=settings, seed=0
    )
    assert [t.valid for t in turns] == [False, True, True]
    assert "Your last answer was invalid" in tokenizer.decode(turns[1].prompt_ids)
    assert episodes[0].outcome.returns == (1.0, -1.0)  # seat 1 folded to the bet


def test_turn_limit_makes_a_draw(tokenizer):
    engine = ScriptEngine(tokenizer, first_legal, [])
    settings = RolloutSettings(max_turns=3)
    turns, episodes = play_games(
        engine, tokenizer, [("connect_four", 0)], params=PARAMS, settings=settings, seed=0
    )
    assert episodes[0].outcome.truncated and episodes[0].outcome.returns == (0.0, 0.0)
    assert len(turns) == 3 and all(t.ret == 0.0 for t in turns)


def test_schedule_is_a_function_of_seed_and_step():
    a = schedule_games({"kuhn_poker": 1.0, "tic_tac_toe": 3.0}, 200, 0, 5)
    assert a == schedule_games({"kuhn_poker": 1.0, "tic_tac_toe": 3.0}, 200, 0, 5)
    assert a != schedule_games({"kuhn_poker": 1.0, "tic_tac_toe": 3.0}, 200, 0, 6)
    share = sum(g == "tic_tac_toe" for g, _ in a) / 200
    # Weights 1:3: 0.75 expected, standard error sqrt(0.75 * 0.25 / 200) = 0.031, so +-0.1 is
    # 3.3 standard errors (the schedule is seeded: the same every run).
    assert 0.65 < share < 0.85


def test_constrained_mode_refuses_free_text_games(tokenizer):
    engine = ScriptEngine(tokenizer, first_legal, [])
    with pytest.raises(
        ValueError, match="needs a game with finite legal actions, not 'simple_negotiation'"
    ):
        play_games(
            engine,
            tokenizer,
            [("simple_negotiation", 0)],
            params=PARAMS,
            settings=RolloutSettings(prompting=Prompting(answer_mode="constrained")),
            seed=0,
        )


def test_language_games_pass_only_the_extracted_move(tokenizer):
    """A TextArena game in a rollout: the boxed move (not the reasoning) reaches the game, and
    a move the game itself rejects ends it as a forfeit with the training rewards."""
    engine = ScriptEngine(
        tokenizer, lambda p: "My secret plan is X. \\boxed{[Offer: 50 Gold -> 1 Wood]}", []
    )
    settings = RolloutSettings(invalid=InvalidMovePolicy("forfeit", loss=-1.5, win=0.5))
    turns, episodes = play_games(
        engine, tokenizer, [("simple_negotiation", 3)], params=PARAMS, settings=settings, seed=0
    )
    outcome = episodes[0].outcome
    assert outcome.forfeit_seat == 0 and outcome.returns == (-1.5, 0.5)
    assert not turns[0].valid and turns[0].reason  # judged invalid by TextArena
    engine = ScriptEngine(tokenizer, lambda p: "Hidden reasoning. \\boxed{Hello there}", [])
    turns, episodes = play_games(
        engine, tokenizer, [("simple_negotiation", 3)], params=PARAMS, settings=settings, seed=0
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
    ],
)
def test_settings_that_would_stall_the_loop_are_rejected(kwargs, message):
    # max_concurrent=0 used to spin forever: no game ever started.
    with pytest.raises(ValueError, match=message):
        RolloutSettings(**kwargs)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"answer_mode": "boxed"}, "answer_mode = 'boxed' is invalid; allowed: free, constrained"),
        ({"prompt_format": "json"}, "prompt_format = 'json' is invalid; allowed: chat, plain"),
        ({"parser_fallback": "x"}, "parser_fallback = 'x' is invalid; allowed: last_bracket"),
    ],
)
def test_unknown_prompting_choices_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Prompting(**kwargs)


def test_constrained_moves_are_not_truncated_by_a_small_token_cap(tiny, tokenizer):
    """The tiny recipe's cap of 4 tokens is shorter than `bid 2-3` plus end-of-sequence; in
    constrained mode every move must still be a whole legal action (no forfeit at turn 0)."""
    from zerosum.engines.hf import HFEngine

    assert len(tokenizer.encode("bid 2-3", add_special_tokens=False)) + 1 > 4
    asking = Prompting(answer_mode="constrained", prompt_format="plain")
    settings = RolloutSettings(prompting=asking, max_concurrent=6)
    turns, episodes = play_games(
        HFEngine(tiny, tokenizer),
        tokenizer,
        [("liars_dice", s) for s in range(6)],
        params=SamplingParams(max_new_tokens=4),
        settings=settings,
        seed=0,
    )
    assert all(t.valid and t.finish_reason == "stop" for t in turns)
    assert all(e.outcome.forfeit_seat is None and e.outcome.turns >= 2 for e in episodes)
    assert any(m.startswith("bid") for e in episodes for _, m in e.moves)


def test_a_game_plays_the_same_whatever_shares_its_batches(tiny, tokenizer):
    """Each answer has its own seed (`seeds.turn_seed` of the call's seed, the game's seed and
    the answer's index): the same games played 8 at once, 3 at once, or split in two calls
    (as two rollout workers would) give the same turns, in schedule order."""
    from zerosum.engines.hf import HFEngine

    schedule = [("kuhn_poker", s) for s in range(8)]
    params = SamplingParams(temperature=1.0, max_new_tokens=4)

    def play(games, concurrent):
        asking = Prompting(answer_mode="constrained", prompt_format="plain", include_rules=False)
        settings = RolloutSettings(
            prompting=asking, invalid=InvalidMovePolicy("retry", retries=1),
            max_concurrent=concurrent,
        )  # fmt: skip
        turns, episodes = play_games(
            HFEngine(tiny, tokenizer), tokenizer, games, params=params, settings=settings, seed=5
        )
        return [(t.seat, t.response_ids) for t in turns], [(e.seed, e.moves) for e in episodes]

    together = play(schedule, 8)
    assert play(schedule, 3) == together
    first, second = play(schedule[:5], 5), play(schedule[5:], 2)
    assert (first[0] + second[0], first[1] + second[1]) == together
    moves = {m for _, ms in together[1] for _, m in ms}
    assert {"bet", "check"} <= moves  # sampled, not one fixed answer


# -- GameRunner's steps, one at a time --------------------------------------------------


def test_runner_retries_with_feedback_then_forfeits(tokenizer):
    settings = RolloutSettings(invalid=InvalidMovePolicy("retry", loss=-1.5, win=0.5, retries=1))
    runner = GameRunner(
        None, tokenizer, [("kuhn_poker", 1)], params=PARAMS, settings=settings, seed=0
    )
    slot = runner.start(0)
    assert runner.on_invalid(slot, 0, "no answer") == ("retry", None)
    assert slot.feedback.startswith("Your last answer was invalid: no answer.")
    assert runner.episodes[0].outcome is None
    assert runner.on_invalid(slot, 0, "still none") == ("forfeit", None)
    outcome = runner.episodes[0].outcome
    assert outcome.returns == (-1.5, 0.5) and outcome.forfeit_seat == 0 and outcome.turns == 0
    assert runner.episodes[0].invalid == [(0, "no answer"), (0, "still none")]


def test_runner_random_mode_substitutes_a_legal_move_but_not_in_free_text_games(tokenizer):
    settings = RolloutSettings(invalid=InvalidMovePolicy("random"))
    schedule = [("tic_tac_toe", 0), ("simple_negotiation", 0)]
    runner = GameRunner(None, tokenizer, schedule, params=PARAMS, settings=settings, seed=0)
    board, talk = runner.start(0), runner.start(1)
    decision, action = runner.on_invalid(board, 0, "bad")
    assert decision == "play" and action in board.state.legal_actions()
    assert runner.on_invalid(talk, 0, "bad") == ("forfeit", None)  # nothing to substitute


def test_runner_apply_ends_games_by_rule_turn_limit_and_the_games_own_judgement(tokenizer):
    schedule = [("kuhn_poker", 1), ("tic_tac_toe", 0), ("simple_negotiation", 3)]
    runner = GameRunner(
        None, tokenizer, schedule, params=PARAMS, settings=RolloutSettings(max_turns=2), seed=0
    )
    kuhn, board, talk = (runner.start(i) for i in range(3))
    assert runner.apply(kuhn, 0, "check") and not runner.apply(kuhn, 1, "check")
    assert runner.episodes[0].outcome.turns == 2 and not runner.episodes[0].outcome.truncated
    assert runner.apply(board, 0, "4") and not runner.apply(board, 1, "0")
    assert runner.episodes[1].outcome.truncated and runner.episodes[1].outcome.returns == (0, 0)
    turn = Turn("simple_negotiation", 2, 0, 0, [], [], [], None, True, None, "stop")
    talk.turns.append(turn)
    assert not runner.apply(talk, 0, "[Offer: 50 Gold -> 1 Wood]", turn)  # TextArena refuses it
    assert not turn.valid and turn.reason == talk.state.invalid_reason
    assert runner.episodes[2].outcome.forfeit_seat == 0 and runner.turns == [turn]
    assert turn.ret == runner.episodes[2].outcome.returns[0] == -1.5


def test_runner_refill_fills_free_slots_and_lets_fixed_players_move_first(tokenizer):
    random = make_player("random")
    schedule = [("tic_tac_toe", s) for s in range(4)]
    opponents = [(random, None)] * 3 + [(random, random)]  # the model is seat 1 of games 0-2
    settings = RolloutSettings(max_concurrent=2)
    runner = GameRunner(
        None, tokenizer, schedule, params=PARAMS, settings=settings, seed=0, opponents=opponents
    )
    runner.refill()
    assert [slot.index for slot in runner.live] == [0, 1] and runner.pending == [3, 2]
    assert all(slot.n_moves == 1 and slot.state.current_seat() == 1 for slot in runner.live)
    runner.live.clear()  # as if both games had ended: game 2 starts, game 3 is played out
    runner.refill()
    assert [slot.index for slot in runner.live] == [2] and runner.pending == []
    assert runner.episodes[3].outcome is not None and runner.episodes[2].outcome is None


def test_a_games_own_metrics_are_averaged_over_the_episodes_that_report_them():
    """`EpisodeMetrics`: each key's mean over the step's episodes of that game that report it
    (a per-request-type rate counts only that type's episodes)."""
    from zerosum.games.base import Outcome
    from zerosum.rollout import Episode

    def episode(metrics: dict[str, float]) -> Episode:
        return Episode("g", 0, Outcome((1.0, -1.0), 2), metrics=metrics)

    episodes = [
        episode({"kind_a": 1.0, "a/refused": 1.0}),
        episode({"kind_a": 1.0, "a/refused": 0.0}),
        episode({"kind_a": 0.0, "b/refused": 1.0}),
        episode({}),  # reports nothing: counted by none of the keys
    ]
    m = rollout_metrics([], episodes)
    assert m["rollout/g/kind_a"] == pytest.approx(2 / 3)
    assert m["rollout/g/a/refused"] == 0.5 and m["rollout/g/b/refused"] == 1.0
    assert m["rollout/g/games"] == 4.0


def test_the_share_of_reasonings_naming_the_seats_own_card_is_measured(tokenizer):
    """A scripted model names its card when it holds a king (as the letter) or a queen (as the
    word) and reasons without it when it holds a jack; the measure counts exactly those turns,
    read from the prompts here. Tic-tac-toe holds nothing private: no measure for it."""

    def answer(prompt: str) -> str:
        card = prompt.split("your card is ", 1)[1][0] if "your card is" in prompt else None
        move = first_legal(prompt).split("\\boxed", 1)[1]
        said = {"K": "I hold K, strong.", "Q": "A Queen is middling.", "J": "Let me think."}
        return said.get(card, "My move.") + " \\boxed" + move

    engine = ScriptEngine(tokenizer, answer, [])
    schedule = schedule_games({"kuhn_poker": 1.0, "tic_tac_toe": 1.0}, 24, seed=3, step=1)
    turns, episodes = play_games(
        engine, tokenizer, schedule, params=PARAMS, settings=RolloutSettings(), seed=0
    )
    kuhn = [t for t in turns if t.game == "kuhn_poker"]
    cards = [tokenizer.decode(t.prompt_ids).split("your card is ", 1)[1][0] for t in kuhn]
    assert set(cards) == {"J", "Q", "K"}  # every case met
    assert [t.names_private for t in kuhn] == [c != "J" for c in cards]
    assert all(t.names_private is None for t in turns if t.game == "tic_tac_toe")
    m = rollout_metrics(turns, episodes)
    expected = sum(c != "J" for c in cards) / len(cards)
    assert m["rollout/kuhn_poker/reasoning_names_private"] == pytest.approx(expected)
    assert "rollout/tic_tac_toe/reasoning_names_private" not in m
