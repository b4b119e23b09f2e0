"""People in the arena: the games of `zerosum play --arena DIR --name NAME`.

A person is player `human:NAME`, bound in the arena's `players` table to the identity
`{"kind": "human", "name": NAME}`; the opponent is named and bound exactly as an arena config
would name and bind the same spec (a bot spec or `model:PATH` under the spec itself, an API
player under its file's `name`, with that kind's identity), so a person's games against
`random` and the arena's games of `random` are one player's games and share one leaderboard.
Each finished game is committed as it ends (one transaction, as the arena does), keyed by the
next free index of its (game, seat0, seat1) and stored with the seed it was played with.
A session holds the directory's lock, as an arena session does.
"""

from __future__ import annotations

from pathlib import Path

from zerosum.arena.config import ArenaConfig, check_name, player_from_entry
from zerosum.arena.run import bounded, episode_record
from zerosum.arena.store import DB_NAME, ArenaLock, GameKey, Store
from zerosum.players.api import load_api_config
from zerosum.rollout import Episode

HUMAN = "human:"


def human_identity(name: str) -> dict:
    return {"kind": "human", "name": name}


def opponent_entry(spec: str) -> tuple[str, dict]:
    """The arena name and identity of the player `spec` (as `make_player` reads specs)."""
    kind, _, arg = spec.partition(":")
    config = load_api_config(arg) if kind == "api" else player_from_entry(spec, "--opponent")
    return config.name, config.identity()


class HumanArena:
    """An arena directory that a person's games are recorded into."""

    def __init__(self, directory: str | Path, name: str, opponent_spec: str):
        check_name(name, "--name")
        self.human = HUMAN + name
        check_name(self.human, "--name")  # the prefix counts towards the length
        self.opponent, identity = opponent_entry(opponent_spec)
        check_name(self.opponent, "the opponent's arena name")
        if self.opponent == self.human:
            raise ValueError(f"--name {name!r}: the opponent is already called {self.human!r}")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.lock = ArenaLock(self.directory)
        self.store = None
        try:
            self.store = Store(self.directory / DB_NAME)
            self.store.register(self.human, human_identity(name))
            self.store.register(self.opponent, identity)
        except BaseException:
            self.close()
            raise

    def record(
        self, game: str, human_seat: int, seed: int, episode: Episode, transcript: list[dict]
    ) -> GameKey:
        """Commit one finished game (replies cut as an arena cuts them)."""
        seat0, seat1 = (
            (self.human, self.opponent) if human_seat == 0 else (self.opponent, self.human)
        )
        key = GameKey(game, seat0, seat1, self.store.next_index(game, seat0, seat1))
        chars = ArenaConfig.transcript_chars
        kept = [{**entry, "reply": bounded(entry["reply"], chars)} for entry in transcript]
        self.store.add(episode_record(key, seed, episode, kept))
        return key

    def close(self) -> None:
        if self.store is not None:
            self.store.close()
        self.lock.release()
