"""The player protocol: anything that picks a move for the seat to act."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from zerosum.games.base import GameState


@dataclass(frozen=True)
class Move:
    """A player's answer: the canonical legal action, or None with the reason it is invalid."""

    action: str | None
    response: str = ""  # raw text for language-model players; never shown to the opponent
    reason: str | None = None


class Player(Protocol):
    name: str

    def act(self, state: GameState, rng: np.random.Generator, feedback: str | None = None) -> Move:
        """Choose a move for `state.current_seat()`.

        `rng` is the episode's player RNG (reproducible games); `feedback` explains why the
        previous attempt was rejected when the invalid-move policy retries.
        """
        ...
