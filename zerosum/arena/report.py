"""The arena's results, computed from its database alone: leaderboards and cross-play matrices.

For all games together and for each game: a leaderboard (Bradley-Terry rating with its
bootstrap interval, OpenSkill, wins/draws/losses, forfeits and their reasons, the number of
games) and a cross-play matrix (each player's win rate against each opponent over both seat
orders, with its Wilson 95% interval and number of games). Written as results.json,
leaderboard.csv and crossplay.csv, and printed as rich tables.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from zerosum.arena.config import ArenaConfig
from zerosum.arena.ratings import Result, bradley_terry, openskill_ratings, scope_seed
from zerosum.arena.store import DB_NAME, GameRecord, Store
from zerosum.evaluation.games import wilson_interval
from zerosum.players.stockfish import skill_level, stockfish_elo
from zerosum.rundir import write_atomic

RATING_MODEL = (
    "Bradley-Terry MAP, draws as half wins, forfeits as losses, Gaussian prior N(0, "
    "prior_sigma^2) on each log-strength; Elo scale 1000 + 400/ln(10) * r; percentile "
    "bootstrap over games. All games: one fit over every game, the bootstrap resampling "
    "within each game. A game with anchored players (stockfish:LEVEL at Stockfish's own CCRL "
    "Blitz Elo fit, or the arena's anchors): their ratings fixed, the prior centred on their "
    "mean. OpenSkill: Plackett-Luce over games in round order."
)


def score(record: GameRecord) -> float:
    return 0.5 if record.winner is None else float(record.winner == 0)


def _cell() -> dict:
    return {"games": 0, "wins": 0, "draws": 0, "losses": 0}


def _tally(cell: dict, s: float) -> None:
    cell["games"] += 1
    cell["wins" if s == 1 else "losses" if s == 0 else "draws"] += 1


def _rates(cell: dict) -> dict:
    n, w = cell["games"], cell["wins"]
    lo, hi = wilson_interval(w, n)
    score_ = (w + cell["draws"] / 2) / n
    return {**cell, "win_rate": round(w / n, 4), "win_ci95": [round(lo, 4), round(hi, 4)],
            "score": round(score_, 4)}  # fmt: skip


def section(
    records: Sequence[GameRecord], meta: dict[str, str], scope: str,
    anchors: dict[str, float] | None = None, strata: Sequence[str] | None = None,
) -> dict:  # fmt: skip
    """Leaderboard and matrix of one scope (a game or "all"); the `anchors` among its players
    fix their ratings, `strata` (a label per game) stratify its bootstrap."""
    players = sorted({n for r in records for n in (r.key.seat0, r.key.seat1)})
    results = [Result(r.key.seat0, r.key.seat1, score(r)) for r in records]
    sigma, boot = float(meta["prior_sigma"]), int(meta["bootstrap"])
    held = {p: elo for p, elo in (anchors or {}).items() if p in players}
    bt = bradley_terry(
        players, results, sigma, boot, scope_seed(int(meta["seed"]), scope), anchors=held,
        strata=strata,
    )  # fmt: skip
    skill = openskill_ratings(players, results)
    totals = {p: _cell() for p in players}
    pairs: dict[str, dict[str, dict]] = {p: {} for p in players}
    forfeits = {p: Counter() for p in players}
    for r, res in zip(records, results):
        for name, other, s in ((res.a, res.b, res.score), (res.b, res.a, 1 - res.score)):
            _tally(totals[name], s)
            _tally(pairs[name].setdefault(other, _cell()), s)
        if r.forfeit_seat is not None:
            seat = r.forfeit_seat
            reasons = [reason for s, reason in r.invalid if s == seat] or ["invalid"]
            forfeits[(r.key.seat0, r.key.seat1)[seat]][reasons[-1]] += 1
    rows = [
        {"player": p, **bt[p], **_rates(totals[p]), "forfeits": sum(forfeits[p].values()),
         "forfeit_reasons": dict(sorted(forfeits[p].items())), "openskill": skill[p],
         "anchor": held.get(p)}
        for p in players
    ]  # fmt: skip
    rows.sort(key=lambda row: (-row["rating"], row["player"]))
    for rank, row in enumerate(rows, 1):
        row["rank"] = rank
    matrix = {p: {o: _rates(c) for o, c in sorted(pairs[p].items())} for p in players}
    return {"games": len(records), "leaderboard": rows, "matrix": matrix, "anchors": held}


# The rating settings of a database that no arena config has written to (only people's
# games from `zerosum play`): the config's defaults.
RATING_DEFAULTS = {k: str(getattr(ArenaConfig, k)) for k in ("seed", "prior_sigma", "bootstrap")}


def build_results(store: Store) -> dict:
    """Everything the report shows, from the database only."""
    meta = {**RATING_DEFAULTS, **store.meta()}
    records = list(store.records())
    games = sorted({r.key.game for r in records})
    anchors = stated_anchors(store.identities(), meta)
    return {
        "arena": {k: meta[k] for k in sorted(meta)},
        "rating_model": RATING_MODEL,
        "games_in_database": len(records),
        "all": section(records, meta, "all", strata=[r.key.game for r in records]),
        "per_game": {
            g: section([r for r in records if r.key.game == g], meta, g, anchors) for g in games
        },
    }


def stated_anchors(identities: dict[str, dict], meta: dict[str, str]) -> dict[str, float]:
    """Player -> anchored Elo: each `stockfish:LEVEL` bot at Stockfish's own fit for its level
    (where the fit gives one), then the arena's `anchors`, which win."""
    out: dict[str, float] = {}
    for name, identity in identities.items():
        kind, _, level = str(identity.get("spec", "")).partition(":")
        if identity.get("kind") == "bot" and kind == "stockfish":
            elo = stockfish_elo(skill_level(level or None))
            if elo is not None:
                out[name] = elo
    return {**out, **json.loads(meta.get("anchors") or "{}")}


def report(directory: str | Path) -> dict:
    """Results of an arena directory from its database; writes the result files."""
    directory = Path(directory)
    store = Store(directory / DB_NAME, create=False)
    try:
        results = build_results(store)
    finally:
        store.close()
    write_outputs(directory, results)
    return results


LEADERBOARD_FIELDS = ("scope", "rank", "player", "rating", "ci95_low", "ci95_high", "games",
                      "wins", "draws", "losses", "score", "forfeits", "openskill_mu",
                      "openskill_sigma", "openskill_ordinal", "anchor")  # fmt: skip
CROSSPLAY_FIELDS = ("scope", "player", "opponent", "games", "wins", "draws", "losses",
                    "win_rate", "win_ci95_low", "win_ci95_high")  # fmt: skip


def _scopes(results: dict) -> list[tuple[str, dict]]:
    return [("all", results["all"]), *results["per_game"].items()]


def leaderboard_csv(results: dict) -> str:
    rows = []
    for scope, sec in _scopes(results):
        for r in sec["leaderboard"]:
            lo, hi = r["ci95"] or (None, None)
            sk = r["openskill"]
            rows.append((scope, r["rank"], r["player"], r["rating"], lo, hi, r["games"], r["wins"],
                         r["draws"], r["losses"], r["score"], r["forfeits"], sk["mu"],
                         sk["sigma"], sk["ordinal"], r.get("anchor")))  # fmt: skip
    return _csv(LEADERBOARD_FIELDS, rows)


def crossplay_csv(results: dict) -> str:
    rows = [
        (scope, p, o, c["games"], c["wins"], c["draws"], c["losses"], c["win_rate"], *c["win_ci95"])
        for scope, sec in _scopes(results)
        for p, row in sec["matrix"].items()
        for o, c in row.items()
    ]
    return _csv(CROSSPLAY_FIELDS, rows)


def _csv(header: Sequence[str], rows: list[tuple]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def write_outputs(directory: Path, results: dict) -> None:
    files = {
        "results.json": json.dumps(results, indent=1) + "\n",
        "leaderboard.csv": leaderboard_csv(results),
        "crossplay.csv": crossplay_csv(results),
    }
    for name, text in files.items():  # each replaced whole, never half written
        write_atomic(directory / name, text)


def print_results(results: dict, console=None) -> None:
    """Leaderboards and cross-play matrices as rich tables."""
    from rich.console import Console

    console = console or Console()
    for scope, sec in _scopes(results):
        console.print(leaderboard_table(scope, sec))
        if len(sec["matrix"]) > 1:
            console.print(matrix_table(scope, sec))


def leaderboard_table(scope: str, sec: dict):
    from rich.table import Table

    title = f"{'all games' if scope == 'all' else scope}: {sec['games']} games"
    if sec.get("anchors"):
        title += f"; Elo anchored at {anchor_text(sec['anchors'])}"
    table = Table(title=title, title_justify="left")
    for name in ("#", "player", "rating", "95% CI", "games", "W/D/L", "forfeits", "OpenSkill"):
        table.add_column(name, justify="left" if name == "player" else "right")
    for r in sec["leaderboard"]:
        ci = "-" if r["ci95"] is None else f"{r['ci95'][0]:.0f}..{r['ci95'][1]:.0f}"
        sk = r["openskill"]
        table.add_row(
            str(r["rank"]), r["player"], f"{r['rating']:.0f}", ci, str(r["games"]),
            f"{r['wins']}/{r['draws']}/{r['losses']}", str(r["forfeits"]),
            f"{sk['mu']:.1f}±{sk['sigma']:.1f}",
        )  # fmt: skip
    return table


def anchor_text(anchors: dict[str, float]) -> str:
    return ", ".join(f"{p} = {elo:.0f}" for p, elo in sorted(anchors.items()))


def matrix_table(scope: str, sec: dict):
    """Row player's win rate against the column player [Wilson 95%] (games)."""
    from rich.table import Table

    players = [r["player"] for r in sec["leaderboard"]]
    title = f"{scope}: win % of row vs column [Wilson 95%] games"
    table = Table(title=title, title_justify="left")
    table.add_column("")
    for p in players:
        table.add_column(p, justify="right")
    for p in players:
        cells = []
        for o in players:
            c = sec["matrix"][p].get(o)
            lo, hi = (100 * x for x in c["win_ci95"]) if c else (0, 0)
            cells.append(f"{c['win_rate']:.0%} [{lo:.0f}-{hi:.0f}] {c['games']}" if c else "")
        table.add_row(p, *cells)
    return table
