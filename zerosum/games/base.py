"""The game protocol: a two-seat, zero-sum state machine that knows nothing about LLMs.

A `Game` makes episodes; an episode is a `GameState` whose randomness is its own, seeded when
it starts, so the same seed always replays the same episode (the deal of a card game, the
private facts of a TextArena game). Seats are 0 and 1. Actions are strings. Two families:

- OpenSpiel games (cards, boards): a finite list of legal actions, shown to the model as
  bracketed strings (`[bet]`, `[4]`); an action outside the list is refused before it is
  played (`IllegalActionError`), so the caller checks answers against `legal_actions()`.
  A game may return them as an `ActionList` that also names other spellings the answer
  parser accepts for them (chess: the UCI move `e2e4` for `e4`).
- TextArena language games: `legal_actions()` is None and any text is a candidate move; the
  game itself judges a move when it is played, and a move it rejects ends the episode, with
  `invalid_reason` saying why.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


class GameState(Protocol):
    """One episode in progress."""

    # Why the game itself rejected the last move (language games judge free-text moves when
    # they are played); the episode is then over and the mover forfeits. Always None for
    # games with a finite list of legal actions, whose illegal moves never get played.
    invalid_reason: str | None

    def current_seat(self) -> int:
        """The seat to move (0 or 1). Undefined at terminal states."""
        ...

    def legal_actions(self) -> Sequence[str] | None:
        """Canonical legal action strings ([] at terminal states), or None when any text is a
        candidate move (language games). May be an `ActionList` carrying aliases."""
        ...

    def apply_action(self, action: str) -> None:
        """Play `action` for the current seat; chance events that follow are sampled inside.

        Raises `IllegalActionError` for an action not in a finite `legal_actions()`, or for
        any action once the episode is over. A language game plays any text and judges it:
        a move it rejects sets `invalid_reason` and ends the episode.
        """
        ...

    def is_terminal(self) -> bool: ...

    def returns(self) -> tuple[float, float]:
        """Final returns per seat; they sum to zero. Only meaningful at terminal states."""
        ...

    def observation(self, seat: int, include_rules: bool = True) -> str:
        """What `seat` knows, as text: the rules, its private information, the public history
        and, when it is to move, whose turn it is (with the legal actions where they are a
        finite list). Never the opponent's private information or reasoning. Games whose own
        prompt carries the rules (TextArena) may ignore `include_rules=False`."""
        ...

    def move_history(self) -> list[tuple[int, str]]:
        """The moves played so far as (seat, action) pairs, as both seats saw them."""
        ...


@runtime_checkable
class EpisodeMetrics(Protocol):
    """Optional on a `GameState`: what the game measures of a finished episode beyond its
    outcome (the red-team game: the request type and whether the Defender refused). Each
    key's mean over the step's episodes that report it becomes `rollout/GAME/KEY`."""

    def episode_metrics(self) -> Mapping[str, float]: ...


@runtime_checkable
class PrivateWords(Protocol):
    """Optional on a `GameState`: the words that name what only `seat` knows (Kuhn Poker:
    its card, as the letter and the name). Whether a model's reasoning uses them is the
    cheapest check that its words are about its own game: `rollout/GAME/reasoning_names_private`.
    An empty tuple: the seat holds nothing private."""

    def private_words(self, seat: int) -> tuple[str, ...]: ...


@dataclass(frozen=True)
class Capabilities:
    """What a game allows, declared on its spec; players, solvers and evaluation consult it
    instead of naming games."""

    # Legal actions are a finite list of strings: constrained answers, random and search bots.
    finite_actions: bool
    # Every seat sees the whole state (MCTS needs it).
    perfect_information: bool = False
    # Small enough for an exact Nash equilibrium (CFR+) and exact exploitability (NashConv).
    nash: bool = False
    # Small enough to solve every position exactly (minimax): perfect play, move quality.
    minimax: bool = False
    # The seats play different roles (a deceiver and a guesser): RAE's per-seat baseline matters.
    asymmetric_seats: bool = False


class Game(Protocol):
    """A game type: its name, rules in plain English, what it allows, and a factory of seeded
    episodes."""

    name: str
    description: str
    capabilities: Capabilities

    def rules(self) -> str: ...

    def new_episode(self, seed: int) -> GameState: ...


class ActionList(list[str]):
    """Canonical legal actions plus `aliases`, other spellings of them that answers may use
    (alias -> canonical action; chess: `e2e4` -> `e4`, `Qh5` -> `Qh5+`). The parser
    (`games.parsing`) matches an answer against both and returns the canonical action; the
    list itself, what prompts show and constrained decoding allows, holds only canonical
    actions, so it compares and copies as a plain list. `listed` is False where the game's view
    does not list them (chess in ZeroSumEval's setting): prompts then name none of them."""

    def __init__(
        self,
        actions: Iterable[str] = (),
        aliases: Mapping[str, str] | None = None,
        listed: bool = True,
    ):
        super().__init__(actions)
        self.aliases: dict[str, str] = dict(aliases or {})
        self.listed = listed


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
