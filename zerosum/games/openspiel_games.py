"""Canonical games over OpenSpiel, with a text view per seat.

OpenSpiel is the source of truth for the rules; this module only names actions in words
(`[check]`, `[bid 2-3]`, `[4]`), samples chance events from the episode's seeded RNG, and
renders what one seat knows. Each game is described by a small `TextSpec`: how to label an
action in context, which chance outcomes belong to which seat, and what public state to
show. Rendering reads only the seat's own chance outcomes and public moves, so it is a
function of that seat's information state (tests check this against OpenSpiel's own
information-state strings). A spec may also name other accepted spellings of an action
(`aliases`: chess's UCI moves), a ply limit after which the game is a draw, its seats' names
and how the moves so far read.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pyspiel

from zerosum.games.base import ActionList, Capabilities, IllegalActionError, bracket

SEAT_NAMES = ("Player 0", "Player 1")


@dataclass(frozen=True)
class TextSpec:
    """How one OpenSpiel game is shown as text."""

    name: str
    openspiel_name: str
    description: str
    rules: str
    label: Callable[[pyspiel.State, int], str]  # (state, action id) -> label
    # (chance index, outcome) -> (owner seat or None if public, text); None hides it.
    chance_text: Callable[[int, int], tuple[int | None, str] | None] = lambda i, o: None
    public_state: Callable[[pyspiel.State], str] = lambda s: ""
    params: dict = field(default_factory=dict)
    nash: bool = False  # small enough for CFR+ and exact NashConv
    minimax: bool = False  # small enough to solve every position
    # (state, action id, label) -> other spellings the parser accepts for that action.
    aliases: Callable[[pyspiel.State, int, str], Sequence[str]] | None = None
    # Moves (plies) after which the game ends as a draw (0, 0); None: OpenSpiel's rules only.
    max_plies: int | None = None
    seat_names: tuple[str, str] = SEAT_NAMES
    # OpenSpiel's player 1 sits in seat 0 (chess: OpenSpiel's White is its player 1, and seat
    # 0 moves first everywhere here). The solvers (nash, minimax games) assume False.
    swap_players: bool = False
    # The moves so far as (seat, label) -> their text; None: "Player 0 [bet]; (chance); ...".
    format_moves: Callable[[Sequence[tuple[int, str]]], str] | None = None
    # A final state -> what both seats see revealed at its end (poker: both cards at a
    # showdown, nothing after a fold); None: nothing is revealed.
    showdown: Callable[[pyspiel.State], str | None] | None = None
    # Whether the view lists the legal actions at the mover's turn (False: ZeroSumEval's chess,
    # where the model must find a legal move itself; the parser still checks it).
    list_legal: bool = True
    unlisted_turn: str = "The legal actions are not listed: choose one yourself."
    # A seat's private chance outcome -> the words that name it (`PrivateWords`); None: the
    # game's private information is not measured in the model's reasoning.
    private_words: Callable[[int], tuple[str, ...]] | None = None


class OpenSpielState:
    """An episode of an OpenSpiel game; chance is sampled from its own seeded RNG."""

    invalid_reason: str | None = None  # illegal actions are refused, never played

    def __init__(
        self, spec: TextSpec, game: pyspiel.Game, seed: int, forced_chance: Sequence[int] = ()
    ):
        self.spec = spec
        self.spiel_state = game.new_initial_state()
        self._rng = np.random.default_rng(seed)
        self._forced = list(forced_chance)  # chance outcomes to use before sampling
        self._chance: list[tuple[int | None, str]] = []  # (owner, text) per revealed event
        self._private: list[tuple[int, int]] = []  # (owner seat, outcome) per private deal
        self._moves: list[tuple[int, str]] = []
        self._timeline: list[str] = []  # public moves and public chance events, for seat views
        self._advance_chance()

    # -- protocol --------------------------------------------------------------
    def current_seat(self) -> int:
        player = self.spiel_state.current_player()
        return 1 - player if self.spec.swap_players else player

    def legal_actions(self) -> ActionList:
        if self.is_terminal():
            return ActionList()
        st, spec = self.spiel_state, self.spec
        ids = st.legal_actions()
        labels = [spec.label(st, a) for a in ids]
        if spec.aliases is None:
            return ActionList(labels, listed=spec.list_legal)
        aliases = {
            alias: label for a, label in zip(ids, labels) for alias in spec.aliases(st, a, label)
        }
        return ActionList(labels, aliases, listed=spec.list_legal)

    def apply_action(self, action: str) -> None:
        action_id = self.action_id(action)
        seat = self.current_seat()
        self._moves.append((seat, self.spec.label(self.spiel_state, action_id)))
        self._timeline.append(f"{self.spec.seat_names[seat]} [{self._moves[-1][1]}]")
        self.spiel_state.apply_action(action_id)
        self._advance_chance()

    def is_terminal(self) -> bool:
        return self.spiel_state.is_terminal() or self.ply_limit_reached()

    def ply_limit_reached(self) -> bool:
        """The spec's ply limit ended the game (a draw) before OpenSpiel's rules did."""
        limit = self.spec.max_plies
        return (
            limit is not None and len(self._moves) >= limit and not self.spiel_state.is_terminal()
        )

    def returns(self) -> tuple[float, float]:
        if self.ply_limit_reached():
            return (0.0, 0.0)
        r = [float(x) for x in self.spiel_state.returns()]
        return (r[1], r[0]) if self.spec.swap_players else (r[0], r[1])

    def move_history(self) -> list[tuple[int, str]]:
        return list(self._moves)

    def private_words(self, seat: int) -> tuple[str, ...]:
        words = self.spec.private_words
        if words is None:
            return ()
        return tuple(w for owner, outcome in self._private if owner == seat for w in words(outcome))

    def observation(self, seat: int, include_rules: bool = True) -> str:
        spec = self.spec
        lines = [f"You are {spec.seat_names[seat]} in a game of {spec.description}", ""]
        if include_rules:
            lines += [spec.rules, ""]
        for owner, text in self._chance:
            if owner == seat:
                lines.append(f"Your private information: {text}")
            elif owner is None:
                lines.append(f"Public information: {text}")
        public = spec.public_state(self.spiel_state)
        if public:
            lines.append(public)
        if not self._timeline:
            lines.append("No moves have been made yet.")
        elif spec.format_moves is not None:
            lines.append(f"Moves so far: {spec.format_moves(self._moves)}")
        else:
            lines.append(f"Moves so far: {'; '.join(self._timeline)}")
        final = self.spiel_state.is_terminal()
        if final and spec.showdown is not None and (revealed := spec.showdown(self.spiel_state)):
            lines.append(revealed)
        if self.ply_limit_reached():
            limit = spec.max_plies
            lines.append(
                f"The game is over: the limit of {limit} moves (plies) was reached, a draw."
            )
        elif not self.is_terminal() and self.current_seat() == seat:
            if spec.list_legal:
                lines.append(f"It is your turn. Legal actions: {bracket(self.legal_actions())}")
            else:
                lines.append(f"It is your turn. {spec.unlisted_turn}")
        return "\n".join(lines)

    # -- helpers for fixed players and evaluation --------------------------------
    def information_state(self, seat: int) -> str:
        """What `seat` may know here, as OpenSpiel's information-state string: the views of
        two states with the same string must be the same (`zerosum.games.conformance`)."""
        return self.spiel_state.information_state_string(seat)

    def action_id(self, action: str) -> int:
        """The OpenSpiel action id of a legal action label."""
        if self.is_terminal():
            raise IllegalActionError(f"game is over; no action {action!r} is legal")
        for a in self.spiel_state.legal_actions():
            if self.spec.label(self.spiel_state, a) == action:
                return a
        raise IllegalActionError(
            f"illegal action {action!r}; legal: {bracket(self.legal_actions())}"
        )

    def label(self, action_id: int) -> str:
        return self.spec.label(self.spiel_state, action_id)

    def _advance_chance(self) -> None:
        st = self.spiel_state
        while st.is_chance_node():
            outcomes, probs = zip(*st.chance_outcomes())
            if self._forced:
                outcome = self._forced.pop(0)
            else:
                outcome = outcomes[int(self._rng.choice(len(outcomes), p=np.asarray(probs)))]
            shown = self.spec.chance_text(len(self._chance), outcome)
            self._chance.append(shown if shown is not None else (-1, ""))
            if shown is not None and shown[0] is not None:
                self._private.append((shown[0], outcome))
            if shown is not None and shown[0] is None and self._moves:
                self._timeline.append(f"({shown[1]})")
            st.apply_action(outcome)


class OpenSpielGame:
    """A `Game` backed by an OpenSpiel game and a `TextSpec`."""

    def __init__(self, spec: TextSpec):
        self.spec = spec
        self.name = spec.name
        self.description = spec.description
        self.spiel_game = pyspiel.load_game(spec.openspiel_name, spec.params)
        info = self.spiel_game.get_type().information
        self.capabilities = Capabilities(
            finite_actions=True,
            perfect_information=info == pyspiel.GameType.Information.PERFECT_INFORMATION,
            nash=spec.nash,
            minimax=spec.minimax,
        )

    def rules(self) -> str:
        return self.spec.rules

    def new_episode(self, seed: int) -> OpenSpielState:
        return OpenSpielState(self.spec, self.spiel_game, seed)

    def state_from_history(self, history: Sequence[int]) -> OpenSpielState:
        """The episode that followed OpenSpiel's `history` (chance outcomes and action ids),
        e.g. to render the state behind a given information set."""
        chance, moves = [], []
        probe = self.spiel_game.new_initial_state()
        for a in history:
            (chance if probe.is_chance_node() else moves).append(a)
            probe.apply_action(a)
        state = OpenSpielState(self.spec, self.spiel_game, 0, forced_chance=chance)
        for a in moves:  # chance outcomes in between are replayed from `forced_chance`
            state.apply_action(state.label(a))
        return state


# --- Kuhn poker -----------------------------------------------------------------
KUHN_CARDS = ("J", "Q", "K")
CARD_NAMES = {"J": "jack", "Q": "queen", "K": "king"}


def _kuhn_label(state: pyspiel.State, action: int) -> str:
    facing_bet = 1 in state.history()[2:]  # history: two deals, then the betting
    if action == 0:
        return "fold" if facing_bet else "check"
    return "call" if facing_bet else "bet"


def _kuhn_pot(state: pyspiel.State) -> str:
    bets = sum(1 for a in state.history()[2:] if a == 1)
    return f"Pot: {2 + bets} chips."


def _showdown(card: Callable[[int], str], folded: Callable[[list[int]], bool]):
    """A poker game's `showdown`: both private cards (the first two deals), unless the game
    ended with a fold."""

    def reveal(state: pyspiel.State) -> str | None:
        history = state.history()
        if folded(history):
            return None
        return (
            f"Showdown: {SEAT_NAMES[0]} has {card(history[0])}, "
            f"{SEAT_NAMES[1]} has {card(history[1])}."
        )

    return reveal


KUHN = TextSpec(
    name="kuhn_poker",
    openspiel_name="kuhn_poker",
    description="Kuhn Poker, a two-player betting game with a three-card deck.",
    rules=(
        "Rules: the deck has three cards, J < Q < K. Each player antes 1 chip and gets one "
        "private card. Player 0 acts first. A player may [check] or [bet] 1 chip; facing a "
        "bet, a player may [call] (add 1 chip) or [fold] (give up the pot). If both check, "
        "or a bet is called, the higher card wins the pot. Your reward is the chips you win "
        "or lose."
    ),
    label=_kuhn_label,
    chance_text=lambda i, o: (i, f"your card is {KUHN_CARDS[o]}"),
    public_state=_kuhn_pot,
    nash=True,
    private_words=lambda o: (KUHN_CARDS[o], CARD_NAMES[KUHN_CARDS[o]]),
    # a pass (action 0) after a bet is a fold
    showdown=_showdown(lambda c: KUHN_CARDS[c], lambda h: h[-1] == 0 and 1 in h[2:]),
)


# --- Leduc poker ------------------------------------------------------------------
def _leduc_card(card: int) -> str:
    return f"{KUHN_CARDS[card // 2]}{'♠♥'[card % 2]}"


def _leduc_label(state: pyspiel.State, action: int) -> str:
    facing_bet = 0 in state.legal_actions()  # OpenSpiel only allows folding to a bet
    return ("fold", "call" if facing_bet else "check", "raise" if facing_bet else "bet")[action]


_LEDUC_FIELD = re.compile(r"\[(Round|Pot:|Money:) ([^\]]*)\]")


def _leduc_public(state: pyspiel.State) -> str:
    if state.is_terminal():
        return ""
    fields = dict(_LEDUC_FIELD.findall(state.information_state_string(state.current_player())))
    money = fields.get("Money:", "").split()
    stacks = f" Chips left: Player 0 {money[0]}, Player 1 {money[1]}." if len(money) == 2 else ""
    return f"Betting round {fields.get('Round', '?')} of 2. Pot: {fields.get('Pot:', '?')} chips.{stacks}"


def _leduc_chance(index: int, outcome: int) -> tuple[int | None, str]:
    if index < 2:
        return index, f"your card is {_leduc_card(outcome)}"
    return None, f"the public card is {_leduc_card(outcome)}"


LEDUC = TextSpec(
    name="leduc_poker",
    openspiel_name="leduc_poker",
    description="Leduc Poker, a two-round betting game with a six-card deck.",
    rules=(
        "Rules: the deck has six cards, two each of J < Q < K (suits ♠ and ♥). Each player "
        "antes 1 chip and gets one private card. There are two betting rounds; after the "
        "first, one public card is revealed. Player 0 acts first in each round. A player may "
        "[check] or [bet]; facing a bet, a player may [call], [raise] or [fold]. Bets are 2 "
        "chips in round 1 and 4 chips in round 2, with at most two bets or raises per round. "
        "At showdown a private card that pairs the public card wins; otherwise the higher "
        "private card wins; equal private cards (suits do not count) split the pot. Your "
        "reward is the chips you win or lose."
    ),
    label=_leduc_label,
    chance_text=_leduc_chance,
    public_state=_leduc_public,
    nash=True,
    private_words=lambda o: (KUHN_CARDS[o // 2], CARD_NAMES[KUHN_CARDS[o // 2]]),  # no suits
    showdown=_showdown(_leduc_card, lambda h: h[-1] == 0),  # action 0 is always a fold
)


# --- Liar's dice -----------------------------------------------------------------
LIARS_DICE_PARAMS = {"numdice": 1, "dice_sides": 6}


def _liars_label(state: pyspiel.State, action: int) -> str:
    text = state.action_to_string(state.current_player(), action)
    return "liar" if text == "Liar" else f"bid {text}"


def _liars_chance(index: int, outcome: int) -> tuple[int | None, str]:
    n = LIARS_DICE_PARAMS["numdice"]
    return index // n, f"your die {index % n + 1} shows {outcome + 1}"


LIARS_DICE = TextSpec(
    name="liars_dice",
    openspiel_name="liars_dice",
    description="Liar's Dice, a bluffing game with hidden dice.",
    rules=(
        "Rules: each player rolls one six-sided die in secret. Players take turns bidding, "
        "Player 0 first; [bid Q-F] claims that at least Q of all the dice show face F, where "
        "a 6 is wild and counts as every face. Each bid must be higher than the last: a larger "
        "quantity, or the same quantity with a larger face. Instead of bidding, you may call "
        "[liar] on the last bid: if the bid is true, the caller loses; otherwise the bidder "
        "loses. The winner gets +1, the loser -1."
    ),
    label=_liars_label,
    chance_text=_liars_chance,
    params=LIARS_DICE_PARAMS,
)


# --- Tic-tac-toe and Connect Four ----------------------------------------------
def _ttt_board(state: pyspiel.State) -> str:
    rows = str(state).split("\n")
    cells = [
        c if c != "." else str(3 * r + i) for r, row in enumerate(rows) for i, c in enumerate(row)
    ]
    grid = "\n".join(" " + " | ".join(cells[3 * r : 3 * r + 3]) for r in range(3))
    return f"Board (empty cells show their number):\n{grid}"


TIC_TAC_TOE = TextSpec(
    name="tic_tac_toe",
    openspiel_name="tic_tac_toe",
    description="Tic-Tac-Toe on a 3x3 board.",
    rules=(
        "Rules: Player 0 plays x and moves first; Player 1 plays o. Players take turns "
        "placing their mark in an empty cell, numbered 0-8 left to right, top to bottom; "
        "the move [4] takes the centre. Three marks in a row, column or diagonal win (+1; "
        "the loser gets -1). A full board without a line is a draw (0)."
    ),
    label=lambda state, action: str(action),
    public_state=_ttt_board,
    minimax=True,
)


def _c4_board(state: pyspiel.State) -> str:
    rows = str(state).strip().split("\n")
    header = " ".join(str(i) for i in range(len(rows[0])))
    return "Board (columns numbered, top row first):\n" + "\n".join(
        [header] + [" ".join(row) for row in rows]
    )


CONNECT_FOUR = TextSpec(
    name="connect_four",
    openspiel_name="connect_four",
    description="Connect Four on a 6x7 board.",
    rules=(
        "Rules: Player 0 plays x and moves first; Player 1 plays o. Players take turns "
        "dropping a disc into a column (0-6); it falls to the lowest empty cell. Four discs "
        "in a row horizontally, vertically or diagonally win (+1; the loser gets -1). A "
        "full board is a draw (0)."
    ),
    label=lambda state, action: str(action),
    public_state=_c4_board,
)


# --- Chess ---------------------------------------------------------------------------
CHESS_MAX_PLIES = 200


def _chess_label(state: pyspiel.State, action: int) -> str:
    return state.action_to_string(state.current_player(), action)  # SAN: e4, Nf3, O-O, e8=Q+


def _chess_aliases(state: pyspiel.State, action: int, label: str) -> list[str]:
    """UCI (`e2e4`, `e7e8q`, castling `e1g1`), SAN without its `+`/`#`, castling with zeros
    (`0-0`) and promotion without `=` (`e8Q`)."""
    bare = label.rstrip("+#")
    spellings = {pyspiel.chess.action_to_move(action, state.board()).to_lan(), bare}
    if bare.startswith("O-O"):
        spellings.add(bare.replace("O", "0"))
    if "=" in bare:
        spellings.add(bare.replace("=", ""))
    spellings.discard(label)
    return sorted(spellings)


def chess_diagram(fen: str) -> str:
    """The board of a FEN as text: rank 8 at the top, files a-h, White's pieces in capitals,
    Black's in lower case, empty squares as dots."""
    files = "  a b c d e f g h"
    rows = [files]
    for i, rank in enumerate(fen.split()[0].split("/")):
        cells = "".join("." * int(c) if c.isdigit() else c for c in rank)
        rows.append(f"{8 - i} {' '.join(cells)} {8 - i}")
    return "\n".join([*rows, files])


def _chess_public(state: pyspiel.State) -> str:
    fen = state.board().to_fen()
    if state.is_terminal():
        turn = "The game is over."
    else:
        turn = f"{'White' if fen.split()[1] == 'w' else 'Black'} to move."
    return (
        f"Position (FEN): {fen}\n"
        "Board (White in capitals, Black in lower case, empty squares '.'):\n"
        f"{chess_diagram(fen)}\n{turn}"
    )


def _chess_moves(moves: Sequence[tuple[int, str]]) -> str:
    """`1. e4 e5 2. Nf3` (White moves first, so seat 0's moves are the even ones)."""
    return " ".join(
        f"{i // 2 + 1}. {label}" if i % 2 == 0 else label for i, (_, label) in enumerate(moves)
    )


def chess_spec(max_plies: int = CHESS_MAX_PLIES, list_moves: bool = True) -> TextSpec:
    """Chess with a draw after `max_plies` moves (plies, counting both sides' moves). With
    `list_moves=False` (ZeroSumEval's setting, registered as `chess_unlisted`) the view shows
    the position and the moves so far but no list of legal moves: the model must find one."""
    if max_plies < 1:
        raise ValueError(f"chess max_plies must be an integer >= 1, got {max_plies!r}")
    listing = "as listed" if list_moves else "(the legal moves are not listed; find one yourself)"
    return TextSpec(
        name="chess" if list_moves else "chess_unlisted",
        openspiel_name="chess",
        description=(
            f"Chess (standard rules; a draw after {max_plies} plies"
            + ("" if list_moves else "; no legal-move list, as in ZeroSumEval")
            + ")."
        ),
        rules=(
            "Rules: standard chess. Player 0 plays White and moves first; Player 1 plays "
            f"Black. Moves are written in standard algebraic notation (SAN), {listing}: e4, "
            "Nf3, exd5, O-O (castling king-side), O-O-O, e8=Q (promotion), with + for check "
            "and # for mate; UCI such as e2e4 or e7e8q is also accepted. Checkmate wins (+1; "
            "the loser gets -1). Stalemate, threefold repetition, the fifty-move rule, "
            f"insufficient material and reaching {max_plies} moves (plies, counting both "
            "sides) are draws (0)."
        ),
        label=_chess_label,
        public_state=_chess_public,
        aliases=_chess_aliases,
        max_plies=max_plies,
        seat_names=("White", "Black"),
        swap_players=True,  # OpenSpiel's chess: Black is player 0, White player 1
        format_moves=_chess_moves,
        list_legal=list_moves,
        unlisted_turn="Give a legal move in SAN or UCI (the legal moves are not listed).",
    )


CHESS = chess_spec()
CHESS_UNLISTED = chess_spec(list_moves=False)

SPECS: Sequence[TextSpec] = (
    KUHN, LEDUC, LIARS_DICE, TIC_TAC_TOE, CONNECT_FOUR, CHESS, CHESS_UNLISTED
)  # fmt: skip
