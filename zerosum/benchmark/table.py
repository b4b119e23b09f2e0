"""The benchmark table, computed from the database alone: a row per model, a column per
(game, opponent) and per math set, and each later model's paired difference from the first.

Game cells: win, draw and forfeit rates with Wilson 95% intervals and the mean return with a
Student-t 95% interval, over the cell's games (a forfeit is a loss; draws count as neither
wins nor losses). Math cells: pass@1, the mean over problems of the share of correct samples,
with a Wilson interval (one sample per problem) or a t interval over problems (several).

Paired differences: every model plays game i of a cell with the same seed and in the same
seat, and answers sample j of a problem with the same seed, so the difference is taken pair
by pair (later model minus the first) and its t interval is over the pairs: common random
numbers cancel the deal's luck that two independent samples would both carry.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from zerosum.arena.store import GameRecord
from zerosum.evaluation.games import mean_interval, wilson_interval

SPLIT_TITLES = {"in_domain": "in-domain", "held_out": "held-out", "math": "math"}


def _r(x: float) -> float:
    return round(float(x), 4)


def _ci(lo_hi: Iterable[float]) -> list[float]:
    return [_r(x) for x in lo_hi]


def column_id(split: str, name: str, opponent: str | None = None) -> str:
    return f"{split}/{name}" + (f"/{opponent}" if opponent else "")


def model_results(record: GameRecord, model: str) -> tuple[int, float, float, bool, bool]:
    """(the model's seat, its score: 1 win, 0.5 draw, 0 loss, its return, it forfeited, draw)."""
    seat = 0 if record.key.seat0 == model else 1
    score = 0.5 if record.winner is None else float(record.winner == seat)
    return seat, score, record.returns[seat], record.forfeit_seat == seat, record.winner is None


def game_cell(records: Sequence[GameRecord], model: str, planned: int) -> dict:
    """The figures of one model's games in one (game, opponent) cell."""
    n = len(records)
    results = [model_results(r, model) for r in records]
    wins = sum(s == 1.0 for _, s, _, _, _ in results)
    draws = sum(d for *_, d in results)
    forfeits = sum(f for _, _, _, f, _ in results)
    returns = [ret for _, _, ret, _, _ in results]
    out = {"games": n, "planned": planned, "wins": wins, "draws": draws,
           "losses": n - wins - draws, "forfeits": forfeits}  # fmt: skip
    for name, k in (("win", wins), ("draw", draws), ("forfeit", forfeits)):
        out[f"{name}_rate"] = _r(k / max(n, 1))
        out[f"{name}_ci95"] = _ci(wilson_interval(k, n))
    out["mean_return"] = _r(np.mean(returns)) if returns else 0.0
    out["mean_return_ci95"] = _ci(mean_interval(returns))
    return out


def math_cell(correct: dict[int, list[int]], problems: int, k: int) -> dict:
    """pass@1 of one model on one math set: `correct[i]` holds problem i's samples (0 or 1)."""
    per_problem = [float(np.mean(c)) for c in correct.values() if c]
    samples = sum(len(c) for c in correct.values())
    n = len(per_problem)
    p = float(np.mean(per_problem)) if per_problem else 0.0
    # One sample per problem: a binomial count. Several: per-problem shares, a t interval.
    ci = wilson_interval(int(round(p * n)), n) if k == 1 else mean_interval(per_problem)
    return {"problems": n, "planned": problems, "samples_per_problem": k, "samples": samples,
            "pass@1": _r(p), "pass@1_ci95": _ci(ci)}  # fmt: skip


def paired(a: Sequence[float], b: Sequence[float]) -> dict:
    """Mean of b - a over the pairs, with its t 95% interval."""
    diffs = [y - x for x, y in zip(a, b)]
    return {
        "pairs": len(diffs),
        "mean": _r(np.mean(diffs)) if diffs else 0.0,
        "ci95": _ci(mean_interval(diffs)),
    }


def game_difference(first: dict[tuple, tuple], later: dict[tuple, tuple]) -> dict:
    """Paired differences of wins, returns and forfeits over the games both models played;
    the dicts map (game index) -> (score, return, forfeited)."""
    both = sorted(set(first) & set(later))
    take = {name: k for k, name in enumerate(("score", "return", "forfeit"))}
    out = {}
    for name, k in take.items():
        if name == "score":  # a win is 1, anything else 0: the difference of win rates
            a = [float(first[i][0] == 1.0) for i in both]
            b = [float(later[i][0] == 1.0) for i in both]
            name = "win"
        else:
            a = [float(first[i][k]) for i in both]
            b = [float(later[i][k]) for i in both]
        out[name] = paired(a, b)
    return out


def markdown(table: dict) -> str:
    """The table as Markdown: a row per model, a column per game cell and math set; then each
    later model's paired difference from the first."""
    columns = table["columns"]
    head = ["model", *(column_title(c) for c in columns)]
    lines = [f"# Benchmark: suite {table['suite']['name']}", ""]
    lines += [
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for row in table["rows"]:
        label = row["label"]
        cells = [
            cell_text(table["cells"][label].get(c["id"]), c, table["skipped"][label].get(c["id"]))
            for c in columns
        ]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    for name, diffs in table["differences"].items():
        cells = [difference_text(diffs.get(c["id"]), c) for c in columns]
        lines.append(f"| {name} (paired) | " + " | ".join(cells) + " |")
    lines += ["", NOTE, ""]
    if not table["complete"]:
        lines += ["**Incomplete:** some planned games or answers are missing; run the same "
                  "command again to finish.", ""]  # fmt: skip
    return "\n".join(lines)


NOTE = (
    "Game cells: win rate and forfeit rate [Wilson 95%], mean return [t 95%], n games (the "
    "model's seat alternates; a forfeit is a loss). Math: pass@1 [Wilson 95% with one sample "
    "per problem, else t over problems]. Paired rows: later model minus the first over the "
    "same deals, seats and sample seeds [t 95% over the pairs]."
)


def column_title(c: dict) -> str:
    split = SPLIT_TITLES[c["split"]]
    if c["split"] == "math":
        return f"{c['name']} ({split}, {c['planned']} problems)"
    return f"{c['name']} vs {c['opponent']} ({split})"


def _fmt(x: float, ci: Sequence[float], signed: bool = False) -> str:
    s = "+" if signed else ""
    return f"{x:{s}.2f} [{ci[0]:{s}.2f}, {ci[1]:{s}.2f}]"


def cell_text(cell: dict | None, column: dict, skipped: str | None) -> str:
    if skipped:
        return "skipped"
    if cell is None:
        return "-"
    if column["split"] == "math":
        return f"pass@1 {_fmt(cell['pass@1'], cell['pass@1_ci95'])}<br>n={cell['problems']}"
    return (
        f"win {_fmt(cell['win_rate'], cell['win_ci95'])}<br>"
        f"return {_fmt(cell['mean_return'], cell['mean_return_ci95'], True)}<br>"
        f"forfeit {_fmt(cell['forfeit_rate'], cell['forfeit_ci95'])}<br>n={cell['games']}"
    )


def difference_text(diff: dict | None, column: dict) -> str:
    if not diff:
        return "-"
    if column["split"] == "math":
        d = diff["pass@1"]
        return f"pass@1 {_fmt(d['mean'], d['ci95'], True)}<br>pairs={d['pairs']}"
    w, r = diff["win"], diff["return"]
    return (
        f"win {_fmt(w['mean'], w['ci95'], True)}<br>"
        f"return {_fmt(r['mean'], r['ci95'], True)}<br>pairs={w['pairs']}"
    )
