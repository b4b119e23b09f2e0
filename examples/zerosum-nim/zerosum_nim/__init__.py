"""Nim as a zerosum game: the `Game` and `GameState` protocols of `zerosum.games.base`,
nothing else. Three heaps of 1-5 stones (from the episode's seed); a move takes 1-3 stones
from one heap, written `take K from heap H`; whoever takes the last stone wins (+1/-1)."""

from __future__ import annotations

import random

from zerosum.games.base import Capabilities, IllegalActionError

RULES = (
    "Nim: there are three heaps of stones. Players alternate; a move takes 1, 2 or 3 stones "
    "from one heap. Whoever takes the last stone wins."
)
MAX_TAKE = 3


class NimState:
    invalid_reason: str | None = None

    def __init__(self, seed: int) -> None:
        rng = random.Random(seed)
        self.heaps = [rng.randint(1, 5) for _ in range(3)]
        self.seat = 0
        self.history: list[tuple[int, str]] = []

    def current_seat(self) -> int:
        return self.seat

    def legal_actions(self) -> list[str]:
        return [
            f"take {k} from heap {h + 1}"
            for h, size in enumerate(self.heaps)
            for k in range(1, min(MAX_TAKE, size) + 1)
        ]

    def apply_action(self, action: str) -> None:
        if action not in self.legal_actions():
            raise IllegalActionError(f"{action!r} is not a legal move")
        words = action.split()
        self.heaps[int(words[-1]) - 1] -= int(words[1])
        self.history.append((self.seat, action))
        self.seat = 1 - self.seat

    def is_terminal(self) -> bool:
        return sum(self.heaps) == 0

    def returns(self) -> tuple[float, float]:
        if not self.is_terminal():
            return (0.0, 0.0)
        winner = self.history[-1][0]  # took the last stone
        return (1.0, -1.0) if winner == 0 else (-1.0, 1.0)

    def move_history(self) -> list[tuple[int, str]]:
        return list(self.history)

    def observation(self, seat: int, include_rules: bool = True) -> str:
        lines = [f"You are Player {seat} in a game of Nim."]
        if include_rules:
            lines.append(f"Rules: {RULES}")
        lines.append("Heaps: " + ", ".join(f"heap {i + 1}: {n}" for i, n in enumerate(self.heaps)))
        lines += [f"Player {s}: {a}" for s, a in self.history] or ["No moves have been made yet."]
        if not self.is_terminal() and seat == self.seat:
            legal = ", ".join(f"[{a}]" for a in self.legal_actions())
            lines.append(f"It is your turn. Legal actions: {legal}")
        return "\n".join(lines)


class NimGame:
    name = "nim"
    description = "Nim with three heaps (an example plugin)."
    capabilities = Capabilities(finite_actions=True, perfect_information=True)
    max_turns = 15  # 3 heaps of at most 5 stones, one stone a move at the least

    def rules(self) -> str:
        return RULES

    def new_episode(self, seed: int) -> NimState:
        return NimState(seed)
