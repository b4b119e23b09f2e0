"""Tic-tac-toe move quality against the exact minimax values (solved by OpenSpiel rules).

A move is optimal when it keeps the best value available to the mover; it is a blunder when
it turns a position the mover could draw or win into a lost one.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from zerosum.engines.base import Engine, SamplingParams
from zerosum.games import load_game
from zerosum.games.openspiel_games import OpenSpielState
from zerosum.rollout import Episode, RolloutSettings, build_prompt, read_answer
from zerosum.solvers import minimax_values, optimal_actions


def _value_for_mover(state: OpenSpielState, seat: int) -> float:
    return (1.0 if seat == 0 else -1.0) * minimax_values("tic_tac_toe")[str(state.spiel_state)]


def move_quality(decisions: Sequence[tuple[OpenSpielState, str | None]]) -> dict[str, float]:
    """Optimal-move and blunder rates of (position, move) pairs; None is an invalid answer."""
    optimal = blunders = invalid = 0
    for state, action in decisions:
        if action is None:
            invalid += 1
            continue
        seat = state.current_seat()
        optimal += action in optimal_actions(state)
        after = load_game("tic_tac_toe").state_from_history(state.spiel_state.history())
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
    """The model's (position, move) pairs replayed from finished tic-tac-toe games."""
    game = load_game("tic_tac_toe")
    out = []
    for ep, seat in zip(episodes, model_seats):
        state = game.new_episode(ep.seed)
        for mover, action in ep.moves:
            if mover == seat:
                out.append((game.state_from_history(state.spiel_state.history()), action))
            state.apply_action(action)
    return out


def fixed_positions(n: int = 50, seed: int = 0) -> list[OpenSpielState]:
    """A reproducible set of distinct non-terminal positions (random play, 0-6 moves deep)."""
    game = load_game("tic_tac_toe")
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
    settings: RolloutSettings,
    seed: int = 0,
) -> list[tuple[OpenSpielState, str | None]]:
    """The model's move in each position (one answer each, batched; None where the answer
    is invalid), prompted and parsed as `settings` says, sampled with `params` from `seed`."""
    prompts = [
        build_prompt(tokenizer, s, s.current_seat(), settings.answer_mode, None,
                     settings.include_rules, settings.prompt_format)
        for s in states
    ]  # fmt: skip
    choices = (
        [list(s.legal_actions()) for s in states] if settings.answer_mode == "constrained" else None
    )
    gens = engine.generate(prompts, params, choices, seed=seed)
    return [
        (state, read_answer(gen.text, state.legal_actions(), settings)[0])
        for state, gen in zip(states, gens)
    ]
