"""Win rates of the model against fixed opponents, with Wilson 95% intervals.

The model plays both seats equally (it takes seat 0 in even games, seat 1 in odd ones); the
games run concurrently through the same loop as training rollouts. An invalid or unparseable
answer forfeits the game with -1/+1 (SPIRAL's evaluation rewards) and counts as a loss, with
its reason tallied: nothing is silently dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from scipy.stats import binomtest, sem, t

from zerosum.engines.base import Engine, SamplingParams
from zerosum.evaluation.move_quality import decisions_in_play, move_quality
from zerosum.games import load_game
from zerosum.match import Tally
from zerosum.players.base import Player
from zerosum.rollout import EVAL_INVALID, RolloutSettings, play_games
from zerosum.seeds import game_seed
from zerosum.typed_config import POSITIVE


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (scipy); (0, 1) when n is 0."""
    if n == 0:
        return (0.0, 1.0)
    ci = binomtest(successes, n).proportion_ci(confidence_level=confidence, method="wilson")
    return (float(ci.low), float(ci.high))


def mean_interval(values: list[float], confidence: float = 0.95) -> tuple[float, float]:
    """Student-t interval of a mean (scipy); the mean itself when there are fewer than two
    values or no spread, (0, 0) when there are none."""
    if not values:
        return (0.0, 0.0)
    mean = sum(values) / len(values)
    if len(values) < 2 or min(values) == max(values):
        return (mean, mean)
    lo, hi = t.interval(confidence, len(values) - 1, loc=mean, scale=sem(values))
    return (float(lo), float(hi))


def summary(tally: Tally) -> dict:
    """Games, mean return, win/draw/loss/invalid rates with Wilson 95% intervals, the
    invalid-move reasons of one tally, and (`valid`) the games the player did not forfeit:
    how it plays where it answers, apart from how often it answers."""
    n = tally.games
    out: dict = {
        "games": n,
        "mean_return": tally.mean_return,
        "mean_return_ci95": list(mean_interval(tally.returns)),
    }
    for name, k in (
        ("win", tally.wins),
        ("draw", tally.draws),
        ("loss", tally.losses),
        ("invalid", tally.forfeits),
    ):
        lo, hi = wilson_interval(k, n)
        out[f"{name}_rate"] = k / max(n, 1)
        out[f"{name}_ci95"] = [lo, hi]
    out["invalid_reasons"] = dict(tally.reasons.most_common())
    n_valid = tally.valid_games  # a forfeit is a loss, so every win is in a valid game
    lo, hi = wilson_interval(tally.wins, n_valid)
    out["valid"] = {
        "games": n_valid,
        "win_rate": tally.wins / max(n_valid, 1),
        "win_ci95": [lo, hi],
        "mean_return": sum(tally.valid_returns) / max(n_valid, 1),
        "mean_return_ci95": list(mean_interval(tally.valid_returns)),
    }
    return out


def evaluate_against(
    engine: Engine,
    tokenizer,
    game: str,
    opponent: Player,
    n: int,
    seed: int,
    params: SamplingParams,
    settings: RolloutSettings,
    on_finish: Callable[[], None] | None = None,
) -> dict:
    """Play `n` games of `game` against `opponent`, seats alternating; the summary overall
    and per model seat. Game i uses seed `game_seed(seed, i)`, as in `zerosum match`.
    `on_finish` is called as each game ends."""
    POSITIVE.check("number of evaluation games", n)
    settings = replace(settings, invalid=EVAL_INVALID)
    schedule = [(game, game_seed(seed, i)) for i in range(n)]
    model_seat = [i % 2 for i in range(n)]
    opponents = [(opponent, None) if s == 1 else (None, opponent) for s in model_seat]
    _, episodes = play_games(
        engine, tokenizer, schedule, params, settings, seed, opponents, on_finish
    )
    overall, per_seat = Tally(), (Tally(), Tally())
    for ep, seat in zip(episodes, model_seat):
        overall.add(seat, ep)
        per_seat[seat].add(seat, ep)
    result = {**summary(overall), "seat0": summary(per_seat[0]), "seat1": summary(per_seat[1])}
    if load_game(game).capabilities.minimax:
        result["move_quality_in_play"] = move_quality(decisions_in_play(episodes, model_seat))
    return result
