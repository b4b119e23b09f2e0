"""`zerosum report`: one self-contained HTML file for a training run, an evaluation results
file, an arena directory or a benchmark directory.

The file opens offline: plots are inline SVG (matplotlib), replays are `<details>` elements,
there is no JavaScript and no reference to anything outside the file. Every string that came
from a model, an opponent or a game is escaped (`page.esc`): shown, never interpreted.
"""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path

from zerosum.arena.store import DB_NAME
from zerosum.report.benchmark import benchmark_report, benchmark_source, is_benchmark_results
from zerosum.report.page import esc, page
from zerosum.report.results import (
    ARENA_RESULTS,
    arena_report,
    eval_report,
    is_arena_results,
    is_eval_results,
)
from zerosum.report.training import is_training_run, training_report
from zerosum.rundir import CONFIG_NAME, write_atomic

__all__ = ["REPORT_NAME", "MAX_REPLAYS", "detect", "default_out", "write_report"]

REPORT_NAME = "report.html"
MAX_REPLAYS = 200


def _json(path: Path) -> object:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def detect(source: Path) -> str:
    """ "training", "eval", "arena" or "benchmark"; a `ValueError` naming what was expected
    otherwise."""
    if source.is_dir():
        if is_training_run(source):
            return "training"
        if (found := benchmark_source(source)) and is_benchmark_results(_json(found)):
            return "benchmark"
        if (source / DB_NAME).is_file() or is_arena_results(_json(source / ARENA_RESULTS)):
            return "arena"
        if (source / CONFIG_NAME).is_file():
            raise ValueError(f"{str(source)!r} is a run directory without metrics yet")
        raise ValueError(
            f"{str(source)!r} is not a training run (config.json and metrics.jsonl), an arena "
            f"directory ({DB_NAME} or {ARENA_RESULTS}), a benchmark directory (benchmark.json) "
            "or an evaluation results file"
        )
    if not source.is_file():
        raise ValueError(f"{str(source)!r} does not exist")
    data = _json(source)
    if is_eval_results(data):
        return "eval"
    if is_arena_results(data):
        return "arena"
    if is_benchmark_results(data):
        return "benchmark"
    raise ValueError(
        f"{str(source)!r} is not an evaluation results file (zerosum eval --out), an arena's "
        f"{ARENA_RESULTS} or a benchmark.json"
    )


def default_out(source: Path) -> Path:
    """DIR/report.html for a directory; FILE.html beside a results file."""
    if source.is_dir():
        return source / REPORT_NAME
    return source.with_suffix(".html")


def build_html(source: Path, max_replays: int = MAX_REPLAYS) -> str:
    kind = detect(source)
    if kind == "training":
        title, lede, sections = training_report(source, max_replays)
    elif kind == "eval":
        title, lede, sections = eval_report(source, json.loads(source.read_text()))
    elif kind == "benchmark":
        found = benchmark_source(source)
        title, lede, sections = benchmark_report(source, json.loads(found.read_text()))
    else:
        directory = source if source.is_dir() else source.parent
        title, lede, sections = arena_report(directory, max_replays)
    try:
        version = metadata.version("zerosum")
    except metadata.PackageNotFoundError:
        version = "unknown"
    footer = esc(f"Written by zerosum {version} (zerosum report {source}).")
    return page(title, lede, sections, footer)


def write_report(
    source: str | Path, out: str | Path | None = None, max_replays: int = MAX_REPLAYS
) -> Path:
    """Write the report of `source` (a run directory, an evaluation results file, an arena
    directory or a benchmark directory) to `out` (default: `default_out`), replacing it whole; returns its path."""
    source = Path(source)
    html = build_html(source, max_replays)
    path = Path(out) if out is not None else default_out(source)
    # errors="replace": a lone surrogate in some text cannot stop the report being written.
    write_atomic(path, html, errors="replace")
    return path
