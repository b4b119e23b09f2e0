"""Turning a model's untrusted response into a move.

The last `\\boxed{...}` wins (SPIRAL's convention; nested braces handled). Without one, a
configurable fallback takes the last bracketed legal action (`[bet]`). Matching ignores
case, whitespace, surrounding brackets/quotes and LaTeX text wrappers, and returns the
canonical legal string. Legal actions given as an `ActionList` also match by their aliases
(chess: UCI `e2e4` for `e4`). Where ignoring case would make two actions one (chess's pawn
capture `bxc4` and bishop capture `Bxc4`), the answer's exact case decides, and an answer
that matches both only case-insensitively is ambiguous, so invalid. Every path is linear in
the input, and the input is cut to a bounded tail first, so a 1 MB response costs no more
than a short one.

A thinking block (Qwen3's `<think>...</think>`, which reasoning templates open in the prompt or
let the model open) is not part of the answer: `split_thinking` cuts it off before the parser
searches, so a move written while thinking is never read as the move, nor passed on to the
other seat. As in Qwen3's own template, everything up to the last `</think>` is thinking; a
block opened and never closed (cut at the token limit) leaves no answer after it.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

from zerosum.typed_config import check_choice

# What else counts as the answer without a \boxed{}: the last [bracketed] legal action, also
# the last legal action named as a word (in a free-text game: the whole answer), or nothing.
Fallback = Literal["last_bracket", "last_mention", "none"]
FALLBACKS: tuple[str, ...] = get_args(Fallback)

# Only the tail of a response can hold its final answer; cap the work on huge inputs.
MAX_SCAN_CHARS = 20_000
# Longest free-text move passed on to a language game.
MAX_FREE_MOVE_CHARS = 500
MAX_BOXED_CHARS = 2_000
MAX_BOXED_TRIES = 8

_TEXT_WRAPPER = re.compile(r"\\(?:text|textbf|textit|texttt|mathrm|mathbf|mbox)\s*\{([^{}]*)\}")
_BRACKETED = re.compile(r"\[([^\[\]\n]{1,80})\]")
_STRIP_CHARS = " \t\r\n{}[]()'\"`.,;:!*$"


THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"


@dataclass(frozen=True)
class Thought:
    """A response split into its thinking block (tags included; "" without one) and its
    answer; `finished` is False for a block opened and never closed."""

    thinking: str
    answer: str
    finished: bool = True


def split_thinking(response: str) -> Thought:
    """The thinking block of `response` and the answer outside it (`Thought`)."""
    end = response.rfind(THINK_CLOSE)
    if end != -1:
        end += len(THINK_CLOSE)
        return Thought(response[:end], response[end:])
    start = response.find(THINK_OPEN)
    if start != -1:
        return Thought(response[start:], response[:start], finished=False)
    return Thought("", response)


def names_any(text: str, words: Sequence[str]) -> bool:
    """Whether `text` names one of `words`: a one-letter word as a capital letter standing
    alone ("K", not the k of "kick" or "OK"), a longer one as a whole word in any case, plural
    included ("king", "Kings")."""
    for word in words:
        if len(word) == 1:
            pattern = rf"(?<![A-Za-z]){re.escape(word.upper())}(?![A-Za-z])"
            if re.search(pattern, text):
                return True
        elif re.search(rf"\b{re.escape(word)}s?\b", text, re.IGNORECASE):
            return True
    return False


def math_equal(text: str, answer: str) -> bool:
    """Whether `text`'s final answer is mathematically equal to `answer` (math-verify reads
    both). math-verify's timeouts use signal.alarm, which fails outside the main thread (the
    arena and API players run games in threads): there the caller's bound on `text` is the
    only limit."""
    from math_verify import parse, verify  # slow to import: only when something is graded

    limit = 5 if threading.current_thread() is threading.main_thread() else None
    gold = parse(f"${answer}$", parsing_timeout=limit)
    found = parse(text, parsing_timeout=limit)
    return bool(gold) and bool(found) and bool(verify(gold, found, timeout_seconds=limit))


@dataclass(frozen=True)
class ParsedAction:
    """A canonical legal action, or None with the reason the response was rejected."""

    action: str | None
    reason: str | None = None

    @property
    def valid(self) -> bool:
        return self.action is not None


def last_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{...}` (or `\\fbox{...}`) with balanced braces, or None.

    Unbalanced occurrences are skipped in favour of an earlier balanced one; both the
    number of occurrences tried and the length of a boxed answer are capped.
    """
    start = len(text)
    for _ in range(MAX_BOXED_TRIES):
        start = max(text.rfind("\\boxed", 0, start), text.rfind("\\fbox", 0, start))
        if start == -1:
            return None
        i = text.find("{", start, start + 16)
        # Only whitespace may sit between the command and its brace.
        if i == -1 or text[start:i].rstrip() not in ("\\boxed", "\\fbox"):
            continue
        depth = 0
        for j in range(i, min(len(text), i + MAX_BOXED_CHARS)):
            ch = text[j]
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
                if depth == 0:
                    return text[i + 1 : j]
    return None


def normalize(answer: str) -> str:
    """Case-, whitespace- and wrapper-insensitive key used to compare answers."""
    return _squash(answer).lower()


def _squash(answer: str) -> str:
    """`normalize` keeping the case."""
    for _ in range(3):  # nested wrappers such as \textbf{\text{bet}}
        answer = _TEXT_WRAPPER.sub(r"\1", answer)
    answer = answer.replace("\\", "").strip(_STRIP_CHARS)
    return re.sub(r"\s+", "", answer)


class _Answers:
    """The legal actions and their aliases (an `ActionList`'s), looked up by key: the exact
    spelling (case kept) first, then case-insensitively where that names one action only."""

    def __init__(self, legal_actions: Sequence[str]):
        self.spellings = [(a, a) for a in legal_actions]
        self.spellings += getattr(legal_actions, "aliases", {}).items()
        self.exact: dict[str, str] = {}
        self.folded: dict[str, set[str]] = {}
        for text, action in self.spellings:  # legal actions first: they win over an alias
            key = _squash(text)
            self.exact.setdefault(key, action)
            self.folded.setdefault(key.lower(), set()).add(action)

    def match(self, answer: str) -> tuple[str | None, list[str]]:
        """(the canonical action, []), or (None, the actions it could mean when ambiguous)."""
        key = _squash(answer)
        if key in self.exact:
            return self.exact[key], []
        actions = self.folded.get(key.lower(), set())
        if len(actions) == 1:
            return next(iter(actions)), []
        return None, sorted(actions)


def match_action(answer: str, legal_actions: Sequence[str]) -> str | None:
    """The canonical legal action `answer` names (as `parse_action` matches a boxed answer),
    or None when it names none or is ambiguous."""
    return _Answers(legal_actions).match(answer)[0]


def parse_action(
    response: str,
    legal_actions: Sequence[str] | None,
    fallback: Fallback = "last_bracket",
) -> ParsedAction:
    """Extract the move from `response`.

    `legal_actions=None` means a free-text game: the boxed content (or the last bracketed
    span; with `last_mention`, then the whole answer, as in SPAG where the reply is the
    message) is the move, trimmed and length-bounded.
    """
    check_choice("parser fallback", fallback, FALLBACKS)
    text = response[-MAX_SCAN_CHARS:]
    boxed = last_boxed(text)
    if legal_actions is None:
        return _parse_free(text, boxed, fallback)

    answers = _Answers(legal_actions)
    if boxed is not None:
        action, could_be = answers.match(boxed)
        if action is not None:
            return ParsedAction(action)
        shown = boxed.strip()[:40]
        if could_be:
            meant = " or ".join(could_be)
            return ParsedAction(
                None, f"boxed answer {shown!r} is ambiguous: {meant}? Mind the case"
            )
        return ParsedAction(None, f"boxed answer {shown!r} is not a legal action")
    if fallback in ("last_bracket", "last_mention"):
        for match in reversed(_BRACKETED.findall(text)):
            action = answers.match(match)[0]
            if action is not None:
                return ParsedAction(action)
    if fallback == "last_mention" and (action := _last_mention(text, answers)):
        return ParsedAction(action)
    if not text.strip():
        return ParsedAction(None, "empty response")
    missing = {"none": "", "last_bracket": " or bracketed legal action"}
    return ParsedAction(None, "no \\boxed{} answer" + missing.get(fallback, " or legal action"))


def _last_mention(text: str, answers: _Answers) -> str | None:
    """The legal action (or alias) named last in the text as a whole word (`... so I
    check.`), ambiguous ones skipped: the most lenient fallback, for small models that rarely
    format answers."""
    words = {t for t, _ in answers.spellings if t.strip()}
    if not words:
        return None
    pattern = (
        r"(?<![\w-])("
        + "|".join(re.escape(a) for a in sorted(words, key=len, reverse=True))
        + r")(?![\w-])"
    )
    for match in reversed(re.findall(pattern, text, flags=re.IGNORECASE)):
        if (action := answers.match(match)[0]) is not None:
            return action
    return None


def _parse_free(text: str, boxed: str | None, fallback: Fallback) -> ParsedAction:
    if boxed is not None:
        move = boxed.strip()
    elif fallback != "none" and (found := _BRACKETED.findall(text)):
        move = f"[{found[-1].strip()}]"
    elif fallback == "last_mention" and text.strip():
        move = text.strip()
    else:
        return ParsedAction(None, "empty response" if not text.strip() else "no \\boxed{} answer")
    if not move:
        return ParsedAction(None, "empty boxed answer")
    if len(move) > MAX_FREE_MOVE_CHARS:
        return ParsedAction(None, f"move longer than {MAX_FREE_MOVE_CHARS} characters")
    return ParsedAction(move)
