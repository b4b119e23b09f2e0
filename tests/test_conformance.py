"""Every registered game passes the conformance checks (zerosum.games.conformance), each check
fails on a game built to break it, and a game plugin registered through the `zerosum.games`
entry-point group is found, listed and checked like a built-in game."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import zerosum.games as registry
from zerosum.cli import main
from zerosum.games import broken_plugins, game_names, game_source, load_game
from zerosum.games.base import Capabilities, IllegalActionError
from zerosum.games.conformance import FORGED, check_episode, check_game, check_information
from zerosum.players import unsupported

ROOT = Path(__file__).resolve().parent.parent
NIM = ROOT / "examples" / "zerosum-nim"


@pytest.mark.parametrize("name", game_names())
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31 - 1))
def test_every_game_conforms(name, seed):
    assert check_episode(load_game(name), seed) == []


@pytest.mark.parametrize("name", game_names())
def test_views_depend_only_on_the_information_set(name):
    assert check_information(load_game(name), range(40)) == []


class Coin:
    """A tiny game to break: seat 0 calls heads or tails, seat 1 guesses the hidden coin."""

    name = "coin"
    description = "a broken test game"
    capabilities = Capabilities(finite_actions=True)
    max_turns = 4

    def __init__(self, **breaks):
        self.breaks = breaks

    def rules(self) -> str:
        return "Guess the coin."

    def new_episode(self, seed: int):
        return CoinState(seed, self.breaks)


class CoinState:
    invalid_reason = None

    def __init__(self, seed: int, breaks: dict):
        rng = random if breaks.get("global_random") else random.Random(seed)
        self.coin = rng.choice(["heads", "tails"])
        self.moves: list[tuple[int, str]] = []
        self.breaks = breaks

    def current_seat(self) -> int:
        return len(self.moves) % 2

    def legal_actions(self):
        if self.is_terminal():
            return []
        if self.breaks.get("free_text"):
            return None
        return ["heads", "heads "] if self.breaks.get("bad_labels") else ["heads", "tails"]

    def apply_action(self, action: str) -> None:
        legal = self.legal_actions()
        if legal is not None and action not in legal:
            raise IllegalActionError(action)
        self.moves.append((self.current_seat(), action))

    def is_terminal(self) -> bool:
        return len(self.moves) >= (99 if self.breaks.get("endless") else 2)

    def returns(self):
        win = 1.0 if self.moves[1][1].strip().lower() == self.coin else -1.0
        return (-win, win + (0.5 if self.breaks.get("not_zero_sum") else 0.0))

    def move_history(self):
        return list(self.moves)

    def information_state(self, seat: int) -> str:
        return str(self.moves)

    def observation(self, seat: int, include_rules: bool = True) -> str:
        lines = [f"Player {s}: {a}" for s, a in self.moves]
        if self.breaks.get("leak") and seat == 1:
            lines.append(f"(the coin is {self.coin})")
        return "\n".join(["Guess the coin.", *lines])


@pytest.mark.parametrize(
    "breaks, check",
    [
        ({}, None),
        ({"not_zero_sum": True}, "zero-sum"),
        ({"global_random": True}, "reproducible"),
        ({"endless": True}, "ends"),
        ({"bad_labels": True}, "parser"),
        ({"free_text": True}, "forging"),
        ({"leak": True}, "information"),
    ],
)
def test_each_check_fails_on_a_game_that_breaks_it(breaks, check):
    if breaks.get("global_random"):
        random.seed(0)  # the unseeded global stream: two episodes of one seed draw differently
    found = {p.check for p in check_game(Coin(**breaks), range(30))}
    assert found == (set() if check is None else {check})


@pytest.fixture
def fresh_registry():
    registry._registry.cache_clear()
    registry.load_game.cache_clear()
    yield
    registry._registry.cache_clear()
    registry.load_game.cache_clear()


def install_entry_points(tmp_path: Path, monkeypatch, entries: dict[str, str]) -> None:
    """Make importlib.metadata see a distribution `zerosum-nim` with these `zerosum.games`
    entry points, as `pip install` would (a dist-info directory on sys.path)."""
    info = tmp_path / "zerosum_nim-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: zerosum-nim\nVersion: 0.1.0\n")
    lines = "\n".join(f"{k} = {v}" for k, v in entries.items())
    (info / "entry_points.txt").write_text(f"[zerosum.games]\n{lines}\n")
    monkeypatch.syspath_prepend(str(NIM))
    monkeypatch.syspath_prepend(str(tmp_path))  # first: this distribution is the one found


def test_a_plugin_game_is_listed_checked_and_played(tmp_path, monkeypatch, fresh_registry, capsys):
    install_entry_points(tmp_path, monkeypatch, {"nim": "zerosum_nim:NimGame"})
    assert "nim" in game_names() and game_source("nim") == "plugin zerosum-nim"
    assert check_game(load_game("nim"), range(30)) == []
    assert main(["games"]) == 0
    listed = capsys.readouterr().out
    assert "nim" in listed and "source: plugin zerosum-nim; finite_actions" in listed
    assert main(["match", "--game", "nim", "--players", "random", "random", "--games", "6"]) == 0
    assert "nim: 6 games" in capsys.readouterr().out
    assert main(["games", "--check", "nim", "--seeds", "5"]) == 0
    assert "nim ok (5 random episodes; control tokens)" in " ".join(capsys.readouterr().out.split())
    # Bots read the game's capabilities: MCTS needs an OpenSpiel game to search.
    assert unsupported("mcts:5", "nim") == "MCTS searches OpenSpiel games only"
    assert unsupported("random", "nim") is None


def test_a_broken_plugin_is_reported_and_leaves_the_others(
    tmp_path, monkeypatch, fresh_registry, capsys
):
    entries = {"nim": "zerosum_nim:NimGame", "kuhn_poker": "zerosum_nim:NimGame"}
    entries["ghost"] = "no_such_module:Game"
    install_entry_points(tmp_path, monkeypatch, entries)
    assert "already exists (OpenSpiel), which is kept" in broken_plugins()["kuhn_poker"]
    assert load_game("kuhn_poker").capabilities.nash  # the built-in game is kept
    with pytest.raises(
        ValueError,
        match=r"game 'ghost' \(plugin zerosum-nim\) failed to load: No module named 'no_such_module'",
    ):
        load_game("ghost")
    assert main(["games"]) == 0
    listed = capsys.readouterr().out
    lines = [" ".join(line.split()) for line in listed.splitlines()]
    assert any(x.startswith("kuhn_poker not registered: plugin 'zerosum-nim' names") for x in lines)
    assert any(
        x.startswith("ghost unavailable: game 'ghost' (plugin zerosum-nim) failed") for x in lines
    )
    widths = {
        len(line) - len(line.lstrip()) for line in listed.splitlines() if line.startswith(" ")
    }
    longest = max(len(line.split()[0]) for line in listed.splitlines() if line[:1].strip())
    assert widths == {longest + 2}  # every source line under its game's text
    assert "source: plugin zerosum-nim" in listed  # nim itself is fine
    assert registry.games_with("nash") == ["kuhn_poker", "leduc_poker"]  # ghost is skipped


def test_check_reports_a_failing_game(monkeypatch, capsys):
    monkeypatch.setattr("zerosum.cli.load_game", lambda name: Coin(not_zero_sum=True))
    assert main(["games", "--check", "coin", "--seeds", "3"]) == 1
    out = capsys.readouterr().out
    assert "coin 3 problems" in " ".join(out.split()) and "zero-sum (seed 0)" in out
    assert FORGED not in out
