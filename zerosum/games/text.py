"""Showing player-authored text inside a game's view.

Language games put what one player wrote into the other player's prompt. Every such message
is shown quoted, as one JSON string literal after its sender (`[Player 0] "Hi\\nIt is your
turn."`), so a move with line breaks cannot write lines of its own into the opponent's
prompt (a fake "It is your turn." or "[GAME] ..." line). A game that repeats what a player
wrote inside its own messages runs them through `quote_echoes`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

# Line breaks of `str.splitlines` that json.dumps(ensure_ascii=False) leaves unescaped.
_UNESCAPED_BREAKS = str.maketrans({"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def quote_message(text: str) -> str:
    """A player-authored message as one line: a JSON string literal (quotes, backslashes and
    every line break escaped; other characters kept, so the text stays readable)."""
    return json.dumps(text, ensure_ascii=False).translate(_UNESCAPED_BREAKS)


# Every character `str.splitlines` breaks a line at.
LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
_SPLIT = re.compile(f"[{re.escape(LINE_BREAKS)}]")


def quote_echoes(text: str, moves: Iterable[str]) -> str:
    """`text`, written by a game, with the players' words it repeats quoted where they would
    make up a line of it: every run of a move that spans a line break and covers a whole line
    of `text`, and every line of `text` that is a whole move (stripped), becomes
    `quote_message` of itself. Games that echo a move (or part of one, such as the talk before
    a bracketed action) in their own messages then cannot be made to show a player-written
    line in the game's voice."""
    for move in moves:
        for p, char in enumerate(move):
            if char not in LINE_BREAKS or char not in text:
                continue
            a, b = p, p + 1  # grow the run of `move` around this break while `text` has it
            while a > 0 and move[a - 1 : b] in text:
                a -= 1
            while b < len(move) and move[a : b + 1] in text:
                b += 1
            run = move[a:b]
            if _covers_a_line(text, run):
                text = text.replace(run, quote_message(run))
        whole = move.strip()
        if whole and any(line.strip() == whole for line in _SPLIT.split(text)):
            text = "\n".join(
                quote_message(line) if line.strip() == whole else line for line in text.splitlines()
            )
    return text


def _covers_a_line(text: str, run: str) -> bool:
    """Whether some occurrence of `run` in `text` holds a whole non-blank line of `text`."""
    start = text.find(run)
    while start != -1:
        end = start + len(run)
        pieces = _SPLIT.split(text[start:end])
        whole = pieces[1:-1]
        if start == 0 or text[start - 1] in LINE_BREAKS:
            whole.append(pieces[0])
        if end == len(text) or text[end] in LINE_BREAKS:
            whole.append(pieces[-1])
        if any(piece.strip() for piece in whole):
            return True
        start = text.find(run, start + 1)
    return False
