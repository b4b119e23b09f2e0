"""Every derived seed in one place.

A run has one seed (`run.seed` in training, `--seed` for `match` and `eval`); everything random
is derived from it and a position (a step, a game index, an engine round), so a resumed run
repeats the uninterrupted one and runs with different seeds play different games. The
formulas below are part of what a run reproduces: changing one changes the games and samples
of every run with the same seed, so they are kept as they were when first written (the plain
ones predate `game_seed`'s hashing).
"""

from __future__ import annotations

import numpy as np

# Multipliers of the linear formulas: primes above any step or round count a run reaches, so
# (seed, position) pairs map to distinct seeds.
_STEP_STRIDE = 100_003
_EVAL_STRIDE, _EVAL_STEP_STRIDE = 7919, 1000
# Tags that tell NumPy streams of the same (seed, ...) apart.
_SCHEDULE_STREAM = 7
_PLAYER_STREAM = 3
_OPPONENT_STREAM = 11
_TURN_STREAM = 13


def game_seed(seed: int, index: int) -> int:
    """The seed of game `index` in a match or evaluation run with seed `seed`.

    A hash of the pair (NumPy's `SeedSequence`), so runs with different seeds play unrelated
    games; with `seed + index`, runs with seeds 0 and 2 would share all but two games.
    """
    if seed < 0 or index < 0:
        raise ValueError(f"seeds and game indices must be >= 0, got seed {seed}, game {index}")
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def step_seed(run_seed: int, step: int) -> int:
    """The seed of training step `step`: its self-play rollout (`play_games`) and the global
    torch RNG before its learner update."""
    return run_seed * _STEP_STRIDE + step


def turn_seed(seed: int, game_seed: int, call: int) -> int:
    """The engine seed of answer `call` (0, 1, ...: every turn and retry of the game, in
    order) in the game seeded `game_seed` of a `play_games` call seeded `seed`.

    Each answer is sampled from its own generator, so a game's samples do not depend on which
    other games share its engine batch: not on `rollout.max_concurrent`, the order games
    finish in, or which rollout worker plays it (the Ray backend gives every worker a slice
    of a step's games). Replaces the per-batch `round_seed` (seed * 1_000_003 + round)."""
    return int(np.random.SeedSequence([seed, game_seed, call, _TURN_STREAM]).generate_state(1)[0])


def eval_seed(run_seed: int, step: int) -> int:
    """The seed of the online evaluation after training step `step`: fresh deals at every
    evaluation, the same ones when the run is repeated."""
    return run_seed * _EVAL_STRIDE + step * _EVAL_STEP_STRIDE


def schedule_rng(run_seed: int, step: int) -> np.random.Generator:
    """The RNG that draws step `step`'s games from the training mixture."""
    return np.random.default_rng([run_seed, step, _SCHEDULE_STREAM])


def player_rng(game_seed: int) -> np.random.Generator:
    """The RNG of one game's fixed players and random-move substitutions (the game's own
    chance events draw from the game state, seeded with `game_seed` itself)."""
    return np.random.default_rng([game_seed, _PLAYER_STREAM])


def opponent_rng(run_seed: int, step: int) -> np.random.Generator:
    """The RNG that picks step `step`'s opponents from the pool and the learner's seats."""
    return np.random.default_rng([run_seed, step, _OPPONENT_STREAM])
