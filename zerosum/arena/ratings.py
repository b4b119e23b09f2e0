"""Ratings from game results: Bradley-Terry with bootstrap intervals, and OpenSkill.

Bradley-Terry: P(i beats j) = sigmoid(r_i - r_j). A draw counts as half a win for each side
(its likelihood is sigmoid(d)^1/2 sigmoid(-d)^1/2); a forfeit is a loss. Every r_i has an
independent Gaussian prior N(0, prior_sigma^2), i.e. L2 regularisation, and the ratings are
its maximum a posteriori estimate (scipy L-BFGS-B with the exact gradient): a player that
wins or loses every game still gets a finite rating, and the ratings sum to zero (the
likelihood's gradient does, so the prior's must too). They are shown on the Elo scale,
1000 + 400/ln(10) * r, so 1000 is the field's average and 400 points are odds of 10:1.

Anchors: a player may have a stated Elo rating (Stockfish at a skill level, for chess): its
log-strength is then fixed at (Elo - 1000) / (400/ln(10)), the others are fitted around it,
and their prior is centred on the anchors' mean instead of 0, so the ratings read on the
anchors' scale instead of summing to zero.

Intervals: percentile bootstrap over games (resampled with replacement, the fit repeated),
seeded, so a report is reproducible from the same games. Given strata (a game's name, for the
rating across all games), each stratum is resampled apart, so every resample keeps the mix of
games the arena played.

OpenSkill (Plackett-Luce, the `openskill` package) is online: it reads the games in round
order (game index, game, seats), not completion order, so it too depends on the games only.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit

ELO = 400 / math.log(10)
BASE = 1000.0


@dataclass(frozen=True)
class Result:
    a: str  # seat 0
    b: str  # seat 1
    score: float  # a's score: 1 win, 0.5 draw, 0 loss


def fit_bradley_terry(
    n: int, i: np.ndarray, j: np.ndarray, score: np.ndarray, weight: np.ndarray, sigma: float,
    fixed: np.ndarray | None = None,
) -> np.ndarray:  # fmt: skip
    """MAP log-strengths of `n` players from games (i vs j, i's score, game weight); `fixed`
    (length n) holds an anchored player's log-strength and nan for a fitted one."""
    fixed = np.full(n, np.nan) if fixed is None else fixed
    free = np.isnan(fixed)
    mean = float(fixed[~free].mean()) if (~free).any() else 0.0

    def objective(x: np.ndarray) -> tuple[float, np.ndarray]:
        r = fixed.copy()
        r[free] = x
        d = r[i] - r[j]
        nll = np.sum(weight * (score * np.logaddexp(0, -d) + (1 - score) * np.logaddexp(0, d)))
        slope = weight * (expit(d) - score)  # d nll / d d
        grad = np.bincount(i, slope, n) - np.bincount(j, slope, n)
        prior = x - mean
        return float(nll + prior @ prior / (2 * sigma**2)), grad[free] + prior / sigma**2

    x0 = np.full(int(free.sum()), mean)
    fit = minimize(objective, x0, jac=True, method="L-BFGS-B", options={"gtol": 1e-9})
    r = fixed.copy()
    r[free] = fit.x
    return r


def resample_weights(rng: np.random.Generator, strata: np.ndarray) -> np.ndarray:
    """Bootstrap counts per game: each stratum's games drawn with replacement, as many as it
    has."""
    weight = np.zeros(len(strata))
    for s in np.unique(strata):
        members = np.flatnonzero(strata == s)
        weight[members] = rng.multinomial(len(members), np.full(len(members), 1 / len(members)))
    return weight


def bradley_terry(
    players: Sequence[str],
    results: Sequence[Result],
    prior_sigma: float,
    bootstrap: int,
    seed: int,
    confidence: float = 0.95,
    anchors: Mapping[str, float] | None = None,
    strata: Sequence[str] | None = None,
) -> dict[str, dict]:
    """{player: rating, ci95 (None without bootstrap), logit} on the Elo scale; `anchors`
    (player -> Elo) fix those players' ratings, `strata` (one label per result) make the
    bootstrap resample within each label."""
    index = {p: k for k, p in enumerate(players)}
    i = np.array([index[r.a] for r in results], dtype=int)
    j = np.array([index[r.b] for r in results], dtype=int)
    s = np.array([r.score for r in results], dtype=float)
    n, g = len(players), len(results)
    fixed = np.full(n, np.nan)
    for p, elo in (anchors or {}).items():
        if p in index:
            fixed[index[p]] = (elo - BASE) / ELO
    groups = np.array(strata if strata is not None else [""] * g)
    best = fit_bradley_terry(n, i, j, s, np.ones(g), prior_sigma, fixed)
    rng = np.random.default_rng([seed, 11])
    draws = [
        fit_bradley_terry(n, i, j, s, resample_weights(rng, groups), prior_sigma, fixed)
        for _ in range(bootstrap if g else 0)
    ]
    tail = 100 * (1 - confidence) / 2
    lo, hi = np.percentile(draws, [tail, 100 - tail], axis=0) if draws else (None, None)
    return {
        p: {
            "rating": round(BASE + ELO * best[k], 1),
            "ci95": None
            if lo is None
            else [round(BASE + ELO * lo[k], 1), round(BASE + ELO * hi[k], 1)],
            "logit": round(float(best[k]), 4),
        }
        for p, k in index.items()
    }


def scope_seed(seed: int, scope: str) -> int:
    """A bootstrap seed per rating scope (a game, or all games)."""
    return seed * 7919 + zlib.crc32(scope.encode())


def openskill_ratings(players: Sequence[str], results: Sequence[Result]) -> dict[str, dict]:
    """Plackett-Luce ratings after reading `results` in order; draws are tied ranks."""
    from openskill.models import PlackettLuce

    model = PlackettLuce()
    ratings = {p: model.rating(name=p) for p in players}
    for r in results:
        ranks = [0, 0] if r.score == 0.5 else ([0, 1] if r.score == 1 else [1, 0])
        [[a], [b]] = model.rate([[ratings[r.a]], [ratings[r.b]]], ranks=ranks)
        ratings[r.a], ratings[r.b] = a, b
    return {
        p: {"mu": round(x.mu, 3), "sigma": round(x.sigma, 3), "ordinal": round(x.ordinal(), 3)}
        for p, x in ratings.items()
    }
