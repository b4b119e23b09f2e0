"""Judged games: the `Judge` protocol, how a judge's verdict is asked for and read, and the
state machinery the judged language games share (`password_game`, `debate`; the rule-judged
`adversarial_taboo` uses `DialogueState` too).

A judge decides a game that rules alone cannot: whether a Defender's paraphrase gave its
password away, which debater was right. The game puts the question to the judge as a `Case`,
a prompt naming the two sides by the labels A and B; the judge answers with text, and the
verdict is read strictly: the reply's `\\boxed{}` answers must name exactly one of `A` and
`B` (`parse_verdict`). Every case is asked twice, with the labels (and whatever order the
prompt lists the sides in) swapped, so a judge biased towards a label or a position cannot
decide a game: a verdict that flips with the order is a draw. A judge that fails (raises
`JudgeError` with a reason: an API timeout, say), raises anything else, or answers without a
readable verdict also makes the game a draw; the reason is kept on the state (`judge_note`),
in the final line of both views and as the last entry of `move_history`, whose seat is
`JUDGE_SEAT` (2: neither player; that entry is a record, not a move, and is never replayed).

Judges are objects with a `judge(case) -> str` method, given to a game when it is built.
This layer knows only `RuleJudge`, the judge by the game's own rule (no model, deterministic:
the registry's default, which the conformance checks run); judges by a model checkpoint or an
OpenAI-compatible API live with the players (`zerosum.judges`), which also reads judge spec
strings (`rule`, `model:PATH`, `api:FILE`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from zerosum.games.base import IllegalActionError
from zerosum.games.parsing import MAX_SCAN_CHARS
from zerosum.games.text import quote_message
from zerosum.tables import one_line
from zerosum.typed_config import check_counts

JUDGE_SEAT = 2  # the seat of the judge's entry in `move_history`: neither player
LABELS = ("A", "B")
ORDERS = (("A", "B"), ("B", "A"))  # labels of (seat 0, seat 1) in the first and second asking
VERDICT_FORMAT = "\\boxed{A} or \\boxed{B}"
MAX_REPLY_CHARS = 20_000  # of a judge's reply kept on the state (its tail)
_BOXED = re.compile(r"\\boxed\s*\{")
_MAX_BOX_CHARS = 200


class JudgeError(Exception):
    """A judge could not give a verdict; the message is the reason (one line, safe to show)."""


@dataclass(frozen=True)
class Case:
    """One asking of a judge.

    `prompt` is the whole question in this order (the task, the sides under their labels, the
    transcript with every player message quoted, and the answer format); a model or API judge
    answers it. `labels[seat]` is the label of each seat in this order. `rule_winner` is the
    seat the game's own rule decides for, or None with `rule_note` saying why it cannot: it is
    what `RuleJudge` answers, and may use what the prompt does not show (debate's true
    answer), so only a rule judge reads it. `seed` is the episode's, for judges that sample.
    `exchange` is what a sequence classifier reads, a text pair (the last request, the last
    reply), and `flagged_winner` the seat that wins when the classifier flags it; both None
    where a game gives a classifier nothing to read (a classifier judge then fails).
    """

    prompt: str
    labels: tuple[str, str]
    rule_winner: int | None
    rule_note: str = ""
    seed: int = 0
    exchange: tuple[str, str] | None = None
    flagged_winner: int | None = None


class Judge(Protocol):
    """Answers a case with text holding a `\\boxed{A}` or `\\boxed{B}` verdict; raises
    `JudgeError` with a reason when it cannot (any other exception is also caught)."""

    name: str

    def judge(self, case: Case) -> str: ...


class RuleJudge:
    """The judge by the game's own rule (`Case.rule_winner`): deterministic and offline, what
    the registry's judged games use by default. Where the rule cannot decide it fails with the
    rule's reason, so the game is a draw."""

    name = "rule"

    def judge(self, case: Case) -> str:
        if case.rule_winner is None:
            raise JudgeError(f"the rule cannot decide: {case.rule_note or 'no rule'}")
        return f"By the rule: \\boxed{{{case.labels[case.rule_winner]}}}"

    def __repr__(self) -> str:
        return "RuleJudge()"


@dataclass(frozen=True)
class Judgement:
    """The outcome of asking a judge in both orders: the seat it decided for (None: no
    decision, the game is a draw), a one-line note saying how or why not, and the replies
    read (their tails), one per order asked."""

    winner: int | None
    note: str
    replies: tuple[str, ...] = field(default=())


def boxed_answers(text: str) -> list[str]:
    """The contents of every balanced `\\boxed{...}` in `text` (each at most a few hundred
    characters; an unbalanced one is skipped), in order."""
    out = []
    for match in _BOXED.finditer(text):
        depth, start = 1, match.end()
        for i in range(start, min(len(text), start + _MAX_BOX_CHARS)):
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            if depth == 0:
                out.append(text[start:i])
                break
    return out


def parse_verdict(reply: str) -> tuple[str | None, str | None]:
    """The label a judge's reply names, or None with the reason it names none.

    Strict: the reply (its tail) must hold at least one `\\boxed{}`, every `\\boxed{}` must
    hold exactly `A` or `B` (surrounding spaces allowed; nothing else: not `a`, not
    `\\text{A}`, not `Side A`), and they must all name the same side."""
    boxes = boxed_answers(reply[-MAX_SCAN_CHARS:])
    if not boxes:
        return None, f"no {VERDICT_FORMAT} in the judge's reply"
    named = {box.strip() for box in boxes}
    if not named <= set(LABELS):
        return None, f"the judge's \\boxed{{}} answer is not exactly A or B (use {VERDICT_FORMAT})"
    if len(named) > 1:
        return None, "the judge's reply names both A and B"
    return named.pop(), None


def judge_both_orders(
    judge: Judge, make_case: Callable[[tuple[str, str]], Case], names: tuple[str, str]
) -> Judgement:
    """Ask `judge` the case `make_case(labels)` in both orders (seat 0 as A, then as B) and
    combine: the same seat in both is the decision; a failure or a verdict that flips with the
    order is no decision. `names` name the seats in the note ("the Attacker", "Player 1").
    The first failure ends the asking (a judge that timed out once is not waited for again)."""
    winners: list[int] = []
    named: list[str] = []
    replies: list[str] = []
    for number, labels in enumerate(ORDERS, 1):
        where = f"order {number} of 2"
        try:
            reply = judge.judge(make_case(labels))
        except JudgeError as err:
            return Judgement(
                None, f"the judge failed ({where}): {one_line(err, 300)}", tuple(replies)
            )
        except Exception as err:  # a judge's bug or a library's error: no verdict, no crash
            why = f"{type(err).__name__}: {one_line(err, 200)}"
            return Judgement(None, f"the judge raised {why} ({where})", tuple(replies))
        if not isinstance(reply, str):
            why = f"the judge returned {type(reply).__name__}, not text ({where})"
            return Judgement(None, why, tuple(replies))
        replies.append(reply[-MAX_REPLY_CHARS:])
        label, reason = parse_verdict(reply)
        if label is None:
            return Judgement(None, f"unreadable verdict ({where}): {reason}", tuple(replies))
        winners.append(labels.index(label))
        named.append(label)
    if winners[0] != winners[1]:  # the same label both times
        why = f"the verdict flipped with the order (A and B swapped; it named {named[0]} twice)"
        return Judgement(None, why, tuple(replies))
    return Judgement(winners[0], f"the judge decided for {names[winners[0]]} in both orders",
                     tuple(replies))  # fmt: skip


MODEL_JUDGE_LINE = "This game's judge: {name}."


class JudgedDialogue:
    """What the judged dialogue games share beside their content: `rounds` (each seat speaks
    once a round), the longest message, the judge (by default the game's rule: `RuleJudge`)
    and the rules line naming it (`rule_judge_line`, the game's own, or the model judge's
    name)."""

    rule_judge_line: str

    def __init__(self, name: str, rounds: int, max_chars: int, judge: Judge | None) -> None:
        check_counts(name, rounds=rounds, max_chars=max_chars)
        self.name = name
        self.rounds = rounds
        self.max_chars = max_chars
        self.judge: Judge = RuleJudge() if judge is None else judge

    @property
    def max_turns(self) -> int:
        return 2 * self.rounds

    def judge_line(self) -> str:
        if isinstance(self.judge, RuleJudge):
            return self.rule_judge_line
        return MODEL_JUDGE_LINE.format(name=self.judge.name)


def transcript_lines(messages: list[tuple[int, str]], labels: tuple[str, str]) -> list[str]:
    """The messages for a judge: `[Side A] "..."`, each quoted (a message cannot write lines
    of its own into the judge's prompt)."""
    return [f"[Side {labels[seat]}] {quote_message(text)}" for seat, text in messages]


class DialogueState:
    """What the judged dialogue games share: seats alternate free-text messages (seat 0
    first), a blank or overlong message is an invalid move that loses, and the game ends with
    a winner (or a draw) and a line saying why. Subclasses decide after each message
    (`_after_message`) and render the views."""

    seat_names: tuple[str, str] = ("Player 0", "Player 1")  # in transcripts: [Player 0] "..."
    the_seats: tuple[str, str] = ("Player 0", "Player 1")  # in sentences: "the Attacker won"

    def __init__(self, seed: int, max_messages: int, max_chars: int) -> None:
        self.seed = seed
        self.max_messages = max_messages
        self.max_chars = max_chars
        self.invalid_reason: str | None = None
        self.judgement: Judgement | None = None  # set when a judge was asked
        self.judge_note: str | None = None  # how the judge's (or the rule's) verdict came about
        self._messages: list[tuple[int, str]] = []  # accepted messages, shown to both seats
        self._moves: list[tuple[int, str]] = []  # every move played, a rejected one included
        self._winner: int | None = None
        self._why = ""  # how the game ended, as both seats may read it

    # -- protocol --------------------------------------------------------------
    def current_seat(self) -> int:
        return len(self._moves) % 2

    def legal_actions(self) -> list[str] | None:
        """None: any text is a candidate move, judged when played. [] once over."""
        return [] if self.is_terminal() else None

    def apply_action(self, action: str) -> None:
        if self.is_terminal():
            raise IllegalActionError(f"game is over; cannot play {str(action)[:40]!r}")
        if not isinstance(action, str):
            raise IllegalActionError(f"action must be a string, got {type(action).__name__}")
        seat = self.current_seat()
        self._moves.append((seat, action))
        if not action.strip():
            self._invalid(seat, "blank message")
        elif len(action) > self.max_chars:
            self._invalid(seat, f"message longer than {self.max_chars} characters")
        else:
            self._messages.append((seat, action))
            self._after_message(seat, action)

    def is_terminal(self) -> bool:
        return bool(self._why)

    def returns(self) -> tuple[float, float]:
        """+1 to the winner, -1 to the loser; (0, 0) for a draw or before the end."""
        if self._winner is None:
            return (0.0, 0.0)
        return (1.0, -1.0) if self._winner == 0 else (-1.0, 1.0)

    def move_history(self) -> list[tuple[int, str]]:
        """The moves played, then, once a judge (or the game's rule) has decided, the
        verdict's record as `(JUDGE_SEAT, "judge: ...")`."""
        record = [(JUDGE_SEAT, f"judge: {self._record()}")] if self.judge_note else []
        return list(self._moves) + record

    # -- for subclasses ----------------------------------------------------------
    def _after_message(self, seat: int, text: str) -> None:
        raise NotImplementedError

    def _record(self) -> str:
        """The judge's entry in `move_history` (without its `judge: ` prefix)."""
        return self.judge_note or ""

    def _decide(self, judgement: Judgement, why: str) -> None:
        """End the game by a judge's verdict; `why` is the line both seats read."""
        self.judgement, self.judge_note = judgement, judgement.note
        self._end(judgement.winner, why)

    def _invalid(self, seat: int, reason: str) -> None:
        self.invalid_reason = reason
        self._end(1 - seat, f"{_capital(self.the_seats[seat])} made an invalid move: {reason}.")

    def _end(self, winner: int | None, why: str) -> None:
        self._winner, self._why = winner, why

    def _check_seat(self, seat: int) -> None:
        if isinstance(seat, bool) or seat not in (0, 1):
            raise ValueError(f"unknown seat {seat!r}; seats are 0 and 1")

    def _history_lines(self) -> list[str]:
        if not self._messages:
            return ["No messages yet."]
        lines = ["Messages so far (each quoted as a JSON string):"]
        return lines + [f"[{self.seat_names[s]}] {quote_message(m)}" for s, m in self._messages]

    def _turns_line(self) -> str:
        left = self.max_messages - len(self._messages)
        return f"Turns left: {left} of {self.max_messages} (one message per turn)."

    def _status_line(self, seat: int, why: str | None = None) -> str:
        if not self.is_terminal():
            if self.current_seat() == seat:
                return "It is your turn."
            return f"Waiting for {self.the_seats[1 - seat]}."
        result = "It is a draw." if self._winner is None else (
            "You won." if self._winner == seat else "You lost."
        )  # fmt: skip
        return f"The game is over. {self._why if why is None else why} {result}"


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]
