"""TextArena language games (negotiation, deception) as zerosum `Game`s.

TextArena 0.7.4 is the source of truth for the rules; this module wraps one raw env
(`<id>-raw`: no LLM/network wrappers) per episode and fixes four things about it:

- Randomness. TextArena seeds and draws from the process-global `random`. Every env call
  runs inside `IsolatedRandom.active()`, which swaps in the episode's own `random` state and
  puts the caller's back afterwards: the same seed replays the same episode whatever else
  the process does with `random`, and the caller's stream is left untouched.
- Invalid moves. `TwoPlayerState.set_invalid_move` normally grants one retry
  (`error_allowance=1`) and only ends the game (offender -1, other +1) on a second offence.
  SPIRAL ends the game at the first invalid move, so the allowance is set to 0: TextArena then
  ends the game itself and flags `game_info[seat]["invalid_move"]`. The state exposes
  `invalid_seat` and `invalid_reason`.
- Returns. TextArena's `state.rewards` dict ({winner: 1, loser: -1} or {0: 0, 1: 0} for a
  draw) is mapped by the sign of `rewards[0] - rewards[1]` to (+1, -1), (-1, +1) or (0, 0).
- Exploits. TruthAndDeception scores a guess naming both `[Fact 1]` and `[Fact 2]` as correct
  whatever the truth; self-play would find that, so here such a guess is an invalid move.

Moves are free text (`legal_actions()` is None; [] once the game is over): the caller passes
only the extracted move, which is what the opponent sees, quoted (`text.quote_message`): every
player message is shown as one JSON string literal after its sender (`[Player 0] "Hi\nIt is
your turn."`), so a move with line breaks cannot write lines of its own into the opponent's
prompt (a fake "It is your turn." or "[GAME] ..." line); TextArena only deletes exact role
tags such as `[GAME]` from moves, which `[GA[GAME]ME]` defeats. For simple_negotiation a move
without any square bracket is wrapped in brackets first (`Accept` -> `[Accept]`), as
TextArena's registered default `ActionFormattingWrapper` does for that id.
Turn limits are TextArena's own: SimpleNegotiation-v0 has max_turns=10 but checks the limit
before counting the move, so an episode without invalid moves lasts 11 moves;
TruthAndDeception-v0 lasts 6 (the Guesser's 3rd message is the guess).
"""

from __future__ import annotations

import random
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from zerosum.games.base import Capabilities, IllegalActionError
from zerosum.games.text import quote_message

SEATS = (0, 1)
_GAME_ID = -1  # textarena.GAME_ID: the sender id of game messages
# One lock for every swap of the global `random` state, so threads do not interleave swaps
# (code that uses `random` in another thread at the same moment still sees the swap).
_RANDOM_LOCK = threading.RLock()


class IsolatedRandom:
    """An episode-private state for the process-global `random` module.

    Code run under `with rng.active():` draws from this object's stream, which carries over
    from one `active()` block to the next; the caller's global state is restored on exit.
    """

    def __init__(self, seed: int) -> None:
        self._state = random.Random(seed).getstate()

    @contextmanager
    def active(self) -> Iterator[None]:
        with _RANDOM_LOCK:
            saved = random.getstate()
            random.setstate(self._state)
            try:
                yield
            finally:
                self._state = random.getstate()
                random.setstate(saved)


# (TextArena state, move) -> reason the move is invalid, or None. Runs before env.step.
MoveCheck = Callable[[Any, str], "str | None"]


class TextArenaGame:
    """A `Game` backed by a registered TextArena two-player env id."""

    def __init__(
        self,
        name: str,
        env_id: str,
        description: str,
        rules: str,
        bracket_bare_moves: bool = False,
        check_move: MoveCheck | None = None,
        asymmetric_seats: bool = False,
    ) -> None:
        self.name = name
        self.env_id = env_id
        self.description = description
        self._rules = rules
        self.bracket_bare_moves = bracket_bare_moves
        self.check_move = check_move
        # Any text is a move (no finite list), and each seat holds private facts.
        self.capabilities = Capabilities(finite_actions=False, asymmetric_seats=asymmetric_seats)

    def rules(self) -> str:
        return self._rules

    def new_episode(self, seed: int) -> TextArenaState:
        return TextArenaState(self, seed)

    def __repr__(self) -> str:
        return f"TextArenaGame({self.name!r}, env_id={self.env_id!r})"


class TextArenaState:
    """One episode: a fresh TextArena env, reset under the episode's own `random` state."""

    def __init__(self, game: TextArenaGame, seed: int) -> None:
        import textarena as ta  # lazy: importing textarena costs ~1.5 s (it loads nltk)

        self.game = game
        self.seed = seed
        self.invalid_seat: int | None = None
        self.invalid_reason: str | None = None
        self._moves: list[tuple[int, str]] = []
        self._rejected: tuple[int, str] | None = None
        self._rng = IsolatedRandom(seed)
        with self._rng.active():
            self.env = ta.make(f"{game.env_id}-raw")
            self.env.reset(num_players=2, seed=seed)
        self.env.state.error_allowance = 0  # first invalid move ends the game (see module doc)

    # -- protocol --------------------------------------------------------------
    def current_seat(self) -> int:
        return int(self.env.state.current_player_id)

    def legal_actions(self) -> list[str] | None:
        """None: any text is a candidate move, validated by TextArena. [] once over."""
        return [] if self.is_terminal() else None

    def apply_action(self, action: str) -> None:
        """Send the move (only the move: the opponent sees it verbatim) to env.step; an
        invalid move ends the game with the mover at -1."""
        if self.is_terminal():
            raise IllegalActionError(f"game is over; cannot play {str(action)[:40]!r}")
        if not isinstance(action, str):
            raise IllegalActionError(f"action must be a string, got {type(action).__name__}")
        seat = self.current_seat()
        move = action
        if self.game.bracket_bare_moves and "[" not in move and "]" not in move:
            move = f"[{move}]"
        self._moves.append((seat, move))
        reason = self.game.check_move(self.env.state, move) if self.game.check_move else None
        if reason is not None:
            self.invalid_seat, self.invalid_reason = seat, reason
            self._rejected = (seat, move)
            return
        with self._rng.active():
            self.env.step(move)
        for pid in SEATS:
            info = self.env.state.game_info[pid]
            if info.get("invalid_move"):
                self.invalid_seat = pid
                self.invalid_reason = str(info.get("reason") or "invalid move")

    def is_terminal(self) -> bool:
        return self.invalid_seat is not None or bool(self.env.state.done)

    def returns(self) -> tuple[float, float]:
        """Zero-sum +1/-1/0 from TextArena's rewards; (0, 0) before the end."""
        if self.invalid_seat is not None:
            return (-1.0, 1.0) if self.invalid_seat == 0 else (1.0, -1.0)
        rewards = self.env.state.rewards
        if not self.is_terminal() or not rewards:
            return (0.0, 0.0)
        diff = float(rewards.get(0, 0)) - float(rewards.get(1, 0))
        if diff == 0:
            return (0.0, 0.0)
        return (1.0, -1.0) if diff > 0 else (-1.0, 1.0)

    def observation(self, seat: int, include_rules: bool = True) -> str:
        """TextArena's prompt for `seat` and the messages it was sent (its own private info
        only), then whose turn it is or how the game ended. TextArena's prompt holds the
        rules and the private information together, so `include_rules` cannot drop them.
        Player messages are quoted (`quote_message`): one line each, never the game's voice."""
        _check_seat(seat)
        state = self.env.state
        prompt, transcript = "", []
        for sender, message, kind in state.observations[seat]:
            if getattr(kind, "name", "") == "PROMPT":
                prompt = message
            elif sender == _GAME_ID:
                transcript.append(f"[GAME] {message}")
            else:
                transcript.append(f"[{self._seat_name(sender)}] {quote_message(message)}")
        if self._rejected is not None:  # a move refused before reaching TextArena
            seat_name = self._seat_name(self._rejected[0])
            transcript.append(f"[{seat_name}] {quote_message(self._rejected[1])}")
        lines = [prompt, ""]
        if transcript:
            lines += ["Messages so far (player messages quoted as JSON strings):", *transcript]
        else:
            lines.append("No messages yet.")
        lines.append("")
        lines.append(self._status_line(seat))
        return "\n".join(lines)

    def move_history(self) -> list[tuple[int, str]]:
        return list(self._moves)

    # -- helpers -----------------------------------------------------------------
    def _status_line(self, seat: int) -> str:
        if not self.is_terminal():
            if self.current_seat() == seat:
                return "It is your turn."
            return f"Waiting for {self._seat_name(1 - seat)}."
        r = self.returns()[seat]
        result = "You won." if r > 0 else "You lost." if r < 0 else "It is a draw."
        if self.invalid_seat is not None:
            why = (
                f"{self._seat_name(self.invalid_seat)} made an invalid move: {self.invalid_reason}"
            )
        else:
            why = str(self.env.state.game_info[seat].get("reason", ""))
        return f"The game is over. {why} {result}".replace("  ", " ")

    def _seat_name(self, seat: int) -> str:
        return str(self.env.state.role_mapping.get(seat, f"Player {seat}"))


def _check_seat(seat: int) -> None:
    if isinstance(seat, bool) or seat not in SEATS:
        raise ValueError(f"unknown seat {seat!r}; seats are 0 and 1")


# --- the games -------------------------------------------------------------------
_FACT1 = re.compile(r"\[Fact 1\]", re.IGNORECASE)  # TextArena's own guess patterns
_FACT2 = re.compile(r"\[Fact 2\]", re.IGNORECASE)


def _truth_and_deception_check(state: Any, move: str) -> str | None:
    """TextArena 0.7.4 counts a guess naming both facts as correct whichever is true."""
    guessing = state.turn == state.max_turns - 1
    if guessing and _FACT1.search(move) and _FACT2.search(move):
        return f"Player {state.current_player_id} named both [Fact 1] and [Fact 2] in one guess."
    return None


SIMPLE_NEGOTIATION = TextArenaGame(
    name="simple_negotiation",
    env_id="SimpleNegotiation-v0",
    description="a resource-trading negotiation with private valuations (TextArena)",
    rules=(
        "Each player holds quantities of five resources (Wheat, Wood, Sheep, Brick, Ore) and "
        "values each resource privately. Players alternate messages. A message may contain one "
        "trade offer, written '[Offer: 3 Sheep, 2 Ore -> 5 Brick]' (what you give -> what you "
        "ask for), '[Accept]' to accept the opponent's standing offer, or '[Deny]' to reject "
        "it; any other text is talk. A message without square brackets is wrapped in them. "
        "When TextArena's turn limit is reached, the player whose inventory value (at their "
        "own valuations) rose more wins; equal gains are a draw. A malformed offer, an offer "
        "of resources you do not hold, or accepting without holding what is asked is an "
        "invalid move and loses."
    ),
    bracket_bare_moves=True,
)

TRUTH_AND_DECEPTION = TextArenaGame(
    name="truth_and_deception",
    env_id="TruthAndDeception-v0",
    description="a deceiver and a guesser talk before the guesser picks the true fact (TextArena)",
    rules=(
        "Player 0, the Deceiver, knows which of two facts is true; Player 1, the Guesser, sees "
        "both facts unlabelled. They exchange free-text messages in turn. On the Guesser's "
        "last turn the message must contain exactly one of '[Fact 1]' or '[Fact 2]': a correct "
        "guess wins for the Guesser, a wrong one wins for the Deceiver. A final message with "
        "neither or both is an invalid move and the Guesser loses."
    ),
    check_move=_truth_and_deception_check,
    asymmetric_seats=True,
)

TEXTARENA_GAMES: tuple[TextArenaGame, ...] = (SIMPLE_NEGOTIATION, TRUTH_AND_DECEPTION)
