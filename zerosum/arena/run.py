"""Playing an arena: every pair of players in both seat orders, `n` games each, per game.

Each game is one `rollout.play_games` call with both seats fixed players, run in a thread
pool (`max_concurrent` games in flight): API players wait on the network with their own
concurrency limit, local models' turns meet in their model's batch (`arena.local`), bots
compute. Game (game, A, B, i) is seeded from (arena seed, game, {A, B}, i), so both seat
orders of a pair play the same deals and a game's seed never depends on which other players
or games the config lists. The main thread commits each game to the database as it ends;
games already there are never played again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from zerosum.arena.config import (
    ApiPlayerConfig,
    ArenaConfig,
    BotPlayerConfig,
    PlayerConfig,
    cannot_play,
)
from zerosum.arena.local import local_player
from zerosum.arena.store import DB_NAME, ArenaLock, GameKey, GameRecord, Store
from zerosum.games.base import GameState
from zerosum.players import make_player
from zerosum.players.api import ApiPlayer
from zerosum.players.base import Move, Player
from zerosum.rollout import EVAL_INVALID, Episode, RolloutSettings, play_games
from zerosum.seeds import game_seed


@dataclass(frozen=True)
class Task:
    key: GameKey
    seed: int


def pair_seed(seed: int, game: str, a: str, b: str, idx: int) -> int:
    """The same for (A, B) and (B, A): both seat orders play the same deal."""
    lo, hi = sorted((a, b))
    digest = hashlib.sha256(f"{game}\0{lo}\0{hi}\0{idx}".encode()).digest()
    return game_seed(seed, int.from_bytes(digest[:8], "big") >> 1)


def schedule(cfg: ArenaConfig) -> tuple[list[Task], list[str]]:
    """Every game of the config in round order, and the (player, game) pairs skipped."""
    skipped, able = [], {}
    for game in cfg.games:
        for p in cfg.players:
            reason = cannot_play(p, game)
            able[p.name, game] = reason is None
            if reason:
                skipped.append(f"{p.name} does not play {game}: {reason}")
    names = [p.name for p in cfg.players]
    tasks = [
        Task(GameKey(game, a, b, i), pair_seed(cfg.seed, game, a, b, i))
        for i in range(cfg.n)
        for game in sorted(cfg.games)
        for a in sorted(names)
        for b in sorted(names)
        if a != b and able[a, game] and able[b, game]
    ]
    return tasks, skipped


def bounded(text: str, limit: int) -> str:
    """At most about `limit` characters, mostly the tail (where an answer is)."""
    if len(text) <= limit:
        return text
    head = limit // 4
    return f"{text[:head]}...[{len(text) - limit} characters cut]...{text[-(limit - head) :]}"


class Seat:
    """One player in one game, adding each of its moves to the game's transcript."""

    def __init__(self, player: Player, transcript: list[dict], chars: int):
        self.player, self.transcript, self.chars = player, transcript, chars
        self.name = player.name

    def act(self, state: GameState, rng: np.random.Generator, feedback: str | None = None) -> Move:
        seat = state.current_seat()
        move = self.player.act(state, rng, feedback)
        entry = move.transcript_entry(seat)
        self.transcript.append({**entry, "reply": bounded(move.response, self.chars)})
        return move


def play_task(task: Task, players: dict[str, Player], cfg: ArenaConfig) -> GameRecord:
    transcript: list[dict] = []
    k = task.key
    seats = (Seat(players[k.seat0], transcript, cfg.transcript_chars),
             Seat(players[k.seat1], transcript, cfg.transcript_chars))  # fmt: skip
    # Arena games score forfeits -1/+1 (as evaluation does); max_concurrent=1: one game.
    settings = RolloutSettings(invalid=EVAL_INVALID, max_turns=cfg.max_turns, max_concurrent=1)
    _, (ep,) = play_games(
        None, None, [(k.game, task.seed)], params=None, settings=settings, seed=0,
        opponents=[seats],
    )  # fmt: skip
    return episode_record(k, task.seed, ep, transcript)


def episode_record(key: GameKey, seed: int, episode: Episode, transcript: list[dict]) -> GameRecord:
    """The database row of a finished game."""
    out = episode.outcome
    return GameRecord(
        key, seed, (float(out.returns[0]), float(out.returns[1])), out.winner, out.turns,
        out.truncated, out.forfeit_seat, [list(m) for m in episode.moves],
        [list(i) for i in episode.invalid], transcript,
    )  # fmt: skip


def build_player(config: PlayerConfig) -> Player:
    if isinstance(config, BotPlayerConfig):
        return make_player(config.spec)
    if isinstance(config, ApiPlayerConfig):
        return ApiPlayer(config)
    return local_player(config)


def build_players(cfg: ArenaConfig, tasks: list[Task]) -> dict[str, Player]:
    """The players the tasks need; API players first (a missing key fails in a second,
    not after loading models), local models last."""
    needed = {n for t in tasks for n in (t.key.seat0, t.key.seat1)}
    order = {"api": 0, "bot": 1, "local": 2}
    configs = sorted((p for p in cfg.players if p.name in needed), key=lambda p: order[p.kind])
    return {p.name: build_player(p) for p in configs}


def arena_meta(cfg: ArenaConfig) -> dict[str, object]:
    return {"seed": cfg.seed, "max_turns": cfg.max_turns, "prior_sigma": cfg.prior_sigma,
            "bootstrap": cfg.bootstrap, "anchors": json.dumps(cfg.anchors, sort_keys=True)}  # fmt: skip


def play_all(
    tasks: list[Task], players: dict[str, Player], cfg: ArenaConfig, store: Store,
    progress: Callable[[GameRecord], None],
) -> None:  # fmt: skip
    """Play the tasks concurrently; commit each game in this thread as it ends."""
    pool = ThreadPoolExecutor(cfg.max_concurrent, thread_name_prefix="arena-game")
    futures = [pool.submit(play_task, t, players, cfg) for t in tasks]
    try:
        for future in as_completed(futures):
            record = future.result()
            store.add(record)
            progress(record)
    except BaseException:  # Ctrl-C or a failing player: no new games; finished ones are saved
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()


def run_arena(cfg: ArenaConfig, say: Callable[[str], None] = print) -> Path:
    """Play the games of `cfg` that its directory's database lacks; returns the directory."""
    directory = Path(cfg.dir)
    directory.mkdir(parents=True, exist_ok=True)
    lock = ArenaLock(directory)
    store = Store(directory / DB_NAME)
    try:
        store.set_meta(arena_meta(cfg))
        for p in cfg.players:
            store.register(p.name, p.identity())
        tasks, skipped = schedule(cfg)
        for line in skipped:
            say(f"skipped: {line}")
        done = store.keys()
        todo = [t for t in tasks if t.key not in done]
        extra = len(done - {t.key for t in tasks})
        say(f"arena {directory}: {len(todo)} games to play, {len(tasks) - len(todo)} already played"
            + (f", {extra} more in the database (earlier configs, people)" if extra else ""))  # fmt: skip
        if todo:
            players = build_players(cfg, todo)
            # The same bar as `zerosum train` and `evaluate`: on a terminal only, gone at the end.
            with tqdm(total=len(todo), desc="games", disable=None, leave=False) as bar:
                play_all(todo, players, cfg, store, lambda record: bar.update(1))
    finally:
        store.close()
        lock.release()
    return directory
