"""`zerosum play`: a person against any player, in the terminal.

The person is a `Player` whose `act` shows their own seat's view (`observation(seat)`, never
the opponent's) and reads a move from the keyboard, asking again with the reason until the
move is legal: a person's typo is not a forfeit. Everything else is the ordinary game loop
(`rollout.play_games`, as in `zerosum match` and the arena), so the opponent's invalid answers
forfeit (-1/+1), the turn limit draws and a free-text game judges moves as it always does.

What the person sees comes from the game alone: the opponent's moves as the move history
shows them to both seats, the person's own view at the end (a card game reveals at the
showdown only what its view says), and the opponent's reasoning (a model's or an API's reply
text) only when asked for. On a terminal the output is `rich` (a panel for the view, the
legal moves highlighted); through a pipe it is plain text without escape codes. Every text
shown passes `untrusted.for_display`: no bidi control reorders it, no control character
reaches the terminal.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from zerosum.games.base import Game, GameState
from zerosum.games.parsing import ParsedAction, last_boxed, parse_action
from zerosum.match import MAX_TURNS, Tally
from zerosum.players.base import Move, Player
from zerosum.rollout import EVAL_INVALID, Episode, RolloutSettings, play_games
from zerosum.tables import one_line
from zerosum.untrusted import for_display

QUIT_WORDS = ("quit", "exit")
# The longest reasoning shown (its tail, where the answer is): a model's reply is untrusted.
MAX_REASONING_CHARS = 4000


class Quit(Exception):
    """The person ended the session: `quit`, end of input, or Ctrl-C."""


def read_move(text: str, legal: Sequence[str] | None) -> ParsedAction:
    """The move a person typed: the text read as the answer itself (as if boxed), or, when
    that fails or the person typed a `\\boxed{}`, as a model's reply would be read. A legal
    action in its canonical spelling, or None with a reason worded for a person."""
    text = text.strip()
    if not text:
        return ParsedAction(None, "empty move")
    boxed = parse_action(f"\\boxed{{{text}}}", legal)
    as_typed = parse_action(text, legal)
    tries = (as_typed, boxed) if last_boxed(text) is not None else (boxed, as_typed)
    for parsed in tries:
        if parsed.valid:
            return parsed
    reason = (boxed.reason or "not a legal move").removeprefix("boxed answer ")
    return ParsedAction(None, reason.replace("is not a legal action", "is not a legal move"))


class Screen:
    """What the person sees and types: `rich` on a terminal, plain lines through a pipe.

    Input is read with `input()` (line editing on a terminal); when stdin is not a terminal,
    each line read is printed, so a piped session's output reads like a typed one."""

    def __init__(self) -> None:
        self.out = sys.stdout
        self.console = Console(highlight=False)
        self.fancy = self.console.is_terminal  # rich honours NO_COLOR and FORCE_COLOR
        self.echo = not sys.stdin.isatty()

    # -- output -----------------------------------------------------------------------
    def line(self, text: str = "", style: str = "") -> None:
        text = for_display(text)
        if self.fancy:
            self.console.print(Text(text, style=style))
        else:
            print(text, file=self.out)

    def heading(self, text: str) -> None:
        text = for_display(text)
        if self.fancy:
            self.console.rule(Text(text, style="bold"))
        else:
            print(f"\n=== {text} ===", file=self.out)

    def rules(self, text: str) -> None:
        text = for_display(text)
        if self.fancy:
            self.console.print(Text(text, style="dim"))
        else:
            print(text, file=self.out)

    def view(self, title: str, text: str, legal: Sequence[str] | None = None) -> None:
        """A seat's view, and the legal moves when they are a finite list."""
        title, text = for_display(title), for_display(text)
        legal = [for_display(a) for a in legal] if legal else legal
        if self.fancy:
            self.console.print(
                Panel(
                    Text(text), title=title, title_align="left", border_style="blue", expand=False
                )
            )
        else:
            print(f"\n--- {title} ---\n{text}", file=self.out)
        if legal:
            if self.fancy:
                moves = Text("Legal moves: ", style="bold")
                for i, action in enumerate(legal):
                    moves.append(", " if i else "")
                    moves.append(action, style="bold green")
                self.console.print(moves)
            else:
                print(f"Legal moves: {', '.join(legal)}", file=self.out)

    def reasoning(self, who: str, text: str) -> None:
        who, text = for_display(who), for_display(text)
        if len(text) > MAX_REASONING_CHARS:
            cut = len(text) - MAX_REASONING_CHARS
            text = f"[{cut} characters cut] ...{text[-MAX_REASONING_CHARS:]}"
        if self.fancy:
            self.console.print(
                Panel(Text(text, style="dim"), title=f"{who}'s reasoning", title_align="left",
                      border_style="dim", expand=False)
            )  # fmt: skip
        else:
            print(f"{who}'s reasoning:\n{text}", file=self.out)

    def score(self, opponent: str, tally: Tally) -> None:
        opponent = for_display(opponent)
        games = f"{tally.games} game{'s' * (tally.games != 1)}"
        summary = (
            f"{tally.wins} won, {tally.draws} drawn, {tally.losses} lost; "
            f"mean return {tally.mean_return:+.3f}"
        )
        if not self.fancy:
            print(f"\nScore against {opponent} after {games}: {summary}", file=self.out)
            return
        table = Table(title=f"Score against {opponent} after {games}", title_justify="left")
        for name in ("won", "drawn", "lost", "mean return"):
            table.add_column(name, justify="right")
        table.add_row(
            str(tally.wins), str(tally.draws), str(tally.losses), f"{tally.mean_return:+.3f}"
        )
        self.console.print(table)

    # -- input ------------------------------------------------------------------------
    def ask(self, prompt: str) -> str:
        """A line the person typed; Quit at the end of input or on Ctrl-C."""
        try:
            if self.fancy:
                text = self.console.input(Text(prompt, style="bold cyan"))
            else:
                text = input(prompt)  # line editing on a terminal
        except (EOFError, KeyboardInterrupt):
            self.line()
            raise Quit from None
        if self.echo:
            print(text, file=self.out)
        return text


@dataclass
class _Game:
    """One game as the person follows it: the state (the loop plays it in place), how much
    of the move history has been shown, the opponent's replies by move number, and the
    transcript of every answer (for the arena)."""

    screen: Screen
    human_seat: int
    opponent: str
    show_reasoning: bool
    state: GameState | None = None
    shown: int = 0
    replies: dict[int, str] = field(default_factory=dict)
    transcript: list[dict] = field(default_factory=list)

    def catch_up(self) -> None:
        """Show the opponent's moves played since the person last looked, as the public
        move history has them."""
        history = self.state.move_history()
        for number, (seat, action) in enumerate(history[self.shown :], self.shown):
            if seat == self.human_seat:
                continue
            if seat not in (0, 1):  # a judged game's verdict record, not a player's move
                self.screen.line(action, "bold")
                continue
            reply = self.replies.get(number, "")
            if self.show_reasoning and reply.strip():
                self.screen.reasoning(self.opponent, reply)
            self.screen.line(f"{self.opponent} plays: {action}", "bold magenta")
        self.shown = len(history)


class HumanPlayer:
    """The person at the keyboard: shows the seat's own view and asks until the move is
    legal (free-text games: the text itself is the move, judged by the game when played)."""

    name = "human"

    def __init__(self, game: _Game):
        self.game = game

    def act(self, state: GameState, rng: np.random.Generator, feedback: str | None = None) -> Move:
        g, screen = self.game, self.game.screen
        g.state = state
        g.catch_up()
        seat = state.current_seat()
        legal = state.legal_actions()
        screen.view(f"Your view (seat {seat})", state.observation(seat, include_rules=False), legal)
        while True:
            text = screen.ask("Your move> ")
            if text.strip().lower() in QUIT_WORDS:
                raise Quit
            parsed = read_move(text, legal)
            if parsed.valid:
                g.transcript.append({"seat": seat, "reply": text, "action": parsed.action,
                                     "reason": None})  # fmt: skip
                return Move(parsed.action, text)
            hint = f" Legal moves: {', '.join(legal)}" if legal else ""
            screen.line(f"Rejected: {parsed.reason}.{hint}", "bold red")


class WatchedPlayer:
    """The opponent, its replies kept for the person (shown with `--show-reasoning`) and
    the arena's transcript."""

    def __init__(self, player: Player, game: _Game):
        self.player, self.game = player, game
        self.name = player.name

    def act(self, state: GameState, rng: np.random.Generator, feedback: str | None = None) -> Move:
        g = self.game
        g.state = state
        seat = state.current_seat()
        if g.screen.fancy:
            with g.screen.console.status(f"{g.opponent} is thinking..."):
                move = self.player.act(state, rng, feedback)
        else:
            move = self.player.act(state, rng, feedback)
        g.replies[len(state.move_history())] = move.response  # the number this move will get
        g.transcript.append(move.transcript_entry(seat))
        return move


@dataclass
class GameResult:
    """A finished game: the episode (as `play_games` returns it), the person's seat, the
    seed, and the transcript of every answer."""

    episode: Episode
    human_seat: int
    seed: int
    transcript: list[dict]


def outcome_line(episode: Episode, human_seat: int, opponent: str) -> tuple[str, str]:
    """How the game ended for the person, and its style."""
    out = episode.outcome
    mine = out.returns[human_seat]
    if out.forfeit_seat is not None:
        reasons = [r for s, r in episode.invalid if s == out.forfeit_seat] or ["invalid move"]
        who = "You" if out.forfeit_seat == human_seat else opponent
        why = f"{who} forfeited ({one_line(reasons[-1], 200)})"
        return (f"{why}: you {'win' if mine > 0 else 'lose'} ({mine:+g})",
                "bold green" if mine > 0 else "bold red")  # fmt: skip
    if out.truncated:
        return f"Draw: the turn limit of {out.turns} moves was reached ({mine:+g})", "bold yellow"
    if out.winner is None:
        return f"Draw ({mine:+g})", "bold yellow"
    if out.winner == human_seat:
        return f"You win ({mine:+g})", "bold green"
    return f"You lose ({mine:+g})", "bold red"


def play_game(
    game: Game,
    opponent: Player,
    human_seat: int,
    seed: int,
    screen: Screen,
    *,
    max_turns: int = MAX_TURNS,
    show_reasoning: bool = False,
) -> GameResult:
    """One game of the person in `human_seat` against `opponent`; Quit if the person stops."""
    g = _Game(screen, human_seat, opponent.name, show_reasoning)
    seats: list[Player] = [HumanPlayer(g), WatchedPlayer(opponent, g)]
    if human_seat == 1:
        seats.reverse()
    settings = RolloutSettings(invalid=EVAL_INVALID, max_turns=max_turns, max_concurrent=1)
    _, (episode,) = play_games(
        None, None, [(game.name, seed)], params=None, settings=settings, seed=0,
        opponents=[tuple(seats)],
    )  # fmt: skip
    g.catch_up()
    final = g.state.observation(human_seat, include_rules=False)
    screen.view(f"Your view at the end (seat {human_seat})", final)
    screen.line(*outcome_line(episode, human_seat, opponent.name))
    return GameResult(episode, human_seat, seed, g.transcript)


def play_series(
    game: Game,
    opponent: Player,
    seats: Sequence[int],
    seeds: Sequence[int],
    screen: Screen,
    *,
    max_turns: int = MAX_TURNS,
    show_reasoning: bool = False,
    on_game: Callable[[GameResult], None] | None = None,
) -> Tally:
    """Games with the person in `seats[i]` and game seed `seeds[i]`, then the score; the
    score so far when the person stops (an unfinished game is not counted). `on_game` is
    called as each game ends (the arena records it)."""
    tally = Tally()
    screen.rules(game.rules())
    screen.line("Type a move and press Enter; 'quit' (or end of input) stops.", "italic")
    try:
        for i, (seat, seed) in enumerate(zip(seats, seeds)):
            screen.heading(f"Game {i + 1} of {len(seats)}: you are seat {seat}")
            result = play_game(
                game, opponent, seat, seed, screen, max_turns=max_turns,
                show_reasoning=show_reasoning,
            )  # fmt: skip
            tally.add(seat, result.episode)
            if on_game is not None:
                on_game(result)
    except (Quit, KeyboardInterrupt):
        screen.line("Stopped; an unfinished game is not counted.", "italic")
    screen.score(opponent.name, tally)
    return tally
