"""The report of a training run: learning curves from RUN/metrics.jsonl, the run's config,
and replays of the games RUN/games.jsonl kept (`run.keep_games`)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

from zerosum.evaluation.games import wilson_interval
from zerosum.report.page import Raw, esc, kv_table, num, rate, table
from zerosum.report.plots import Series, figure, line_plot
from zerosum.report.replays import replay, training_turns
from zerosum.rundir import CONFIG_NAME, GAMES_NAME, METRICS_NAME, latest_checkpoint, read_jsonl


def is_training_run(directory: Path) -> bool:
    return (directory / CONFIG_NAME).is_file() and (directory / METRICS_NAME).is_file()


class Curves:
    """Metric rows by key: x (the steps where the key is present) and y."""

    def __init__(self, rows: list[dict]):
        self.rows = rows
        self.keys = sorted({k for r in rows for k in r if k != "step"})

    def xy(self, key: str, missing: float | None = None) -> tuple[list[int], list[float]]:
        """Steps and values of `key`; a row without it is left out, or counts as `missing`."""
        x, y = [], []
        for r in self.rows:
            v = r.get(key, missing)
            if isinstance(v, int | float) and not isinstance(v, bool):
                x.append(r["step"])
                y.append(float(v))
        return x, y

    def series(self, key: str, label: str, **kw) -> Series:
        x, y = self.xy(key, kw.pop("missing", None))
        return Series(label, x, y, **kw)

    def with_prefix(self, prefix: str) -> list[str]:
        return [k for k in self.keys if k.startswith(prefix)]

    def last(self, key: str) -> float | None:
        for r in reversed(self.rows):
            if key in r:
                return r[key]
        return None


def counts(values: Sequence[float]) -> str:
    """`8` or `6-8 (mean 7.5)`: the sample size of the points of a curve."""
    if not values:
        return "?"
    lo, hi = min(values), max(values)
    if lo == hi:
        return num(lo)
    return f"{num(lo)}-{num(hi)} (mean {sum(values) / len(values):.1f})"


def training_report(directory: Path, max_replays: int) -> tuple[str, str, list]:
    """(title, lede markup, sections) of a run directory."""
    cfg = json.loads((directory / CONFIG_NAME).read_text())
    rows, bad_rows = read_jsonl(directory / METRICS_NAME, strict=False)
    games, bad_games = read_jsonl(directory / GAMES_NAME, strict=False)
    c = Curves(rows)
    sections = [("Summary", "summary", summary(directory, cfg, c, len(games)))]
    if bad_rows or bad_games:
        sections[0] = (
            "Summary", "summary",
            sections[0][2] + f"<p class=note>Skipped unreadable lines: {bad_rows} of "
            f"{METRICS_NAME}, {bad_games} of {GAMES_NAME} (a live run's last line is often "
            "partial).</p>",
        )  # fmt: skip
    for title, anchor, body in (
        ("Evaluation during training", "evaluation", evaluation_section(c, cfg)),
        ("Self-play games", "self-play", selfplay_section(c)),
        ("Learner", "learner", learner_section(c)),
        ("Opponent pool", "pool", pool_section(c)),
        ("Throughput", "throughput", throughput_section(c)),
    ):
        if body:
            sections.append((title, anchor, body))
    sections.append(("Replays", "replays", replays_section(games, cfg, max_replays)))
    sections.append(("Configuration", "config", config_section(cfg)))
    sections.append(("Last step's metrics", "last-metrics", last_metrics(c)))
    name = directory.resolve().name
    lede = esc(f"Training run {directory}: {len(rows)} steps logged.")
    return f"zerosum report: {name}", lede, sections


def summary(directory: Path, cfg: dict, c: Curves, n_kept: int) -> str:
    run, model, rollout = cfg.get("run", {}), cfg.get("model", {}), cfg.get("rollout", {})
    last_step = c.rows[-1]["step"] if c.rows else 0
    try:
        ckpt = latest_checkpoint(directory)
    except ValueError as err:
        ckpt = f"unreadable: {err}"
    mixture = ", ".join(f"{g} ({w:g})" for g, w in (rollout.get("games") or {}).items())
    pairs = [
        ("run directory", str(directory)),
        ("model", model.get("name", "?") + (" (tiny random)" if model.get("tiny") else "")
         + (" + LoRA" if model.get("lora") else "")),
        ("games (mixture weights)", mixture),
        ("steps logged / configured", f"{last_step} / {run.get('steps', '?')}"),
        ("self-play games played", num(c.last("progress/games"))),
        ("games per step", num(rollout.get("games_per_step"))),
        ("answer mode", rollout.get("answer_mode", "?")),
        ("latest checkpoint", ckpt.name if isinstance(ckpt, Path) else (ckpt or "none yet")),
        ("kept games (replays)", f"{n_kept} (run.keep_games {run.get('keep_games', 0)})"),
        ("seed", num(run.get("seed"))),
    ]  # fmt: skip
    return kv_table(pairs)


# --- learning curves ----------------------------------------------------------------------


def evaluation_section(c: Curves, cfg: dict) -> str:
    e = cfg.get("eval", {})
    n = int(e.get("n", 0))
    parts = []
    for game in e.get("nash_conv", []):
        svg = line_plot(
            f"{game}: NashConv of the policy",
            [
                c.series(f"eval/{game}/nash_conv", "NashConv"),
                c.series(f"eval/{game}/best_response_gain_seat0", "best-response gain, seat 0",
                         dashed=True),
                c.series(f"eval/{game}/best_response_gain_seat1", "best-response gain, seat 1",
                         dashed=True),
            ],
            "NashConv",
        )  # fmt: skip
        parts.append(
            figure(
                svg,
                "Exact, of the model's policy read from its answer probabilities; 0 is a Nash equilibrium.",
            )
        )
    rows = []
    for game in e.get("games", []):
        series = []
        for i, spec in enumerate(e.get("opponents", [])):
            x, y = c.xy(f"eval/{game}/{spec}/win_rate")
            if not x:
                continue
            bands = [wilson_interval(round(v * n), n) for v in y]
            series.append(
                Series(f"vs {spec}: win", x, y, [b[0] for b in bands], [b[1] for b in bands],
                       color=i)
            )  # fmt: skip
            series.append(c.series(f"eval/{game}/{spec}/invalid_rate", f"vs {spec}: forfeit",
                                   dashed=True, color=i))  # fmt: skip
            last = {k: c.last(f"eval/{game}/{spec}/{k}") for k in
                    ("win_rate", "invalid_rate", "draw_rate", "loss_rate", "mean_return")}  # fmt: skip
            rows.append([
                game, spec, x[-1], n,
                Raw(rate(last["win_rate"], wilson_interval(round(last["win_rate"] * n), n), n)),
                Raw(rate(last["invalid_rate"], _ci(last["invalid_rate"], n), n)),
                Raw(rate(last["draw_rate"], None, n)), Raw(rate(last["loss_rate"], None, n)),
                num(last["mean_return"]),
            ])  # fmt: skip
        svg = line_plot(f"{game}: against fixed opponents", series, "rate", ylim=(-0.02, 1.02))
        parts.append(
            figure(svg, f"n = {n} games per point (eval.n, seats alternating); band: Wilson 95% "
                   "interval of the win rate; dashed: forfeit rate (invalid answers, lost).")
        )  # fmt: skip
    if rows:
        parts.append("<h3>Last evaluation</h3>")
        header = ("game", "opponent", "step", "games", "win [95% CI]", "forfeit [95% CI]",
                  "draw", "loss", "mean return")  # fmt: skip
        parts.append(table(header, rows, left=2))
    return _grid(parts)


def _ci(p: float | None, n: int) -> tuple[float, float] | None:
    return None if p is None else wilson_interval(round(p * n), n)


def selfplay_section(c: Curves) -> str:
    parts = []
    games = sorted(
        k.split("/")[1] for k in c.with_prefix("rollout/") if k.endswith("/win_rate_seat0")
    )
    _, total_games = c.xy("rollout/games")
    for game in games:
        _, n = c.xy(f"rollout/{game}/games")
        forfeits = f"rollout/{game}/forfeit_rate"
        if len(games) == 1 and forfeits not in c.keys:  # a run from before the per-game key
            n, forfeits = n or total_games, "rollout/forfeit_rate"
        svg = line_plot(
            f"{game}: self-play results",
            [c.series(f"rollout/{game}/win_rate_seat0", "seat 0 wins"),
             c.series(f"rollout/{game}/win_rate_seat1", "seat 1 wins"),
             c.series(f"rollout/{game}/draw_rate", "draws"),
             c.series(forfeits, "forfeited (either seat)", dashed=True),
             c.series(f"rollout/{game}/truncated_rate", "hit the turn limit", dashed=True)],
            "rate", ylim=(-0.02, 1.02),
        )  # fmt: skip
        parts.append(figure(svg, f"n = {counts(n)} games of {game} per step."))
        parts.append(game_measures(c, game))
    _, turns = c.xy("rollout/turns")
    reasons = c.with_prefix("rollout/invalid_reason/")
    svg = line_plot(
        "Invalid answers and forfeits",
        [c.series("rollout/invalid_rate", "invalid answers (per turn)"),
         c.series("rollout/forfeit_rate", "forfeited games (per game)"),
         c.series("rollout/length_capped_rate", "cut at max_new_tokens (per turn)", dashed=True)],
        "rate", ylim=(-0.02, 1.02),
    )  # fmt: skip
    parts.append(
        figure(svg, f"Per turn: n = {counts(turns)} turns per step; per game: n = "
               f"{counts(total_games)} games per step.")
    )  # fmt: skip
    if reasons:  # a reason absent from a step's row did not occur in it
        series = [c.series(k, k.rsplit("/", 1)[1].replace("_", " "), missing=0.0) for k in reasons]
        svg = line_plot("Invalid answers by reason", series, "share of turns")
        parts.append(figure(svg, f"n = {counts(turns)} turns per step."))
    lengths = [c.series("rollout/response_tokens", "response tokens (mean per turn)")]
    thinking = c.series("rollout/thinking_tokens", "of which thinking (mean per turn)")
    if any(thinking.y):  # a model that never thinks (or a run from before the metric): no line
        lengths.append(thinking)
    lengths += [c.series(f"rollout/{g}/game_length", f"{g}: moves per game", dashed=True)
                for g in games]  # fmt: skip
    parts.append(figure(line_plot("Response and game length", lengths, "tokens / moves"),
                        f"Responses: n = {counts(turns)} turns per step."))  # fmt: skip
    spent = [c.series(f"rollout/{g}/game_tokens", g) for g in games]
    if any(s.x for s in spent):  # runs from before the metric have none
        parts.append(figure(line_plot("Generated tokens per game", spent, "tokens"),
                            f"The model's seats' tokens; n = {counts(total_games)} games per "
                            "step."))  # fmt: skip
    baselines = []
    for i, key in enumerate(c.with_prefix("adv/baseline/")):
        game, seat = key.removeprefix("adv/baseline/").rsplit("/", 1)
        baselines.append(c.series(key, f"{game} seat {seat}: baseline", color=i))
        baselines.append(c.series(f"rollout/{game}/return_seat{seat}",
                                  f"{game} seat {seat}: mean return", dashed=True, color=i))  # fmt: skip
    parts.append(figure(line_plot("RAE baselines per game and seat", baselines, "return"),
                        "Solid: the EMA baseline subtracted from each seat's return; dashed: the "
                        "step's mean return of that seat."))  # fmt: skip
    adv = [c.series("adv/mean", "mean advantage"), c.series("adv/abs_mean", "mean |advantage|"),
           c.series("adv/kept_fraction", "share of turns trained on", dashed=True)]  # fmt: skip
    parts.append(figure(line_plot("Advantages", adv, ""), "Per turn, after the baseline."))
    return _grid(parts)


# Every game's `rollout/GAME/...` keys; the others are what the game itself measures
# (`EpisodeMetrics`) and the share of reasonings naming the seat's private information.
_RESULT_KEYS = {"win_rate_seat0", "win_rate_seat1", "return_seat0", "return_seat1", "games",
                "draw_rate", "truncated_rate", "forfeit_rate", "game_length", "game_tokens"}  # fmt: skip
_MEASURE_LABELS = {
    "reasoning_names_private": "reasonings naming the seat's private information (per turn)",
}


def game_measures(c: Curves, game: str) -> str:
    """A plot of what `game` measures beyond its results, when it measures anything."""
    keys = [k for k in c.with_prefix(f"rollout/{game}/") if k.split("/", 2)[2] not in _RESULT_KEYS]
    if not keys:
        return ""
    series = []
    for key in keys:
        name = key.split("/", 2)[2]
        series.append(c.series(key, _MEASURE_LABELS.get(name, name.replace("_", " "))))
    svg = line_plot(f"{game}: what the game measures", series, "share", ylim=(-0.02, 1.02))
    return figure(svg, "Each a mean over the step's games (or turns) that report it; a step "
                  "without any has no point.")  # fmt: skip


def learner_section(c: Curves) -> str:
    plots = [
        ("Loss", [c.series("loss/total", "total loss")], ""),
        ("KL", [c.series("loss/approx_kl_old", "KL to the sampling policy (approx.)"),
                c.series("loss/magnet_kl", "KL to the magnet")], "nats per token"),
        ("Magnet", [c.series("magnet/alpha", "KL weight"),
                    c.series("magnet/age", "age (steps)", dashed=True)], ""),
        ("Entropy", [c.series("loss/entropy", "entropy per response token")], "nats"),
        ("Gradient norm", [c.series("loss/grad_norm", "before clipping")], ""),
        ("PPO ratio", [c.series("loss/clip_frac", "clipped share of tokens"),
                       c.series("loss/ratio_mean", "mean ratio", dashed=True)], ""),
        ("Learning rate", [c.series("optim/lr", "learning rate")], ""),
        ("Off-policy (async)", [c.series(k, k.removeprefix("async/"))
                                for k in c.with_prefix("async/")], ""),
    ]  # fmt: skip
    return _grid([figure(line_plot(t, s, y), "") for t, s, y in plots])


def pool_section(c: Curves) -> str:
    members = [k.removeprefix("pool/win_rate/") for k in c.with_prefix("pool/win_rate/")]
    if not members:
        return ""
    rates = [c.series(f"pool/win_rate/{m}", f"vs {m}") for m in members]
    weights = [c.series(f"pool/weight/{m}", m) for m in members]
    games = ", ".join(f"{m}: {num(c.last(f'pool/games/{m}'))}" for m in members)
    return _grid([
        figure(line_plot("Running win rate against pool members", rates, "win rate",
                         ylim=(-0.02, 1.02)), f"Games behind each rate so far: {games}."),
        figure(line_plot("Sampling weights of pool members", weights, "weight"), ""),
    ])  # fmt: skip


def throughput_section(c: Curves) -> str:
    speed = [c.series("perf/gen_tokens_per_s", "generated tokens/s"),
             c.series("perf/train_tokens_per_s", "trained tokens/s")]  # fmt: skip
    times = [c.series("perf/rollout_s", "self-play"), c.series("perf/learn_s", "learner")]
    times += [c.series(k, k.removeprefix("perf/").removesuffix("_s").replace("_", " "))
              for k in c.with_prefix("perf/eval_")]  # fmt: skip
    mem = [c.series("perf/peak_rss_gib", "peak resident memory")]
    return _grid([
        figure(line_plot("Throughput", speed, "tokens/s"), ""),
        figure(line_plot("Seconds per step", times, "s"), ""),
        figure(line_plot("Memory", mem, "GiB"), ""),
    ])  # fmt: skip


def _grid(parts: list[str]) -> str:
    parts = [p for p in parts if p]
    figures = [p for p in parts if p.startswith("<figure>")]
    others = [p for p in parts if not p.startswith("<figure>")]
    if not figures and not others:
        return ""
    return (f"<div class=grid>{''.join(figures)}</div>" if figures else "") + "".join(others)


# --- replays, config, metrics -------------------------------------------------------------


def shown_replays(games: list[dict], max_replays: int) -> list[dict]:
    """At most `max_replays` of the kept games, in order: up to half from the first kept step
    (the model before training, so that a long run still shows where it started), the rest
    the latest."""
    if len(games) <= max_replays:
        return games
    first = [g for g in games if g["step"] == games[0]["step"]][: max_replays // 2]
    return first + games[len(games) - (max_replays - len(first)) :]


def replays_section(games: list[dict], cfg: dict, max_replays: int) -> str:
    if not games:
        keep = cfg.get("run", {}).get("keep_games", 0)
        why = "run.keep_games is 0" if not keep else "no kept step has finished yet"
        return f"<p>No kept games ({esc(why)}).</p>"
    shown = shown_replays(games, max_replays)
    out = [
        f"<p class=note>{len(shown)} of {len(games)} kept games (the first "
        f"{esc(cfg.get('run', {}).get('keep_games'))} of each kept step): the first kept "
        "step's, played by the weights before any update, and the latest, latest last. Each "
        "replays exactly from its game seed and rollout seed with the weights before its "
        "step. Open a game to see every turn: the prompt the model saw, its whole response "
        "and the move read from it.</p>"
    ]
    step = None
    for g in shown:
        if g["step"] != step:
            step = g["step"]
            out.append(f"<h3>Step {esc(num(step))}</h3>")
        title = f"#{g.get('index', '?')}"
        facts = [("rollout seed", g.get("rollout_seed"))]
        out.append(replay(g, title, facts, training_turns(g)))
    return "".join(out)


def config_section(cfg: dict) -> str:
    pairs = []
    for section, fields in cfg.items():
        if isinstance(fields, dict):
            pairs += [(f"{section}.{k}", json.dumps(v)) for k, v in fields.items()]
        else:
            pairs.append((section, json.dumps(fields)))
    return "<p class=note>config.json, as the run resolved it.</p>" + kv_table(pairs)


def last_metrics(c: Curves) -> str:
    if not c.rows:
        return "<p>No step logged yet.</p>"
    last = c.rows[-1]
    rows = [(k, num(v, 4) if isinstance(v, float) and math.isfinite(v) else num(v))
            for k, v in sorted(last.items())]  # fmt: skip
    return f"<p class=note>Step {esc(num(last['step']))}, every metric.</p>" + table(
        ("metric", "value"), rows
    )
