"""Playing games between players: one episode, the invalid-move policy, and matches.

This sequential runner serves fixed opponents and evaluation; training rollouts batch
many games through the model but apply the same `InvalidMovePolicy`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from zerosum.games.base import Game, Outcome
from zerosum.players.base import Player

InvalidMode = Literal["forfeit", "retry", "random"]
INVALID_MODES: tuple[str, ...] = ("forfeit", "retry", "random")


@dataclass(frozen=True)
class InvalidMovePolicy:
    """What happens when a player's answer is not a legal move.

    forfeit: the game ends; the offender gets `loss`, the other seat `win` (SPIRAL trains with
    -1.5/+0.5 and evaluates with -1/+1). retry: ask again with the reason, up to `retries`
    times, then forfeit. random: play a uniformly random legal move instead.
    """

    mode: InvalidMode = "forfeit"
    loss: float = -1.0
    win: float = 1.0
    retries: int = 2

    def __post_init__(self) -> None:
        if self.mode not in INVALID_MODES:
            raise ValueError(
                f"unknown invalid-move mode {self.mode!r}; valid: {', '.join(INVALID_MODES)}"
            )
        if self.retries < 0:
            raise ValueError(f"invalid-move retries must be >= 0, got {self.retries}")

    def forfeit_returns(self, offender: int) -> tuple[float, float]:
        return (self.loss, self.win) if offender == 0 else (self.win, self.loss)

    def decide(self, attempts: int) -> Literal["forfeit", "retry", "random"]:
        """The action to take after `attempts` invalid answers in a row for one turn."""
        if self.mode == "retry":
            return "retry" if attempts <= self.retries else "forfeit"
        return self.mode


@dataclass
class EpisodeRecord:
    """One finished game: its outcome, the public moves, and every invalid answer."""

    seed: int
    outcome: Outcome
    moves: list[tuple[int, str]]
    invalid: list[tuple[int, str]] = field(default_factory=list)  # (seat, reason)


def play_episode(
    game: Game,
    players: Sequence[Player],
    seed: int,
    invalid: InvalidMovePolicy = InvalidMovePolicy(),
    max_turns: int = 200,
) -> EpisodeRecord:
    """Play one game; `players[s]` sits in seat s. Reproducible from `seed`."""
    state = game.new_episode(seed)
    rng = np.random.default_rng([seed, 1])
    bad: list[tuple[int, str]] = []
    turns = 0
    while not state.is_terminal():
        if turns >= max_turns:  # truncated games are draws
            return EpisodeRecord(
                seed, Outcome((0.0, 0.0), turns, truncated=True), state.move_history(), bad
            )
        seat = state.current_seat()
        feedback = None
        attempts = 0
        while True:
            move = players[seat].act(state, rng, feedback)
            if move.action is not None:
                action = move.action
                break
            attempts += 1
            reason = move.reason or "invalid move"
            bad.append((seat, reason))
            decision = invalid.decide(attempts)
            if decision == "forfeit":
                outcome = Outcome(invalid.forfeit_returns(seat), turns, forfeit_seat=seat)
                return EpisodeRecord(seed, outcome, state.move_history(), bad)
            if decision == "random":
                legal = state.legal_actions()
                if not legal:  # free-text game: nothing to substitute
                    outcome = Outcome(invalid.forfeit_returns(seat), turns, forfeit_seat=seat)
                    return EpisodeRecord(seed, outcome, state.move_history(), bad)
                action = legal[int(rng.integers(len(legal)))]
                break
            feedback = f"Your last answer was invalid: {reason}. Answer with one legal action in \\boxed{{}}."
        state.apply_action(action)
        turns += 1
    return EpisodeRecord(seed, Outcome(state.returns(), turns), state.move_history(), bad)


@dataclass
class PlayerStats:
    """Win/draw/loss tallies and returns of one player, overall and per seat."""

    wins: int = 0
    draws: int = 0
    losses: int = 0
    total_return: float = 0.0
    seat_wdl: dict[int, Counter] = field(default_factory=lambda: {0: Counter(), 1: Counter()})
    invalid: Counter = field(default_factory=Counter)

    @property
    def games(self) -> int:
        return self.wins + self.draws + self.losses

    @property
    def mean_return(self) -> float:
        return self.total_return / max(self.games, 1)

    def add(self, seat: int, outcome: Outcome) -> None:
        result = "draw" if outcome.winner is None else ("win" if outcome.winner == seat else "loss")
        self.wins += result == "win"
        self.draws += result == "draw"
        self.losses += result == "loss"
        self.total_return += outcome.returns[seat]
        self.seat_wdl[seat][result] += 1


@dataclass
class MatchResult:
    names: tuple[str, str]
    stats: tuple[PlayerStats, PlayerStats]
    episodes: list[EpisodeRecord]
    truncated: int = 0


def run_match(
    game: Game,
    players: tuple[Player, Player],
    games: int,
    seed: int = 0,
    invalid: InvalidMovePolicy = InvalidMovePolicy(),
    max_turns: int = 200,
) -> MatchResult:
    """Play `games` games, alternating seats: even games A is seat 0, odd games seat 1.

    Game i uses seed `seed + i`, so a pair of games shares nothing but the seed stream.
    """
    if games < 1:
        raise ValueError(f"number of games must be >= 1, got {games}")
    stats = (PlayerStats(), PlayerStats())
    episodes = []
    truncated = 0
    for i in range(games):
        order = (0, 1) if i % 2 == 0 else (1, 0)  # order[s] = index of the player in seat s
        record = play_episode(
            game, [players[order[0]], players[order[1]]], seed + i, invalid, max_turns
        )
        for seat in (0, 1):
            stats[order[seat]].add(seat, record.outcome)
        for seat, reason in record.invalid:
            stats[order[seat]].invalid[reason] += 1
        truncated += record.outcome.truncated
        episodes.append(record)
    return MatchResult((players[0].name, players[1].name), stats, episodes, truncated)
