"""A benchmark suite: which games (in-domain, held-out) against which opponents, which math
sets, how many games or problems per cell, and how the models are asked and sampled.

A suite is a YAML file loaded strictly into `Suite` (typed fields with their bounds, one-line
errors); `spiral` and `marshal` ship with the package (`zerosum/data/suites/`), any other
name is a path. `key=value` overrides (YAML values) apply on top, and `--opponents` replaces
every game's opponents.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from zerosum.engines.base import TEMPERATURE
from zerosum.evaluation.math import load_problems
from zerosum.games import game_names
from zerosum.games.parsing import Fallback
from zerosum.models import Dtype
from zerosum.players import PLAYER_SPECS
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
    POSITIVE,
    PROBABILITY,
    SEED,
    ConfigError,
    check_combination,
    fld,
    load_dataclass,
    load_yaml,
    yaml_problem,
)

SUITES_DIR = Path(__file__).resolve().parent.parent / "data" / "suites"
Split = Literal["in_domain", "held_out"]


@dataclass(frozen=True)
class Suite:
    """What `zerosum benchmark` plays and asks, and how."""

    name: str = fld("custom", "the suite's name in tables and reports")
    description: str = fld("", "what the suite measures and what it follows")
    in_domain: dict[str, list[str]] = fld(
        {}, "games the models were trained on -> their opponents ([]: `opponents`)"
    )
    held_out: dict[str, list[str]] = fld(
        {}, "games kept out of training -> their opponents ([]: `opponents`)"
    )
    opponents: list[str] = fld(
        ["random"], f"opponents of games that name none: {', '.join(PLAYER_SPECS)}"
    )
    games_per_cell: int = fld(
        20, "games per (model, game, opponent); the model's seat alternates", POSITIVE
    )
    math: dict[str, int] = fld(
        {}, "math sets (packaged name or JSONL path) -> problems asked (the file's first N)"
    )
    math_k: int = fld(1, "samples per math problem (pass@1 is their mean)", POSITIVE)
    answer_mode: AnswerMode = fld(
        Prompting.answer_mode,
        "free: reason then \\boxed{move}; constrained: only a legal move; reasoned: reason, "
        "then a legal move decoded after a cue",
    )
    prompt_format: PromptFormat = fld(Prompting.prompt_format, PROMPT_FORMAT_HELP)
    enable_thinking: bool | None = fld(Prompting.enable_thinking, ENABLE_THINKING_HELP)
    reasoning_prefix: str = fld(Prompting.reasoning_prefix, REASONING_PREFIX_HELP)
    include_rules: bool = fld(Prompting.include_rules, "put each game's rules into its prompts")
    parser_fallback: Fallback = fld(
        Prompting.parser_fallback, "without \\boxed{}: what else counts as the answer"
    )
    temperature: float = fld(
        EVAL_PARAMS.temperature, "sampling temperature (0: greedy)", TEMPERATURE
    )
    top_p: float = fld(EVAL_PARAMS.top_p, "nucleus sampling mass", PROBABILITY)
    max_new_tokens: int = fld(EVAL_PARAMS.max_new_tokens, "cap per game turn", POSITIVE)
    math_max_new_tokens: int = fld(512, "cap per math answer", POSITIVE)
    dtype: Dtype = fld("float32", "weights dtype of the local models")
    max_batch: int = fld(16, "a local model's turns or answers decoded in one batch", POSITIVE)
    max_concurrent: int = fld(16, "games in flight at once", POSITIVE)
    max_turns: int = fld(RolloutSettings.max_turns, "longer games are draws", POSITIVE)
    seed: int = fld(
        0, "suite seed: game i of (game, opponent) and math sample j are seeded from it", SEED
    )

    @property
    def prompting(self) -> Prompting:
        return Prompting(
            answer_mode=self.answer_mode, prompt_format=self.prompt_format,
            include_rules=self.include_rules, parser_fallback=self.parser_fallback,
            enable_thinking=self.enable_thinking, reasoning_prefix=self.reasoning_prefix,
        )  # fmt: skip

    def cells(self) -> list[tuple[Split, str, str]]:
        """(split, game, opponent) of every game column, in the suite's order."""
        return [
            (split, game, opponent)
            for split in ("in_domain", "held_out")
            for game, named in getattr(self, split).items()
            for opponent in (named or self.opponents)
        ]


def packaged_suites() -> list[str]:
    return sorted(p.stem for p in SUITES_DIR.glob("*.yaml"))


def suite_path(name: str) -> Path:
    """A packaged suite's file, or `name` itself as a path."""
    if Path(name).suffix in (".yaml", ".yml") or "/" in name:
        return Path(name)
    path = SUITES_DIR / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(
            f"unknown suite {name!r}; valid: {', '.join(packaged_suites())}, or a YAML file"
        )
    return path


def parse_override(text: str) -> tuple[str, Any]:
    """`key=value` with a YAML value (`games_per_cell=4`, `opponents=[mcts:50]`)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ConfigError(f"override {text!r} is not key=value")
    try:
        return key, yaml.safe_load(value)
    except yaml.YAMLError as err:
        raise ConfigError(f"override {text!r}: not a YAML value: {yaml_problem(err)}") from None


def load_suite(
    name: str, overrides: list[str] | None = None, opponents: list[str] | None = None
) -> Suite:
    """A checked suite: the packaged one called `name` or the file `name`, then `overrides`;
    `opponents` (the command line's) replaces every game's."""
    data = load_yaml(suite_path(name), "suite file") or {}
    if not isinstance(data, dict):
        raise ConfigError(f"suite file {name!r} must be a mapping of suite fields")
    data = {**data, **dict(parse_override(o) for o in overrides or [])}
    suite = load_dataclass(Suite, data)
    check_combination(suite, "", lambda: suite.prompting)
    if opponents:
        suite = dataclasses.replace(
            suite,
            opponents=list(opponents),
            in_domain=dict.fromkeys(suite.in_domain, []),
            held_out=dict.fromkeys(suite.held_out, []),
        )
    check_suite(suite)
    return suite


def check_suite(suite: Suite) -> None:
    """What the types cannot say: known games, each once; math sets that exist; counts."""
    games = [*suite.in_domain, *suite.held_out]
    if not games and not suite.math:
        raise ConfigError("the suite names no games (in_domain, held_out) and no math sets")
    for game in games:
        if game not in game_names():
            raise ConfigError(f"suite game {game!r} is unknown; valid: {', '.join(game_names())}")
    if len(set(games)) != len(games):
        twice = sorted({g for g in games if games.count(g) > 1})
        raise ConfigError(f"suite game {twice[0]!r} is both in_domain and held_out")
    for split, game, opponent in suite.cells():
        if not opponent:
            raise ConfigError(f"suite {split} game {game!r} has an empty opponent name")
    for bench, count in suite.math.items():
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ConfigError(
                f"config field 'math' value of {bench!r} = {count!r} is invalid; allowed: "
                f"{POSITIVE.allowed}"
            )
        if len(load_problems(bench, count)) < count:  # an unknown name fails here too
            have = len(load_problems(bench))
            raise ConfigError(
                f"config field 'math' value of {bench!r} = {count} is invalid; allowed: at "
                f"most its {have} problems"
            )
