"""An arena killed part-way (SIGKILL, then Ctrl-C) and run again ends with the same database
(timestamps aside) and the same ratings as an uninterrupted run: no finished game is lost or
replayed, and every game plays as it would have in one session.

Players: two bots and a tiny random local model in constrained mode (so it makes legal moves
and its sampling matters). Its rows are sampled with per-game seeds, so the games do not
depend on which others shared a batch; the comparison is exact.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from zerosum.cli import main

N = 5  # kuhn_poker: random and tiny, 2 x 5; tic_tac_toe: 3 players, 6 x 5 -> 40 games
TOTAL = 40
DEADLINE = 600  # seconds; only a guard against hanging, never a measurement


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory, tokenizer) -> Path:
    from zerosum.models import tiny_model

    path = tmp_path_factory.mktemp("tiny") / "model"
    tiny_model(tokenizer, hidden_size=32, layers=1, heads=2, seed=0).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def config(tmp: Path, tiny_dir: Path, name: str) -> Path:
    tiny = {"name": "tiny", "kind": "local", "model": str(tiny_dir), "answer_mode": "constrained",
            "prompt_format": "plain", "include_rules": False, "temperature": 1.0, "top_p": 1.0,
            "max_batch": 8}  # fmt: skip
    fields = {"dir": str(tmp / name), "games": ["kuhn_poker", "tic_tac_toe"], "n": N,
              "bootstrap": 30, "max_concurrent": 4, "players": ["random", "mcts:10", tiny]}  # fmt: skip
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(fields))
    return path


def count(directory: Path) -> int:
    try:
        with sqlite3.connect(directory / "arena.db") as db:
            return db.execute("SELECT COUNT(*) FROM games").fetchone()[0]
    except sqlite3.OperationalError:  # not created yet
        return 0


def snapshot(directory: Path) -> dict[str, list]:
    """Every table in key order; the games' timestamps left out."""
    with sqlite3.connect(directory / "arena.db") as db:
        games = db.execute("SELECT * FROM games ORDER BY game, seat0, seat1, idx").fetchall()
        return {
            "games": [row[:-1] for row in games],
            "players": db.execute("SELECT * FROM players ORDER BY name").fetchall(),
            "meta": db.execute("SELECT * FROM meta ORDER BY key").fetchall(),
        }


# The interrupted sessions run under a small wrapper. It restores Python's Ctrl-C handler:
# a test run started in the background (`nohup make test &`) inherits SIGINT ignored, and
# Python then never raises KeyboardInterrupt (a clean-clone run failed so). And it pauses
# after each committed game, so a signal sent once N games are in lands while others are
# still to play, however fast the machine. Neither changes what a game plays.
SESSION = """
import signal, sys, time
signal.signal(signal.SIGINT, signal.default_int_handler)
from zerosum.arena.store import Store
add = Store.add
def slow_add(self, record):
    add(self, record)
    time.sleep(0.3)
Store.add = slow_add
from zerosum.cli import main
sys.exit(main(sys.argv[1:]))
"""


def start(cfg: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", SESSION, "arena", "--config", str(cfg)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def interrupt_after(proc: subprocess.Popen, directory: Path, games: int, sig: int) -> int:
    """Send `sig` once the database holds at least `games` games; the count at that moment."""
    deadline = time.monotonic() + DEADLINE
    while (done := count(directory)) < games:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the arena made no progress"
        time.sleep(0.02)
    proc.send_signal(sig)
    proc.wait(timeout=DEADLINE)
    return done


def test_killed_and_interrupted_arena_resumes_to_the_uninterrupted_result(
    tmp_path, tiny_dir, capsys
):
    assert main(["arena", "--config", str(config(tmp_path, tiny_dir, "whole"))]) == 0
    whole = snapshot(tmp_path / "whole")
    assert len(whole["games"]) == TOTAL
    capsys.readouterr()

    cfg, arena = config(tmp_path, tiny_dir, "parts"), tmp_path / "parts"
    proc = start(cfg)
    interrupt_after(proc, arena, 4, signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL
    killed_at = count(arena)
    assert 0 < killed_at < TOTAL
    before = snapshot(arena)["games"]

    proc = start(cfg)
    interrupt_after(proc, arena, killed_at + 4, signal.SIGINT)
    out, err = proc.communicate()
    assert proc.returncode == 130, err
    assert f"{TOTAL - killed_at} games to play, {killed_at} already played" in out
    assert "interrupted; run the same command again to resume" in err
    interrupted_at = count(arena)
    assert killed_at < interrupted_at < TOTAL

    assert main(["arena", "--config", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert f"{TOTAL - interrupted_at} games to play, {interrupted_at} already played" in out
    parts = snapshot(arena)
    assert set(before) <= set(parts["games"])  # nothing played before a kill was lost
    assert parts == whole
    assert any(row[1] == "tiny" or row[2] == "tiny" for row in parts["games"])
    results = [json.loads((d / "results.json").read_text()) for d in (arena, tmp_path / "whole")]
    assert results[0] == results[1]
