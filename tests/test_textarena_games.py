"""The TextArena adapter: zero-sum returns, seeded replay, `random` isolation, private
information, invalid moves and turn limits, on the real TextArena 0.7.4 envs."""

from __future__ import annotations

import random
import re

import pytest

from zerosum.games.textarena_games import (
    SIMPLE_NEGOTIATION,
    TEXTARENA_GAMES,
    TRUTH_AND_DECEPTION,
    IsolatedRandom,
    TextArenaState,
)

RESOURCES = ("Wheat", "Wood", "Sheep", "Brick", "Ore")
SEEDS = range(20)
MAX_MOVES = 100  # far above either game's TextArena turn limit


def negotiation_move(state: TextArenaState, rng: random.Random) -> str:
    """A random mix of TextArena's negotiation tokens and plain talk."""
    kind = rng.randrange(4)
    if kind == 0:
        return "[Accept]"
    if kind == 1:
        return "[Deny] not interested"
    if kind == 2:
        give, want = rng.sample(RESOURCES, 2)
        return f"[Offer: {rng.randint(1, 3)} {give} -> {rng.randint(1, 3)} {want}]"
    return "Let us trade something fair."


def deception_move(state: TextArenaState, rng: random.Random) -> str:
    """The Guesser names one fact in every message, so its last message is a valid guess."""
    if state.current_seat() == 1:
        return f"I lean towards [Fact {rng.randint(1, 2)}]."
    return rng.choice(["Trust me, think it through.", "One of them sounds off to me."])


POLICIES = {SIMPLE_NEGOTIATION.name: negotiation_move, TRUTH_AND_DECEPTION.name: deception_move}


def play(game, seed: int) -> tuple[TextArenaState, list[tuple[str, str]]]:
    """Play one episode with the scripted policy; return it and both seats' views per step."""
    rng = random.Random(1000 + seed)
    state = game.new_episode(seed)
    views = [(state.observation(0), state.observation(1))]
    while not state.is_terminal():
        assert len(state.move_history()) < MAX_MOVES, "episode did not end"
        state.apply_action(POLICIES[game.name](state, rng))
        views.append((state.observation(0), state.observation(1)))
    return state, views


@pytest.fixture(params=TEXTARENA_GAMES, ids=lambda g: g.name)
def game(request):
    return request.param


def test_registry_lists_both_games_with_one_line_descriptions():
    names = [g.name for g in TEXTARENA_GAMES]
    assert {"simple_negotiation", "truth_and_deception"} <= set(names)
    assert len(names) == len(set(names))
    for g in TEXTARENA_GAMES:
        assert g.description and "\n" not in g.description
        assert g.rules() and g.env_id.endswith("-v0")


def test_random_play_ends_zero_sum(game):
    outcomes = []
    for seed in SEEDS:
        state, _ = play(game, seed)
        r = state.returns()
        assert r[0] + r[1] == 0 and set(r) <= {-1.0, 0.0, 1.0}, (seed, r)
        assert state.legal_actions() == []
        if state.invalid_seat is not None:
            assert r[state.invalid_seat] == -1.0 and state.invalid_reason
        outcomes.append(r)
    assert any(r != (0.0, 0.0) for r in outcomes), "no decisive game in 20 seeds"


def test_returns_follow_textarena_rewards(game):
    for seed in range(5):
        state, _ = play(game, seed)
        rewards = state.env.state.rewards
        if state.invalid_seat is None:
            assert state.returns() == (float(rewards[0]), float(rewards[1]))


def test_same_seed_replays_whatever_the_global_random_does(game):
    random.seed(1)
    first = play(game, 7)[1]
    random.seed(2)
    random.random()
    second = play(game, 7)[1]
    assert first == second
    initial = {game.new_episode(seed).observation(s) for seed in range(5) for s in (0, 1)}
    assert len(initial) > 2, "different seeds gave identical initial observations"


def test_interleaved_episodes_replay(game):
    alone = play(game, 3)[1]
    a, b = game.new_episode(3), game.new_episode(4)
    rng_a, rng_b = random.Random(1003), random.Random(1004)
    views = [(a.observation(0), a.observation(1))]
    while not a.is_terminal():
        a.apply_action(POLICIES[game.name](a, rng_a))
        views.append((a.observation(0), a.observation(1)))
        if not b.is_terminal():
            b.apply_action(POLICIES[game.name](b, rng_b))
        random.random()
    assert views == alone


def test_global_random_state_untouched(game):
    random.seed(12345)
    before = random.getstate()
    play(game, 5)
    assert random.getstate() == before


def test_isolated_random_keeps_its_stream_across_blocks():
    expected = random.Random(9)
    expected_draws = [expected.random() for _ in range(4)]
    box, other = IsolatedRandom(9), IsolatedRandom(10)
    random.seed(0)
    before = random.getstate()
    draws = []
    for _ in range(2):
        with box.active():
            draws += [random.random(), random.random()]
        with other.active():
            random.random()
    assert draws == expected_draws
    assert random.getstate() == before


def _offer_then_accept(state: TextArenaState) -> None:
    """Make game messages appear (an offer and a trade) before checking the views."""
    state.apply_action("[Offer: 1 Wheat -> 1 Wood]")
    state.apply_action("[Accept]")
    state.apply_action("Thanks!")


def test_negotiation_view_hides_opponent_resources_and_values():
    checked = 0
    for seed in range(10):
        state = SIMPLE_NEGOTIATION.new_episode(seed)
        gs = state.env.state.game_state
        private = {
            p: {r: (gs["player_resources"][p][r], gs["player_values"][p][r]) for r in RESOURCES}
            for p in (0, 1)
        }
        _offer_then_accept(state)
        assert not state.is_terminal()
        for seat in (0, 1):
            other = 1 - seat
            mine, theirs = state.observation(seat), state.observation(other)
            for res in RESOURCES:
                qty, value = private[other][res]
                line = re.compile(rf"\[{res}\]\s+Qty:\s*{qty}\s+Value:\s*{value}\b")
                assert line.search(theirs), "the owner must see its own resource line"
                if private[seat][res] == (qty, value):
                    continue  # identical numbers: the seat's own line, not a leak
                assert not line.search(mine), f"seat {seat} sees seat {other}'s {res}"
                checked += 1
    assert checked > 50


def test_deception_guesser_view_hides_which_fact_is_true():
    for seed in range(10):
        state = TRUTH_AND_DECEPTION.new_episode(seed)
        gs = state.env.state.game_state
        true_k = 1 if gs["fact1"]["is_correct"] else 2
        label = f"Fact {true_k}: {gs[f'fact{true_k}']['fact']} (correct)"
        state.apply_action("Fact one is obviously right.")
        state.apply_action("Why?")
        deceiver, guesser = state.observation(0), state.observation(1)
        assert label in deceiver
        assert gs["correct_fact"] in guesser  # the facts are shared ...
        assert "(correct)" not in guesser and "(wrong)" not in guesser  # ... the labels are not


def test_negotiation_offer_without_resources_loses():
    state = SIMPLE_NEGOTIATION.new_episode(0)
    state.apply_action("[Offer: 1000 Ore -> 1 Wheat]")
    assert state.is_terminal()
    assert state.returns() == (-1.0, 1.0)
    assert state.invalid_seat == 0 and "necessary resources" in state.invalid_reason
    assert "invalid move" in state.observation(1)


def test_negotiation_malformed_offer_by_second_seat_loses():
    state = SIMPLE_NEGOTIATION.new_episode(1)
    state.apply_action("Hello")
    state.apply_action("[Offer: 2 Unicorns -> 1 Wheat]")
    assert state.is_terminal() and state.returns() == (1.0, -1.0)
    assert state.invalid_seat == 1 and "incorrect format" in state.invalid_reason


@pytest.mark.parametrize("guess", ["I have no idea", "[Fact 1] or maybe [Fact 2]"])
def test_deception_bad_final_guess_loses(guess):
    state = TRUTH_AND_DECEPTION.new_episode(2)
    for _ in range(5):
        state.apply_action("Let us talk.")
    assert not state.is_terminal() and state.current_seat() == 1
    state.apply_action(guess)
    assert state.is_terminal() and state.returns() == (1.0, -1.0)
    assert state.invalid_seat == 1 and state.invalid_reason
    assert guess in state.observation(0)


def test_deception_correct_guess_wins_for_guesser():
    state = TRUTH_AND_DECEPTION.new_episode(3)
    k = 1 if state.env.state.game_state["fact1"]["is_correct"] else 2
    for _ in range(5):
        state.apply_action("Let us talk.")
    state.apply_action(f"[Fact {k}]")
    assert state.returns() == (-1.0, 1.0) and state.invalid_seat is None


def test_turn_limits_are_textarenas():
    talk = SIMPLE_NEGOTIATION.new_episode(0)
    while not talk.is_terminal():
        talk.apply_action("Nice weather.")
    # TextArena checks max_turns=10 before counting the move: 11 moves; no trade -> draw.
    assert len(talk.move_history()) == talk.env.state.max_turns + 1 == 11
    assert talk.returns() == (0.0, 0.0) and talk.invalid_seat is None
    chat, _ = play(TRUTH_AND_DECEPTION, 0)
    assert len(chat.move_history()) == chat.env.state.max_turns == 6


def test_bare_negotiation_move_is_bracketed_and_reaches_the_opponent():
    state = SIMPLE_NEGOTIATION.new_episode(4)
    state.apply_action("[Offer: 1 Wheat -> 1 Wood]")
    state.apply_action("Accept")
    assert state.move_history()[-1] == (1, "[Accept]")
    assert "Player 1 accepted the trade offer" in state.observation(0)
    assert state.env.state.game_state["inventory_value"][0]["change"] != 0


def test_errors_name_the_bad_value(game):
    state = game.new_episode(0)
    with pytest.raises(ValueError, match="unknown seat 2"):
        state.observation(2)
    state.env.state.done = True  # any terminal state
    with pytest.raises(ValueError, match="game is over.*'late move'"):
        state.apply_action("late move")
