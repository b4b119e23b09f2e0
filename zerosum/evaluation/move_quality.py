"""Move quality against exact minimax values, in games small enough to solve (their spec
declares `minimax`: tic-tac-toe), solved by OpenSpiel's rules.

A move is optimal when it keeps the best value available to the mover; it is a blunder when
it turns a position the mover could draw or win into a lost one.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from zerosum.engines.base import Engine, SamplingParams
from zerosum.games import load_game
from zerosum.games.openspiel_games import OpenSpielState
from zerosum.prompts import Prompting, engine_batch
from zerosum.rollout import Episode
from zerosum.solvers import minimax_values, optimal_actions


def _value_for_mover(state: OpenSpielState, seat: int) -> float:
    return (1.0 if seat == 0 else -1.0) * minimax_values(state.spec.name)[str(state.spiel_state)]


def move_quality(decisions: Sequence[tuple[OpenSpielState, str | None]]) -> dict[str, float]:
    """Optimal-move and blunder rates of (position, move) pairs; None is an invalid answer."""
    optimal = blunders = invalid = 0
    for state, action in decisions:
        if action is None:
            invalid += 1
            continue
        seat = state.current_seat()
        optimal += action in optimal_actions(state)
        after = load_game(state.spec.name).state_from_history(state.spiel_state.history())
        after.apply_action(action)
        blunders += _value_for_mover(state, seat) >= 0 > _value_for_mover(after, seat)
    n = max(len(decisions), 1)
    return {
        "positions": len(decisions),
        "optimal_rate": optimal / n,
        "blunder_rate": blunders / n,
        "invalid_rate": invalid / n,
    }


def decisions_in_play(
    episodes: Sequence[Episode], model_seats: Sequence[int]
) -> list[tuple[OpenSpielState, str]]:
    """The model's (position, move) pairs replayed from finished games."""
    out = []
    for ep, seat in zip(episodes, model_seats):
        game = load_game(ep.game)
        state = game.new_episode(ep.seed)
        for mover, action in ep.moves:
            if mover == seat:
                out.append((game.state_from_history(state.spiel_state.history()), action))
            state.apply_action(action)
    return out


def fixed_positions(game_name: str, n: int = 50, seed: int = 0) -> list[OpenSpielState]:
    """A reproducible set of distinct non-terminal positions (random play, 0-6 moves deep)."""
    game = load_game(game_name)
    rng = np.random.default_rng(seed)
    seen: dict[str, OpenSpielState] = {}
    for _ in range(50 * n):
        if len(seen) >= n:
            break
        state = game.new_episode(0)
        for _ in range(int(rng.integers(0, 7))):
            legal = state.legal_actions()
            state.apply_action(legal[int(rng.integers(len(legal)))])
            if state.is_terminal():
                break
        if not state.is_terminal():
            seen.setdefault(str(state.spiel_state), state)
    return list(seen.values())


def answer_positions(
    engine: Engine,
    tokenizer,
    states: Sequence[OpenSpielState],
    params: SamplingParams,
    *,
    prompting: Prompting,
    seed: int = 0,
) -> list[tuple[OpenSpielState, str | None]]:
    """The model's move in each position (one answer each, batched; None where the answer
    is invalid), asked and read as `prompting` says, sampled with `params` from `seed`."""
    prompts = [prompting.prompt(tokenizer, s, s.current_seat()) for s in states]
    choices = None
    if prompting.decodes_legal_actions:
        choices = [prompting.choices(s) for s in states]
    generate = engine_batch(engine, params, seed)
    gens = prompting.answer(generate, tokenizer, prompts, choices, [seed] * len(prompts))
    return [
        (state, prompting.read(gen.text, state.legal_actions())[0])
        for state, gen in zip(states, gens)
    ]
