"""Players by spec string: `random`, `mcts:200`, `perfect`, `nash`, `nash:ITERATIONS`."""

from __future__ import annotations

from zerosum.players.base import Move, Player
from zerosum.players.simple import MCTSPlayer, NashPlayer, PerfectPlayer, RandomPlayer

__all__ = ["Move", "Player", "make_player", "PLAYER_SPECS"]

PLAYER_SPECS = ("random", "mcts[:SIMULATIONS]", "perfect", "nash[:CFR_ITERATIONS]")


def make_player(spec: str) -> Player:
    """Build a player from its spec; a one-line error lists the valid forms otherwise."""
    kind, _, arg = spec.partition(":")
    try:
        if kind == "random" and not arg:
            return RandomPlayer()
        if kind == "perfect" and not arg:
            return PerfectPlayer()
        if kind == "mcts":
            return MCTSPlayer(int(arg) if arg else 200)
        if kind == "nash":
            return NashPlayer(int(arg) if arg else 1000)
    except ValueError as err:
        raise ValueError(f"bad player {spec!r}: {err}") from None
    raise ValueError(f"unknown player {spec!r}; valid: {', '.join(PLAYER_SPECS)}")
