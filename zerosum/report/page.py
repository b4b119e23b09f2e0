"""HTML building blocks of the report: every value is escaped here, once, on its way in.

Nothing from a run, an evaluation or an arena (model responses, prompts, game text, player
and game names, config values) is ever markup: it goes through `esc` into text content or
a quoted attribute, so `<script>` in a response shows as the characters `<script>`. The page
has no JavaScript at all, and its Content-Security-Policy forbids scripts and every fetch, so
even a mistake here could neither run code nor reach the network. Replays are `<details>`
elements, which open and close without scripts.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from zerosum.untrusted import for_display

# Scripts, plug-ins, frames, fonts, images from anywhere: none. Inline styles only (the
# page's own and matplotlib's inside each SVG).
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto;
       max-width: 1100px; padding: 0 1.2em 4em; color: #1d1d1f; }
h1 { font-size: 1.5em; margin: 1em 0 .2em; } h2 { margin-top: 2em; border-bottom: 1px solid #ddd; }
h3 { margin-top: 1.4em; }
.lede { color: #555; margin-top: 0; }
table { border-collapse: collapse; margin: .6em 0 1em; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #ddd; padding: .25em .55em; text-align: right; vertical-align: top; }
th { background: #f5f5f7; } td.l, th.l { text-align: left; }
table.kv td:first-child { text-align: left; color: #555; white-space: nowrap; }
table.kv td { text-align: left; }
figure { margin: 1em 0; } figure svg { max-width: 100%; height: auto; }
figcaption { color: #555; font-size: .9em; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(480px, 1fr)); gap: 0 1.5em; }
pre { white-space: pre-wrap; word-break: break-word; background: #f6f8fa; padding: .6em;
      border-radius: 4px; margin: .3em 0 .6em; unicode-bidi: plaintext; max-height: 40em;
      overflow: auto; }
details { margin: .3em 0; } summary { cursor: pointer; }
details.game { border: 1px solid #ddd; border-radius: 4px; padding: .3em .7em; }
details.game[open] { background: #fcfcfd; }
ol.turns { padding-left: 1.5em; } li.turn { margin: .6em 0; }
.seat0 { border-left: 3px solid #1f77b4; padding-left: .6em; }
.seat1 { border-left: 3px solid #ff7f0e; padding-left: .6em; }
.bad { color: #b00020; } .muted { color: #777; } code { background: #f0f0f3; padding: 0 .2em; }
.note { color: #555; font-size: .92em; }
"""


def esc(value: object) -> str:
    """Any value as HTML text (quotes included, so it is safe in an attribute too), without
    bidi or other control characters (`untrusted.for_display`)."""
    return html.escape(for_display(str(value)), quote=True)


def num(value: object, digits: int = 3) -> str:
    """A number as text (escape it before it goes into markup: `table` and `kv_table` cells
    are escaped): `digits` decimals, integers as integers; anything else as `str` gives it."""
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int) or (math.isfinite(value) and float(value).is_integer()):
        return f"{int(value)}" if abs(value) < 1e15 else f"{value:.3g}"
    if not math.isfinite(value):
        return str(value)
    return f"{value:.{digits}f}" if abs(value) >= 10 ** -(digits - 1) else f"{value:.2e}"


def rate(p: float | None, ci: Sequence[float] | None = None, n: int | None = None) -> str:
    """`0.62 [0.41, 0.79] n=32`: a rate with its interval and the games behind it."""
    if p is None:
        return "-"
    out = f"{p:.2f}"
    if ci:
        out += f" [{ci[0]:.2f}, {ci[1]:.2f}]"
    if n is not None:
        out += f" <span class=muted>n={int(n)}</span>"
    return out


@dataclass(frozen=True)
class Raw:
    """Markup this module built itself (never data): inserted as it is."""

    markup: str


def cell(value: object) -> str:
    return value.markup if isinstance(value, Raw) else esc(value)


def table(
    header: Sequence[str], rows: Iterable[Sequence[object]], left: int = 1, cls: str = ""
) -> str:
    """A table; the first `left` columns are left-aligned (names), the rest right-aligned
    (figures). A cell is escaped unless it is `Raw`."""

    def align(i: int) -> str:
        return " class=l" if i < left else ""

    head = "".join(f"<th{align(i)}>{esc(h)}</th>" for i, h in enumerate(header))
    body = "".join(
        "<tr>" + "".join(f"<td{align(i)}>{cell(v)}</td>" for i, v in enumerate(row)) + "</tr>"
        for row in rows
    )
    attr = f' class="{esc(cls)}"' if cls else ""
    return f"<table{attr}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def kv_table(pairs: Iterable[tuple[str, object]]) -> str:
    """Name/value rows (a config, a game's facts)."""
    rows = "".join(f"<tr><td>{esc(k)}</td><td>{cell(v)}</td></tr>" for k, v in pairs)
    return f'<table class="kv"><tbody>{rows}</tbody></table>'


def pre(text: object) -> str:
    return f"<pre>{esc(text)}</pre>"


def details(summary: str, body: str, cls: str = "", open_: bool = False) -> str:
    """A `<details>` element; `summary` is markup built here (escape data before)."""
    attr = f' class="{esc(cls)}"' if cls else ""
    return f"<details{attr}{' open' if open_ else ''}><summary>{summary}</summary>{body}</details>"


def section(title: str, body: str, anchor: str) -> str:
    return f'<section id="{esc(anchor)}"><h2>{esc(title)}</h2>{body}</section>'


def page(title: str, lede: str, sections: Sequence[tuple[str, str, str]], footer: str) -> str:
    """The whole document: `sections` are (title, anchor, body markup)."""
    nav = " · ".join(f'<a href="#{esc(anchor)}">{esc(t)}</a>' for t, anchor, _ in sections)
    body = "".join(section(t, b, anchor) for t, anchor, b in sections)
    return (
        "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
        f"<h1>{esc(title)}</h1><p class=lede>{lede}</p><nav>{nav}</nav>{body}"
        f"<footer class=note><p>{footer}</p></footer></body></html>\n"
    )
