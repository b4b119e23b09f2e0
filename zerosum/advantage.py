"""Role-conditioned advantage estimation (RAE) as a pure function.

SPIRAL keeps an exponential moving average of the return per (game, seat) and uses
`return - baseline` as the advantage; the seat matters because zero-sum games are rarely
symmetric (Kuhn Poker is worth -1/18 to the first player). Departure from the paper's
per-sample update: the baseline is read once per batch and then updated with the batch's
mean return per key, so the result does not depend on the order in which concurrent games
finished. With `enabled=False` the baseline is zero: the advantage is the raw return (with
the PPO loss, PPO on raw returns; with `reinforce`, plain REINFORCE), for ablations.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Hashable, Mapping, Sequence

RoleKey = tuple[str, int]  # (game name, seat)
RAE_DECAY = 0.95  # the EMA decay of a baseline (SPIRAL's)


def role_key(game: str, seat: int) -> str:
    """Serialisable key of a role, as stored in checkpoints and metrics."""
    return f"{game}/{seat}"


def rae_advantages(
    returns: Sequence[float],
    roles: Sequence[RoleKey],
    baselines: Mapping[str, float],
    decay: float = RAE_DECAY,
    enabled: bool = True,
) -> tuple[list[float], dict[str, float]]:
    """Advantages for one batch and the updated baselines (the input is not modified).

    A role seen for the first time starts from a baseline of 0. For each role key,
    `new = decay * old + (1 - decay) * mean(batch returns of that role)`.
    """
    if len(returns) != len(roles):
        raise ValueError(f"got {len(returns)} returns for {len(roles)} roles")
    if not 0.0 <= decay <= 1.0:
        raise ValueError(f"RAE decay must be in [0, 1], got {decay}")
    keys = [role_key(game, seat) for game, seat in roles]
    if not enabled:
        return [float(r) for r in returns], dict(baselines)
    advantages = [float(r) - baselines.get(k, 0.0) for r, k in zip(returns, keys)]
    grouped: dict[str, list[float]] = defaultdict(list)
    for r, k in zip(returns, keys):
        grouped[k].append(float(r))
    updated = dict(baselines)
    for k, rs in grouped.items():
        updated[k] = decay * baselines.get(k, 0.0) + (1.0 - decay) * sum(rs) / len(rs)
    return advantages, updated


def prompt_advantages(
    returns: Sequence[float], prompts: Sequence[Hashable], fallback: Sequence[float]
) -> list[float]:
    """Advantages whose baseline is the mean return of the batch's *other* turns with the same
    prompt (leave-one-out, as RLOO; unbiased because those turns are independent samples of
    the same decision). A prompt seen once keeps its `fallback` advantage (RAE's).

    In small games the prompt is the information set, so this baseline is a per-state value
    estimate: the card-luck in the return cancels, which RAE's one number per seat cannot do.
    """
    if not len(returns) == len(prompts) == len(fallback):
        raise ValueError(
            f"got {len(returns)} returns, {len(prompts)} prompts, {len(fallback)} fallbacks"
        )
    totals: dict[Hashable, float] = defaultdict(float)
    counts: dict[Hashable, int] = defaultdict(int)
    for r, p in zip(returns, prompts):
        totals[p] += float(r)
        counts[p] += 1
    return [
        float(r) - (totals[p] - float(r)) / (counts[p] - 1) if counts[p] > 1 else float(f)
        for r, p, f in zip(returns, prompts, fallback)
    ]


def role_normalized_advantages(
    returns: Sequence[float], roles: Sequence[RoleKey], eps: float = 1e-6
) -> list[float]:
    """MARSHAL's turn-level advantages with agent-specific normalisation (Yuan et al., arXiv
    2510.15414): each turn's return to go, standardised among the batch's turns of the same
    role (game, seat): `(G - mean_role) / (std_role + eps)`, the population std.

    The return to go is summed before the normalisation, as MARSHAL does; zerosum's games pay
    only at the end, so it is the seat's return for every turn of a game. Normalising per role
    keeps one seat's larger or more variable returns (a first mover's, a judged attacker's)
    from drowning the other's signal; a role whose turns all returned alike gets 0."""
    if len(returns) != len(roles):
        raise ValueError(f"got {len(returns)} returns for {len(roles)} roles")
    grouped: dict[RoleKey, list[float]] = defaultdict(list)
    for r, role in zip(returns, roles):
        grouped[role].append(float(r))
    stats = {}
    for role, rs in grouped.items():
        mean = sum(rs) / len(rs)
        stats[role] = (mean, math.sqrt(sum((r - mean) ** 2 for r in rs) / len(rs)))
    out = []
    for r, role in zip(returns, roles):
        mean, std = stats[role]
        out.append((float(r) - mean) / (std + eps) if std > 0 else 0.0)
    return out


def repeated_fraction(prompts: Sequence[Hashable]) -> float:
    """The share of turns whose prompt some other turn of the batch also has: the turns for
    which `prompt_advantages` has a baseline of its own (0 for an empty batch)."""
    counts = Counter(prompts)
    return sum(n for n in counts.values() if n > 1) / max(len(prompts), 1)


def keep_nonzero(advantages: Sequence[float], eps: float = 1e-8) -> list[int]:
    """Indices of samples whose advantage is not zero: the others carry no gradient signal."""
    return [i for i, a in enumerate(advantages) if abs(a) > eps]
