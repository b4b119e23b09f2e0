"""Matches between fixed players (`zerosum match`): win/draw/loss tallies per player and seat.

Games run through the same loop as training rollouts (`rollout.play_games`), with no seat
played by the model, so the invalid-move policy and turn limits behave identically.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from zerosum.games.base import Game
from zerosum.players.base import Player
from zerosum.rollout import (
    EVAL_INVALID,
    Episode,
    InvalidMovePolicy,
    RolloutSettings,
    play_games,
)
from zerosum.seeds import game_seed
from zerosum.typed_config import POSITIVE

MAX_TURNS = 200  # default turn limit of a match; longer games are draws


def play_episode(
    game: Game,
    players: Sequence[Player],
    seed: int,
    invalid: InvalidMovePolicy = EVAL_INVALID,
    max_turns: int = MAX_TURNS,
) -> Episode:
    """Play one game between fixed players; `players[s]` sits in seat s."""
    return run_games(game, [tuple(players)], [seed], invalid, max_turns)[0]


def run_games(
    game: Game,
    seatings: Sequence[tuple[Player, Player]],
    seeds: Sequence[int],
    invalid: InvalidMovePolicy,
    max_turns: int,
) -> list[Episode]:
    """Games between fixed players, through the same loop as rollouts (no model seat)."""
    settings = RolloutSettings(invalid=invalid, max_turns=max_turns, max_concurrent=64)
    schedule = [(game.name, s) for s in seeds]
    _, episodes = play_games(
        None, None, schedule, params=None, settings=settings, seed=0, opponents=seatings
    )
    return episodes


@dataclass
class Tally:
    """One player's results over a set of games, from its own point of view: wins, draws and
    losses overall and per seat, returns, games lost by an invalid move, and the reasons of
    its invalid moves. Matches keep one per player, evaluation one per model seat."""

    wins: int = 0
    draws: int = 0
    losses: int = 0
    forfeits: int = 0  # games lost by an invalid move (also counted in losses)
    returns: list[float] = field(default_factory=list)  # each game's, in order
    valid_returns: list[float] = field(default_factory=list)  # of the games not forfeited
    seat_wdl: dict[int, Counter] = field(default_factory=lambda: {0: Counter(), 1: Counter()})
    reasons: Counter = field(default_factory=Counter)  # invalid-move reasons

    @property
    def games(self) -> int:
        return self.wins + self.draws + self.losses

    @property
    def mean_return(self) -> float:
        return sum(self.returns) / max(self.games, 1)

    @property
    def valid_games(self) -> int:
        """Games this player did not forfeit: where its moves, not its format, decided."""
        return len(self.valid_returns)

    def add(self, seat: int, episode: Episode) -> None:
        """Count a finished `episode` in which this player sat in `seat`."""
        outcome = episode.outcome
        result = "draw" if outcome.winner is None else ("win" if outcome.winner == seat else "loss")
        self.wins += result == "win"
        self.draws += result == "draw"
        self.losses += result == "loss"
        self.forfeits += outcome.forfeit_seat == seat
        self.returns.append(outcome.returns[seat])
        if outcome.forfeit_seat != seat:
            self.valid_returns.append(outcome.returns[seat])
        self.seat_wdl[seat][result] += 1
        self.reasons.update(reason for s, reason in episode.invalid if s == seat)


@dataclass
class MatchResult:
    """A match's players (by name), their tallies in the same order, and every episode."""

    names: tuple[str, str]
    stats: tuple[Tally, Tally]
    episodes: list[Episode]
    truncated: int = 0


def run_match(
    game: Game,
    players: tuple[Player, Player],
    games: int,
    seed: int = 0,
    *,
    invalid: InvalidMovePolicy = EVAL_INVALID,
    max_turns: int = MAX_TURNS,
) -> MatchResult:
    """Play `games` games, alternating seats: even games A is seat 0, odd games seat 1.

    Game i uses seed `game_seed(seed, i)` (deal and players' random choices), so runs with
    different seeds play unrelated games.
    """
    POSITIVE.check("number of games", games)
    stats = (Tally(), Tally())
    orders = [(0, 1) if i % 2 == 0 else (1, 0) for i in range(games)]  # order[s]: player in seat s
    seatings = [(players[a], players[b]) for a, b in orders]
    seeds = [game_seed(seed, i) for i in range(games)]
    episodes = run_games(game, seatings, seeds, invalid, max_turns)
    for order, episode in zip(orders, episodes):
        for seat in (0, 1):
            stats[order[seat]].add(seat, episode)
    truncated = sum(e.outcome.truncated for e in episodes)
    return MatchResult((players[0].name, players[1].name), stats, episodes, truncated)
