"""Derived seeds are part of what a run reproduces: these values must never change."""

import numpy as np
import pytest

from zerosum.seeds import eval_seed, game_seed, player_rng, schedule_rng, step_seed, turn_seed


def test_derived_seeds_keep_their_values():
    assert step_seed(3, 5) == 3 * 100_003 + 5
    assert (turn_seed(2, 7, 0), turn_seed(2, 7, 1)) == (1299755444, 3689068720)
    assert eval_seed(1, 2) == 7919 + 2000
    assert (game_seed(0, 0), game_seed(5, 3)) == (2968811710, 727168946)
    assert schedule_rng(0, 1).integers(1000) == np.random.default_rng([0, 1, 7]).integers(1000)
    assert player_rng(42).integers(1000) == np.random.default_rng([42, 3]).integers(1000)


def test_game_seed_rejects_negative_positions():
    with pytest.raises(ValueError, match="must be >= 0"):
        game_seed(0, -1)
