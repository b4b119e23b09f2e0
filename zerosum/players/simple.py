"""Fixed reference opponents that act on the game state: random, MCTS, perfect play, CFR."""

from __future__ import annotations

import numpy as np
import pyspiel
from open_spiel.python.algorithms import mcts

from zerosum.games.base import GameState
from zerosum.games.openspiel_games import OpenSpielState
from zerosum.players.base import Move
from zerosum.solvers import cfr_policy_table, optimal_actions


def _spiel_state(state: GameState, who: str) -> OpenSpielState:
    if not isinstance(state, OpenSpielState):
        raise ValueError(f"player {who!r} needs an OpenSpiel game, got {type(state).__name__}")
    return state


class RandomPlayer:
    """Uniformly random legal move (free-text games: not supported)."""

    name = "random"

    def act(self, state: GameState, rng: np.random.Generator, feedback: str | None = None) -> Move:
        legal = state.legal_actions()
        if not legal:
            raise ValueError("player 'random' needs a game with a finite list of legal actions")
        return Move(legal[int(rng.integers(len(legal)))])


class MCTSPlayer:
    """OpenSpiel's UCT search with random rollouts, for perfect-information games."""

    def __init__(self, simulations: int = 200, uct_c: float = 2.0):
        if simulations < 1:
            raise ValueError(f"MCTS simulations must be >= 1, got {simulations}")
        self.simulations = simulations
        self.uct_c = uct_c
        self.name = f"mcts:{simulations}"

    def act(self, state: GameState, rng: np.random.Generator, feedback: str | None = None) -> Move:
        st = _spiel_state(state, self.name)
        game = st.spiel_state.get_game()
        if game.get_type().information != pyspiel.GameType.Information.PERFECT_INFORMATION:
            raise ValueError(
                f"player {self.name!r} needs a perfect-information game, not {st.spec.name!r}"
            )
        random_state = np.random.RandomState(int(rng.integers(2**31)))
        evaluator = mcts.RandomRolloutEvaluator(n_rollouts=1, random_state=random_state)
        bot = mcts.MCTSBot(
            game, self.uct_c, self.simulations, evaluator, random_state=random_state, solve=True
        )
        return Move(st.label(bot.step(st.spiel_state)))


class PerfectPlayer:
    """Minimax-perfect play (tic-tac-toe), random among equally good moves."""

    name = "perfect"

    def act(self, state: GameState, rng: np.random.Generator, feedback: str | None = None) -> Move:
        best = optimal_actions(_spiel_state(state, self.name))
        return Move(best[int(rng.integers(len(best)))])


class NashPlayer:
    """Samples from an approximate Nash equilibrium (CFR+) of kuhn_poker or leduc_poker."""

    name = "nash"

    def __init__(self, iterations: int = 1000):
        if iterations < 1:  # zero iterations would be the uniform policy under the name "nash"
            raise ValueError(f"CFR+ iterations must be an integer >= 1, got {iterations!r}")
        self.iterations = iterations

    def act(self, state: GameState, rng: np.random.Generator, feedback: str | None = None) -> Move:
        st = _spiel_state(state, self.name)
        table = cfr_policy_table(st.spec.name, self.iterations)
        probs = table[st.spiel_state.information_state_string()]
        actions = [int(a) for a in probs]
        p = np.asarray([probs[str(a)] for a in actions])
        choice = actions[int(rng.choice(len(actions), p=p / p.sum()))]
        return Move(st.label(choice))
