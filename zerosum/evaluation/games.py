"""Win rates of the model against fixed opponents, with Wilson 95% intervals.

The model plays both seats equally (it takes seat 0 in even games, seat 1 in odd ones); the
games run concurrently through the same loop as training rollouts. An invalid or unparseable
answer forfeits the game with -1/+1 (SPIRAL's evaluation rewards) and counts as a loss, with
its reason tallied: nothing is silently dropped.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace

from scipy.stats import binomtest

from zerosum.engines.base import Engine, SamplingParams
from zerosum.players.base import Player
from zerosum.rollout import EVAL_INVALID, RolloutSettings, play_games
from zerosum.seeds import game_seed


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (scipy); (0, 1) when n is 0."""
    if n == 0:
        return (0.0, 1.0)
    ci = binomtest(successes, n).proportion_ci(confidence_level=confidence, method="wilson")
    return (float(ci.low), float(ci.high))


@dataclass
class Tally:
    """Results of the model over a set of games, from its own point of view."""

    wins: int = 0
    draws: int = 0
    losses: int = 0
    invalid: int = 0  # games lost by an invalid answer (also counted in losses)
    total_return: float = 0.0
    reasons: Counter = field(default_factory=Counter)

    @property
    def games(self) -> int:
        return self.wins + self.draws + self.losses

    def summary(self) -> dict:
        n = self.games
        out: dict = {"games": n, "mean_return": self.total_return / max(n, 1)}
        for name, k in (
            ("win", self.wins),
            ("draw", self.draws),
            ("loss", self.losses),
            ("invalid", self.invalid),
        ):
            lo, hi = wilson_interval(k, n)
            out[f"{name}_rate"] = k / max(n, 1)
            out[f"{name}_ci95"] = [lo, hi]
        out["invalid_reasons"] = dict(self.reasons.most_common())
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
) -> dict:
    """Play `n` games of `game` against `opponent`, seats alternating; the summary overall
    and per model seat. Game i uses seed `game_seed(seed, i)`, as in `zerosum match`."""
    if n < 1:
        raise ValueError(f"number of evaluation games must be >= 1, got {n}")
    settings = replace(settings, invalid=EVAL_INVALID)
    schedule = [(game, game_seed(seed, i)) for i in range(n)]
    model_seat = [i % 2 for i in range(n)]
    opponents = [(opponent, None) if s == 1 else (None, opponent) for s in model_seat]
    _, episodes = play_games(engine, tokenizer, schedule, params, settings, seed, opponents)
    overall, per_seat = Tally(), (Tally(), Tally())
    for ep, seat in zip(episodes, model_seat):
        for tally in (overall, per_seat[seat]):
            out = ep.outcome
            tally.total_return += out.returns[seat]
            if out.winner is None:
                tally.draws += 1
            elif out.winner == seat:
                tally.wins += 1
            else:
                tally.losses += 1
            if out.forfeit_seat == seat:
                tally.invalid += 1
            tally.reasons.update(reason for s, reason in ep.invalid if s == seat)
    result = {**overall.summary(), "seat0": per_seat[0].summary(), "seat1": per_seat[1].summary()}
    if game == "tic_tac_toe":
        from zerosum.evaluation.tictactoe import decisions_in_play, move_quality

        result["move_quality_in_play"] = move_quality(decisions_in_play(episodes, model_seat))
    return result
