"""The game registry: every game zerosum can play, by name, with where it comes from.

Built-in games are OpenSpiel's (cards, boards), TextArena's (language games) and those written
here (adversarial_taboo; the judged games password_game, redteam and debate). Other
packages add games through the entry-point group `zerosum.games`: each entry point names a
`Game` object, or a class or function that makes one, and its name must be the game's name, e.g. in
a plugin's pyproject.toml

    [project.entry-points."zerosum.games"]
    nim = "zerosum_nim:NimGame"

A plugin that fails to load does not take the others down: asking for it is a one-line
error naming the reason, and `zerosum games` lists it so; one whose name is taken by a
built-in game is not registered (the built-in game is kept) and is listed with the reason. `zerosum games --check` runs the conformance checks
(`zerosum.games.conformance`) on any of them.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib.metadata import entry_points

from zerosum.games.base import Capabilities, Game, GameState, IllegalActionError, Outcome
from zerosum.games.debate import Debate
from zerosum.games.openspiel_games import SPECS, OpenSpielGame
from zerosum.games.password import PasswordGame
from zerosum.games.redteam import RedTeamGame
from zerosum.games.taboo import AdversarialTaboo
from zerosum.games.textarena_games import TEXTARENA_GAMES

__all__ = [
    "ENTRY_POINT_GROUP",
    "Capabilities",
    "Game",
    "GameState",
    "IllegalActionError",
    "Outcome",
    "Registered",
    "broken_plugins",
    "game_names",
    "game_source",
    "games_with",
    "load_game",
]

ENTRY_POINT_GROUP = "zerosum.games"


@dataclass(frozen=True)
class Registered:
    """A game's factory and where it comes from: "OpenSpiel" or "TextArena" (their rules,
    adapted), "built in" (rules written here), "plugin PACKAGE"."""

    factory: Callable[[], Game]
    source: str


def _plugin_factory(ep) -> Callable[[], Game]:
    def make() -> Game:
        obj = ep.load()
        # A Game object is used as it is; a class or a function is called to make one.
        game = obj() if isinstance(obj, type) or not hasattr(obj, "new_episode") else obj
        if getattr(game, "name", None) != ep.name:
            raise ValueError(
                f"plugin entry point {ep.name!r} ({ep.value}) made a game named "
                f"{getattr(game, 'name', None)!r}; the names must match"
            )
        return game

    return make


@cache
def _registry() -> tuple[dict[str, Registered], dict[str, str]]:
    """The registered games, and the plugins left out with the reason."""
    games: dict[str, Registered] = {
        spec.name: Registered(lambda spec=spec: OpenSpielGame(spec), "OpenSpiel") for spec in SPECS
    }
    games.update({g.name: Registered(lambda g=g: g, "TextArena") for g in TEXTARENA_GAMES})
    games[AdversarialTaboo.name] = Registered(AdversarialTaboo, "built in")
    # Judged games, registered with their rule judges (offline, deterministic); a game with a
    # model or API judge is built with `zerosum.judges.judged_game`.
    games["password_game"] = Registered(PasswordGame, "built in")
    games["redteam"] = Registered(RedTeamGame, "built in")
    games["redteam_multiturn"] = Registered(
        lambda: RedTeamGame(rounds=3, name="redteam_multiturn"), "built in"
    )
    games["debate"] = Registered(Debate, "built in")
    broken: dict[str, str] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        package = ep.dist.name if ep.dist is not None else ep.value.split(":")[0]
        if ep.name in games:
            broken[ep.name] = (
                f"plugin {package!r} names a game that already exists "
                f"({games[ep.name].source}), which is kept"
            )
            continue
        games[ep.name] = Registered(_plugin_factory(ep), f"plugin {package}")
    return games, broken


def game_names() -> list[str]:
    """Every game's name, sorted."""
    return sorted(_registry()[0])


def game_source(name: str) -> str:
    """Where game `name` comes from: "OpenSpiel", "TextArena" or "plugin PACKAGE"."""
    return _registry()[0][name].source


def broken_plugins() -> dict[str, str]:
    """Plugin entry points that were not registered: entry-point name -> reason."""
    return dict(_registry()[1])


def unknown_game(name: str) -> str:
    """The one-line error for a game name that is not registered: the closest names first
    (a typo), then every valid one."""
    names = game_names()
    close = difflib.get_close_matches(str(name), names, n=3, cutoff=0.75)
    hint = f"did you mean {' or '.join(close)}? " if close else ""
    return f"unknown game {name!r}; {hint}valid games: {', '.join(names)}"


@cache
def load_game(name: str) -> Game:
    """The game called `name`; a one-line error lists the valid names otherwise."""
    games, broken = _registry()
    if name not in games:
        raise ValueError(unknown_game(name))
    try:
        return games[name].factory()
    except Exception as err:  # a plugin's import or constructor failed
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(f"game {name!r} ({games[name].source}) failed to load: {reason}") from err


def games_with(capability: str) -> list[str]:
    """The games whose spec declares `capability` (a `Capabilities` field), sorted; plugins
    that fail to load are left out."""
    names = []
    for name in game_names():
        try:
            if getattr(load_game(name).capabilities, capability):
                names.append(name)
        except ValueError:
            continue
    return names
