"""The arena database: every finished game, committed as it ends (SQLite, WAL mode).

One transaction per game, with `synchronous=FULL`: a game is either wholly in the database or
not at all, whenever the process dies (Ctrl-C, SIGKILL, power loss), and a new session plays
exactly the games that are missing. Games are keyed by (game, seat0, seat1, idx). The
`players` table pins what each name means (its play settings, never an API key): reusing a
name for a different player is refused, because its old games would be mixed with the new.
`meta` holds what the games and ratings depend on (seed, turn limit, rating settings), so the
report needs nothing but this file.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from zerosum.typed_config import ConfigError

DB_NAME = "arena.db"
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS players (name TEXT PRIMARY KEY, identity TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS games (
    game TEXT NOT NULL, seat0 TEXT NOT NULL, seat1 TEXT NOT NULL, idx INTEGER NOT NULL,
    seed INTEGER NOT NULL,
    return0 REAL NOT NULL, return1 REAL NOT NULL, winner INTEGER, turns INTEGER NOT NULL,
    truncated INTEGER NOT NULL, forfeit_seat INTEGER,
    moves TEXT NOT NULL, invalid TEXT NOT NULL, transcript TEXT NOT NULL,
    finished_at REAL NOT NULL,
    PRIMARY KEY (game, seat0, seat1, idx)
);
"""
# Settings the played games depend on: a change would mix incomparable games.
FIXED_META = ("seed", "max_turns")


@dataclass(frozen=True)
class GameKey:
    game: str
    seat0: str
    seat1: str
    idx: int


@dataclass(frozen=True)
class GameRecord:
    key: GameKey
    seed: int
    returns: tuple[float, float]
    winner: int | None
    turns: int
    truncated: bool
    forfeit_seat: int | None
    moves: list  # [seat, action] pairs
    invalid: list  # [seat, reason] pairs
    transcript: list  # dicts: seat, player, reply (bounded), action, reason


class ArenaLock:
    """One arena session per directory (flock, released by the kernel however we die)."""

    def __init__(self, directory: Path):
        self._fd = os.open(directory / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self._fd, 200, 0).decode(errors="replace").strip() or "unknown"
            os.close(self._fd)
            raise ConfigError(
                f"arena directory {str(directory)!r} is in use by another zerosum arena ({holder})"
            ) from None
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)

    def release(self) -> None:
        os.close(self._fd)


class Store:
    def __init__(self, path: Path, create: bool = True):
        if not create and not path.is_file():
            raise ConfigError(f"no arena database at {str(path)!r}")
        # Used only by the thread that opened it: game threads hand records back.
        self.db = sqlite3.connect(path)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        if create:
            self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    def meta(self) -> dict[str, str]:
        return dict(self.db.execute("SELECT key, value FROM meta"))

    def set_meta(self, values: dict[str, object]) -> None:
        """Record settings; FIXED_META keys may not change once games exist."""
        old = self.meta()
        for key in FIXED_META:
            if key in old and key in values and old[key] != str(values[key]) and self.count():
                raise ConfigError(
                    f"arena setting {key!r} = {values[key]!r} differs from the {old[key]} its "
                    "games were played with; use a new arena directory"
                )
        with self.db:
            self.db.executemany(
                "INSERT OR REPLACE INTO meta VALUES (?, ?)",
                [(k, str(v)) for k, v in values.items()],
            )

    def register(self, name: str, identity: dict) -> None:
        """Pin what `name` means; a different player under a known name is refused."""
        text = json.dumps(identity, sort_keys=True)
        row = self.db.execute("SELECT identity FROM players WHERE name = ?", (name,)).fetchone()
        if row is None:
            with self.db:
                self.db.execute("INSERT INTO players VALUES (?, ?)", (name, text))
        elif row[0] != text:
            raise ConfigError(
                f"player {name!r} was {row[0]} when its games were played, now {text}; "
                "give the new player another name"
            )

    def identities(self) -> dict[str, dict]:
        """Every registered player's name and identity."""
        rows = self.db.execute("SELECT name, identity FROM players ORDER BY name")
        return {name: json.loads(identity) for name, identity in rows}

    def keys(self) -> set[GameKey]:
        rows = self.db.execute("SELECT game, seat0, seat1, idx FROM games")
        return {GameKey(*row) for row in rows}

    def next_index(self, game: str, seat0: str, seat1: str) -> int:
        """The first game index after those of (game, seat0, seat1) in the database."""
        row = self.db.execute(
            "SELECT MAX(idx) FROM games WHERE game = ? AND seat0 = ? AND seat1 = ?",
            (game, seat0, seat1),
        ).fetchone()
        return 0 if row[0] is None else row[0] + 1

    def count(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM games").fetchone()[0]

    def add(self, record: GameRecord) -> None:
        k = record.key
        values = (
            k.game, k.seat0, k.seat1, k.idx, record.seed, *record.returns, record.winner,
            record.turns, int(record.truncated), record.forfeit_seat, json.dumps(record.moves),
            json.dumps(record.invalid), json.dumps(record.transcript), time.time(),
        )  # fmt: skip
        with self.db:  # one transaction, durable when this returns
            self.db.execute(f"INSERT INTO games VALUES ({', '.join('?' * len(values))})", values)

    def records(self) -> Iterator[GameRecord]:
        """Every game, in round order (index, game, seats): the order ratings read them in."""
        rows = self.db.execute(
            "SELECT game, seat0, seat1, idx, seed, return0, return1, winner, turns, truncated, "
            "forfeit_seat, moves, invalid, transcript FROM games ORDER BY idx, game, seat0, seat1"
        )
        for row in rows:
            yield GameRecord(
                GameKey(*row[:4]), row[4], (row[5], row[6]), row[7], row[8], bool(row[9]),
                row[10], json.loads(row[11]), json.loads(row[12]), json.loads(row[13]),
            )  # fmt: skip
