"""Turning a model's untrusted response into a move.

The last `\\boxed{...}` wins (SPIRAL's convention; nested braces handled). Without one, a
configurable fallback takes the last bracketed legal action (`[bet]`). Matching ignores
case, whitespace, surrounding brackets/quotes and LaTeX text wrappers, and returns the
canonical legal string. Every path is linear in the input, and the input is cut to a
bounded tail first, so a 1 MB response costs no more than a short one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

from zerosum.typed_config import check_choice

# What else counts as the answer without a \boxed{}: the last [bracketed] legal action, also
# the last legal action named as a word, or nothing.
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
    for _ in range(3):  # nested wrappers such as \textbf{\text{bet}}
        answer = _TEXT_WRAPPER.sub(r"\1", answer)
    answer = answer.replace("\\", "").strip(_STRIP_CHARS)
    return re.sub(r"\s+", "", answer).lower()


def parse_action(
    response: str,
    legal_actions: Sequence[str] | None,
    fallback: Fallback = "last_bracket",
) -> ParsedAction:
    """Extract the move from `response`.

    `legal_actions=None` means a free-text game: the boxed content (or the last bracketed
    span) is the move, trimmed and length-bounded.
    """
    check_choice("parser fallback", fallback, FALLBACKS)
    text = response[-MAX_SCAN_CHARS:]
    boxed = last_boxed(text)
    if legal_actions is None:
        return _parse_free(text, boxed, fallback)

    by_key = {normalize(a): a for a in legal_actions}
    if boxed is not None:
        action = by_key.get(normalize(boxed))
        if action is not None:
            return ParsedAction(action)
        shown = boxed.strip()[:40]
        return ParsedAction(None, f"boxed answer {shown!r} is not a legal action")
    if fallback in ("last_bracket", "last_mention"):
        for match in reversed(_BRACKETED.findall(text)):
            action = by_key.get(normalize(match))
            if action is not None:
                return ParsedAction(action)
    if fallback == "last_mention" and (action := _last_mention(text, legal_actions)):
        return ParsedAction(action)
    if not text.strip():
        return ParsedAction(None, "empty response")
    missing = {"none": "", "last_bracket": " or bracketed legal action"}
    return ParsedAction(None, "no \\boxed{} answer" + missing.get(fallback, " or legal action"))


def _last_mention(text: str, legal_actions: Sequence[str]) -> str | None:
    """The legal action named last in the text as a whole word (`... so I check.`): the most
    lenient fallback, for small models that rarely format answers."""
    words = [a for a in legal_actions if a.strip()]
    if not words:
        return None
    pattern = (
        r"(?<![\w-])("
        + "|".join(re.escape(a) for a in sorted(words, key=len, reverse=True))
        + r")(?![\w-])"
    )
    matches = re.findall(pattern, text, flags=re.IGNORECASE)
    if not matches:
        return None
    key = normalize(matches[-1])
    return next(a for a in legal_actions if normalize(a) == key)


def _parse_free(text: str, boxed: str | None, fallback: Fallback) -> ParsedAction:
    if boxed is not None:
        move = boxed.strip()
    elif fallback == "last_bracket" and (found := _BRACKETED.findall(text)):
        move = f"[{found[-1].strip()}]"
    else:
        return ParsedAction(None, "empty response" if not text.strip() else "no \\boxed{} answer")
    if not move:
        return ParsedAction(None, "empty boxed answer")
    if len(move) > MAX_FREE_MOVE_CHARS:
        return ParsedAction(None, f"move longer than {MAX_FREE_MOVE_CHARS} characters")
    return ParsedAction(move)
