"""`zerosum benchmark`: every model of the command line through one suite, into one table.

Games are arena games (`arena.run.play_all`) kept in the output directory's SQLite database
(`arena.store`): each finished game is committed as it ends, keyed by (game, seat0, seat1,
index), and a session plays only the keys that are missing, so an interrupted suite resumes
where it stopped. Math answers go into a table of the same database, a batch at a time.

Game i of a (game, opponent) cell is seeded from (suite seed, game, opponent, i), whatever
the model, and the model takes seat i % 2; math sample j of problem i is seeded from (suite
seed, set, i, j). So every model meets the same deals in the same seats and the same sample
seeds: the table's paired differences rest on that. A model is loaded once, plays all its
games, answers its math, and is let go before the next one loads.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from zerosum.arena.config import (
    ArenaConfig,
    BotPlayerConfig,
    LocalPlayerConfig,
    PlayerConfig,
    cannot_play,
    check_name,
    player_from_entry,
)
from zerosum.arena.local import local_player_and_sampler
from zerosum.arena.run import Task, bounded, build_player, play_all
from zerosum.arena.store import ArenaLock, GameKey, GameRecord, Store
from zerosum.benchmark.suite import Suite
from zerosum.benchmark.table import (
    column_id,
    game_cell,
    game_difference,
    markdown,
    math_cell,
    model_results,
    paired,
)
from zerosum.engines.base import SamplingParams
from zerosum.evaluation.math import grade, load_problems, math_prompt
from zerosum.players import PLAYER_SPECS
from zerosum.players.api import load_api_config
from zerosum.players.base import Player
from zerosum.rundir import write_atomic
from zerosum.seeds import game_seed
from zerosum.typed_config import ConfigError

DB_NAME = "benchmark.db"
RESULTS_JSON = "benchmark.json"
RESULTS_MD = "benchmark.md"
MATH_SCHEMA = """
CREATE TABLE IF NOT EXISTS math (
    model TEXT NOT NULL, bench TEXT NOT NULL, idx INTEGER NOT NULL, sample INTEGER NOT NULL,
    seed INTEGER NOT NULL, answer TEXT NOT NULL, correct INTEGER NOT NULL,
    tokens INTEGER NOT NULL, response TEXT NOT NULL,
    PRIMARY KEY (model, bench, idx, sample)
);
"""
RESPONSE_CHARS = 2000  # of each math answer kept in the database (its tail, where the answer is)
BOT_KINDS = {s.split("[")[0].split(":")[0] for s in PLAYER_SPECS} - {"model", "api"}


@dataclass(frozen=True)
class Row:
    """One model of the command line: its label in the table and how it plays."""

    label: str
    spec: str
    player: PlayerConfig

    @property
    def kind(self) -> str:
        return self.player.kind


def parse_models(items: list[str], suite: Suite) -> list[Row]:
    """`LABEL=SPEC` or `SPEC` (labelled by itself): a local model (HF id, path, run
    directory, `model:PATH`), a bot spec (a reference row, games only) or `api:FILE`."""
    if not items:
        raise ConfigError("--models is empty; give one or more models: [LABEL=]SPEC,...")
    rows = []
    for item in items:
        label, sep, spec = item.partition("=")
        if not sep:
            label, spec = item, item
        if not spec:
            raise ConfigError(f"--models entry {item!r} has no model after '='")
        check_name(label, f"--models label {label!r}")
        rows.append(Row(label, spec, row_player(label, spec, suite)))
    labels = [r.label for r in rows]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"--models names {labels!r}: each label once (write LABEL=SPEC)")
    return rows


def row_player(label: str, spec: str, suite: Suite) -> PlayerConfig:
    kind, _, arg = spec.partition(":")
    if kind in BOT_KINDS:
        return dataclasses.replace(player_from_entry(spec, "--models"), name=label)
    if kind == "api":
        return dataclasses.replace(load_api_config(arg), name=label)
    model = arg if kind == "model" else spec
    return LocalPlayerConfig(
        name=label, model=model, dtype=suite.dtype, temperature=suite.temperature,
        top_p=suite.top_p, max_new_tokens=suite.max_new_tokens, answer_mode=suite.answer_mode,
        prompt_format=suite.prompt_format, include_rules=suite.include_rules,
        parser_fallback=suite.parser_fallback, max_batch=suite.max_batch,
        enable_thinking=suite.enable_thinking, reasoning_prefix=suite.reasoning_prefix,
    )  # fmt: skip


def opponent_player(spec: str) -> PlayerConfig:
    """An opponent named as `zerosum match` names players (its arena name: the spec, or an
    API file's `name`)."""
    kind, _, arg = spec.partition(":")
    if kind == "api":
        return load_api_config(arg)
    player = player_from_entry(spec, "opponents")
    if isinstance(player, BotPlayerConfig):
        build_player(player)  # a bad spec (mcts:x) fails now, not at its first move
    return player


def cell_seed(seed: int, game: str, opponent: str, idx: int) -> int:
    """The same for every model: game `idx` of the cell deals the same for all of them."""
    digest = hashlib.sha256(f"{game}\0{opponent}\0{idx}".encode()).digest()
    return game_seed(seed, int.from_bytes(digest[:8], "big") >> 1)


def math_seed(seed: int, bench: str, idx: int, sample: int) -> int:
    digest = hashlib.sha256(f"math\0{bench}\0{idx}\0{sample}".encode()).digest()
    return game_seed(seed, int.from_bytes(digest[:8], "big") >> 1)


@dataclass(frozen=True)
class Plan:
    """Every game of the suite for the rows, and the (row, column) cells skipped and why."""

    tasks: dict[str, list[Task]]  # row label -> its games, in cell order
    skipped: dict[str, dict[str, str]]  # row label -> column id -> reason
    opponents: dict[str, PlayerConfig]  # spec -> player


def plan(suite: Suite, rows: list[Row]) -> Plan:
    opponents = {spec: opponent_player(spec) for _, _, spec in suite.cells()}
    names = {p.name for p in opponents.values()}
    for row in rows:
        if row.label in names:
            raise ConfigError(
                f"--models label {row.label!r} is also an opponent's name; label the model "
                f"another way (OTHER={row.spec})"
            )
    tasks: dict[str, list[Task]] = {}
    skipped: dict[str, dict[str, str]] = {}
    for row in rows:
        tasks[row.label], skipped[row.label] = [], {}
        for split, game, spec in suite.cells():
            opp = opponents[spec]
            reason = cannot_play(row.player, game) or cannot_play(opp, game)
            if reason:
                skipped[row.label][column_id(split, game, spec)] = reason
                continue
            for i in range(suite.games_per_cell):
                seats = (row.label, opp.name) if i % 2 == 0 else (opp.name, row.label)
                tasks[row.label].append(
                    Task(GameKey(game, *seats, i), cell_seed(suite.seed, game, opp.name, i))
                )
    return Plan(tasks, skipped, opponents)


class BenchmarkStore(Store):
    """The arena's game store plus the math answers."""

    def __init__(self, path: Path, create: bool = True):
        super().__init__(path, create)
        if create:
            self.db.executescript(MATH_SCHEMA)

    def math_keys(self, model: str) -> set[tuple[str, int, int]]:
        rows = self.db.execute("SELECT bench, idx, sample FROM math WHERE model = ?", (model,))
        return {tuple(r) for r in rows}

    def add_math(self, rows: list[tuple]) -> None:
        with self.db:  # one transaction per batch
            self.db.executemany(f"INSERT INTO math VALUES ({', '.join('?' * 9)})", rows)

    def math_correct(self) -> dict[tuple[str, str], dict[int, list[int]]]:
        """(model, bench) -> problem index -> its samples' correctness, in sample order."""
        out: dict[tuple[str, str], dict[int, list[int]]] = {}
        try:
            rows = self.db.execute(
                "SELECT model, bench, idx, correct FROM math ORDER BY model, bench, idx, sample"
            )
        except sqlite3.OperationalError:  # a database without the table
            return out
        for model, bench, idx, correct in rows:
            out.setdefault((model, bench), {}).setdefault(idx, []).append(int(correct))
        return out


Progress = Callable[[str], None]  # called with "game" or "math" as each item is committed


def run_benchmark(
    suite: Suite, rows: list[Row], out: str | Path, *, say: Callable[[str], None] = print,
    progress: Progress | None = None,
) -> dict:  # fmt: skip
    """Play and answer what the output directory's database lacks; write and return the
    table (`benchmark.json`, `benchmark.md`)."""
    directory = Path(out)
    the_plan = plan(suite, rows)  # bad names and specs fail before anything loads
    directory.mkdir(parents=True, exist_ok=True)
    lock = ArenaLock(directory)
    store = BenchmarkStore(directory / DB_NAME)
    try:
        store.set_meta({"seed": suite.seed, "max_turns": suite.max_turns})
        for row in rows:
            store.register(row.label, row.player.identity())
        for p in the_plan.opponents.values():
            store.register(p.name, p.identity())
        for label, reasons in the_plan.skipped.items():
            for column, reason in reasons.items():
                say(f"skipped: {label} {column}: {reason}")
        arena = ArenaConfig(dir=str(directory), max_turns=suite.max_turns,
                            max_concurrent=suite.max_concurrent)  # fmt: skip
        opponents: dict[str, Player] = {}
        for row in rows:
            play_row(row, the_plan, suite, store, arena, opponents, say, progress)
        table = build_table(store, suite, rows, the_plan)
    finally:
        store.close()
        lock.release()
    write_atomic(directory / RESULTS_JSON, json.dumps(table, indent=1) + "\n")
    write_atomic(directory / RESULTS_MD, markdown(table))
    return table


def play_row(
    row: Row, the_plan: Plan, suite: Suite, store: BenchmarkStore, arena: ArenaConfig,
    opponents: dict[str, Player], say: Callable[[str], None], progress: Progress | None,
) -> None:  # fmt: skip
    """One model's missing games, then its missing math answers."""
    done = store.keys()
    todo = [t for t in the_plan.tasks[row.label] if t.key not in done]
    local = isinstance(row.player, LocalPlayerConfig)
    math_todo = pending_math(suite, store, row.label) if local else []
    planned = len(the_plan.tasks[row.label])
    say(f"{row.label}: {len(todo)} games to play, {planned - len(todo)} already played"
        + (f"; {len(math_todo)} math answers to sample" if local and suite.math else ""))  # fmt: skip
    if not todo and not math_todo:
        return
    sampler = None
    if local:
        player, sampler = local_player_and_sampler(row.player)
    else:
        player = build_player(row.player)
    needed = {n for t in todo for n in (t.key.seat0, t.key.seat1)} - {row.label}
    for p in the_plan.opponents.values():
        if p.name in needed and p.name not in opponents:
            opponents[p.name] = build_player(p)
    if todo:
        players = {**opponents, row.label: player}
        with tqdm(total=len(todo), desc=f"{row.label} games", disable=None, leave=False) as bar:

            def on_game(record: GameRecord) -> None:
                bar.update(1)
                if progress is not None:
                    progress("game")

            play_all(todo, players, arena, store, on_game)
    if sampler is not None:
        if math_todo:
            answer_math(row.label, sampler, suite, store, math_todo, progress)
        # Every game is over (play_all waits for them): its thread lets the model go before
        # the next row's loads. After an exception it stays, for games still in flight.
        sampler.close()


def pending_math(suite: Suite, store: BenchmarkStore, model: str) -> list[tuple]:
    """(bench, index, sample, problem) of the answers `model` still owes."""
    done = store.math_keys(model)
    return [
        (bench, i, j, problem)
        for bench, count in suite.math.items()
        for i, problem in enumerate(load_problems(bench, count))
        for j in range(suite.math_k)
        if (bench, i, j) not in done
    ]


def answer_math(
    model: str, sampler, suite: Suite, store: BenchmarkStore, todo: list[tuple],
    progress: Progress | None,
) -> None:  # fmt: skip
    """Sample and grade the answers, a batch at a time, each seeded on its own (the same
    answer whichever batch it lands in), committing each batch."""
    params = SamplingParams(suite.temperature, suite.top_p, suite.math_max_new_tokens)
    tokenizer = sampler.engine.tokenizer
    with tqdm(total=len(todo), desc=f"{model} math", disable=None, leave=False) as bar:
        for start in range(0, len(todo), suite.max_batch):
            chunk = todo[start : start + suite.max_batch]
            seeds = [math_seed(suite.seed, bench, i, j) for bench, i, j, _ in chunk]
            prompts = [math_prompt(tokenizer, p.question) for *_, p in chunk]
            gens = sampler.engine.generate(prompts, params, seeds=seeds)
            rows = [
                (model, bench, i, j, seed, p.answer, int(grade(g.text, p.answer)),
                 len(g.token_ids), bounded(g.text, RESPONSE_CHARS))
                for (bench, i, j, p), seed, g in zip(chunk, seeds, gens)
            ]  # fmt: skip
            store.add_math(rows)
            bar.update(len(rows))
            for _ in rows:
                if progress is not None:
                    progress("math")


def build_table(store: BenchmarkStore, suite: Suite, rows: list[Row], the_plan: Plan) -> dict:
    """The table from the database: only the suite's planned games and answers count."""
    columns = [
        {"id": column_id(split, game, spec), "split": split, "name": game, "opponent": spec,
         "planned": suite.games_per_cell}
        for split, game, spec in suite.cells()
    ] + [
        {"id": column_id("math", bench), "split": "math", "name": bench, "planned": count}
        for bench, count in suite.math.items()
    ]  # fmt: skip
    planned = {t.key for tasks in the_plan.tasks.values() for t in tasks}
    by_cell: dict[tuple[str, str, str], list[GameRecord]] = {}
    for record in store.records():
        if record.key not in planned:
            continue
        k = record.key
        for model, other in ((k.seat0, k.seat1), (k.seat1, k.seat0)):
            if model in the_plan.tasks:
                by_cell.setdefault((model, k.game, other), []).append(record)
    math = store.math_correct()
    cells: dict[str, dict[str, dict]] = {}
    outcomes: dict[str, dict[str, dict]] = {}  # label -> column -> game index -> results
    complete = True
    for row in rows:
        cells[row.label], outcomes[row.label] = {}, {}
        for c in columns:
            if c["id"] in the_plan.skipped[row.label]:
                continue
            if c["split"] == "math":
                if not isinstance(row.player, LocalPlayerConfig):
                    continue  # bots and APIs play games only
                got = math.get((row.label, c["name"]), {})
                got = {i: s[: suite.math_k] for i, s in got.items() if i < c["planned"]}
                cell = math_cell(got, c["planned"], suite.math_k)
                complete &= cell["samples"] == c["planned"] * suite.math_k
                cells[row.label][c["id"]] = cell
                outcomes[row.label][c["id"]] = {
                    i: (float(sum(s) / len(s)),) for i, s in got.items()
                }
                continue
            opponent = the_plan.opponents[c["opponent"]].name
            records = sorted(by_cell.get((row.label, c["name"], opponent), []),
                             key=lambda r: r.key.idx)  # fmt: skip
            cells[row.label][c["id"]] = game_cell(records, row.label, c["planned"])
            complete &= len(records) == c["planned"]
            outcomes[row.label][c["id"]] = {
                r.key.idx: model_results(r, row.label)[1:4] for r in records
            }
    first = rows[0].label
    differences: dict[str, dict[str, dict]] = {}
    for row in rows[1:]:
        diffs = {}
        for c in columns:
            a, b = outcomes[first].get(c["id"]), outcomes[row.label].get(c["id"])
            if a is None or b is None:
                continue
            if c["split"] == "math":
                both = sorted(set(a) & set(b))
                diffs[c["id"]] = {
                    "pass@1": paired([a[i][0] for i in both], [b[i][0] for i in both])
                }
            else:
                diffs[c["id"]] = game_difference(a, b)
        differences[f"{row.label} - {first}"] = diffs
    return {
        "suite": dataclasses.asdict(suite),
        "rows": [{"label": r.label, "spec": r.spec, "kind": r.kind} for r in rows],
        "columns": columns,
        "cells": cells,
        "skipped": the_plan.skipped,
        "differences": differences,
        "summary": summary(cells, columns),
        "complete": complete,
    }


def summary(cells: dict[str, dict[str, dict]], columns: list[dict]) -> dict[str, dict]:
    """Per row: the unweighted mean over its columns of each split (win rate, pass@1)."""
    out = {}
    for label, row in cells.items():
        means = {}
        for split, key in (("in_domain", "win_rate"), ("held_out", "win_rate"), ("math", "pass@1")):
            values = [row[c["id"]][key] for c in columns if c["split"] == split and c["id"] in row]
            if values:
                means[f"{split}_{key}"] = round(sum(values) / len(values), 4)
        out[label] = means
    return out
