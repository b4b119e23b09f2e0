"""Plots as inline SVG, drawn by matplotlib (no pyplot state, no files, no fonts embedded).

The SVG is cleaned for inlining: no XML prologue, DOCTYPE or metadata (they name URLs), no
namespace declarations (HTML's parser needs none), no element ids but the ones the drawing
refers to, which matplotlib derives from a per-plot salt so two plots never share one.
"""

from __future__ import annotations

import hashlib
import io
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from zerosum.report.page import esc

RC = {
    "svg.fonttype": "none",  # text as <text>, not glyph outlines
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans"],
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "legend.fontsize": 8,
    "legend.frameon": False,
}


@dataclass
class Series:
    """One line: its label, the x and y values (None or NaN: a gap), an optional band
    (`lo`, `hi`) and whether it is dashed."""

    label: str
    x: Sequence[float]
    y: Sequence[float | None]
    lo: Sequence[float] | None = None
    hi: Sequence[float] | None = None
    dashed: bool = False
    color: int | None = None  # matplotlib's C0, C1, ...; by position when None


def mpl_text(text: str) -> str:
    """Data as matplotlib text: a `$` would start mathtext."""
    return str(text).replace("$", r"\$")


def _float(v: float | None) -> float:
    return math.nan if v is None else float(v)


def line_plot(
    title: str, series: Sequence[Series], ylabel: str = "", xlabel: str = "step",
    ylim: tuple[float, float] | None = None, log: bool = False,
) -> str:  # fmt: skip
    """A line plot as an `<svg>` element; "" when no series has a value."""
    series = [s for s in series if any(v is not None and math.isfinite(v) for v in s.y)]
    if not series:
        return ""
    import matplotlib  # a second to import: only when a report is drawn
    from matplotlib.figure import Figure

    with matplotlib.rc_context({**RC, "svg.hashsalt": _salt(title, series)}):
        fig = Figure(figsize=(6.2, 3.0), layout="constrained")
        ax = fig.add_subplot()
        for i, s in enumerate(series):
            color = f"C{(s.color if s.color is not None else i) % 10}"
            x, y = list(s.x), [_float(v) for v in s.y]
            marker = "o" if len(x) <= 30 else None
            ax.plot(
                x, y, linestyle="--" if s.dashed else "-", marker=marker, markersize=3,
                linewidth=1.4, color=color, label=mpl_text(s.label),
            )  # fmt: skip
            if s.lo is not None and s.hi is not None:
                lo, hi = [_float(v) for v in s.lo], [_float(v) for v in s.hi]
                ax.fill_between(x, lo, hi, color=color, alpha=0.15, linewidth=0)
        ax.set_title(mpl_text(title), loc="left", fontsize=10)
        ax.set_xlabel(mpl_text(xlabel))
        ax.set_ylabel(mpl_text(ylabel))
        if log:
            ax.set_yscale("log")
        if ylim is not None:
            ax.set_ylim(*ylim)
        ax.xaxis.get_major_locator().set_params(integer=True)
        if len(series) > 1 or series[0].label:
            ax.legend(loc="best")
        return _svg(fig)


def bar_plot(
    title: str, labels: Sequence[str], groups: Sequence[tuple[str, Sequence[float], Sequence]],
    ylabel: str = "", ylim: tuple[float, float] | None = (0, 1),
) -> str:  # fmt: skip
    """Grouped bars: for each (name, values, (lo, hi) intervals or None) one bar per label."""
    if not labels or not groups:
        return ""
    import matplotlib
    from matplotlib.figure import Figure

    with matplotlib.rc_context({**RC, "svg.hashsalt": _salt(title, labels)}):
        fig = Figure(figsize=(6.2, 3.0), layout="constrained")
        ax = fig.add_subplot()
        width = 0.8 / len(groups)
        for g, (name, values, intervals) in enumerate(groups):
            xs = [i + (g - (len(groups) - 1) / 2) * width for i in range(len(labels))]
            err = None
            if intervals is not None:
                err = [
                    [max(v - lo, 0) for v, (lo, _) in zip(values, intervals)],
                    [max(hi - v, 0) for v, (_, hi) in zip(values, intervals)],
                ]
            ax.bar(xs, values, width, yerr=err, capsize=3, label=mpl_text(name), color=f"C{g}")
        ax.set_xticks(range(len(labels)), [mpl_text(x) for x in labels], rotation=15)
        ax.set_title(mpl_text(title), loc="left", fontsize=10)
        ax.set_ylabel(mpl_text(ylabel))
        if ylim is not None:
            ax.set_ylim(*ylim)
        ax.legend(loc="best")
        return _svg(fig)


def _salt(title: str, parts: Sequence) -> str:
    text = title + "\0" + "\0".join(str(getattr(p, "label", p)) for p in parts)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


_PROLOGUE = re.compile(r"^.*?(?=<svg)", re.S)
_METADATA = re.compile(r"<metadata>.*?</metadata>\s*", re.S)
_XMLNS = re.compile(r'\s+xmlns(?::\w+)?="[^"]*"')
_GROUP_ID = re.compile(r'<g id="[^"]*"')  # matplotlib's figure_1, axes_1: never referred to


def _svg(fig) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None, "Format": None})
    svg = _PROLOGUE.sub("", buf.getvalue(), count=1)
    svg = _METADATA.sub("", svg)
    svg = _XMLNS.sub("", svg)
    return _GROUP_ID.sub("<g", svg).strip()


def figure(svg: str, caption: str) -> str:
    """A plot with its caption (`caption` is text: escaped here); "" without a plot."""
    if not svg:
        return ""
    return f"<figure>{svg}<figcaption>{esc(caption)}</figcaption></figure>"
