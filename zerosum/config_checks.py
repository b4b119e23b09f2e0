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
    _check_reasoned_only(cfg)
    _check_magnet_only(cfg)
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


def _check_reasoned_only(cfg: TrainConfig) -> None:
    """The fields that act in reasoned mode only stay at their neutral values elsewhere."""
    mode = cfg.rollout.answer_mode
    if mode == "reasoned":
        return
    fields = {  # name: (value, neutral value)
        "sampling.reasoning_temperature": (cfg.sampling.reasoning_temperature, None),
        "algo.reasoning_weight": (cfg.algo.reasoning_weight, 1.0),
        "algo.reasoning_kl_weight": (cfg.algo.reasoning_kl_weight, None),
        "algo.move_kl_weight": (cfg.algo.move_kl_weight, 1.0),
    }
    _check_neutral(fields, f"applies to rollout.answer_mode = 'reasoned' only (here {mode!r})")


def _check_magnet_only(cfg: TrainConfig) -> None:
    """The fields that shape the magnet stay at their neutral values without one; its model
    replaces full weights, not a LoRA adapter's."""
    a = cfg.algo
    fields = {  # name: (value, neutral value)
        "algo.reasoning_kl_weight": (a.reasoning_kl_weight, None),
        "algo.move_kl_weight": (a.move_kl_weight, 1.0),
        "algo.magnet_model": (a.magnet_model, None),
    }
    if a.regularizer != "magnet":
        _check_neutral(fields, f"needs algo.regularizer = 'magnet' (here {a.regularizer!r})")
    if a.magnet_model is not None and cfg.model.lora:
        raise ConfigError(
            f"config field 'algo.magnet_model' = {a.magnet_model!r} needs model.lora = false "
            "(a LoRA run's magnet is an adapter); set it to null"
        )


def _check_neutral(fields: dict[str, tuple[object, object]], why: str) -> None:
    """A one-line error for the first of `fields` (name: (value, neutral)) not neutral."""
    for name, (value, neutral) in fields.items():
        if value != neutral:
            advice = "null" if neutral is None else f"{neutral:g}"
            raise ConfigError(f"config field {name!r} = {value!r} {why}; set it to {advice}")
