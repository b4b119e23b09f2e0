"""The game registry: every game zerosum can play, by name."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

from zerosum.games.base import Capabilities, Game, GameState, IllegalActionError, Outcome
from zerosum.games.openspiel_games import SPECS, OpenSpielGame
from zerosum.games.taboo import AdversarialTaboo
from zerosum.games.textarena_games import TEXTARENA_GAMES

__all__ = [
    "Capabilities",
    "Game",
    "GameState",
    "IllegalActionError",
    "Outcome",
    "game_names",
    "games_with",
    "load_game",
]


def _factories() -> dict[str, Callable[[], Game]]:
    factories: dict[str, Callable[[], Game]] = {
        spec.name: (lambda spec=spec: OpenSpielGame(spec)) for spec in SPECS
    }
    factories.update({g.name: (lambda g=g: g) for g in TEXTARENA_GAMES})
    factories[AdversarialTaboo.name] = AdversarialTaboo
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


def games_with(capability: str) -> list[str]:
    """The games whose spec declares `capability` (a `Capabilities` field), sorted."""
    return [name for name in game_names() if getattr(load_game(name).capabilities, capability)]
