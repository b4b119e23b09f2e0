"""The reports of an evaluation results file (`zerosum eval --out`) and of an arena directory
(its database, or its results.json alone): tables with the games behind every rate and the
forfeit rate beside every win rate, plots, and the arena's replays."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from zerosum.arena.report import anchor_text, build_results
from zerosum.arena.store import DB_NAME, GameRecord, Store
from zerosum.evaluation.games import wilson_interval
from zerosum.report.page import Raw, details, esc, kv_table, num, pre, rate, table
from zerosum.report.plots import bar_plot, figure
from zerosum.report.replays import arena_turns, replay

ARENA_RESULTS = "results.json"


def is_eval_results(data: object) -> bool:
    return isinstance(data, dict) and isinstance(data.get("games"), dict) and "settings" in data


def is_arena_results(data: object) -> bool:
    return isinstance(data, dict) and "per_game" in data and "all" in data


# --- evaluation -----------------------------------------------------------------------------


def eval_report(path: Path, results: dict) -> tuple[str, str, list]:
    s = results.get("settings", {})
    sections = []
    for game, per_game in results.get("games", {}).items():
        sections.append((f"{game}", f"game-{game}", eval_game(game, per_game)))
    if results.get("math"):
        sections.append(("Math benchmarks", "math", math_table(results["math"])))
    sections.append(("Settings", "settings", kv_table((k, json.dumps(v)) for k, v in s.items())))
    sections.append(("Versions", "versions", kv_table(results.get("versions", {}).items())))
    lede = esc(
        f"Evaluation of {s.get('model', '?')} from {path}: {s.get('n', '?')} games per game "
        f"and opponent, seats alternating, seed {s.get('seed', '?')}, answer mode "
        f"{s.get('answer_mode', '?')}. An invalid answer forfeits the game (a loss)."
    )
    return f"zerosum report: evaluation of {s.get('model', '?')}", lede, sections


def _rate_cell(r: dict, key: str) -> Raw:
    return Raw(rate(r.get(f"{key}_rate"), r.get(f"{key}_ci95"), r.get("games")))


def eval_game(game: str, per_game: dict) -> str:
    opponents = per_game.get("opponents", {})
    rows = []
    for spec, r in opponents.items():
        for label, part in (
            ("both", r),
            ("model seat 0", r.get("seat0")),
            ("model seat 1", r.get("seat1")),
        ):
            if not part:
                continue
            v = part.get("valid", {})
            rows.append([
                spec if label == "both" else "", label, num(part.get("games")),
                _rate_cell(part, "win"), _rate_cell(part, "invalid"), _rate_cell(part, "draw"),
                _rate_cell(part, "loss"),
                Raw(_mean(part.get("mean_return"), part.get("mean_return_ci95"))),
                num(v.get("games")), Raw(rate(v.get("win_rate"), v.get("win_ci95"), v.get("games"))),
                Raw(_mean(v.get("mean_return"), v.get("mean_return_ci95"))),
                num(part.get("game_tokens"), 1),
            ])  # fmt: skip
    header = ("opponent", "model seats", "games", "win [95% CI]", "forfeit [95% CI]", "draw",
              "loss", "mean return", "games without a forfeit", "win there", "return there",
              "tokens per game")  # fmt: skip
    parts = []
    if rows:
        parts.append(table(header, rows, left=2))
        parts.append(
            "<p class=note>Rates are over all games (n after each); a forfeit (an invalid "
            "answer) counts as a loss. Three columns leave out the games the model forfeited: how "
            "it plays where it answers. Tokens: what the model generated per game.</p>"
        )
        labels = list(opponents)
        svg = bar_plot(
            f"{game}: win and forfeit rates",
            labels,
            [("win", [opponents[o]["win_rate"] for o in labels],
              [tuple(opponents[o]["win_ci95"]) for o in labels]),
             ("forfeit", [opponents[o]["invalid_rate"] for o in labels],
              [tuple(opponents[o]["invalid_ci95"]) for o in labels])],
            "rate",
        )  # fmt: skip
        games = ", ".join(f"{o}: {opponents[o]['games']}" for o in labels)
        parts.append(figure(svg, f"Wilson 95% intervals; games per opponent: {games}."))
    for spec, r in opponents.items():
        reasons = r.get("invalid_reasons") or {}
        if reasons:
            items = "".join(
                f"<li>{esc(num(n))} × {esc(reason)}</li>" for reason, n in reasons.items()
            )
            parts.append(f"<p>Invalid answers against {esc(spec)}:</p><ul>{items}</ul>")
    for spec, reason in (per_game.get("skipped") or {}).items():
        parts.append(f"<p class=note>Skipped {esc(spec)}: {esc(reason)}</p>")
    quality = [
        (f"vs {spec}, in play", r["move_quality_in_play"])
        for spec, r in opponents.items()
        if "move_quality_in_play" in r
    ]
    if "move_quality_fixed_positions" in per_game:
        quality.append(("fixed positions", per_game["move_quality_fixed_positions"]))
    if quality:
        parts.append("<h3>Move quality (against the game's minimax values)</h3>")
        parts.append(table(
            ("positions", "count", "optimal", "blunders", "invalid"),
            [(label, num(q.get("positions")), Raw(rate(q.get("optimal_rate"), None, q.get("positions"))),
              Raw(rate(q.get("blunder_rate"), None, q.get("positions"))),
              Raw(rate(q.get("invalid_rate"), None, q.get("positions")))) for label, q in quality],
        ))  # fmt: skip
    if "exploitability" in per_game:
        parts.append("<h3>Exploitability</h3>")
        e = per_game["exploitability"]
        parts.append(kv_table((k, num(v, 4)) for k, v in e.items() if not isinstance(v, dict)))
        for k, v in e.items():
            if isinstance(v, dict):  # the policy: action probabilities per information set
                parts.append(details(esc(k), pre(json.dumps(v, indent=1))))
    return "".join(parts)


def _mean(value: float | None, ci: list | None) -> str:
    if value is None:
        return "-"
    return f"{value:+.3f}" + (f" [{ci[0]:+.2f}, {ci[1]:+.2f}]" if ci else "")


def math_table(math: dict) -> str:
    rows = [
        (name, num(r.get("problems")), num(r.get("samples_per_problem")),
         Raw(rate(r.get("pass@1"), None, r.get("problems"))), num(r.get("mean_response_tokens")))
        for name, r in math.items()
    ]  # fmt: skip
    return table(("benchmark", "problems", "samples each", "pass@1", "mean tokens"), rows)


# --- arena ----------------------------------------------------------------------------------


def arena_report(directory: Path, max_replays: int) -> tuple[str, str, list]:
    """From the database when there is one (with replays), else from results.json."""
    records: list[GameRecord] = []
    if (directory / DB_NAME).is_file():
        store = Store(directory / DB_NAME, create=False)
        try:
            results = build_results(store)
            records = list(store.records())
        finally:
            store.close()
        source = DB_NAME
    else:
        results = json.loads((directory / ARENA_RESULTS).read_text())
        source = f"{ARENA_RESULTS} (no database: no replays, no forfeits per pairing)"
    forfeits = pair_forfeits(records) if records else None
    scopes = [("all games", "all", results["all"])]
    scopes += [(g, g, sec) for g, sec in results["per_game"].items()]
    sections = []
    for title, scope, sec in scopes:
        lost = None if forfeits is None else forfeits.get(scope, {})
        body = leaderboard(sec, lost) + matrix(sec, lost)
        sections.append((title, f"scope-{scope}", body))
    if records and (spent := token_table(records)):
        sections.append(("Tokens", "tokens", spent))
    if records:
        sections.append(("Replays", "replays", arena_replays(records, max_replays)))
    meta = results.get("arena", {})
    sections.append((
        "Arena settings", "settings",
        kv_table([*meta.items(), ("rating model", results.get("rating_model", "?"))]),
    ))  # fmt: skip
    lede = esc(
        f"Arena {directory}: {results.get('games_in_database', '?')} games, read from {source}."
    )
    return f"zerosum report: arena {directory.resolve().name}", lede, sections


def pair_forfeits(records: list[GameRecord]) -> dict[str, dict[tuple[str, str], int]]:
    """Per scope ("all" and each game): (player, opponent) -> games the player forfeited."""
    out: dict[str, Counter] = {"all": Counter()}
    for r in records:
        if r.forfeit_seat is None:
            continue
        names = (r.key.seat0, r.key.seat1)
        pair = (names[r.forfeit_seat], names[1 - r.forfeit_seat])
        out["all"][pair] += 1
        out.setdefault(r.key.game, Counter())[pair] += 1
    return {scope: dict(c) for scope, c in out.items()}


def token_table(records: list[GameRecord]) -> str:
    """Per language-model player: its games, the tokens it generated and was prompted with per
    game, and who counted them (its tokenizer, or the API's reported usage). Empty when no
    transcript has token counts (bots, databases from before they were kept)."""
    games: Counter = Counter()
    sums: dict[str, Counter] = {}
    counted: dict[str, set] = {}
    for r in records:
        names = (r.key.seat0, r.key.seat1)
        seen = set()
        for t in r.transcript:
            seat = t.get("seat")
            if seat not in (0, 1) or "counted_by" not in t:
                continue
            name = names[seat]
            seen.add(name)
            c = sums.setdefault(name, Counter())
            for key in ("tokens", "prompt_tokens"):
                value = t.get(key)
                if isinstance(value, int) and not isinstance(value, bool):
                    c[key] += value
                    c[f"{key}_turns"] += 1
            c["turns"] += 1
            counted.setdefault(name, set()).add(str(t["counted_by"]))
        games.update(seen)
    if not sums:
        return ""

    def per_game(name: str, key: str) -> str:
        c = sums[name]
        if not c[f"{key}_turns"]:
            return "-"
        missing = c["turns"] - c[f"{key}_turns"]
        text = f"{c[key] / games[name]:.1f}"
        return text + (f" ({missing} turns not reported)" if missing else "")

    rows = [
        [name, num(games[name]), num(sums[name]["turns"]), per_game(name, "tokens"),
         per_game(name, "prompt_tokens"),
         ", ".join("the API (usage)" if b == "api" else "the model's tokenizer" for b in sorted(counted[name]))]
        for name in sorted(sums)
    ]  # fmt: skip
    header = ("player", "games", "answers", "generated tokens per game", "prompt tokens per game",
              "counted by")  # fmt: skip
    return table(header, rows, left=1) + (
        "<p class=note>Language-model players only; per game: over the games in which the "
        "player answered at least once.</p>"
    )


def leaderboard(sec: dict, forfeits: dict[tuple[str, str], int] | None = None) -> str:
    """The ranking table; with `forfeits` ((player, opponent) -> games the player forfeited,
    from the database) also each player's wins that came from its opponent's forfeit."""
    rows = []
    for r in sec["leaderboard"]:
        n, f = r["games"], r["forfeits"]
        by_forfeit = (
            "-"
            if forfeits is None
            else num(sum(k for (_, winner), k in forfeits.items() if winner == r["player"]))
        )
        ci = r.get("ci95")
        sk = r.get("openskill") or {}
        reasons = "; ".join(f"{k} ×{v}" for k, v in (r.get("forfeit_reasons") or {}).items())
        rows.append([
            num(r["rank"]), r["player"], f"{r['rating']:.0f}",
            "-" if not ci else f"{ci[0]:.0f} – {ci[1]:.0f}", num(n),
            f"{r['wins']}/{r['draws']}/{r['losses']}",
            Raw(rate(r["win_rate"], r["win_ci95"], n)),
            by_forfeit, Raw(rate(f / max(n, 1), wilson_interval(f, n), n)), reasons or "-",
            f"{sk.get('mu', 0):.1f} ± {sk.get('sigma', 0):.1f}",
        ])  # fmt: skip
    header = ("#", "player", "rating", "95% CI", "games", "W/D/L", "win [95% CI]",
              "wins by the opponent's forfeit", "forfeit [95% CI]", "forfeit reasons",
              "OpenSkill")  # fmt: skip
    anchored = ""
    if sec.get("anchors"):
        anchored = (
            f"<p class=note>Ratings on an anchored Elo scale: {esc(anchor_text(sec['anchors']))}"
            " (fixed; the others fitted around them).</p>"
        )
    heading = f"<h3>Leaderboard ({esc(num(sec['games']))} games)</h3>"
    return heading + anchored + table(header, rows, left=2)


def matrix(sec: dict, forfeits: dict[tuple[str, str], int] | None) -> str:
    """Row player's win rate against the column player, its interval, forfeit rate and games."""
    players = [r["player"] for r in sec["leaderboard"]]
    if len(players) < 2:
        return ""
    head = "<th class=l>row vs column</th>" + "".join(f"<th>{esc(p)}</th>" for p in players)
    body = []
    for p in players:
        cells = [f"<th class=l>{esc(p)}</th>"]
        for o in players:
            c = sec["matrix"].get(p, {}).get(o)
            if not c:
                cells.append("<td class=muted>-</td>")
                continue
            n = c["games"]
            text = rate(c["win_rate"], c["win_ci95"], n)
            if forfeits is not None:
                f = forfeits.get((p, o), 0)
                text += f"<br><span class=note>forfeit {f / max(n, 1):.2f}</span>"
            # A number only, from the win rate: no data reaches the style attribute.
            shade = f"hsl({120 * float(c['win_rate']):.0f}, 55%, 88%)"
            cells.append(f'<td style="background: {shade}">{text}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    note = (
        "<p class=note>Win rate of the row player against the column player over both seat "
        "orders [Wilson 95%], n games"
        + ("; forfeit: the share of them the row player forfeited" if forfeits is not None else "")
        + ". A draw counts half in ratings, not as a win here.</p>"
    )
    return (
        "<h3>Cross-play</h3><table><thead><tr>" + head + "</tr></thead><tbody>"
        + "".join(body) + "</tbody></table>" + note
    )  # fmt: skip


def arena_replays(records: list[GameRecord], max_replays: int) -> str:
    shown = records[:max_replays]  # round order: every pairing's first games come first
    out = [
        f"<p class=note>{len(shown)} of {len(records)} games, in round order (every pairing's "
        "first games first); the replies as the database keeps them (arena.transcript_chars "
        "per reply). Open a game to see every turn.</p>"
    ]
    for game in sorted({r.key.game for r in shown}):
        out.append(f"<h3>{esc(game)}</h3>")
        for r in (r for r in shown if r.key.game == game):
            k = r.key
            g = {
                "game": k.game, "seed": r.seed, "players": [k.seat0, k.seat1],
                "outcome": {"returns": list(r.returns), "winner": r.winner, "turns": r.turns,
                            "truncated": r.truncated, "forfeit_seat": r.forfeit_seat},
                "moves": r.moves, "invalid": r.invalid,
            }  # fmt: skip
            title = f"{k.seat0} vs {k.seat1} #{k.idx}"
            out.append(replay(g, title, [("game index", k.idx)], arena_turns(r.transcript)))
    return "".join(out)
