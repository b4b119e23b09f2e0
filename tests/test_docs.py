"""The documentation's reference pages come from the code: every config field with its help
text, every command and flag, every game, every recipe; a new one appears without editing
docs (the site itself is built by `make docs`, warnings as errors)."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path

from zerosum.arena.config import KINDS, ArenaConfig
from zerosum.cli import build_parser
from zerosum.config import TrainConfig
from zerosum.evaluation.settings import EvalSettings
from zerosum.games import game_names, game_source, load_game
from zerosum.games.textarena_games import EXCLUDED, TEXTARENA_GAMES, textarena_catalogue
from zerosum.reference import (
    arena_reference,
    cli_reference,
    config_reference,
    games_reference,
    recipes_reference,
    textarena_reference,
)
from zerosum.typed_config import ints, known_keys

ROOT = Path(__file__).resolve().parent.parent


def test_every_config_field_is_in_the_reference_with_its_help():
    text = config_reference(TrainConfig)
    keys = known_keys(TrainConfig)
    rows = re.findall(r"^\| `([\w.]+)` \|", text, flags=re.M)
    assert sorted(rows) == sorted(keys)  # each field once
    cfg = TrainConfig()
    for key in keys:
        section, _, name = key.rpartition(".")
        owner = getattr(cfg, section) if section else cfg
        f = next(f for f in dataclasses.fields(owner) if f.name == name)
        row = next(line for line in text.splitlines() if line.startswith(f"| `{key}` |"))
        assert f.metadata["help"].replace("|", "\\|") in row, key


@dataclass
class NewSection:
    """A section added later."""

    new_knob: int = field(
        default=3, metadata={"help": "a knob nobody documented", "bound": ints(1, 9)}
    )


@dataclass
class ExtendedConfig(TrainConfig):
    extra: NewSection = field(default_factory=NewSection)


def test_a_new_field_appears_in_the_reference_without_editing_docs():
    text = config_reference(ExtendedConfig)
    assert "## `extra`\n\nA section added later." in text
    row = "| `extra.new_knob` | an integer in [1, 9] | `3` | a knob nobody documented |"
    assert row in text.splitlines()
    assert "extra.new_knob" not in config_reference(TrainConfig)


def test_the_cli_reference_has_every_command_and_eval_flag():
    text = cli_reference()
    commands = re.findall(r"^## `zerosum (\w+)`$", text, flags=re.M)
    parser_commands = build_parser()._subparsers._group_actions[0].choices
    assert commands == list(parser_commands) and "eval" in commands
    eval_part = text.split("## `zerosum eval`")[1].split("## `zerosum")[0]
    for f in dataclasses.fields(EvalSettings):
        flag = f.metadata.get("flag") or "--" + f.name.replace("_", "-")
        assert flag in eval_part, flag


def test_the_games_reference_has_a_row_per_game_with_its_capabilities():
    rows = games_reference().splitlines()[2:]
    assert [re.match(r"\| `(\w+)` \|", r).group(1) for r in rows] == game_names()
    kuhn = next(r for r in rows if r.startswith("| `kuhn_poker` |"))
    cells = [c.strip() for c in kuhn.strip("|").split("|")]
    assert cells[1] == load_game("kuhn_poker").description and cells[2] == "OpenSpiel"
    # finite actions, perfect information, nash, minimax, asymmetric seats
    assert cells[3:] == ["yes", "", "yes", "", ""]


def test_the_arena_reference_has_every_field_of_every_kind():
    text = arena_reference()
    for cls in (ArenaConfig, *KINDS.values()):
        for f in dataclasses.fields(cls):
            assert f"| `{f.name}` |" in text, (cls.__name__, f.name)


def test_every_recipe_is_on_the_recipes_page(tmp_path):
    text = recipes_reference(ROOT / "configs")
    for path in (ROOT / "configs").glob("*.yaml"):
        assert f"## `{path.name}`" in text and path.read_text().strip() in text
    (tmp_path / "new.yaml").write_text("# a new recipe\nrun: {steps: 1}\n")
    assert "## `new.yaml`" in recipes_reference(tmp_path)


def test_every_textarena_env_is_played_or_left_out_with_a_reason():
    from textarena.envs.registration import ENV_REGISTRY

    ids = {key.removesuffix("-raw") for key in ENV_REGISTRY if key.endswith("-raw")}
    entries = textarena_catalogue()
    listed = [e.env_id for e in entries] + [v for e in entries for v in e.variants]
    assert sorted(listed) == sorted(ids)  # each TextArena env once
    for e in entries:
        assert bool(e.game) != bool(e.reason.strip()), e  # played, or left out with a reason
    played = {g.env_id for g in TEXTARENA_GAMES}
    assert not played & set(EXCLUDED) and set(EXCLUDED) <= ids
    for g in TEXTARENA_GAMES:
        assert g.name in game_names() and game_source(g.name) == "TextArena"
    page = (ROOT / "docs" / "concepts" / "games.md").read_text()
    readme = (ROOT / "README.md").read_text()
    assert f"| {len(TEXTARENA_GAMES)} TextArena two-player games: " in readme
    text = textarena_reference()
    assert "<!-- generated: textarena -->" in page and "NOT CLASSIFIED" not in text
    for e in entries:
        assert f"| `{e.env_id}` | " in text
        assert all(f"`{v}`" in text for v in e.variants)


def test_a_new_textarena_env_is_neither_played_nor_left_out(monkeypatch):
    from textarena.envs.registration import ENV_REGISTRY, EnvSpec

    spec = EnvSpec(id="Go-v0-raw", entry_point="textarena.envs.Go.env:GoEnv", default_wrappers=None)
    monkeypatch.setitem(ENV_REGISTRY, "Go-v0-raw", spec)
    new = [e for e in textarena_catalogue() if e.env_id == "Go-v0"]
    assert len(new) == 1 and new[0].game is None and new[0].reason == ""
    assert "| `Go-v0` | NOT CLASSIFIED |" in textarena_reference()
