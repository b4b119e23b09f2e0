"""The documentation's reference pages come from the code: every config field with its help
text, every command and flag, every game, every recipe; a new one appears without editing
docs (the site itself is built by `make docs`, warnings as errors). The built site works
opened from disk: links name files, search runs without a server, and BENCHMARKS.md is one
of its pages (those tests need the `docs` extra, which `make docs` installs and runs them
with; they skip without it)."""

from __future__ import annotations

import dataclasses
import json
import posixpath
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from zerosum.arena.config import KINDS, ArenaConfig
from zerosum.benchmark.suite import Suite
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
    suite_reference,
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


def test_the_suite_reference_has_every_suite_field_with_its_help():
    text = suite_reference()
    for f in dataclasses.fields(Suite):
        row = next(line for line in text.splitlines() if line.startswith(f"| `{f.name}` |"))
        assert f.metadata["help"].replace("|", "\\|") in row, f.name


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


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site as `make docs` builds it (strict: any warning fails), in a temporary folder."""
    pytest.importorskip("material", reason="needs the docs extra (make docs installs it)")
    from mkdocs.commands.build import build
    from mkdocs.config import load_config

    out = tmp_path_factory.mktemp("site")
    build(load_config(str(ROOT / "mkdocs.yml"), site_dir=str(out), strict=True))
    return out


def _local_links(page: Path, site: Path):
    """(attribute value, what it names in the site) for each href and src of a built page that
    stays inside the site."""
    for url in re.findall(r'(?:href|src)="([^"]*)"', page.read_text()):
        parts = urlsplit(url)
        if parts.scheme or parts.netloc or not parts.path:
            continue
        rel = posixpath.join(posixpath.dirname(page.relative_to(site).as_posix()), parts.path)
        yield url, site / posixpath.normpath(unquote(rel))


def _nav_links(page: Path) -> list[str]:
    """The pages the navigation of a built page links to."""
    return re.findall(r'<a href="([^"#]+)" class="md-nav__link', page.read_text())


def test_every_link_of_the_site_opens_a_file_from_disk(site):
    # Opened as file://, a link to a folder shows its listing instead of the page in it.
    # (404.html is for a web server, whose root its links name)
    pages = sorted(p for p in site.rglob("*.html") if p.name != "404.html")
    assert len(pages) > 10
    for page in pages:
        for url, target in _local_links(page, site):
            assert not url.split("#")[0].endswith("/"), (page.name, url)
            assert target.is_file(), (page.relative_to(site), url)
    nav = _nav_links(site / "index.html")
    assert "reference/games.html" in nav and all(link.endswith(".html") for link in nav)


def test_search_works_without_a_server(site):
    # A browser gets no search index over file:// with fetch; the offline plugin inlines it
    # into a script, and the web-worker shim (file:// refuses workers) is shipped, not fetched.
    script = (site / "search" / "search_index.js").read_text()
    assert script.startswith("var __index = ")
    index = json.loads(script.removeprefix("var __index = "))
    assert any(doc["location"] == "benchmarks.html" for doc in index["docs"])
    html = (site / "index.html").read_text()
    assert '<script src="javascripts/iframe-worker-shim.js">' in html
    assert (site / "javascripts" / "iframe-worker-shim.js").is_file()
    assert "unpkg.com" not in html
    # lunr reads `*` in an indexed word as a wildcard: one such word broke every search
    separator = re.compile(index["config"]["separator"])
    for doc in index["docs"]:
        words = separator.split(re.sub(r"<[^>]*>", " ", doc["title"] + " " + doc["text"]))
        assert not [w for w in words if "*" in w], doc["location"]


def test_benchmarks_is_a_page_of_the_site(site):
    page = (site / "benchmarks.html").read_text()
    text = (ROOT / "BENCHMARKS.md").read_text()
    headings = re.findall(r"^## (.+)$", text, flags=re.M)
    assert headings and all(h.replace("'", "&#39;") in page for h in headings)
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert images and all(f'src="{image}"' in page for image in images)  # copied beside it
    assert "benchmarks.html" in _nav_links(site / "index.html")
    magnet = (site / "concepts" / "magnet.html").read_text()
    assert 'href="../benchmarks.html#learning"' in magnet


def test_reference_tables_keep_names_whole(site):
    css = (site / "stylesheets" / "extra.css").read_text()
    rules = dict(re.findall(r"([^{}]+)\{([^}]*)\}", re.sub(r"/\*.*?\*/", "", css, flags=re.S)))
    rules = {" ".join(k.split()): v for k, v in rules.items()}
    assert "white-space: nowrap" in rules[".md-typeset table:not([class]) td:first-child code"]
    assert "word-break: normal" in rules[".md-typeset table:not([class]) code"]
    for name in ("config", "games", "arena"):
        html = (site / "reference" / f"{name}.html").read_text()
        assert '<link rel="stylesheet" href="../stylesheets/extra.css">' in html, name


def test_an_included_files_links_work_in_the_site(tmp_path):
    pytest.importorskip("mkdocs")
    import importlib.util

    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "docs" / "hooks.py")
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    (tmp_path / "NOTES.md").write_text(
        "# Notes\n\nSee [the other](OTHER.md#part), [the script](bench/run.py), "
        "[`bench/run.py`](bench/run.py), [a part](#part) and [a site](https://example.org).\n\n"
        "![a plot](bench/plot.png)\n"
    )
    hooks.included_by.clear()
    hooks.included_by.update({"OTHER.md": "other.md", "NOTES.md": "sub/notes.md"})
    text = hooks._include("NOTES.md", "sub/notes.md", tmp_path)
    assert text == (
        "\nSee [the other](../other.md#part), the script (`bench/run.py`), "
        "`bench/run.py`, [a part](#part) and [a site](https://example.org).\n\n"
        "![a plot](bench/plot.png)\n"
    )
