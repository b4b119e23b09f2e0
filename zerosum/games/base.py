"""The game protocol: a two-seat, zero-sum state machine that knows nothing about LLMs.

A `Game` makes episodes; an episode is a `GameState` that owns its chance RNG, so the
same seed always replays the same deal. Seats are 0 and 1. Actions are strings: for
board and card games the list of legal actions is finite and shown to the model as
bracketed strings (`[bet]`, `[4]`); for language games (`legal_actions()` is None) the
move is free text, validated by the game itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


class GameState(Protocol):
    """One episode in progress."""

    def current_seat(self) -> int:
        """The seat to move (0 or 1). Undefined at terminal states."""
        ...

    def legal_actions(self) -> Sequence[str] | None:
        """Canonical legal action strings, or None when any text is a candidate move."""
        ...

    def apply_action(self, action: str) -> None:
        """Play `action` for the current seat; chance events that follow are sampled inside.

        Raises `IllegalActionError` when the action is not legal here.
        """
        ...

    def is_terminal(self) -> bool: ...

    def returns(self) -> tuple[float, float]:
        """Final returns per seat; they sum to zero. Only meaningful at terminal states."""
        ...

    def observation(self, seat: int, include_rules: bool = True) -> str:
        """What `seat` knows, as text: the rules (optional: short prompts help tiny models),
        its private information, the public history and (when it is to move) the legal
        actions. Never the opponent's private information or reasoning."""
        ...

    def move_history(self) -> list[tuple[int, str]]:
        """The public moves so far as (seat, action) pairs."""
        ...


class Game(Protocol):
    """A game type: its name, rules in plain English, and a factory of seeded episodes."""

    name: str
    description: str

    def rules(self) -> str: ...

    def new_episode(self, seed: int) -> GameState: ...


class IllegalActionError(ValueError):
    """An action that is not legal in the current state."""


@dataclass(frozen=True)
class Outcome:
    """How an episode ended, from the point of view of both seats."""

    returns: tuple[float, float]
    turns: int
    truncated: bool = False  # hit the turn limit: scored as a draw
    forfeit_seat: int | None = None  # seat that lost by an invalid move

    @property
    def winner(self) -> int | None:
        """The seat with the higher return, or None for a draw."""
        if self.returns[0] == self.returns[1]:
            return None
        return 0 if self.returns[0] > self.returns[1] else 1


def bracket(actions: Sequence[str]) -> str:
    """Render legal actions the way prompts show them: `[a], [b], [c]`."""
    return ", ".join(f"[{a}]" for a in actions)
