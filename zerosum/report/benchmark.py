"""The report of a benchmark (`zerosum benchmark --out DIR`): its table, each later model's
paired difference from the first, the per-split means and the suite's settings, from
benchmark.json."""

from __future__ import annotations

import json
from pathlib import Path

from zerosum.benchmark.run import RESULTS_JSON
from zerosum.benchmark.table import NOTE, column_title
from zerosum.report.page import Raw, esc, kv_table, rate, table


def is_benchmark_results(data: object) -> bool:
    return isinstance(data, dict) and {"suite", "rows", "columns", "cells"} <= set(data)


def benchmark_source(source: Path) -> Path | None:
    """The benchmark.json of a benchmark directory, or the file itself."""
    path = source / RESULTS_JSON if source.is_dir() else source
    return path if path.is_file() else None


def _interval(x: float, ci: list[float], signed: bool = False) -> str:
    s = "+" if signed else ""
    return f"{x:{s}.2f} [{ci[0]:{s}.2f}, {ci[1]:{s}.2f}]"


def _cell(c: dict | None, column: dict, skipped: str | None) -> object:
    if skipped:
        return f"skipped: {skipped}"
    if c is None:
        return "-"
    if column["split"] == "math":
        return Raw(rate(c["pass@1"], c["pass@1_ci95"], c["problems"]))
    lines = [
        f"win {rate(c['win_rate'], c['win_ci95'], c['games'])}",
        f"return {esc(_interval(c['mean_return'], c['mean_return_ci95'], True))}",
        f"forfeit {rate(c['forfeit_rate'], c['forfeit_ci95'])}",
    ]
    return Raw("<br>".join(lines))


def _difference(d: dict | None, column: dict) -> object:
    if not d:
        return "-"
    if column["split"] == "math":
        p = d["pass@1"]
        return f"pass@1 {_interval(p['mean'], p['ci95'], True)} ({p['pairs']} pairs)"
    w, r = d["win"], d["return"]
    return Raw(
        f"win {esc(_interval(w['mean'], w['ci95'], True))}<br>"
        f"return {esc(_interval(r['mean'], r['ci95'], True))}<br>"
        f"<span class=muted>{esc(w['pairs'])} pairs</span>"
    )


def benchmark_sections(data: dict) -> list[tuple[str, str, str]]:
    """(title, anchor, markup) of the table, the means and the settings."""
    columns = data["columns"]
    header = ["model", *(column_title(c) for c in columns)]
    rows: list[list[object]] = []
    for row in data["rows"]:
        label = row["label"]
        cells, skipped = data["cells"].get(label, {}), data["skipped"].get(label, {})
        rows.append([label, *(_cell(cells.get(c["id"]), c, skipped.get(c["id"])) for c in columns)])
    for name, diffs in data.get("differences", {}).items():
        rows.append([f"{name} (paired)", *(_difference(diffs.get(c["id"]), c) for c in columns)])
    body = table(header, rows) + f"<p class=note>{esc(NOTE)}</p>"
    if not data.get("complete", True):
        body += "<p class=bad>Incomplete: some planned games or answers are missing.</p>"
    means = [
        [r["label"], *(data["summary"].get(r["label"], {}).get(k) for k in SUMMARY_KEYS)]
        for r in data["rows"]
    ]
    means_table = table(
        ["model", *SUMMARY_KEYS],
        [[m[0], *("-" if v is None else f"{v:.3f}" for v in m[1:])] for m in means],
    )
    models = kv_table((r["label"], f"{r['spec']} ({r['kind']})") for r in data["rows"])
    settings = kv_table((k, json.dumps(v)) for k, v in data["suite"].items())
    return [
        ("Table", "benchmark-table", body),
        ("Means over columns", "benchmark-means", means_table
         + "<p class=note>Unweighted means of each split's columns, without intervals: a "
         "summary to read beside the table, not instead of it.</p>"),
        ("Models", "benchmark-models", models),
        ("Suite", "benchmark-suite", settings),
    ]  # fmt: skip


SUMMARY_KEYS = ("in_domain_win_rate", "held_out_win_rate", "math_pass@1")


def benchmark_report(path: Path, data: dict) -> tuple[str, str, list]:
    name = data["suite"].get("name", "?")
    lede = esc(
        f"Benchmark suite {name} from {path}: {len(data['rows'])} models, "
        f"{len(data['columns'])} columns."
    )
    return f"zerosum report: benchmark {name}", lede, benchmark_sections(data)
