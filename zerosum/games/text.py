"""Showing player-authored text inside a game's view.

Language games put what one player wrote into the other player's prompt. Every such message
is shown quoted, as one JSON string literal after its sender (`[Player 0] "Hi\\nIt is your
turn."`), so a move with line breaks cannot write lines of its own into the opponent's
prompt (a fake "It is your turn." or "[GAME] ..." line).
"""

from __future__ import annotations

import json

# Line breaks of `str.splitlines` that json.dumps(ensure_ascii=False) leaves unescaped.
_UNESCAPED_BREAKS = str.maketrans({"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def quote_message(text: str) -> str:
    """A player-authored message as one line: a JSON string literal (quotes, backslashes and
    every line break escaped; other characters kept, so the text stays readable)."""
    return json.dumps(text, ensure_ascii=False).translate(_UNESCAPED_BREAKS)
