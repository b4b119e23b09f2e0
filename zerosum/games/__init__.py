"""The game registry: every game zerosum can play, by name."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

from zerosum.games.base import Game, GameState, IllegalActionError, Outcome
from zerosum.games.openspiel_games import SPECS, OpenSpielGame

__all__ = ["Game", "GameState", "IllegalActionError", "Outcome", "game_names", "load_game"]


def _textarena_factories() -> dict[str, Callable[[], Game]]:
    from zerosum.games.textarena_games import TEXTARENA_GAMES

    return {g.name: (lambda g=g: g) for g in TEXTARENA_GAMES}


def _factories() -> dict[str, Callable[[], Game]]:
    factories: dict[str, Callable[[], Game]] = {
        spec.name: (lambda spec=spec: OpenSpielGame(spec)) for spec in SPECS
    }
    factories.update(_textarena_factories())
    return factories


def game_names() -> list[str]:
    """Every game's name, sorted."""
    return sorted(_factories())


@cache
def load_game(name: str) -> Game:
    """The game called `name`; a one-line error lists the valid names otherwise."""
    factories = _factories()
    if name not in factories:
        raise ValueError(f"unknown game {name!r}; valid games: {', '.join(sorted(factories))}")
    return factories[name]()
