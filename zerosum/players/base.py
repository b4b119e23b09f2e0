"""The player protocol: anything that picks a move for the seat to act."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from zerosum.games.base import GameState


@dataclass(frozen=True)
class Usage:
    """Tokens of one answer: the prompt's and the generated ones (None where unknown), and
    who counted them: "tokenizer" (a local model's own) or "api" (as the API reported)."""

    prompt: int | None
    generated: int | None
    counted_by: str


@dataclass(frozen=True)
class Move:
    """A player's answer: the canonical legal action, or None with the reason it is invalid."""

    action: str | None
    response: str = ""  # raw text for language-model players; never shown to the opponent
    reason: str | None = None
    usage: Usage | None = None  # language-model players: the answer's tokens

    def transcript_entry(self, seat: int) -> dict:
        """The move as a transcript keeps it (arena databases, `zerosum play`): seat, reply,
        action, reason, and for language-model players its token counts."""
        entry = {"seat": seat, "reply": self.response, "action": self.action, "reason": self.reason}
        if (u := self.usage) is not None:
            entry |= {"tokens": u.generated, "prompt_tokens": u.prompt, "counted_by": u.counted_by}
        return entry


class Player(Protocol):
    name: str

    def act(self, state: GameState, rng: np.random.Generator, feedback: str | None = None) -> Move:
        """Choose a move for `state.current_seat()`.

        `rng` is the episode's player RNG (reproducible games); `feedback` explains why the
        previous attempt was rejected when the invalid-move policy retries.
        """
        ...
