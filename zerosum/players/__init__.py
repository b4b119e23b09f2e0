"""Players by spec string: `random`, `mcts:200`, `perfect`, `nash[:ITERATIONS]`,
`stockfish[:LEVEL]` (chess, with the `stockfish` binary), `model:PATH`, `api:FILE` (an
OpenAI-compatible chat API, settings in a YAML file)."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

from zerosum.engines.base import SamplingParams
from zerosum.games import games_with, load_game
from zerosum.players.api import ApiPlayer, load_api_config
from zerosum.players.base import Move, Player
from zerosum.players.model import EVAL_PARAMS, ModelPlayer, load_model_player
from zerosum.players.simple import MCTSPlayer, NashPlayer, PerfectPlayer, RandomPlayer
from zerosum.players.stockfish import STOCKFISH_GAMES, StockfishPlayer, skill_level
from zerosum.prompts import Prompting
from zerosum.rundir import CONFIG_NAME, is_run_dir

__all__ = ["Move", "ModelPlayer", "Player", "make_player", "PLAYER_SPECS", "unsupported"]

PLAYER_SPECS = (
    "random", "mcts[:SIMULATIONS]", "perfect", "nash[:CFR_ITERATIONS]", "stockfish[:LEVEL]",
    "model:PATH", "api:FILE",
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


def make_player(
    spec: str, prompting: Prompting | None = None, params: SamplingParams = EVAL_PARAMS
) -> Player:
    """Build a player from its spec; a one-line error lists the valid forms otherwise. A
    `model:PATH` player asks and reads as `prompting` says (default: as the training run
    PATH was trained, `run_prompting`; else free answers in the chat template) and samples
    with `params`."""
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
        if kind == "stockfish":
            return StockfishPlayer(skill_level(count))
        if kind == "model" and arg:
            asking = prompting or run_prompting(arg) or Prompting()
            return load_model_player(arg, asking, params)
        if kind == "api" and arg:
            return ApiPlayer(load_api_config(arg))
    except ValueError as err:
        raise ValueError(f"bad player {spec!r}: {err}") from None
    raise ValueError(f"unknown player {spec!r}; valid: {', '.join(PLAYER_SPECS)}")


def run_prompting(path: str) -> Prompting | None:
    """How a training run asked its model (its config's `rollout` answer mode, prompt format,
    rules, parser fallback and thinking switch), for the run's directory or one of its checkpoints (`RUN`,
    `RUN/checkpoints/step-N`, `.../model`); None for any other model."""
    start = Path(path).expanduser()
    for directory in (start, *list(start.parents)[:3]):
        if is_run_dir(directory) and (directory / CONFIG_NAME).is_file():
            try:
                rollout = json.loads((directory / CONFIG_NAME).read_text())["rollout"]
                if not isinstance(rollout, dict):
                    return None
                # A field a run's config lacks (an older run's) keeps Prompting's default.
                names = [f.name for f in fields(Prompting) if f.name in rollout]
                return Prompting(**{name: rollout[name] for name in names})
            except (ValueError, KeyError, TypeError):
                return None  # not a config of ours: ask as for any other model
    return None


def first_opponent(game_name: str, base_model: str) -> str:
    """An opponent to try a trained model against: `random` where it can play the game, else
    (a free-text game) the model before training."""
    return "random" if unsupported("random", game_name) is None else f"model:{base_model}"


def unsupported(spec: str, game_name: str) -> str | None:
    """Why player `spec` cannot play `game_name`, or None when it can (the game's declared
    capabilities decide)."""
    kind = spec.partition(":")[0]
    can = load_game(game_name).capabilities
    if kind in ("model", "api"):
        return None
    if kind == "stockfish":
        return None if game_name in STOCKFISH_GAMES else "Stockfish plays chess only"
    if not can.finite_actions:
        return f"{kind!r} needs a game with finite legal actions"
    if kind == "nash" and not can.nash:
        return f"Nash policies exist for {', '.join(games_with('nash'))} only"
    if kind == "perfect" and not can.minimax:
        return f"perfect play is available for {', '.join(games_with('minimax'))} only"
    if kind == "mcts" and not can.perfect_information:
        return "MCTS needs a perfect-information game"
    if kind == "mcts" and not hasattr(load_game(game_name), "spiel_game"):
        return "MCTS searches OpenSpiel games only"
    return None
