"""Checks of a training config across its sections that need the games or the players: the
game names and weights, what evaluation can compute and play, and the opponents. The command
line and `train` call `check_config` before anything loads; each failure is one line.
"""

from __future__ import annotations

from zerosum.config import TrainConfig
from zerosum.games import game_names, games_with, unknown_game
from zerosum.players import make_player, unsupported
from zerosum.typed_config import ConfigError


def check_config(cfg: TrainConfig) -> TrainConfig:
    """`cfg` if its games, evaluation and opponents fit together; a `ConfigError` otherwise."""
    _check_games("rollout.games", cfg.rollout.games)
    for game, weight in cfg.rollout.games.items():
        if not weight > 0:
            raise ConfigError(
                f"config field 'rollout.games' weight of {game!r} = {weight!r} is invalid; allowed: a number > 0"
            )
    nash = games_with("nash")
    for game in cfg.eval.nash_conv:
        if game not in nash:
            raise ConfigError(
                f"config field 'eval.nash_conv' names {game!r}; allowed: {', '.join(nash)}"
            )
    if cfg.eval.nash_conv and cfg.rollout.answer_mode != "constrained":
        raise ConfigError(
            "config field 'eval.nash_conv' needs rollout.answer_mode = 'constrained' (exact policy)"
        )
    if cfg.sampling.reasoning_temperature is not None and cfg.rollout.answer_mode != "reasoned":
        raise ConfigError(
            f"config field 'sampling.reasoning_temperature' = "
            f"{cfg.sampling.reasoning_temperature!r} applies to rollout.answer_mode = 'reasoned' "
            f"only (here {cfg.rollout.answer_mode!r}); set it to null"
        )
    if cfg.algo.reasoning_weight != 1.0 and cfg.rollout.answer_mode != "reasoned":
        raise ConfigError(
            f"config field 'algo.reasoning_weight' = {cfg.algo.reasoning_weight!r} applies to "
            f"rollout.answer_mode = 'reasoned' only (here {cfg.rollout.answer_mode!r}); set it to 1"
        )
    kl_weight, reg = cfg.algo.reasoning_kl_weight, cfg.algo.regularizer
    mode = cfg.rollout.answer_mode
    if kl_weight is not None and (mode != "reasoned" or reg != "magnet"):
        raise ConfigError(
            f"config field 'algo.reasoning_kl_weight' = {kl_weight!r} applies to "
            f"rollout.answer_mode = 'reasoned' with algo.regularizer = 'magnet' only (here "
            f"{mode!r} and {reg!r}); set it to null"
        )
    o = cfg.opponents
    if o.self_play < 1 and not (o.pool_size or o.fixed):
        raise ConfigError(
            f"config field 'opponents.self_play' = {o.self_play!r} leaves games to an empty pool; "
            "set opponents.pool_size >= 1 or opponents.fixed"
        )
    _check_players("opponents.fixed", o.fixed, list(cfg.rollout.games))
    _check_games("eval.games", cfg.eval.games)
    _check_players("eval.opponents", cfg.eval.opponents, cfg.eval.games)
    return cfg


def _check_games(key: str, games) -> None:
    for game in games:
        if game not in game_names():
            raise ConfigError(f"config field {key!r} names {unknown_game(game)}")


def _check_players(key: str, specs: list[str], games: list[str]) -> None:
    """Every spec builds (a model loads only when it is used) and can play every game."""
    for spec in specs:
        try:
            if not spec.startswith("model:"):
                make_player(spec)
        except ValueError as err:
            raise ConfigError(f"config field {key!r}: {err}") from None
    for game in games:
        for spec in specs:
            if reason := unsupported(spec, game):
                raise ConfigError(f"config field {key!r}: {spec!r} cannot play {game!r}: {reason}")
