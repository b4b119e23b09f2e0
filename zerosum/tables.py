"""Plain text for people: table rows of the command line (`zerosum match`, `zerosum eval`)
and one-line error messages."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def table_row(cells: Sequence[object], widths: Sequence[int], indent: str = "") -> str:
    """One line of a table: the cells separated by a space, each padded to its column width,
    right-aligned, or left-aligned for a negative width (like printf's `%-Ns`); a cell wider
    than its column is not cut."""
    padded = (f"{c!s:<{-w}}" if w < 0 else f"{c!s:>{w}}" for c, w in zip(cells, widths))
    return indent + " ".join(padded)


def reason_lines(reasons: Iterable[tuple[str, int]], indent: str) -> list[str]:
    """`invalid xN: reason` lines, in the order given (most frequent first, as
    `Counter.most_common` returns them), each after `indent`."""
    return [f"{indent}invalid x{count}: {reason}" for reason, count in reasons]


def one_line(err: BaseException | str, limit: int | None = None) -> str:
    """An exception's message (or a text) as one line, cut to `limit` characters if given
    (transformers' and gloo's messages span many lines)."""
    text = " ".join(str(err).split()) or type(err).__name__
    if limit is None or len(text) <= limit:
        return text
    return text[: limit - 3] + "..."
