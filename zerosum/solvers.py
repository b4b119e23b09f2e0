"""Exact solutions of small games with OpenSpiel: minimax values (games whose spec declares
`minimax`, e.g. tic-tac-toe), CFR+ average policies (`nash`: kuhn_poker, leduc_poker) cached
on disk, and the walk over information sets that both the CFR+ table and the model's exact
policy table use.

Reference players (`players/simple.py`) and evaluation read these; nothing here knows about
players or models.
"""

from __future__ import annotations

import json
from functools import cache

import pyspiel
from open_spiel.python import policy as os_policy

from zerosum.cache import cache_dir, cached_text
from zerosum.games import games_with, load_game
from zerosum.games.openspiel_games import OpenSpielGame, OpenSpielState


def _solvable(game_name: str, capability: str, what: str) -> OpenSpielGame:
    """The OpenSpiel game `game_name` if its spec declares `capability`, else a one-line error."""
    game = load_game(game_name)
    if not isinstance(game, OpenSpielGame) or not getattr(game.capabilities, capability):
        valid = ", ".join(games_with(capability))
        raise ValueError(f"{what} is available for {valid} only, not {game_name!r}")
    return game


@cache
def minimax_values(game_name: str) -> dict[str, float]:
    """Exact value (for player 0) of every reachable state of a small deterministic
    perfect-information game, keyed by `str(state)`; solves tic-tac-toe in about 0.1 s."""
    game = _solvable(game_name, "minimax", "perfect play")
    values: dict[str, float] = {}

    def solve(s: pyspiel.State) -> float:
        key = str(s)
        if key not in values:
            if s.is_terminal():
                values[key] = s.returns()[0]
            else:
                children = [solve(s.child(a)) for a in s.legal_actions()]
                values[key] = max(children) if s.current_player() == 0 else min(children)
        return values[key]

    solve(game.spiel_game.new_initial_state())
    return values


def optimal_actions(state: OpenSpielState) -> list[str]:
    """The minimax-optimal moves of the seat to act."""
    values = minimax_values(state.spec.name)
    seat = state.current_seat()
    sign = 1.0 if seat == 0 else -1.0
    scored = {
        a: sign * values[str(state.spiel_state.child(a))] for a in state.spiel_state.legal_actions()
    }
    best = max(scored.values())
    return [state.label(a) for a, v in scored.items() if v == best]


@cache
def cfr_policy_table(game_name: str, iterations: int = 1000) -> dict[str, dict[str, float]]:
    """Average CFR+ policy as {information state: {action id: probability}}.

    Computed with OpenSpiel's C++ solver on first use (about 20 s for leduc_poker) and cached
    on disk (`cache.cached_text`: computed once however many threads and processes ask).
    """
    _solvable(game_name, "nash", "a Nash policy")
    path = cache_dir() / "cfr" / f"{game_name}-cfrplus-{iterations}.json"
    return json.loads(cached_text(path, lambda: json.dumps(_cfr_plus(game_name, iterations))))


def _cfr_plus(game_name: str, iterations: int) -> dict[str, dict[str, float]]:
    game = pyspiel.load_game(game_name)
    solver = pyspiel.CFRPlusSolver(game)
    for _ in range(iterations):
        solver.evaluate_and_update_policy()
    average = solver.average_policy()
    return {
        key: {str(a): float(p) for a, p in average.get_state_policy(key)}
        for key in info_set_states(game_name)
    }


@cache
def info_set_states(game_name: str) -> dict[str, pyspiel.State]:
    """One OpenSpiel state per information set of a small game (any member renders the same
    view), keyed by the information-state string, in depth-first order."""
    states: dict[str, pyspiel.State] = {}

    def walk(s: pyspiel.State) -> None:
        if s.is_terminal():
            return
        if s.is_chance_node():
            for a, _ in s.chance_outcomes():
                walk(s.child(a))
            return
        states.setdefault(s.information_state_string(), s)
        for a in s.legal_actions():
            walk(s.child(a))

    walk(pyspiel.load_game(game_name).new_initial_state())
    return states


def tabular_policy(
    game: pyspiel.Game, table: dict[str, dict[str, float]]
) -> os_policy.TabularPolicy:
    """An OpenSpiel `TabularPolicy` from an {information state: {action: prob}} table."""
    tabular = os_policy.TabularPolicy(game)
    for key, index in tabular.state_lookup.items():
        row = tabular.action_probability_array[index]
        row[:] = 0.0
        for action, prob in table[key].items():
            row[int(action)] = prob
    return tabular
