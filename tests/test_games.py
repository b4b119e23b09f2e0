import itertools

import numpy as np
import pyspiel
import pytest

from zerosum.games import game_names, load_game
from zerosum.games.base import IllegalActionError
from zerosum.games.openspiel_games import SPECS

OPENSPIEL_GAMES = [spec.name for spec in SPECS]
IMPERFECT = ["kuhn_poker", "leduc_poker", "liars_dice"]


def random_playout(game, seed, policy_seed=None):
    """Play uniformly random moves; returns (state, transcript of observations and moves)."""
    state = game.new_episode(seed)
    rng = np.random.default_rng(seed if policy_seed is None else policy_seed)
    transcript = []
    while not state.is_terminal():
        seat = state.current_seat()
        transcript.append(state.observation(seat))
        legal = state.legal_actions()
        action = legal[int(rng.integers(len(legal)))]
        transcript.append(action)
        state.apply_action(action)
    return state, transcript


@pytest.mark.parametrize("name", OPENSPIEL_GAMES)
def test_returns_sum_to_zero(name):
    game = load_game(name)
    seen = set()
    for seed in range({"connect_four": 60, "chess": 12}.get(name, 300)):  # long games: fewer
        state, _ = random_playout(game, seed)
        r = state.returns()
        assert r[0] + r[1] == pytest.approx(0.0), (name, seed, r)
        seen.add(r)
    assert len(seen) > 1  # both winners (or draws) occur: the playouts really vary


@pytest.mark.parametrize("name", OPENSPIEL_GAMES)
def test_same_seed_same_transcript(name):
    game = load_game(name)
    assert random_playout(game, 7)[1] == random_playout(game, 7)[1]


@pytest.mark.parametrize("name", IMPERFECT)
def test_different_seeds_different_deals(name):
    game = load_game(name)
    first_views = {game.new_episode(seed).observation(0) for seed in range(30)}
    assert len(first_views) > 1


@pytest.mark.parametrize("name", IMPERFECT)
def test_seat_view_is_a_function_of_its_information_state(name):
    """Two states the seat cannot tell apart (same OpenSpiel information state) must render
    identically, so the view cannot leak the opponent's cards or dice; and different
    information states must render differently, so nothing the seat knows is lost."""
    game = load_game(name)
    views: dict[tuple[int, str], str] = {}
    info_of_view: dict[tuple[int, str], str] = {}
    for seed in range(400):
        state = game.new_episode(seed)
        rng = np.random.default_rng(seed)
        while not state.is_terminal():
            for seat in (0, 1):
                info = state.spiel_state.information_state_string(seat)
                view = state.observation(seat)
                assert views.setdefault((seat, info), view) == view, (name, info)
                assert info_of_view.setdefault((seat, view), info) == info, (name, view)
            legal = state.legal_actions()
            state.apply_action(legal[int(rng.integers(len(legal)))])
    assert len(views) > 20


def test_kuhn_view_shows_own_card_not_opponents():
    game = load_game("kuhn_poker")
    for seed in range(50):
        state = game.new_episode(seed)
        own, other = state.spiel_state.history()[:2]
        cards = "JQK"
        view = state.observation(0)
        assert f"your card is {cards[own]}" in view
        assert f"card is {cards[other]}" not in view
        assert "It is your turn. Legal actions: [check], [bet]" in view


def test_kuhn_labels_follow_the_betting():
    state = load_game("kuhn_poker").new_episode(0)
    assert state.legal_actions() == ["check", "bet"]
    state.apply_action("bet")
    assert state.legal_actions() == ["fold", "call"]
    state.apply_action("call")
    assert state.is_terminal() and abs(state.returns()[0]) == 2.0


def test_leduc_shows_public_card_and_round():
    state = load_game("leduc_poker").new_episode(1)
    state.apply_action("check")
    state.apply_action("check")
    view = state.observation(0)
    assert "Betting round 2 of 2" in view
    assert "Public information: the public card is" in view
    assert state.legal_actions() == ["check", "bet"]


def test_tic_tac_toe_board_and_illegal_move():
    state = load_game("tic_tac_toe").new_episode(0)
    state.apply_action("4")
    assert " 0 | 1 | 2\n 3 | x | 5" in state.observation(1)
    with pytest.raises(IllegalActionError, match="'4'"):
        state.apply_action("4")


def test_liars_dice_matches_openspiel_rules():
    # The text layer only names OpenSpiel's actions: a bid's truth is decided by OpenSpiel.
    game = load_game("liars_dice")
    for seed in range(50):
        state = game.new_episode(seed)
        dice = state.spiel_state.history()[:2]
        state.apply_action("bid 2-2")
        state.apply_action("liar")
        true_bid = sum(d + 1 in (2, 6) for d in dice) >= 2
        assert state.returns()[0] == (1.0 if true_bid else -1.0)


def test_leduc_showdown_is_as_the_rules_say():
    """Every deal checked down to showdown: a pair with the public card wins, else the higher
    private rank; equal ranks split the pot (8% of deals), which the rules text must say."""
    game = load_game("leduc_poker")
    assert "equal private cards (suits do not count) split the pot" in game.rules()
    rank = {card: card // 2 for card in range(6)}  # J J Q Q K K, as the view names them
    splits = 0
    for c0, c1, public in itertools.permutations(range(6), 3):
        state = game.state_from_history([c0, c1, 1, 1, public, 1, 1])  # check, check twice
        assert state.is_terminal()
        pair0, pair1 = rank[c0] == rank[public], rank[c1] == rank[public]
        if pair0 or pair1:
            expected = 1 if pair0 else -1
        else:
            expected = (rank[c0] > rank[c1]) - (rank[c0] < rank[c1])
        assert np.sign(state.returns()[0]) == expected, (c0, c1, public)
        splits += expected == 0
    assert splits == 24  # of 120 deals


def test_registry_lists_games_and_rejects_unknown():
    names = game_names()
    for required in ("kuhn_poker", "leduc_poker", "tic_tac_toe", "connect_four", "liars_dice"):
        assert required in names
    with pytest.raises(
        ValueError, match=r"unknown game 'chess9'; did you mean chess\? valid games: .*kuhn_poker"
    ):
        load_game("chess9")
    with pytest.raises(ValueError, match=r"'go'; valid games: adversarial_taboo, .*, tic_tac_toe"):
        load_game("go")  # nothing close: only the list


def test_openspiel_is_the_rule_source():
    game = load_game("connect_four")
    assert isinstance(game.spiel_game, pyspiel.Game)
    state = game.new_episode(0)
    for _ in range(6):
        state.apply_action("0")
    assert "0" not in state.legal_actions()  # column full, per OpenSpiel
