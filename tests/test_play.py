"""`zerosum play`: a person against a player. Driven as a person would drive it, through a
pseudo-terminal (pexpect) and through a pipe; reading typed moves; what the person may see;
their games recorded into an arena and rated there."""

from __future__ import annotations

import io
import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pexpect
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zerosum.cli import main
from zerosum.games import load_game
from zerosum.play import Screen, play_game, read_move
from zerosum.players import make_player
from zerosum.players.base import Move
from zerosum.seeds import game_seed

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "TERM": "xterm-256color"}
for _var in ("NO_COLOR", "FORCE_COLOR"):
    ENV.pop(_var, None)
PROMPT = "Your move> "
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
OUTCOME = re.compile(r"You win|You lose|Draw|forfeited")


def clean(text: str) -> str:
    """Screen text without escape codes and carriage returns."""
    return ANSI.sub("", text).replace("\r", "")


def spawn(*args: str) -> pexpect.spawn:
    """`zerosum play ARGS` on a pseudo-terminal, as a person runs it."""
    return pexpect.spawn(
        sys.executable, ["-m", "zerosum.cli", "play", *args], env=ENV, cwd=str(ROOT),
        encoding="utf-8", timeout=120, dimensions=(50, 120),
    )  # fmt: skip


def answer_from_screen(child: pexpect.spawn, until: str | type = pexpect.EOF) -> str:
    """Type the first legal move the screen lists at every prompt until `until` shows;
    everything the screen showed, cleaned."""
    screen = []
    while True:
        hit = child.expect([PROMPT, until])
        screen.append(child.before + (child.after if isinstance(child.after, str) else ""))
        if hit == 1:
            return clean("".join(screen))
        legal = re.findall(r"Legal moves: (.*)", clean(child.before))[-1].strip().split(", ")
        child.sendline(legal[0])


def private_card(game: str, seed: int, seat: int) -> str:
    """The card in `seat`'s own view of the game seeded `seed` (the game's view, not ours)."""
    view = load_game(game).new_episode(seed).observation(seat)
    return re.search(r"your card is (\w+)", view).group(1)


# --- a person at a terminal ---------------------------------------------------------------


def test_a_full_game_of_tic_tac_toe_typed_from_the_screen():
    child = spawn("--game", "tic_tac_toe", "--opponent", "random", "--seed", "4", "--games", "1")
    child.logfile_read = raw = io.StringIO()
    screen = answer_from_screen(child)
    child.close()
    assert child.exitstatus == 0
    # a terminal gets rich output (colours, panels); the pipe test checks their absence
    assert "\x1b[" in raw.getvalue() and "╭" in raw.getvalue()
    assert "Your view (seat 0)" in screen
    assert "Legal moves: 0, 1, 2, 3, 4, 5, 6, 7, 8" in screen
    assert "random plays: " in screen  # the opponent's moves, as they are played
    assert len(OUTCOME.findall(screen)) == 1
    assert "Score against random after 1 game" in screen


def test_an_invalid_move_is_rejected_with_the_reason_and_asked_again():
    child = spawn("--game", "tic_tac_toe", "--opponent", "random", "--seed", "4", "--seat", "0")
    child.expect(PROMPT)
    child.sendline("9")
    child.expect(PROMPT)
    assert "Rejected: '9' is not a legal move. Legal moves: 0, 1" in clean(child.before)
    child.sendline("centre")
    child.expect(PROMPT)
    assert "Rejected: 'centre' is not a legal move" in clean(child.before)
    child.sendline("[4]")  # a bracketed move is read as the move
    child.expect(PROMPT)
    assert "random plays: " in clean(child.before)
    child.sendline("4")  # taken now
    child.expect(PROMPT)
    assert "Rejected: '4' is not a legal move" in clean(child.before)
    child.sendline("quit")
    child.expect(pexpect.EOF)
    tail = clean(child.before)
    child.close()
    assert child.exitstatus == 0
    assert "Stopped; an unfinished game is not counted." in tail
    assert "Score against random after 0 games" in tail


def test_kuhn_poker_never_shows_the_opponents_card_before_the_showdown():
    seed = 11
    child = spawn(
        "--game", "kuhn_poker", "--opponent", "random", "--seed", str(seed), "--games", "2"
    )
    screen = answer_from_screen(child)
    child.close()
    assert child.exitstatus == 0
    games = re.split(r"Game \d of 2: you are seat ", screen)[1:]
    assert len(games) == 2
    for i, text in enumerate(games):
        seat = i % 2  # seats alternate, starting with seat 0
        assert text.startswith(str(seat))
        mine = private_card("kuhn_poker", game_seed(seed, i), seat)
        theirs = private_card("kuhn_poker", game_seed(seed, i), 1 - seat)
        before_end = text.split("Your view at the end")[0]
        assert f"your card is {mine}" in before_end and f"your card is {theirs}" not in before_end
        assert set(re.findall(r"\b[JQK]\b", before_end)) == {mine}  # no card but the person's
    assert "Score against random after 2 games" in screen


class Caller:
    """Checks, and calls every bet: the game always reaches the showdown."""

    name = "caller"

    def act(self, state, rng, feedback=None):
        legal = state.legal_actions()
        return Move("call" if "call" in legal else "check", "")


@pytest.mark.parametrize("seat", [0, 1])
def test_the_showdown_shows_both_cards_at_the_end_only(seat, capsys, monkeypatch):
    monkeypatch.setattr("builtins.input", lambda prompt="": print(prompt, end="") or "check")
    play_game(load_game("kuhn_poker"), Caller(), seat, 5, Screen())
    out = capsys.readouterr().out
    cards = [private_card("kuhn_poker", 5, s) for s in (0, 1)]
    before_end, end = out.split("Your view at the end")
    assert f"your card is {cards[1 - seat]}" not in before_end
    assert set(re.findall(r"\b[JQK]\b", before_end)) == {cards[seat]}
    assert f"Showdown: Player 0 has {cards[0]}, Player 1 has {cards[1]}." in end


def test_a_fold_shows_no_card():
    state = load_game("kuhn_poker").new_episode(5)
    state.apply_action("bet")
    state.apply_action("fold")
    assert "Showdown" not in state.observation(1) and "Showdown" not in state.observation(0)


# --- through a pipe -----------------------------------------------------------------------


def test_piped_output_is_plain_text():
    moves = "".join(f"{cell}\n" for cell in range(9)) * 12  # legal ones are played, others rejected
    out = subprocess.run(
        [sys.executable, "-m", "zerosum.cli", "play", "--game", "tic_tac_toe", "--opponent",
         "random", "--seed", "2", "--games", "2"],
        input=moves, capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=180,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "\x1b" not in out.stdout and "╭" not in out.stdout
    assert "--- Your view (seat 0) ---" in out.stdout
    assert f"{PROMPT}0\n" in out.stdout  # each line read is shown, as typed
    assert len(OUTCOME.findall(out.stdout)) == 2
    assert "Score against random after 2 games" in out.stdout


# --- in the arena -------------------------------------------------------------------------


def test_a_persons_games_are_recorded_and_rated_in_the_arena(tmp_path, capsys):
    arena = tmp_path / "arena"
    child = spawn(
        "--game", "tic_tac_toe", "--opponent", "random", "--seed", "5", "--games", "3",
        "--arena", str(arena), "--name", "alice",
    )  # fmt: skip
    answer_from_screen(child, until="Game 3 of 3")
    child.expect(PROMPT)
    child.sendline("quit")  # the third game is left unfinished: not recorded
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    with sqlite3.connect(arena / "arena.db") as db:
        players = dict(db.execute("SELECT name, identity FROM players"))
        rows = db.execute("SELECT seat0, seat1, idx, seed FROM games ORDER BY seat0").fetchall()
    assert json.loads(players["human:alice"]) == {"kind": "human", "name": "alice"}
    assert json.loads(players["random"]) == {"kind": "bot", "spec": "random"}
    assert sorted(rows) == [
        ("human:alice", "random", 0, game_seed(5, 0)),
        ("random", "human:alice", 0, game_seed(5, 1)),
    ]

    # A bot tournament in the same directory: one leaderboard for the person and the bots.
    config = tmp_path / "arena.yaml"
    config.write_text(
        f"dir: {arena}\ngames: [tic_tac_toe]\nn: 1\nplayers: [random, perfect]\nbootstrap: 20\n"
    )
    assert main(["arena", "--config", str(config)]) == 0
    capsys.readouterr()
    assert main(["arena", "--report", "--dir", str(arena)]) == 0
    assert "human:alice" in capsys.readouterr().out
    board = json.loads((arena / "results.json").read_text())["all"]["leaderboard"]
    rows = {row["player"]: row for row in board}
    assert set(rows) == {"human:alice", "random", "perfect"}
    assert rows["human:alice"]["games"] == 2 and rows["random"]["games"] == 4
    assert isinstance(rows["human:alice"]["rating"], float)


def test_the_report_of_an_arena_of_people_only_needs_the_database(tmp_path, capsys):
    """No arena config ever wrote the rating settings: the report uses the defaults."""
    moves = "".join(f"{cell}\n" for cell in range(9)) * 12
    arena = tmp_path / "people"
    out = subprocess.run(
        [sys.executable, "-m", "zerosum.cli", "play", "--game", "tic_tac_toe", "--opponent",
         "random", "--seed", "1", "--games", "2", "--arena", str(arena), "--name", "bob"],
        input=moves, capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=180,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("Recorded in ") == 2
    assert main(["arena", "--report", "--dir", str(arena)]) == 0
    printed = capsys.readouterr().out
    assert "human:bob" in printed
    board = json.loads((arena / "results.json").read_text())["all"]["leaderboard"]
    bob = next(row for row in board if row["player"] == "human:bob")
    assert bob["games"] == 2 and bob["ci95"] is not None


def test_a_name_bound_to_another_identity_is_refused(tmp_path, capsys):
    from zerosum.arena.store import Store

    store = Store(tmp_path / "arena.db")
    store.register("human:carol", {"kind": "bot", "spec": "random"})
    store.close()
    code = main(["play", "--game", "tic_tac_toe", "--opponent", "random", "--arena",
                 str(tmp_path), "--name", "carol"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "player 'human:carol' was" in err and err.count("\n") == 1


# --- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--game", "go", "--opponent", "random"], "unknown game 'go'; valid games:"),
        (["--game", "tic_tac_toe", "--opponent", "robot"], "unknown player 'robot'; valid:"),
        (["--game", "tic_tac_toe", "--opponent", "mcts:0"], "MCTS simulations must be"),
        (["--game", "kuhn_poker", "--opponent", "perfect"],
         "opponent 'perfect' cannot play 'kuhn_poker': perfect play is available for"),
        (["--game", "tic_tac_toe", "--opponent", "random", "--arena", "x"],
         "--arena needs --name NAME"),
        (["--game", "tic_tac_toe", "--opponent", "random", "--name", "x"],
         "--name is the person's name in an arena"),
        (["--game", "tic_tac_toe", "--opponent", "random", "--arena", "x", "--name", "a b"],
         "--name = 'a b' is invalid; allowed:"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = main(["play", *argv])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1
    assert not (tmp_path / "x").exists()  # nothing created before the input is checked


# --- reading a typed move -----------------------------------------------------------------


def legal_lists() -> list[list[str]]:
    """Legal action lists of a few positions of several games."""
    lists = []
    for name in ("tic_tac_toe", "kuhn_poker", "liars_dice", "chess"):
        state = load_game(name).new_episode(0)
        for _ in range(3):
            if state.is_terminal():
                break
            lists.append(list(state.legal_actions()))
            state.apply_action(state.legal_actions()[-1])
    return lists


LEGAL = legal_lists()


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from(LEGAL).flatmap(lambda legal: st.tuples(st.just(legal), st.sampled_from(legal)))
)
def test_a_legal_move_is_read_however_it_is_written(case):
    legal, action = case
    for typed in (action, f" {action} ", f"[{action}]", f"\\boxed{{{action}}}",
                  f"I play [{action}]"):  # fmt: skip
        assert read_move(typed, legal).action == action, typed


def test_what_is_not_a_legal_move_is_rejected_with_a_reason():
    legal = ["check", "bet"]
    assert read_move("", legal).reason == "empty move"
    assert read_move("raise", legal).reason == "'raise' is not a legal move"
    assert read_move("BET", legal).action == "bet"  # case does not matter when unambiguous
    chess = ["bxc4", "Bxc4"]
    assert read_move("bxc4", chess).action == "bxc4"
    assert "ambiguous" in read_move("BXC4", chess).reason
    # free-text games: the typed text is the move
    assert read_move("I know the word! It is knee", None).action == "I know the word! It is knee"


# --- the opponent's reasoning and invalid answers (in-process, a scripted opponent) ------


class Talker:
    """Plays the first legal move with a reply text, like a model; or answers invalidly."""

    name = "talker"

    def __init__(self, valid: bool = True):
        self.valid = valid

    def act(self, state, rng, feedback=None):
        if not self.valid:
            return Move(None, "no idea", "no \\boxed{} answer")
        legal = state.legal_actions()
        return Move(legal[0], f"SECRET-THOUGHTS then \\boxed{{{legal[0]}}}")


def type_tic_tac_toe_squares(monkeypatch) -> None:
    """The person types squares in a fixed order (each prompt echoed): some are legal."""
    answers = iter(["4", "8", "2", "6", "5", "7", "3", "1", "0"] * 3)
    monkeypatch.setattr("builtins.input", lambda prompt="": print(prompt, end="") or next(answers))


@pytest.mark.parametrize("show", [False, True])
def test_the_opponents_reasoning_is_shown_only_when_asked(show, capsys, monkeypatch):
    type_tic_tac_toe_squares(monkeypatch)
    result = play_game(load_game("tic_tac_toe"), Talker(), 1, 0, Screen(), show_reasoning=show)
    out = capsys.readouterr().out
    assert "talker plays: 0" in out
    assert ("SECRET-THOUGHTS" in out) == show
    assert result.transcript[0]["reply"].startswith("SECRET-THOUGHTS")  # kept for the arena


class Disguiser:
    """A model whose reasoning hides reversed text and a terminal escape."""

    name = "disguiser"

    def act(self, state, rng, feedback=None):
        legal = state.legal_actions()
        return Move(legal[0], f"I\u202eesol uoy\u202c win \x1b[2J\u2066 \\boxed{{{legal[0]}}}")


@pytest.mark.parametrize("fancy", [False, True])
def test_bidi_and_control_characters_never_reach_the_screen(fancy, capsys, monkeypatch):
    type_tic_tac_toe_squares(monkeypatch)
    screen = Screen()
    screen.fancy = fancy
    play_game(load_game("tic_tac_toe"), Disguiser(), 1, 0, screen, show_reasoning=True)
    out = capsys.readouterr().out
    assert "esol uoy" in out and "\u202e" not in out and "\u2066" not in out
    assert "\x1b[2J" not in out


def test_an_opponents_invalid_answer_forfeits_and_the_person_is_told(capsys, monkeypatch):
    monkeypatch.setattr("builtins.input", lambda prompt="": "4")
    result = play_game(load_game("tic_tac_toe"), Talker(valid=False), 0, 0, Screen())
    out = capsys.readouterr().out
    assert result.episode.outcome.returns == (1.0, -1.0)
    assert "talker forfeited (no \\boxed{} answer): you win (+1)" in out


def test_the_person_plays_against_a_real_bot_in_process(capsys, monkeypatch):
    """The series tallies the person's results from their own seat."""
    from zerosum.play import play_series

    answers = iter(["0", "1", "2", "3", "4", "5", "6", "7", "8"] * 12)
    monkeypatch.setattr("builtins.input", lambda prompt="": next(answers))
    tally = play_series(load_game("tic_tac_toe"), make_player("perfect"), [0, 1], [1, 2], Screen())
    out = capsys.readouterr().out
    assert tally.games == 2 and tally.wins == 0  # nobody beats perfect play
    assert "Score against perfect after 2 games" in out
