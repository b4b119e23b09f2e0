"""The documentation's reference pages, generated from the code: the configuration from the
config dataclasses' fields (type, default, allowed values, help), the command line from the
argparse parser, the games from the registry (and every TextArena env, played or left out
with the reason), the recipes from configs/*.yaml's opening comments. The docs site
(docs/hooks.py) puts these into its pages, so nothing a user can set is documented by hand,
and a new field, flag, game or recipe appears without editing docs."""

from __future__ import annotations

import argparse
import dataclasses
import typing
from pathlib import Path
from typing import Any

from zerosum.arena.config import KINDS, ArenaConfig
from zerosum.benchmark.suite import Suite
from zerosum.cli import build_parser
from zerosum.config import TrainConfig
from zerosum.games import game_names, game_source, load_game
from zerosum.games.base import Capabilities
from zerosum.games.textarena_games import TEXTARENA_GAMES, textarena_catalogue
from zerosum.typed_config import describe_type

WIDTH = 100  # columns of the generated `--help` texts, whatever the terminal


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _default(f: dataclasses.Field) -> str:
    if f.default is not dataclasses.MISSING:
        return f"`{f.default!r}`"
    if f.default_factory is not dataclasses.MISSING:
        return f"`{f.default_factory()!r}`"
    return "required"


def _table(cls: type, prefix: str = "", leaves_only: bool = False) -> list[str]:
    """A markdown table of the fields of `cls`: path, allowed values, default, help."""
    hints = typing.get_type_hints(cls)
    rows = ["| field | allowed | default | meaning |", "|---|---|---|---|"]
    for f in dataclasses.fields(cls):
        if leaves_only and dataclasses.is_dataclass(hints[f.name]):
            continue
        bound = f.metadata.get("bound")
        allowed = bound.allowed if bound is not None else describe_type(hints[f.name])
        rows.append(
            f"| `{prefix}{f.name}` | {_cell(allowed)} | {_cell(_default(f))} "
            f"| {_cell(f.metadata.get('help', ''))} |"
        )
    return rows


def config_reference(cls: type = TrainConfig) -> str:
    """Markdown: one section per section of `cls` (a dataclass of dataclasses) with a table of
    its fields; fields that are not sections come first, in a table of their own."""
    hints = typing.get_type_hints(cls)
    lines: list[str] = []
    if not all(dataclasses.is_dataclass(hints[f.name]) for f in dataclasses.fields(cls)):
        lines += ["## Top-level fields", "", *_table(cls, leaves_only=True), ""]
    for f in dataclasses.fields(cls):
        section = hints[f.name]
        if not dataclasses.is_dataclass(section):
            continue
        doc = (section.__doc__ or "").strip()
        intro = [doc.split("\n\n")[0].replace("\n", " "), ""] if doc else []
        lines += [f"## `{f.name}`", "", *intro, *_table(section, f"{f.name}."), ""]
    return "\n".join(lines)


def arena_reference() -> str:
    """Markdown: the arena file's fields, then each player kind's."""
    lines = ["## The arena file", "", *_table(ArenaConfig), ""]
    for kind, cls in KINDS.items():
        lines += [f"## Players of kind `{kind}`", "", *_table(cls), ""]
    return "\n".join(lines)


def suite_reference() -> str:
    """Markdown: the fields of a benchmark suite file."""
    return "\n".join(["## The suite file", "", *_table(Suite), ""])


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _help(parser: argparse.ArgumentParser) -> str:
    parser.formatter_class = lambda prog: argparse.HelpFormatter(prog, width=WIDTH)
    return parser.format_help().rstrip()


def cli_reference(parser: argparse.ArgumentParser | None = None) -> str:
    """Markdown: `zerosum --help`, then each command's `--help`, as argparse writes them."""
    parser = parser or build_parser()
    lines = ["## `zerosum`", "", "```text", _help(parser), "```", ""]
    for name, sub in _subcommands(parser).items():
        lines += [f"## `zerosum {name}`", "", "```text", _help(sub), "```", ""]
    return "\n".join(lines)


def games_reference() -> str:
    """Markdown: every registered game with its description, source and capabilities (the
    games of installed plugins included)."""
    caps = [f.name for f in dataclasses.fields(Capabilities)]
    header = "| game | description | source | " + " | ".join(c.replace("_", " ") for c in caps)
    lines = [header + " |", "|---|---|---|" + "---|" * len(caps)]
    for name in game_names():
        game = load_game(name)
        marks = ["yes" if getattr(game.capabilities, c) else "" for c in caps]
        cells = f"| `{name}` | {_cell(game.description)} | {game_source(name)} | "
        lines.append(cells + " | ".join(marks) + " |")
    return "\n".join(lines)


# The order of the kinds of reason a TextArena env is left out for, by how a reason starts.
LEFT_OUT = ("not zero-sum", "needs a judge", "needs the network", "broken upstream", "more than")


def _kind_of_reason(reason: str) -> int:
    return next((i for i, kind in enumerate(LEFT_OUT) if reason.startswith(kind)), len(LEFT_OUT))


def textarena_reference() -> str:
    """Markdown: every env of the pinned TextArena, with the zerosum game that plays it and
    what zerosum changed in its rules, or the reason it is left out; the other ids registered
    for the same game (other sizes, lengths, word lists) are its variants, not registered."""
    entries = textarena_catalogue()
    notes = {g.name: g.notes for g in TEXTARENA_GAMES}
    played = [e for e in entries if e.game]
    left = sorted((e for e in entries if not e.game), key=lambda e: _kind_of_reason(e.reason))

    def variants(entry) -> str:
        return ", ".join(f"`{v}`" for v in entry.variants)

    lines = [
        f"{len(played)} games played, {len(left)} left out; variants are the same game's other "
        "registered ids, not registered here.",
        "",
        "| TextArena env | zerosum game | changed here | variants |",
        "|---|---|---|---|",
    ]
    for e in played:
        lines.append(f"| `{e.env_id}` | `{e.game}` | {_cell(notes[e.game])} | {variants(e)} |")
    lines += ["", "| TextArena env | left out: | variants |", "|---|---|---|"]
    for e in left:
        lines.append(f"| `{e.env_id}` | {_cell(e.reason or 'NOT CLASSIFIED')} | {variants(e)} |")
    return "\n".join(lines)


def recipes_reference(configs: Path) -> str:
    """Markdown: each recipe in `configs` in full, comments included (they say what the
    recipe is for and why its settings are what they are)."""
    lines: list[str] = []
    for path in sorted(configs.glob("*.yaml")):
        lines += [f"## `{path.name}`", "", "```yaml", path.read_text().rstrip(), "```", ""]
    return "\n".join(lines)


GENERATED: dict[str, Any] = {
    "config": config_reference,
    "arena": arena_reference,
    "suite": suite_reference,
    "cli": cli_reference,
    "games": games_reference,
    "textarena": textarena_reference,
}
