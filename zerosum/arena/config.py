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

from zerosum.engines.base import TEMPERATURE
from zerosum.games import game_names, load_game
from zerosum.games.parsing import Fallback
from zerosum.models import Dtype
from zerosum.players import make_player, unsupported
from zerosum.players.api import ApiPlayerConfig
from zerosum.players.model import EVAL_PARAMS
from zerosum.prompts import (
    ENABLE_THINKING_HELP,
    PROMPT_FORMAT_HELP,
    REASONING_PREFIX_HELP,
    AnswerMode,
    PromptFormat,
    Prompting,
)
from zerosum.rollout import RolloutSettings
from zerosum.typed_config import (
    NON_NEGATIVE,
    POSITIVE,
    PROBABILITY,
    SEED,
    ConfigError,
    check_combination,
    fld,
    load_dataclass,
    load_yaml,
    numbers,
)

_NAME = re.compile(r"[A-Za-z0-9_.:/@+=-]{1,80}")


@dataclass(frozen=True)
class BotPlayerConfig:
    name: str = fld(dataclasses.MISSING, "player name in tables and the database")
    spec: str = fld(
        dataclasses.MISSING,
        "random, mcts[:SIMULATIONS], perfect, nash[:ITERATIONS], stockfish[:LEVEL]",
    )
    kind: Literal["bot"] = fld("bot", "player kind")

    def identity(self) -> dict:
        return {"kind": self.kind, "spec": self.spec}


# Settings added after arenas were first stored; at their defaults they play as before them
# (see `LocalPlayerConfig.identity`).
LATER_FIELDS = ("enable_thinking", "reasoning_prefix")


@dataclass(frozen=True)
class LocalPlayerConfig:
    name: str = fld(dataclasses.MISSING, "player name in tables and the database")
    model: str = fld(
        dataclasses.MISSING, "HF id, local checkpoint or run directory, or the default alias"
    )
    kind: Literal["local"] = fld("local", "player kind")
    dtype: Dtype = fld("float32", "weights dtype")
    temperature: float = fld(
        EVAL_PARAMS.temperature, "sampling temperature (0: greedy)", TEMPERATURE
    )
    top_p: float = fld(EVAL_PARAMS.top_p, "nucleus sampling mass", PROBABILITY)
    max_new_tokens: int = fld(EVAL_PARAMS.max_new_tokens, "cap per free-text turn", POSITIVE)
    answer_mode: AnswerMode = fld(
        Prompting.answer_mode,
        "free: reason then \\boxed{move}; constrained: the reply is only a legal move; "
        "reasoned: reason in words (max_new_tokens), then a legal move decoded after a cue",
    )
    prompt_format: PromptFormat = fld(Prompting.prompt_format, PROMPT_FORMAT_HELP)
    enable_thinking: bool | None = fld(Prompting.enable_thinking, ENABLE_THINKING_HELP)
    reasoning_prefix: str = fld(Prompting.reasoning_prefix, REASONING_PREFIX_HELP)
    include_rules: bool = fld(Prompting.include_rules, "put the game's rules into every prompt")
    parser_fallback: Fallback = fld(
        Prompting.parser_fallback, "without \\boxed{}: what else counts as the answer"
    )
    max_batch: int = fld(16, "turns of concurrent games decoded in one batch", POSITIVE)

    def identity(self) -> dict:
        # A setting added later is left out at its default, which plays as players did before
        # it: an arena's registered players keep their identity.
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        return {
            k: v
            for k, v in dataclasses.asdict(self).items()
            if k not in ("name", "max_batch") and not (k in LATER_FIELDS and v == defaults[k])
        }

    @property
    def prompting(self) -> Prompting:
        """How the player is asked for its moves and how its answers are read."""
        return Prompting(
            answer_mode=self.answer_mode, prompt_format=self.prompt_format,
            include_rules=self.include_rules, parser_fallback=self.parser_fallback,
            enable_thinking=self.enable_thinking, reasoning_prefix=self.reasoning_prefix,
        )  # fmt: skip


PlayerConfig = BotPlayerConfig | LocalPlayerConfig | ApiPlayerConfig
# Each kind's dataclass.
KINDS: dict[str, type] = {
    "bot": BotPlayerConfig,
    "local": LocalPlayerConfig,
    "api": ApiPlayerConfig,
}


@dataclass(frozen=True)
class ArenaConfig:
    players: list[Any] = fld([], "players: bot specs, model:PATH, or mappings with a kind")
    games: list[str] = fld(["kuhn_poker"], "games every pair plays")
    dir: str = fld("arenas/default", "arena directory: arena.db, results.json, CSV files")
    n: int = fld(10, "games per game and ordered pairing (each seat order)", POSITIVE)
    seed: int = fld(0, "arena seed; game seeds derive from it", SEED)
    max_turns: int = fld(RolloutSettings.max_turns, "turns after which a game is a draw", POSITIVE)
    max_concurrent: int = fld(8, "games in flight at once", POSITIVE)
    transcript_chars: int = fld(2000, "characters kept of each reply in the database", POSITIVE)
    prior_sigma: float = fld(
        2.0,
        "Bradley-Terry: sd of the Gaussian prior on each rating, in logits",
        numbers(0, lo_open=True),
    )
    bootstrap: int = fld(200, "bootstrap resamples for rating intervals", NON_NEGATIVE)
    anchors: dict[str, float] = fld(
        {},
        "player name -> stated Elo: fixes that player's rating in each game's leaderboard it "
        "plays in (stockfish:LEVEL bots are anchored to Stockfish's own Elo fit unless named "
        "here)",
    )


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
    player = load_dataclass(KINDS[entry["kind"]], entry, f"{where}.")
    if isinstance(player, LocalPlayerConfig):  # its prompting fields' combinations
        check_combination(player, f"{where}.", lambda: player.prompting)
    return player


def load_arena_config(path: str | Path, directory: str | None = None) -> ArenaConfig:
    """A checked ArenaConfig from YAML; `directory` overrides its `dir`."""
    data = load_yaml(path, "arena config") or {}
    if isinstance(data, dict) and directory is not None:
        data["dir"] = directory
    return arena_config(data)


def arena_config(data: Any) -> ArenaConfig:
    cfg = load_dataclass(ArenaConfig, data)
    players = [player_from_entry(e, f"players[{i}]") for i, e in enumerate(cfg.players)]
    cfg = dataclasses.replace(cfg, players=players)
    _check_players(players)
    _check_games(cfg.games)
    for name in cfg.anchors:
        check_name(name, "config field 'anchors' key")
    return cfg


def _check_players(players: list[PlayerConfig]) -> None:
    if len(players) < 2:
        raise ConfigError("config field 'players' needs at least two players")
    seen: set[str] = set()
    for i, p in enumerate(players):
        check_name(p.name, f"config field 'players[{i}].name'")
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


def check_name(name: str, where: str) -> None:
    """A player name the database and tables can hold; `where` names it in the error."""
    if not _NAME.fullmatch(name):
        raise ConfigError(
            f"{where} = {name!r} is invalid; allowed: 1-80 letters, digits and _.:/@+=-"
        )


def _check_games(games: list[str]) -> None:
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
    if isinstance(player, BotPlayerConfig):
        return unsupported(player.spec, game)
    asking = player.prompting  # an API player's answers are free
    if asking.decodes_legal_actions and not load_game(game).capabilities.finite_actions:
        return f"{asking.answer_mode} answers need a game with finite legal actions"
    return None
