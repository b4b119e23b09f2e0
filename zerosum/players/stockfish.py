"""Stockfish as a chess opponent (`stockfish[:LEVEL]`), spoken to over UCI in a subprocess.

Needs the `stockfish` binary: on PATH, or in /usr/games, where Debian's package puts it
(often not on PATH). The engine starts at the player's first move, is told the game so far
(`position fen START moves ...`, so it knows about repetitions) and thinks for a fixed time
per move; its `bestmove` (UCI) becomes the legal SAN action through the chess state's
aliases. Its games are not reproducible from the seed: below level 20 Stockfish picks among
good moves with its own clock-seeded randomness, and a time budget depends on the machine.
"""

from __future__ import annotations

import queue
import shutil
import subprocess
import threading

import numpy as np
import pyspiel
from scipy.optimize import brentq

from zerosum.games.base import GameState
from zerosum.games.openspiel_games import OpenSpielState
from zerosum.players.base import Move

STOCKFISH_GAMES = ("chess", "chess_unlisted")
MAX_LEVEL = 20  # Stockfish's `Skill Level` option runs from 0 to 20 (full strength)
MOVE_TIME_MS = 50
DEBIAN_DIR = "/usr/games"
REPLY_TIMEOUT_S = 30.0  # a reply this late means the engine is stuck


def find_stockfish() -> str | None:
    """The path of the `stockfish` binary, or None."""
    return shutil.which("stockfish") or shutil.which("stockfish", path=DEBIAN_DIR)


def skill_level(arg: str | None) -> int:
    """The LEVEL of `stockfish:LEVEL` (an integer 0-20; 20 without one)."""
    if arg is None:
        return MAX_LEVEL
    try:
        level = int(arg)
    except ValueError:
        level = -1
    if not 0 <= level <= MAX_LEVEL:
        raise ValueError(
            f"Stockfish skill level must be an integer in [0, {MAX_LEVEL}], got {arg!r}"
        )
    return level


# Stockfish's own map from a CCRL Blitz Elo to a (fractional) Skill Level, for its
# `UCI_LimitStrength` option (search.cpp, Stockfish 16 on): with e = (Elo - 1320) / (3190 - 1320),
# level = ((37.2473 e - 40.8525) e + 22.2943) e - 0.311438, fitted to games of Stockfish at
# several levels against engines rated on CCRL. The cubic rises on [0, 1] and reaches 18.38
# at e = 1, so levels 0-18 have ratings in that range; 19 and 20 (full strength) have none.
ELO_RANGE = (1320, 3190)


def _level_of(e: float) -> float:
    return ((37.2473 * e - 40.8525) * e + 22.2943) * e - 0.311438


def stockfish_elo(level: int) -> float | None:
    """The CCRL Blitz Elo that Stockfish's fit gives Skill Level `level` (rounded to 1), or
    None where the fit stops (levels 19 and 20). An approximation: the fit is for blitz time
    controls, and `stockfish:LEVEL` here thinks for a fixed time per move."""
    if not 0 <= level <= MAX_LEVEL:
        raise ValueError(f"Stockfish skill level must be in [0, {MAX_LEVEL}], got {level!r}")
    if level > _level_of(1.0):
        return None
    e = brentq(lambda x: _level_of(x) - level, 0.0, 1.0)
    lo, hi = ELO_RANGE
    return float(round(lo + (hi - lo) * e))


def uci_moves(spiel_state: pyspiel.State) -> tuple[str, list[str]]:
    """The start position's FEN and the moves since, in UCI, of an OpenSpiel chess state."""
    replay = spiel_state.get_game().new_initial_state()
    start, moves = replay.board().to_fen(), []
    for action in spiel_state.history():
        moves.append(pyspiel.chess.action_to_move(action, replay.board()).to_lan())
        replay.apply_action(action)
    return start, moves


class StockfishPlayer:
    """Stockfish at `Skill Level` `level`, `movetime_ms` per move."""

    _proc: subprocess.Popen | None = None  # until the first move (and if __init__ failed)

    def __init__(self, level: int = MAX_LEVEL, movetime_ms: int = MOVE_TIME_MS):
        if not 0 <= level <= MAX_LEVEL:
            raise ValueError(f"Stockfish skill level must be in [0, {MAX_LEVEL}], got {level!r}")
        binary = find_stockfish()
        if binary is None:
            raise ValueError(
                f"the stockfish binary is not on PATH or in {DEBIAN_DIR} "
                "(Debian: apt-get install stockfish)"
            )
        self.binary = binary
        self.level = level
        self.movetime_ms = movetime_ms
        self.name = f"stockfish:{level}"
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._lock = threading.Lock()  # one conversation with the engine at a time

    def act(self, state: GameState, rng: np.random.Generator, feedback: str | None = None) -> Move:
        if not isinstance(state, OpenSpielState) or state.spec.openspiel_name != "chess":
            raise ValueError(f"player {self.name!r} plays chess only")
        start, moves = uci_moves(state.spiel_state)
        with self._lock:
            self._start()
            self._send(f"position fen {start}" + (f" moves {' '.join(moves)}" if moves else ""))
            self._send(f"go movetime {self.movetime_ms}")
            best = self._read_until("bestmove").split()[1]
        legal = state.legal_actions()
        action = best if best in legal else legal.aliases.get(best)
        if action is None:
            raise RuntimeError(f"stockfish answered {best!r}, not a legal move here")
        return Move(action)

    def close(self) -> None:
        """Stop the engine (it starts again at the next move)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            proc.stdin.write("quit\n")
            proc.stdin.flush()
            proc.wait(timeout=5)
        except (OSError, ValueError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait()

    def __del__(self) -> None:
        self.close()

    def _start(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            return
        self._proc = subprocess.Popen(
            [self.binary],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        self._lines = queue.Queue()
        # A thread reads the engine's output, so a stuck engine times out instead of hanging.
        threading.Thread(target=_pump, args=(self._proc, self._lines), daemon=True).start()
        self._send("uci")
        self._read_until("uciok")
        self._send(f"setoption name Skill Level value {self.level}")
        self._send("setoption name Threads value 1")
        self._send("isready")
        self._read_until("readyok")

    def _send(self, line: str) -> None:
        assert self._proc is not None and self._proc.stdin is not None
        self._proc.stdin.write(line + "\n")
        self._proc.stdin.flush()

    def _read_until(self, prefix: str) -> str:
        """The engine's first output line starting with `prefix` (earlier lines skipped)."""
        while True:
            try:
                line = self._lines.get(timeout=REPLY_TIMEOUT_S)
            except queue.Empty:
                self.close()
                raise RuntimeError(
                    f"stockfish sent no {prefix!r} in {REPLY_TIMEOUT_S:.0f} s"
                ) from None
            if line is None:
                self.close()
                raise RuntimeError(f"stockfish exited before sending {prefix!r}")
            if line.startswith(prefix):
                return line


def _pump(proc: subprocess.Popen, lines: queue.Queue[str | None]) -> None:
    """Copy the engine's output lines into `lines`; None once it exits."""
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.put(line.strip())
    lines.put(None)
