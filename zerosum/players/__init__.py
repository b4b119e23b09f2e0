"""Players by spec string: `random`, `mcts:200`, `perfect`, `nash[:ITERATIONS]`, `model:PATH`,
`api:FILE` (an OpenAI-compatible chat API, settings in a YAML file)."""

from __future__ import annotations

from zerosum.players.base import Move, Player
from zerosum.players.simple import MCTSPlayer, NashPlayer, PerfectPlayer, RandomPlayer

__all__ = ["Move", "Player", "make_player", "PLAYER_SPECS"]

PLAYER_SPECS = (
    "random", "mcts[:SIMULATIONS]", "perfect", "nash[:CFR_ITERATIONS]", "model:PATH", "api:FILE"
)  # fmt: skip


def _count(arg: str | None, what: str, default: int) -> int:
    """The positive integer after `kind:` in a spec (e.g. `mcts:200`); `default` without one."""
    if arg is None:
        return default
    try:
        value = int(arg)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{what} must be an integer >= 1, got {arg!r}")
    return value


def make_player(spec: str) -> Player:
    """Build a player from its spec; a one-line error lists the valid forms otherwise."""
    kind, sep, arg = spec.partition(":")
    count = arg if sep else None
    try:
        if kind == "random" and not sep:
            return RandomPlayer()
        if kind == "perfect" and not sep:
            return PerfectPlayer()
        if kind == "mcts":
            return MCTSPlayer(_count(count, "MCTS simulations", 200))
        if kind == "nash":
            return NashPlayer(_count(count, "CFR+ iterations", 1000))
        if kind == "model" and arg:
            from zerosum.players.model import ModelPlayer

            return ModelPlayer(arg)
        if kind == "api" and arg:
            from zerosum.players.api import ApiPlayer, load_api_config

            return ApiPlayer(load_api_config(arg))
    except ValueError as err:
        raise ValueError(f"bad player {spec!r}: {err}") from None
    raise ValueError(f"unknown player {spec!r}; valid: {', '.join(PLAYER_SPECS)}")


def unsupported(spec: str, game_name: str) -> str | None:
    """Why player `spec` cannot play `game_name`, or None when it can."""
    from zerosum.games import load_game
    from zerosum.games.openspiel_games import OpenSpielGame
    from zerosum.solvers import NASH_GAMES

    kind = spec.partition(":")[0]
    game = load_game(game_name)
    if kind in ("model", "api"):
        return None
    if not isinstance(game, OpenSpielGame):
        return f"{kind!r} needs a game with finite legal actions"
    if kind == "nash" and game_name not in NASH_GAMES:
        return f"Nash policies exist for {', '.join(NASH_GAMES)} only"
    if kind == "perfect" and game_name != "tic_tac_toe":
        return "perfect play is available for tic_tac_toe only"
    perfect_info = game.spiel_game.get_type().information.name == "PERFECT_INFORMATION"
    if kind == "mcts" and not perfect_info:
        return "MCTS needs a perfect-information game"
    return None
