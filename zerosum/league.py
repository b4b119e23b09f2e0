"""Opponent pools for training: the learning policy against earlier selves and fixed players.

The default is pure self-play (the latest policy in both seats, SPIRAL's setting). With
`opponents.pool_size` > 0 the run keeps snapshots of its own policy (the initial model first,
then one every `opponents.pool_every` steps; the oldest, or the one beaten most, leaves a full
pool), and `opponents.fixed` adds bots or other checkpoints. A share `1 - opponents.self_play`
of each step's games is played against a member drawn uniformly (fictitious self-play) or by
prioritised fictitious self-play (PFSP, AlphaStar: weight (1 - w)^p, w the running win rate
of the policy against the member, so the opponents it beats least are met most). In those
games the policy learns only from its own seat. Snapshots are served by the run's engine with
their weights swapped in (`Snapshot.swapped_in`): no copy of the model per opponent.
The pool, its win rates and its snapshots are part of every checkpoint.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from zerosum.engines.base import SamplingParams
from zerosum.players import Player, make_player
from zerosum.players.model import EVAL_PARAMS
from zerosum.prompts import Prompting
from zerosum.rollout import Episode
from zerosum.seeds import opponent_rng
from zerosum.snapshot import Snapshot
from zerosum.typed_config import POSITIVE, fld, ints, numbers

PoolSampling = Literal["uniform", "pfsp"]
PoolEviction = Literal["oldest", "weakest"]


@dataclass
class OpponentsConfig:
    """`opponents`: who the learning policy plays (default: itself, in both seats)."""

    self_play: float = fld(
        1.0,
        "share of games the latest policy plays against itself; the rest against the pool",
        numbers(0, 1),
    )
    pool_size: int = fld(
        0,
        "earlier selves kept as opponents (0: none); the initial model is the first",
        ints(0, 1000),
    )
    pool_every: int = fld(10, "add the current policy to the pool every N steps", POSITIVE)
    evict: PoolEviction = fld(
        "oldest", "when the pool is full: drop the oldest snapshot, or the one beaten most"
    )
    sampling: PoolSampling = fld(
        "uniform",
        "uniform (fictitious self-play), or pfsp: weight (1 - win rate)^pfsp_power, towards "
        "the opponents the policy beats least",
    )
    pfsp_power: float = fld(2.0, "pfsp: the exponent of the weighting", numbers(0))
    win_rate_decay: float = fld(
        0.9, "EMA decay of the running win rate against each member", numbers(0, 1, hi_open=True)
    )
    fixed: list[str] = fld(
        [],
        "fixed pool members: bots (random, mcts:N, nash, perfect) or model:PATH checkpoints "
        "(asked and read as rollout's settings say)",
    )


@dataclass
class Member:
    """One pool opponent: an earlier self (`snapshot`) or a fixed `player`."""

    name: str  # step-NNNNNN for a snapshot, the player spec for a fixed player
    snapshot: Snapshot | None = None
    player: Player | None = None
    win_rate: float = 0.5  # running score of the learning policy against it (draws half)
    games: int = 0

    @property
    def seat_player(self) -> Player | Snapshot:
        """What plays its seat in `play_games`."""
        return self.snapshot if self.snapshot is not None else self.player  # type: ignore[return-value]


@dataclass
class Assignment:
    """One scheduled game's opponent: None for self-play, else the member and the seat the
    learning policy takes."""

    member: Member | None
    learner_seat: int = 0


class OpponentPool:
    """The members, how they are drawn, and their running statistics."""

    def __init__(
        self,
        cfg: OpponentsConfig,
        model,
        saved: dict | None = None,
        prompting: Prompting | None = None,
        params: SamplingParams = EVAL_PARAMS,
    ):
        """The pool of `cfg` over `model` (or as `saved` in a checkpoint); fixed `model:PATH`
        members ask and read as `prompting` says and sample with `params`."""
        self.cfg = cfg
        self.fixed = [
            Member(spec, player=make_player(spec, prompting, params)) for spec in cfg.fixed
        ]
        self.snapshots: list[Member] = []
        if saved is not None:
            stats = {m["name"]: m for m in saved["members"]}
            for m in self.fixed:
                if m.name in stats:
                    m.win_rate, m.games = stats[m.name]["win_rate"], stats[m.name]["games"]
            for m in saved["members"]:
                if m["snapshot"] is not None:
                    snap = Snapshot(model, m["snapshot"])
                    self.snapshots.append(Member(m["name"], snap, None, m["win_rate"], m["games"]))
        elif cfg.pool_size:
            self.snapshots.append(Member("step-000000", Snapshot(model, step=0)))

    @property
    def members(self) -> list[Member]:
        return self.fixed + self.snapshots

    def weights(self) -> np.ndarray:
        """Sampling probabilities of `members` (uniform, or PFSP from running win rates)."""
        members = self.members
        if self.cfg.sampling == "uniform":
            w = np.ones(len(members))
        else:  # a floor keeps members the policy always beats in the rotation, rarely
            w = np.array([max(1.0 - m.win_rate, 1e-3) ** self.cfg.pfsp_power for m in members])
        return w / w.sum()

    def assign(self, n_games: int, run_seed: int, step: int) -> list[Assignment]:
        """The opponent of each of a step's games: a pure function of (seed, step) and the
        pool's state, so a resumed run draws the same."""
        rng = opponent_rng(run_seed, step)
        members, p = self.members, self.weights()
        out = []
        for _ in range(n_games):
            if not members or rng.random() < self.cfg.self_play:
                out.append(Assignment(None))
            else:
                member = members[int(rng.choice(len(members), p=p))]
                out.append(Assignment(member, int(rng.integers(2))))
        return out

    def record(self, assignments: Sequence[Assignment], episodes: Sequence[Episode]) -> None:
        """Fold the step's results against each member into its running win rate (EMA of the
        step's mean score: 1 win, 0.5 draw, 0 loss)."""
        scores: dict[str, list[float]] = {}
        for a, ep in zip(assignments, episodes):
            if a.member is None or ep.outcome is None:
                continue
            winner = ep.outcome.winner
            score = 0.5 if winner is None else float(winner == a.learner_seat)
            scores.setdefault(a.member.name, []).append(score)
        d = self.cfg.win_rate_decay
        for m in self.members:
            if m.name in scores:
                m.win_rate = d * m.win_rate + (1 - d) * float(np.mean(scores[m.name]))
                m.games += len(scores[m.name])

    def after_step(self, model, step: int) -> None:
        """Every `pool_every` steps the current policy joins; a full pool drops one."""
        if not self.cfg.pool_size or step % self.cfg.pool_every:
            return
        self.snapshots.append(Member(f"step-{step:06d}", Snapshot(model, step=step)))
        if len(self.snapshots) > self.cfg.pool_size:
            old = self.snapshots[:-1]  # never the snapshot just taken
            drop = old[0] if self.cfg.evict == "oldest" else max(old, key=lambda m: m.win_rate)
            self.snapshots.remove(drop)

    def metrics(self, assignments: Sequence[Assignment]) -> dict[str, float]:
        """`pool/`: size, each member's sampling weight, running win rate and games."""
        out = {
            "pool/size": float(len(self.snapshots)),
            "pool/opponent_games": float(sum(a.member is not None for a in assignments)),
        }
        for m, w in zip(self.members, self.weights()):
            out[f"pool/weight/{m.name}"] = float(w)
            out[f"pool/win_rate/{m.name}"] = m.win_rate
            out[f"pool/games/{m.name}"] = float(m.games)
        return out

    def finish_step(
        self, assignments: Sequence[Assignment], episodes: Sequence[Episode], model, step: int
    ) -> dict[str, float]:
        """After step `step`'s update: the pool's metrics as its games drew from it, then the
        games' results recorded and the updated `model` let in when due."""
        metrics = self.metrics(assignments)
        self.record(assignments, episodes)
        self.after_step(model, step)
        return metrics

    def state_dict(self) -> dict:
        """Names, statistics and snapshot weights (tensors and plain data only)."""
        return {
            "members": [
                {
                    "name": m.name,
                    "win_rate": m.win_rate,
                    "games": m.games,
                    "snapshot": m.snapshot.state_dict() if m.snapshot else None,
                }
                for m in self.members
            ]
        }


def seat_players(assignments: Sequence[Assignment]) -> list[list[Player | Snapshot | None]] | None:
    """`play_games` opponents: per game, what plays each seat (None: the learning policy);
    None when every game is self-play (or there are no assignments)."""
    if all(a.member is None for a in assignments):
        return None
    out: list[list[Player | Snapshot | None]] = []
    for a in assignments:
        seats: list[Player | Snapshot | None] = [None, None]
        if a.member is not None:
            seats[1 - a.learner_seat] = a.member.seat_player
        out.append(seats)
    return out


def seat_names(assignments: Sequence[Assignment], n_games: int) -> list[list[str]]:
    """Who played each seat of the first `n_games` games: "self" (the learning policy) or the
    pool member's name (a kept game's `players`)."""
    names = []
    for i in range(n_games):
        seats = ["self", "self"]
        if i < len(assignments) and (a := assignments[i]).member is not None:
            seats[1 - a.learner_seat] = a.member.name
        names.append(seats)
    return names
