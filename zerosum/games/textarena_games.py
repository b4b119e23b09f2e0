"""TextArena's two-player games as zerosum `Game`s (`TEXTARENA_GAMES`), and every other
TextArena env with the reason it is left out (`EXCLUDED`; `textarena_catalogue` lists them
all, the docs' games page shows the table).

TextArena 0.7.4 is the source of truth for the rules; this module wraps one raw env
(`<id>-raw`: no LLM/network wrappers) per episode, reset for two players, and fixes these
things about it:

- Randomness. TextArena seeds and draws from the process-global `random`. Every env call
  runs inside `IsolatedRandom.active()`, which swaps in the episode's own `random` state and
  puts the caller's back afterwards: the same seed replays the same episode whatever else
  the process does with `random`, and the caller's stream is left untouched.
- Invalid moves. TextArena's states normally grant one retry (`error_allowance=1`) and only
  end the game (offender -1, other +1) on a second offence. SPIRAL ends the game at the
  first invalid move, so the allowance is set to 0: TextArena then flags
  `game_info[seat]["invalid_move"]`, and the episode ends there with the mover at -1. The
  state exposes `invalid_seat` and `invalid_reason` (kept from the state's
  `set_invalid_move`, since multi-player states played by two do not record it).
- Returns. TextArena's `state.rewards` dict ({winner: 1, loser: -1}, {0: 0, 1: 0} for a
  draw; multi-player states rank players in [-1, 1]) is mapped by the sign of
  `rewards[0] - rewards[1]` to (+1, -1), (-1, +1) or (0, 0). Games whose payoffs are
  general-sum are left out rather than mapped.
- Rule bugs. Where TextArena 0.7.4 lets something other than play decide a game (a guess
  naming both facts counted correct, a proposer accepting its own offer, a tie given to one
  seat, bets that never reach the pot, a full board where the player to move has no legal
  move), a game's `check_move` refuses the move or its `step` hook mends the state; each is
  described in the game's `notes` and tested on the unmended env.
- Views. Only a seat's newest board is shown (TextArena sends one after every move), and
  words of the players that the game repeats in its own messages are quoted
  (`text.quote_echoes`).

Moves are free text (`legal_actions()` is None; [] once the game is over): the caller passes
only the extracted move, which is what the opponent sees, quoted (`text.quote_message`): every
player message is shown as one JSON string literal after its sender (`[Player 0] "Hi\nIt is
your turn."`), so a move with line breaks cannot write lines of its own into the opponent's
prompt (a fake "It is your turn." or "[GAME] ..." line); TextArena only deletes exact role
tags such as `[GAME]` from moves, which `[GA[GAME]ME]` defeats. A move without any square
bracket is wrapped in brackets first (`Accept` -> `[Accept]`) for the ids whose registered
default wrappers include TextArena's `ActionFormattingWrapper`, as that wrapper does.
Turn limits are TextArena's own: SimpleNegotiation-v0 has max_turns=10 but checks the limit
before counting the move, so an episode without invalid moves lasts 11 moves;
TruthAndDeception-v0 lasts 6 (the Guesser's 3rd message is the guess); a few games
(SpiteAndMalice, Santorini) have none, and the rollout's `max_turns` ends them.
"""

from __future__ import annotations

import random
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache, cached_property
from typing import Any

from zerosum.games.base import Capabilities, IllegalActionError
from zerosum.games.text import quote_echoes, quote_message

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
# (env, seat, move) -> None: plays the move (calls env.step) and mends what TextArena gets wrong.
StepHook = Callable[[Any, int, str], None]


def _plain_step(env: Any, seat: int, move: str) -> None:
    env.step(move)


class TextArenaGame:
    """A `Game` backed by a registered TextArena env id, played by two seats.

    `rules` replaces the generated rules text; `check_move` refuses moves before TextArena
    sees them; `step` plays a move in place of `env.step` (to mend a rule); `latest_board`
    (the default) shows a seat only the newest of its boards (TextArena's `GAME_BOARD`
    messages, each a whole rendering of what the seat may see), so a long game does not
    repeat every past board; `notes` say what zerosum changed, in `rules()`."""

    def __init__(
        self,
        name: str,
        env_id: str,
        description: str,
        rules: str = "",
        check_move: MoveCheck | None = None,
        step: StepHook | None = None,
        asymmetric_seats: bool = False,
        latest_board: bool = True,
        notes: str = "",
    ) -> None:
        self.name = name
        self.env_id = env_id
        self.description = description
        self._rules = rules
        self.check_move = check_move
        self.step = step or _plain_step
        self.latest_board = latest_board
        self.notes = notes
        # Any text is a move (no finite list); TextArena judges it when it is played.
        self.capabilities = Capabilities(finite_actions=False, asymmetric_seats=asymmetric_seats)

    @cached_property
    def bracket_bare_moves(self) -> bool:
        """Whether a move without square brackets is wrapped in them (`4` -> `[4]`): as
        TextArena's registered default wrappers for the id do (`ActionFormattingWrapper`)."""
        from textarena.envs.registration import ENV_REGISTRY  # lazy: see TextArenaState

        wrappers = ENV_REGISTRY[self.env_id].default_wrappers or ()
        return any(w.__name__ == "ActionFormattingWrapper" for w in wrappers)

    def rules(self) -> str:
        if self._rules:
            return self._rules
        text = (
            f"TextArena's {self.env_id}: {self.description}. TextArena's own prompt, at the top "
            "of each seat's view, states the rules and the move format. An invalid move ends "
            "the game: the player who made it loses."
        )
        return f"{text} {self.notes}" if self.notes else text

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
        # Game messages that repeat a player's words, as shown: (seat, index) -> quoted text.
        self._echoes: dict[tuple[int, int], str] = {}
        self._rejected: tuple[int, str] | None = None
        self._rng = IsolatedRandom(seed)
        with self._rng.active():
            self.env = ta.make(f"{game.env_id}-raw")
            self.env.reset(num_players=2, seed=seed)
        self.env.state.error_allowance = 0  # first invalid move ends the game (see module doc)
        self.env.state.__class__ = _recording(type(self.env.state))
        # Messages of each seat before any move, or already checked for echoes of moves.
        self._seen = [len(self.env.state.observations[p]) for p in SEATS]

    # -- protocol --------------------------------------------------------------
    def current_seat(self) -> int:
        return int(self.env.state.current_player_id)

    def legal_actions(self) -> list[str] | None:
        """None: any text is a candidate move, validated by TextArena. [] once over."""
        return [] if self.is_terminal() else None

    def apply_action(self, action: str) -> None:
        """Send the move (only the move: the opponent sees it, quoted) to TextArena; an
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
            self.game.step(self.env, seat, move)
        self._find_echoes()
        for pid in SEATS:
            info = self.env.state.game_info[pid]
            if info.get("invalid_move"):
                reason = getattr(self.env.state, "zerosum_invalid_reason", None)
                reason = _reason_text(reason or info.get("reason")) or "invalid move"
                self.invalid_seat, self.invalid_reason = pid, self._quoted(reason)
                break

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
        Player messages are quoted (`quote_message`): one line each, never the game's voice;
        a player's move that the game repeats in its own messages is quoted there too."""
        _check_seat(seat)
        state = self.env.state
        messages = state.observations[seat]
        boards = [i for i, (_, _, kind) in enumerate(messages) if _kind(kind) == "GAME_BOARD"]
        hidden = set(boards[:-1]) if self.game.latest_board else set()
        prompt, transcript = "", []
        for i, (sender, message, kind) in enumerate(messages):
            if _kind(kind) == "PROMPT":
                prompt = message
            elif i in hidden:
                continue
            elif sender == _GAME_ID:
                transcript.append(f"[GAME] {self._echoes.get((seat, i), message)}")
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
        """The moves played, as TextArena received them (in simultaneous-move games the
        opponent does not see a move until the round is resolved)."""
        return list(self._moves)

    # -- helpers -----------------------------------------------------------------
    def _quoted(self, text: str) -> str:
        """Game text with the players' words it repeats quoted (`text.quote_echoes`)."""
        return quote_echoes(text, dict.fromkeys(move for _, move in self._moves))

    def _find_echoes(self) -> None:
        """Check the game messages the last move added for words of the players'."""
        for pid in SEATS:
            messages = self.env.state.observations[pid]
            for i in range(self._seen[pid], len(messages)):
                sender, message, _ = messages[i]
                if sender == _GAME_ID and (shown := self._quoted(message)) != message:
                    self._echoes[(pid, i)] = shown
            self._seen[pid] = len(messages)

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
            why = self._quoted(_reason_text(self.env.state.game_info[seat].get("reason")))
        return f"The game is over. {why} {result}".replace("  ", " ")

    def _seat_name(self, seat: int) -> str:
        return str(self.env.state.role_mapping.get(seat, f"Player {seat}"))


@cache
def _recording(state_class: type) -> type:
    """`state_class` (a TextArena state) that also keeps the reason of the last invalid move
    as `zerosum_invalid_reason`: multi-player states (Poker, LiarsDice, Snake, ... played by
    two) record only that a move was invalid, not why."""

    class Recording(state_class):
        def set_invalid_move(self, reason: Any, *args: Any, **kwargs: Any) -> Any:
            self.zerosum_invalid_reason = reason
            return super().set_invalid_move(reason, *args, **kwargs)

    Recording.__name__ = Recording.__qualname__ = state_class.__name__
    return Recording


def _kind(kind: Any) -> str:
    return getattr(kind, "name", "")


def _reason_text(reason: Any) -> str:
    """TextArena's end-of-game reason as text (a game may give a list of strings)."""
    if isinstance(reason, (list, tuple)):
        return " ".join(str(r) for r in reason)
    return str(reason or "")


def _check_seat(seat: int) -> None:
    if isinstance(seat, bool) or seat not in SEATS:
        raise ValueError(f"unknown seat {seat!r}; seats are 0 and 1")


# --- mending TextArena 0.7.4's rules ------------------------------------------------
# Each hook plays the move (`env.step`) and corrects one upstream bug; tests/test_textarena_games.py
# shows each bug on the unmended env and its correction here.
_FACT1 = re.compile(r"\[Fact 1\]", re.IGNORECASE)  # TextArena's own guess patterns
_FACT2 = re.compile(r"\[Fact 2\]", re.IGNORECASE)
_KUHN_MOVE = re.compile(r"\[(Check|Bet|Fold|Call)\]", re.IGNORECASE)  # KuhnPokerEnv's own
_DIRECTIONS = ("up", "w", "down", "s", "left", "a", "right", "d")  # Snake's and Surround's


def _truth_and_deception_check(state: Any, move: str) -> str | None:
    """TextArena 0.7.4 counts a guess naming both facts as correct whichever is true."""
    guessing = state.turn == state.max_turns - 1
    if guessing and _FACT1.search(move) and _FACT2.search(move):
        return f"Player {state.current_player_id} named both [Fact 1] and [Fact 2] in one guess."
    return None


def _direction_check(state: Any, move: str) -> str | None:
    """Snake and Surround kill a snake whose move names no direction, without flagging an
    invalid move; here that move is invalid, with the reason recorded."""
    if not any(f"[{d}]" in move.lower() for d in _DIRECTIONS):
        return (
            "The move names no direction: [up], [down], [left] or [right] (or [w], [s], [a], [d])."
        )
    return None


def _negotiation_step(env: Any, seat: int, move: str) -> None:
    """SimpleNegotiation announces any answer but [Accept] as "rejected the trade offer" yet
    keeps the offer open, so its proposer can [Accept] its own offer next turn (a trade from
    Player 0 to Player 0). Here the recipient's answer closes the offer, as announced."""
    game_state = env.state.game_state
    offer = game_state.get("current_offer")
    env.step(move)
    if (
        offer is not None
        and game_state.get("current_offer") is offer
        and offer["to_player"] == seat
    ):
        game_state["current_offer"] = None


def _kuhn_step(env: Any, seat: int, move: str) -> None:
    """KuhnPoker's [bet] and [call] never put a chip into the pot (the pot stays at the two
    antes whatever is bet), so betting changes nothing; here each adds 1 chip, as its
    prompt says."""
    game_state = env.state.game_state
    tree = game_state["current_legal_action_tree"]
    match = _KUHN_MOVE.search(move.strip())
    kind = match.group(1).lower() if match else None
    if kind in ("bet", "call") and isinstance(tree, dict) and kind in tree:
        game_state["pot"] += 1
        game_state["player_chips"][seat] -= 1
    env.step(move)


def _indian_poker_step(env: Any, seat: int, move: str) -> None:
    """IndianPoker remembers a round's first [check] in `second_check` and never clears it
    at the next round, so after a check-check round one [check] ends the next round in a
    showdown; here a round starts with it cleared."""
    game_state = env.state.game_state
    if game_state.get("prev_action") is None:
        game_state["second_check"] = False
    env.step(move)


def _ended_by_play(state: Any) -> bool:
    return bool(state.done) and not any(i.get("invalid_move") for i in state.game_info.values())


def _tie_is_a_draw(scores: Callable[[Any], tuple[float, float]], what: str) -> StepHook:
    """A hook for games that give a tie to one seat (`max`/`min`/a stable sort over the
    seats): equal `scores` at the end are a draw."""

    def step(env: Any, seat: int, move: str) -> None:
        env.step(move)
        state = env.state
        if _ended_by_play(state) and state.rewards:
            first, second = scores(state)
            if first == second and state.rewards.get(0) != state.rewards.get(1):
                state.set_draw(reason=f"Both players have {first} {what}: a draw.")

    return step


def _ultimate_step(env: Any, seat: int, move: str) -> None:
    """UltimateTicTacToe calls a draw only when every small board is won; when the last
    cells fill with some small board drawn, the game goes on with no legal move left, and
    whoever is to move loses by an invalid move. Here a full board without a winner is a
    draw."""
    env.step(move)
    state = env.state
    boards = state.game_state["board"]
    if not state.done and all(cell != " " for board in boards for row in board for cell in row):
        state.set_draw(reason="Every cell is taken and nobody has three small boards in a row.")


def _high_society_step(env: Any, seat: int, move: str) -> None:
    """HighSociety's prompt scores "remaining cash + prestige points" but the env counts
    prestige only; here the money cards left count too, as the prompt says."""
    env.step(move)
    state = env.state
    if _ended_by_play(state):
        game_state = state.game_state
        worth = [
            game_state["player_prestige"][p] + sum(game_state["player_money"][p]) for p in SEATS
        ]
        if worth[0] == worth[1]:
            state.set_draw(reason=f"Both net worths (money cards left + prestige) are {worth[0]}.")
        else:
            winner = 0 if worth[0] > worth[1] else 1
            state.set_winner(
                winner,
                reason=f"Net worth (money cards left + prestige): Player {winner} "
                f"{worth[winner]}, Player {1 - winner} {worth[1 - winner]}.",
            )


# --- the games -------------------------------------------------------------------------
SIMPLE_NEGOTIATION = TextArenaGame(
    name="simple_negotiation",
    env_id="SimpleNegotiation-v0",
    description="a resource-trading negotiation with private valuations (TextArena)",
    rules=(
        "Each player holds quantities of five resources (Wheat, Wood, Sheep, Brick, Ore) and "
        "values each resource privately. Players alternate messages. A message may contain one "
        "trade offer, written '[Offer: 3 Sheep, 2 Ore -> 5 Brick]' (what you give -> what you "
        "ask for), '[Accept]' to accept the opponent's standing offer, or '[Deny]' to reject "
        "it; any other text is talk. An offer stands for the opponent's next message only: "
        "any answer but '[Accept]' rejects it. A message without square brackets is wrapped in "
        "them. When TextArena's turn limit is reached, the player whose inventory value (at "
        "their own valuations) rose more wins; equal gains are a draw. A malformed offer, an "
        "offer of resources you do not hold, or accepting without holding what is asked is an "
        "invalid move and loses."
    ),
    step=_negotiation_step,
    notes="An offer stands for one reply: any answer but [Accept] closes it (TextArena 0.7.4 "
    "keeps it open, so its proposer could accept it next turn, a trade with itself).",
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
    notes="A final guess naming both facts is an invalid move (TextArena 0.7.4 counts it as "
    "correct).",
)


_NO_DIRECTION = (
    "A move naming no direction is an invalid move (TextArena 0.7.4 kills the snake without "
    "flagging an invalid move)."
)


def _ta(name: str, env_id: str, description: str, **options: Any) -> TextArenaGame:
    return TextArenaGame(name, env_id, f"{description} (TextArena)", **options)


TEXTARENA_GAMES: tuple[TextArenaGame, ...] = (
    SIMPLE_NEGOTIATION,
    TRUTH_AND_DECEPTION,
    _ta("alquerque", "Alquerque-v0", "Alquerque on a 5x5 board, scored by captures"),
    _ta("battleship", "Battleship-v0", "Battleship on a 5x5 grid, ships placed at random"),
    _ta("breakthrough", "Breakthrough-v0", "Breakthrough on an 8x8 board"),
    _ta(
        "briscola",
        "Briscola-v0",
        "the Italian trick-taking card game Briscola, two players",
        step=_tie_is_a_draw(
            lambda s: tuple(s.game_state["points_won"][p] for p in SEATS), "points"
        ),
        notes="A 60-60 tie is a draw (TextArena 0.7.4 gives it to Player 0).",
    ),
    _ta("chopsticks", "Chopsticks-v0", "the finger game Chopsticks (attack and split)"),
    _ta(
        "colonel_blotto",
        "ColonelBlotto-v0",
        "Colonel Blotto: 20 units over 3 fields, chosen blind, 9 rounds",
    ),
    _ta("ta_connect_four", "ConnectFour-v0", "Connect Four on a 6x7 board"),
    _ta(
        "crusade",
        "Crusade-v0",
        "Crusade: knight-moving pieces on a chess board, scored by captures",
    ),
    _ta(
        "game_of_pure_strategy",
        "GameOfPureStrategy-v0",
        "the Game of Pure Strategy (Goofspiel): blind bids for 13 prize cards",
    ),
    _ta(
        "german_whist",
        "GermanWhist-v0",
        "German Whist: two-player trick taking with a learning phase",
    ),
    _ta(
        "golf",
        "Golf-v0",
        "the card game Golf, one round on a 2x3 grid of cards",
        step=_tie_is_a_draw(
            lambda s: tuple(s.game_state["players"][p]["score"] for p in SEATS), "points"
        ),
        notes="Equal scores are a draw (TextArena 0.7.4 gives the tie to Player 0).",
    ),
    _ta(
        "high_society",
        "HighSociety-v0",
        "High Society for two: blind bids with money cards for 10 prestige cards",
        step=_high_society_step,
        notes="Net worth is the money cards left plus prestige, as the prompt says (TextArena "
        "0.7.4 counts prestige only).",
    ),
    _ta(
        "indian_poker",
        "IndianPoker-v0",
        "Indian Poker: each player sees only the opponent's card, 5 rounds of betting",
        step=_indian_poker_step,
        notes="A check-check round no longer makes the next round's first [check] a showdown.",
    ),
    _ta(
        "iterated_matching_pennies",
        "IteratedMatchingPennies-v0",
        "Matching Pennies, 10 blind rounds (Player 0 matches, Player 1 mismatches)",
        asymmetric_seats=True,
    ),
    _ta(
        "iterated_rock_paper_scissors",
        "IteratedRockPaperScissors-v0",
        "Rock-Paper-Scissors, 9 blind rounds",
    ),
    _ta(
        "iterated_two_thirds_average",
        "IteratedTwoThirdsAverage-v0",
        "guess 2/3 of the average of both guesses, 10 blind rounds",
    ),
    _ta(
        "ta_kuhn_poker",
        "KuhnPoker-v0",
        "Kuhn Poker over 3 rounds, most chips wins",
        step=_kuhn_step,
        notes="[bet] and [call] put a chip into the pot, as the prompt says (in TextArena 0.7.4 "
        "the pot stays at the antes).",
    ),
    _ta("lines_of_action", "LinesOfAction-v0", "Lines of Action on an 8x8 board"),
    _ta("memory_game", "MemoryGame-v0", "Memory (Concentration) on a 4x4 grid, most pairs wins"),
    _ta("ta_nim", "Nim-v0", "Nim with piles 3, 4, 5; taking the last object wins"),
    _ta("othello", "Othello-v0", "Othello (Reversi) on an 8x8 board"),
    _ta("pig_dice", "PigDice-v0", "the dice game Pig to 100 points"),
    _ta(
        "poker",
        "Poker-v0",
        "heads-up Texas Hold'em, 10 hands, more chips wins",
        step=_tie_is_a_draw(
            lambda s: tuple(s.game_state["player_chips"][p] for p in SEATS), "chips"
        ),
        notes="Equal stacks at the end are a draw (TextArena 0.7.4 ranks Player 1 first).",
    ),
    _ta(
        "santorini",
        "SantoriniBaseFixed-v0",
        "Santorini (base game, workers placed for you) on a 5x5 board",
    ),
    _ta(
        "simple_blind_auction",
        "SimpleBlindAuction-v0",
        "talk, then sealed bids on 5 items valued privately; higher net worth wins",
    ),
    _ta("simple_tak", "SimpleTak-v0", "SimpleTak: connect opposite edges of a 4x4 board"),
    _ta(
        "snake",
        "Snake-v0",
        "two snakes on a 5x5 grid, moving at once; survive or grow longest",
        check_move=_direction_check,
        notes=_NO_DIRECTION,
    ),
    _ta(
        "spite_and_malice",
        "SpiteAndMalice-v0",
        "the card game Spite and Malice: empty your payoff pile first",
    ),
    _ta(
        "surround",
        "Surround-v0",
        "Surround (Tron) on a 5x5 grid, moving at once; outlive the other",
        check_move=_direction_check,
        notes=_NO_DIRECTION,
    ),
    _ta("ta_tic_tac_toe", "TicTacToe-v0", "Tic-Tac-Toe"),
    _ta(
        "ultimate_tic_tac_toe",
        "UltimateTicTacToe-v0",
        "Ultimate Tic-Tac-Toe: nine boards, each move sends the opponent to one",
        step=_ultimate_step,
        notes="A full board without a winner is a draw (in TextArena 0.7.4 the game goes on "
        "with no legal move, and the player to move loses).",
    ),
    _ta(
        "wild_tic_tac_toe",
        "WildTicTacToe-v0",
        "Wild Tic-Tac-Toe: either player may place X or O",
    ),
    _ta(
        "ta_liars_dice",
        "LiarsDice-v0",
        "Liar's Dice with 5 dice each, last player with dice wins",
    ),
)


# --- every TextArena env, registered or excluded ----------------------------------------
_SINGLE = "single-player"
_PY312 = (
    "broken upstream: its module is a SyntaxError before Python 3.12 (quotes nested in an "
    "f-string); zerosum supports 3.10+"
)
_NLTK = (
    "needs the network: it downloads NLTK's `words` corpus when made (not shipped with TextArena)"
)
_JURY = "needs a judge: a jury of LLMs over OpenRouter (OPENROUTER_API_KEY) decides the winner"

# TextArena 0.7.4 env ids (their `-raw` variants are the ones played) that zerosum does not
# register, with the reason; one id per game, its other ids being variants of it.
# tests/test_docs.py checks that every TextArena env is registered or listed here.
EXCLUDED: dict[str, str] = {
    # two players, but not a zero-sum game
    "IteratedPrisonersDilemma-v0": (
        "not zero-sum: the Prisoner's Dilemma pays both for cooperating; TextArena declares "
        "the higher total the winner, under which always defecting never loses"
    ),
    "IteratedStagHunt-v0": (
        "not zero-sum: Stag Hunt is a coordination game (and its module is a SyntaxError "
        "before Python 3.12)"
    ),
    "IteratedUltimatumGame-v0": (
        "not zero-sum: every accepted split gains both; TextArena's who-got-more win leaves "
        "the fixed Proposer no way to win against a Responder who rejects anything under half"
    ),
    "TwoDollar-v0": (
        "not zero-sum: splitting $2 under secret role goals, some of which (such as not "
        "offending the other) TextArena never scores; no deal leaves both with nothing"
    ),
    "NewRecruit-v0": (
        "not zero-sum: integrative bargaining over 8 issues; TextArena's winner has more "
        "points, but the two roles' points are on different scales"
    ),
    "PublicGoodsGame-v0": "not zero-sum: a public-goods game, made for 3 or more players",
    "MarketEntryGame-v0": "not zero-sum: a market-entry game, made for 4 players",
    # two players, but the outcome comes from outside the game
    "Debate-v0": _JURY,
    "ScenarioPlanning-v0": _JURY,
    "DontSayIt-v0": _NLTK,
    "LetterAuction-v0": _NLTK,
    "SpellingBee-v0": _NLTK,
    "WordChains-v0": _NLTK,
    # two players, broken in TextArena 0.7.4
    "Chess-v0": _PY312 + " (zerosum's `chess` is OpenSpiel's)",
    "Checkers-v0": _PY312,
    "ReverseTicTacToe-v0": _PY312,
    "QuantumTicTacToe-v0": (
        "broken upstream: a cycle collapses each mark into its first free cell (no choice), a "
        "double win goes to Player 0 whatever the move numbers, and with under two free cells "
        "the game neither ends nor has a legal move, so the player to move loses"
    ),
    "Tak-v0": "broken upstream: a winning move raises TypeError (`set_winner(player_ids=...)`)",
    "Stratego-v0": (
        "broken upstream: each turn's board, showing the mover's piece ranks, is sent to both "
        "players, so nothing is hidden"
    ),
    "UsedCarNegotiation-v0": (
        "broken upstream: `instructions/blue_book.txt` is missing from the 0.7.4 package "
        "(FileNotFoundError when reset); a general-sum negotiation besides"
    ),
    "UsedCar-v0-balanced": (
        "broken upstream: its entry point `textarena.envs.UsedCar` does not exist"
    ),
    "ScorableGames-v0": (
        "broken upstream: its game descriptions (`games_descriptions/`) are missing from the "
        "0.7.4 package; a general-sum negotiation for 2-15 players besides"
    ),
    # more than two players
    "ThreePlayerTicTacToe-v0": "more than two players (exactly 3)",
    "ThreePlayerGOPS-v0": "more than two players (exactly 3)",
    "ThreePlayerIPD-v0": "more than two players (exactly 3), and not zero-sum",
    "CharacterConclave-v0": "more than two players (3 to 15)",
    "Codenames-v0": "more than two players (4, in two teams)",
    "SettlersOfCatan-v0": "more than two players (exactly 4)",
    "SecretMafia-v0": "more than two players (5 to 15)",
    "Taboo-v0": "more than two players (4 to 6, in teams)",
    # one player
    "2048-v0": _SINGLE,
    "Bandit-v0": _SINGLE,
    "Blackjack-v0": _SINGLE + " (against the dealer)",
    "Countdown-v0": _SINGLE,
    "Crosswords-v0": _SINGLE,
    "Cryptarithm-v0": _SINGLE,
    "FifteenPuzzle-v0": _SINGLE,
    "FrozenLake-v0": _SINGLE,
    "GuessTheNumber-v0": _SINGLE,
    "GuessWho-v0": _SINGLE + " (the other side is an LLM over OpenRouter)",
    "Hangman-v0": _SINGLE,
    "Klondike-v0": _SINGLE,
    "LightsOut-v0": _SINGLE,
    "LogicPuzzle-v0": _SINGLE,
    "Mastermind-v0": _SINGLE,
    "Minesweeper-v0": _SINGLE,
    "PegJump-v0": _SINGLE,
    "RushHour-v0": _SINGLE,
    "Secretary-v0": _SINGLE,
    "Set-v0": _SINGLE,
    "Slitherlink-v0": _SINGLE,
    "Sokoban-v0": _SINGLE,
    "Sudoku-v0": _SINGLE,
    "ThreeCardMonte-v0": _SINGLE,
    "TowerOfHanoi-v0": _SINGLE,
    "TwentyQuestions-v0": _SINGLE + " (the other side is an LLM over OpenRouter)",
    "UltimateTexasHoldem-v0": _SINGLE + " (against the dealer)",
    "WordLadder-v0": _SINGLE,
    "Wordle-v0": _SINGLE,
    "WordSearch-v0": _SINGLE,
}


@dataclass(frozen=True)
class Entry:
    """One TextArena game (its registered ids sharing an entry point): the id zerosum plays
    or excludes, the zerosum game's name or the reason it is left out, its other ids."""

    env_id: str
    game: str | None
    reason: str
    variants: tuple[str, ...] = ()


def textarena_catalogue() -> list[Entry]:
    """Every env of the installed TextArena (`<id>-raw` ids, no wrappers), one entry per
    registered or excluded id, the others listed as its variants; an id of a game that is
    neither registered nor excluded gets an entry with no game and no reason. Imports
    TextArena (about 1.5 s)."""
    from textarena.envs.registration import ENV_REGISTRY  # lazy: see TextArenaState

    chosen = {g.env_id: g.name for g in TEXTARENA_GAMES}
    families: dict[str, list[str]] = {}
    for key, spec in ENV_REGISTRY.items():
        if key.endswith("-raw"):
            families.setdefault(str(spec.entry_point), []).append(key.removesuffix("-raw"))
    entries = []
    for ids in families.values():
        heads = [i for i in ids if i in chosen or i in EXCLUDED] or ids[:1]
        others = tuple(i for i in ids if i not in heads)
        for n, env_id in enumerate(heads):
            entries.append(
                Entry(
                    env_id, chosen.get(env_id), EXCLUDED.get(env_id, ""), others if n == 0 else ()
                )
            )
    return sorted(entries, key=lambda e: e.env_id.lower())
