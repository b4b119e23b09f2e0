"""The arena's YAML configuration: typed dataclasses, strict loading, one-line errors.

```yaml
dir: arenas/example          # the arena directory (database, results)
games: [kuhn_poker, tic_tac_toe]
n: 10                        # games per ordered pairing (seat order) and game
players:
  - random                   # a bot spec (random, mcts:N, perfect, nash[:N]) or model:PATH
  - {name: smol, kind: local, model: smollm2-135m-instruct}
  - {name: remote, kind: api, base_url: http://127.0.0.1:8000/v1, model: m, api_key_env: KEY}
```
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from zerosum.config import Check, ConfigError, fld, load_dataclass
from zerosum.engines.base import MAX_TEMPERATURE
from zerosum.players.api import API_CHECKS, ApiPlayerConfig

_NAME = re.compile(r"[A-Za-z0-9_.:/@+=-]{1,80}")


@dataclass(frozen=True)
class BotPlayerConfig:
    name: str = fld(dataclasses.MISSING, "player name in tables and the database")
    spec: str = fld(dataclasses.MISSING, "random, mcts[:SIMULATIONS], perfect, nash[:ITERATIONS]")
    kind: Literal["bot"] = fld("bot", "player kind")

    def identity(self) -> dict:
        return {"kind": self.kind, "spec": self.spec}


@dataclass(frozen=True)
class LocalPlayerConfig:
    name: str = fld(dataclasses.MISSING, "player name in tables and the database")
    model: str = fld(
        dataclasses.MISSING, "HF id, local checkpoint or run directory, or the default alias"
    )
    kind: Literal["local"] = fld("local", "player kind")
    dtype: Literal["float32", "bfloat16"] = fld("float32", "weights dtype")
    temperature: float = fld(0.6, "sampling temperature (0: greedy)")
    top_p: float = fld(0.95, "nucleus sampling mass")
    max_new_tokens: int = fld(256, "cap per free-text turn")
    answer_mode: Literal["free", "constrained"] = fld(
        "free", "free: reason then \\boxed{move}; constrained: the reply is only a legal move"
    )
    prompt_format: Literal["chat", "plain"] = fld("chat", "chat template or plain 'Answer:'")
    include_rules: bool = fld(True, "put the game's rules into every prompt")
    parser_fallback: Literal["last_bracket", "last_mention", "none"] = fld(
        "last_bracket", "without \\boxed{}: what else counts as the answer"
    )
    max_batch: int = fld(16, "turns of concurrent games decoded in one batch")

    def identity(self) -> dict:
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in ("name", "max_batch")}


_LOCAL_CHECKS: list[Check] = [
    ("temperature", lambda v: 0 <= v <= MAX_TEMPERATURE, f"a number in [0, {MAX_TEMPERATURE:g}]"),
    ("top_p", lambda v: 0 < v <= 1, "a number in (0, 1]"),
    ("max_new_tokens", lambda v: v >= 1, "an integer >= 1"),
    ("max_batch", lambda v: v >= 1, "an integer >= 1"),
]

PlayerConfig = BotPlayerConfig | LocalPlayerConfig | ApiPlayerConfig
# Each kind's dataclass and the range checks of its fields.
KINDS: dict[str, tuple[type, list[Check]]] = {
    "bot": (BotPlayerConfig, []),
    "local": (LocalPlayerConfig, _LOCAL_CHECKS),
    "api": (ApiPlayerConfig, API_CHECKS),
}


@dataclass(frozen=True)
class ArenaConfig:
    players: list[Any] = fld([], "players: bot specs, model:PATH, or mappings with a kind")
    games: list[str] = fld(["kuhn_poker"], "games every pair plays")
    dir: str = fld("arenas/default", "arena directory: arena.db, results.json, CSV files")
    n: int = fld(10, "games per game and ordered pairing (each seat order)")
    seed: int = fld(0, "arena seed; game seeds derive from it")
    max_turns: int = fld(50, "turns after which a game is a draw")
    max_concurrent: int = fld(8, "games in flight at once")
    transcript_chars: int = fld(2000, "characters kept of each reply in the database")
    prior_sigma: float = fld(
        2.0, "Bradley-Terry: sd of the Gaussian prior on each rating, in logits"
    )
    bootstrap: int = fld(200, "bootstrap resamples for rating intervals")


_ARENA_CHECKS: list[Check] = [
    ("n", lambda v: v >= 1, "an integer >= 1"),
    ("seed", lambda v: 0 <= v < 2**32, "an integer in [0, 2**32)"),
    ("max_turns", lambda v: v >= 1, "an integer >= 1"),
    ("max_concurrent", lambda v: v >= 1, "an integer >= 1"),
    ("transcript_chars", lambda v: v >= 1, "an integer >= 1"),
    ("prior_sigma", lambda v: v > 0, "a number > 0"),
    ("bootstrap", lambda v: v >= 0, "an integer >= 0"),
]


def player_from_entry(entry: Any, where: str) -> PlayerConfig:
    """A string is a bot spec or `model:PATH`; a mapping names its `kind`."""
    if isinstance(entry, str):
        if entry.startswith("model:"):
            return LocalPlayerConfig(name=entry, model=entry.partition(":")[2])
        return BotPlayerConfig(name=entry, spec=entry)
    if not isinstance(entry, dict) or entry.get("kind") not in KINDS:
        raise ConfigError(
            f"config field {where!r} = {entry!r} is invalid; allowed: a bot spec, model:PATH, "
            f"or a mapping with kind: {', '.join(KINDS)}"
        )
    cls, checks = KINDS[entry["kind"]]
    return load_dataclass(cls, entry, checks, f"{where}.")


def load_arena_config(path: str | Path, directory: str | None = None) -> ArenaConfig:
    """A checked ArenaConfig from YAML; `directory` overrides its `dir`."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"arena config {str(p)!r} does not exist")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{str(p)!r} is not valid YAML: {str(err).splitlines()[0]}") from None
    if isinstance(data, dict) and directory is not None:
        data["dir"] = directory
    return arena_config(data)


def arena_config(data: Any) -> ArenaConfig:
    cfg = load_dataclass(ArenaConfig, data, _ARENA_CHECKS)
    players = [player_from_entry(e, f"players[{i}]") for i, e in enumerate(cfg.players)]
    cfg = dataclasses.replace(cfg, players=players)
    _check_players(players)
    _check_games(cfg.games)
    return cfg


def _check_players(players: list[PlayerConfig]) -> None:
    from zerosum.players import make_player

    if len(players) < 2:
        raise ConfigError("config field 'players' needs at least two players")
    seen: set[str] = set()
    for i, p in enumerate(players):
        if not _NAME.fullmatch(p.name):
            raise ConfigError(
                f"config field 'players[{i}].name' = {p.name!r} is invalid; allowed: 1-80 "
                "letters, digits and _.:/@+=-"
            )
        if p.name in seen:
            raise ConfigError(f"config field 'players': the name {p.name!r} is used twice")
        seen.add(p.name)
        if isinstance(p, BotPlayerConfig):
            if p.spec.startswith(("model:", "api:")):
                raise ConfigError(
                    f"config field 'players[{i}].spec' = {p.spec!r}: use kind local or api"
                )
            try:
                make_player(p.spec)
            except ValueError as err:
                raise ConfigError(f"config field 'players[{i}]': {err}") from None


def _check_games(games: list[str]) -> None:
    from zerosum.games import game_names

    if not games:
        raise ConfigError("config field 'games' is empty; allowed: a list of game names")
    for game in games:
        if game not in game_names():
            raise ConfigError(
                f"config field 'games' names unknown game {game!r}; valid: {', '.join(game_names())}"
            )
    if len(set(games)) != len(games):
        raise ConfigError("config field 'games' names a game twice")


def cannot_play(player: PlayerConfig, game: str) -> str | None:
    """Why `player` cannot play `game` (its pairings there are skipped), or None."""
    from zerosum.games import load_game
    from zerosum.players import unsupported

    if isinstance(player, BotPlayerConfig):
        return unsupported(player.spec, game)
    constrained = isinstance(player, LocalPlayerConfig) and player.answer_mode == "constrained"
    if constrained and load_game(game).new_episode(0).legal_actions() is None:
        return "constrained answers need a game with finite legal actions"
    return None
