"""The `zerosum` command line: `games`, `match`, `play`, `eval`, `benchmark`, `train`,
`arena`, `report` and `export`."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import secrets
import sys
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

from zerosum.arena.config import check_name, load_arena_config
from zerosum.arena.human import HumanArena
from zerosum.arena.report import print_results, report
from zerosum.arena.run import run_arena
from zerosum.benchmark.run import RESULTS_JSON, RESULTS_MD, parse_models, run_benchmark
from zerosum.benchmark.suite import load_suite, packaged_suites
from zerosum.config import config_help, load_config
from zerosum.evaluation.run import check_writable, format_results, run_eval, write_results
from zerosum.evaluation.settings import SEED_HELP, EvalSettings
from zerosum.export import export_run
from zerosum.games import broken_plugins, game_names, game_source, load_game
from zerosum.games.conformance import check_game
from zerosum.match import MAX_TURNS as MATCH_MAX_TURNS
from zerosum.match import MatchResult, run_match
from zerosum.models import load_tokenizer
from zerosum.play import GameResult, Screen, play_series
from zerosum.players import PLAYER_SPECS, first_opponent, make_player, unsupported
from zerosum.prompts import PROMPT_FORMATS, check_control_tokens, llama3_style
from zerosum.report import MAX_REPLAYS, write_report
from zerosum.rollout import EVAL_INVALID, INVALID_MODES, InvalidMovePolicy
from zerosum.rundir import CONFIG_NAME, RunStopped
from zerosum.seeds import game_seed
from zerosum.tables import one_line, reason_lines, table_row
from zerosum.train import train
from zerosum.typed_config import NON_NEGATIVE, POSITIVE, SEED, Bound


# argparse `type=` checks from the settings' declared bounds: argparse prints "zerosum eval:
# error: argument --n: ..." with the message below, one line naming the flag, the bad value
# and what is allowed.
def bounded(kind: type, bound: Bound | None) -> Callable[[str], Any]:
    """An argparse type: `text` as a `kind` within `bound`."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or (bound is not None and not bound.ok(value)):
            allowed = (
                bound.allowed
                if bound is not None
                else f"a{'n integer' if kind is int else ' number'}"
            )
            raise argparse.ArgumentTypeError(f"{text!r} is invalid; allowed: {allowed}")
        return value

    return parse


def comma_list(text: str) -> list[str]:
    """An argparse type: comma-separated names (empty ones dropped)."""
    return [item for item in text.split(",") if item]


def optional_bool(text: str) -> bool | None:
    """An argparse type: true, false or null (any case)."""
    value = {"true": True, "false": False, "null": None}.get(text.lower(), text)
    if isinstance(value, str):
        raise argparse.ArgumentTypeError(f"{text!r} is invalid; allowed: true, false, null")
    return value


def add_settings(parser: argparse.ArgumentParser, cls: type) -> None:
    """One flag per field of the settings dataclass `cls`: its help, default, choices (a
    Literal) and bound (a number) are the field's own; a list is comma-separated; a bool
    that is true by default is turned off by its declared flag."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        hint, meta = hints[f.name], f.metadata
        flag = meta.get("flag") or "--" + f.name.replace("_", "-")
        kw: dict[str, Any] = {"dest": f.name, "help": meta.get("help", "")}
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            kw["required"] = True
        else:
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            kw["default"] = ",".join(default) if isinstance(default, list) else default
        args = typing.get_args(hint)
        if hint is bool:
            kw.pop("default")
            kw["action"] = "store_false" if f.default else "store_true"
        elif bool in args:  # bool | None: a switch whose default is "leave it to the model"
            kw["type"] = optional_bool
        elif typing.get_origin(hint) is typing.Literal:
            kw["choices"] = args
        elif typing.get_origin(hint) is list:
            kw["type"] = comma_list
        elif hint in (int, float) or int in args:
            kw["type"] = bounded(int if int in (hint, *args) else float, meta.get("bound"))
        parser.add_argument(flag, **kw)


def cmd_games(args: argparse.Namespace) -> int:
    """List every game with its source and capabilities, or (`--check`) run the conformance
    checks on some or all of them."""
    if args.check is not None:
        return check_games(args.check or game_names(), args.seeds)
    w = name_width([*game_names(), *broken_plugins()])
    for name in game_names():
        try:
            game = load_game(name)
        except ValueError as err:  # a plugin that fails to load
            print(f"{name:{w}s} unavailable: {one_line(err)}")
            continue
        caps = [
            f.name
            for f in dataclasses.fields(game.capabilities)
            if getattr(game.capabilities, f.name)
        ]
        print(f"{name:{w}s} {game.description}")
        print(f"{'':{w}s} source: {game_source(name)}; {', '.join(caps) or 'free-text moves'}")
    for name, reason in broken_plugins().items():
        print(f"{name:{w}s} not registered: {reason}")
    return 0


def name_width(names: list[str]) -> int:
    """The width of a name column that fits every name."""
    return max(map(len, names), default=0) + 1


def check_games(names: list[str], seeds: int) -> int:
    """`zerosum games --check`: each game's conformance, one line each; 1 if any fails. Beside
    the game's own checks: moves made of control tokens add none to a prompt, for the default
    tokenizer (ChatML) and a Llama-3-style one, in both prompt formats."""
    failed = 0
    w = name_width(names)
    tokenizer = load_tokenizer()
    tokenizers = {"ChatML": tokenizer, "Llama 3": llama3_style(tokenizer)}
    for name in names:
        game = load_game(name)
        problems: list[object] = list(check_game(game, range(seeds)))
        for family, tok in tokenizers.items():
            for fmt in PROMPT_FORMATS:
                found = check_control_tokens(game, tok, prompt_format=fmt)
                problems += [f"control tokens ({family}, {fmt}): {p}" for p in found]
        status = "ok" if not problems else f"{len(problems)} problems"
        print(f"{name:{w}s} {status} ({seeds} random episodes; control tokens)")
        for problem in problems[:5]:
            print(f"{'':{w + 2}s}{problem}")
        failed += bool(problems)
    return 1 if failed else 0


def format_match(result: MatchResult, game_name: str) -> str:
    """The table `zerosum match` prints: each player's results overall and per seat."""
    widths = (-16, 5, 5, 5, 12)
    lines = [f"{game_name}: {len(result.episodes)} games, seats alternate"]
    header = table_row(("player", "win", "draw", "loss", "mean return"), widths)
    lines.append(f"{header}   per seat (W/D/L)")
    for name, st in zip(result.names, result.stats):
        seats = "  ".join(
            f"seat {s}: {c['win']}/{c['draw']}/{c['loss']}" for s, c in st.seat_wdl.items()
        )
        cells = (name, st.wins, st.draws, st.losses, f"{st.mean_return:.3f}")
        lines.append(f"{table_row(cells, widths)}   {seats}")
        lines += reason_lines(st.reasons.most_common(), " " * 17)
    if result.truncated:
        lines.append(f"{result.truncated} games hit the turn limit and count as draws")
    return "\n".join(lines)


def cmd_match(args: argparse.Namespace) -> None:
    game = load_game(args.game)
    players = (make_player(args.players[0]), make_player(args.players[1]))
    for spec in args.players:  # before any game is played, not when the player first moves
        if reason := unsupported(spec, game.name):
            raise ValueError(f"player {spec!r} cannot play {game.name!r}: {reason}")
    invalid = InvalidMovePolicy(mode=args.invalid)
    result = run_match(
        game, players, args.games, args.seed, invalid=invalid, max_turns=args.max_turns
    )
    print(format_match(result, game.name))


def cmd_play(args: argparse.Namespace) -> None:
    """A person against a player in the terminal; with --arena, each finished game is
    recorded there under `human:NAME`."""
    if args.arena and not args.name:
        raise ValueError("--arena needs --name NAME: the person's name in the arena")
    if args.name and not args.arena:
        raise ValueError("--name is the person's name in an arena: give --arena DIR too")
    if args.name:
        check_name(args.name, "--name")
    game = load_game(args.game)
    opponent = make_player(args.opponent)
    if reason := unsupported(args.opponent, game.name):
        raise ValueError(f"opponent {args.opponent!r} cannot play {game.name!r}: {reason}")
    seed = secrets.randbelow(2**32) if args.seed is None else args.seed
    seats = [i % 2 if args.seat == "alternate" else int(args.seat) for i in range(args.games)]
    seeds = [game_seed(seed, i) for i in range(args.games)]
    arena = HumanArena(args.arena, args.name, args.opponent) if args.arena else None
    screen = Screen()
    screen.heading(
        f"zerosum play: {game.name} against {opponent.name}, {args.games} "
        f"game{'s' * (args.games != 1)}, seed {seed}"
    )

    def record(result: GameResult) -> None:
        r = result
        arena.record(game.name, r.human_seat, r.seed, r.episode, r.transcript)
        screen.line(f"Recorded in the arena {arena.directory} as {arena.human}.", "dim")

    try:
        play_series(
            game, opponent, seats, seeds, screen, max_turns=args.max_turns,
            show_reasoning=args.show_reasoning, on_game=record if arena else None,
        )  # fmt: skip
    finally:
        if arena is not None:
            arena.close()


def cmd_train(args: argparse.Namespace) -> None:
    if args.help_config:
        print(config_help())
        return
    overrides = list(args.overrides)
    if args.ray_address is not None:  # a JSON string is a YAML string: "1:20" stays text
        overrides.append(f"distributed.ray_address={json.dumps(args.ray_address)}")
    if args.resume and args.overwrite:
        raise ValueError("--resume continues a run and --overwrite replaces it: give one")
    if args.resume and args.config:
        raise ValueError(
            "--resume reads the run's own config.json; drop --config (section.field=value "
            "overrides still apply)"
        )
    if args.resume:
        saved = Path(args.resume) / CONFIG_NAME
        if not saved.is_file():
            raise ValueError(f"--resume {args.resume!r} is not a run directory (no config.json)")
        cfg = load_config(saved, overrides + [f"run.out_dir={args.resume}"])
    else:
        cfg = load_config(args.config, overrides)
    run_dir = train(cfg, resume=bool(args.resume), overwrite=args.overwrite)  # checks cfg first
    print(f"run saved in {run_dir}")
    print(f"report: {write_report(run_dir)} (open it in a browser)")
    print(next_commands(run_dir, cfg.rollout.games, cfg.model.name))


def next_commands(run_dir: Path, games: dict[str, float], model: str) -> str:
    """What to run after training: an evaluation and a match against `random` where it can
    play the run's first game; in a free-text game, against the model before training."""
    game = next(iter(games))
    other = first_opponent(game, model)
    return (
        f"next: zerosum eval --model {run_dir} --games {game} --opponents {other} --n 100; "
        f"zerosum match --game {game} --players model:{run_dir} {other} --games 20"
    )


def cmd_eval(args: argparse.Namespace) -> None:
    if args.out:
        check_writable(args.out)
    settings = EvalSettings(
        **{f.name: getattr(args, f.name) for f in dataclasses.fields(EvalSettings)}
    )
    results = run_eval(settings)
    print(format_results(results))
    if args.out:
        write_results(results, args.out)
        print(f"results written to {args.out}")


def cmd_benchmark(args: argparse.Namespace) -> None:
    """Play and answer what the output directory lacks (resumable), then write the table."""
    suite = load_suite(args.suite, args.overrides, args.opponents)
    rows = parse_models(args.models, suite)
    out = Path(args.out or f"benchmarks/{suite.name}")
    try:
        table = run_benchmark(suite, rows, out)
    except KeyboardInterrupt:  # finished games and answer batches are committed
        print("zerosum: interrupted; run the same command again to resume", file=sys.stderr)
        sys.stderr.flush()
        os._exit(130)  # without waiting for games still blocked on the network
    print((out / RESULTS_MD).read_text())
    print(f"table written to {out / RESULTS_JSON} and {out / RESULTS_MD}")
    if not table["complete"]:
        print("some planned games or answers are missing; run the same command again")


def cmd_arena(args: argparse.Namespace) -> None:
    """Play the missing games of an arena (resumable), then print and write its results."""
    if not args.report and not args.config:
        raise ValueError("zerosum arena needs --config FILE (play), or --report --dir DIR")
    if args.report and not args.config and not args.dir:
        raise ValueError("zerosum arena --report needs --dir ARENA_DIR (or --config FILE)")
    directory = args.dir
    if args.config:
        cfg = load_arena_config(args.config, args.dir)
        directory = cfg.dir
        if not args.report:
            try:
                run_arena(cfg)
            except KeyboardInterrupt:  # every finished game is committed; in-flight ones are not
                print("zerosum: interrupted; run the same command again to resume", file=sys.stderr)
                sys.stderr.flush()
                os._exit(130)  # without waiting for games still blocked on the network
    results = report(directory)
    print_results(results)
    print(f"results written to {Path(directory) / 'results.json'} (and .csv files)")


def cmd_report(args: argparse.Namespace) -> None:
    path = write_report(args.source, args.out, args.replays)
    print(f"report written to {path}")


def cmd_export(args: argparse.Namespace) -> None:
    done = export_run(
        Path(args.run), Path(args.out), step=args.step, keep_adapter=args.keep_adapter,
        license=args.license, evals=[Path(p) for p in args.eval or []],
    )  # fmt: skip
    kind = "a LoRA adapter" if done.adapter else "full weights"
    print(f"exported step {done.step} of {args.run} to {done.out} ({kind}, {done.card['license']})")
    other = first_opponent(done.games[0], done.base or str(done.out))
    print(
        f"next: zerosum match --game {done.games[0]} --players model:{done.out} {other} --games 20"
    )


def _add_export(sub) -> None:
    x = sub.add_parser(
        "export", help="a run's checkpoint as a Hugging Face model directory with a model card"
    )
    x.add_argument("run", metavar="RUN", help="the training run directory")
    x.add_argument("--out", required=True, metavar="DIR", help="a new (or empty) directory")
    x.add_argument(
        "--step", type=bounded(int, POSITIVE), help="the checkpoint of this step (default: latest)"
    )
    lora = x.add_mutually_exclusive_group()
    lora.add_argument(
        "--merge-lora", dest="keep_adapter", action="store_false",
        help="a LoRA run: merge the adapter into the base weights (the default)",
    )  # fmt: skip
    lora.add_argument(
        "--keep-adapter", dest="keep_adapter", action="store_true",
        help="a LoRA run: export the PEFT adapter (and a base only this machine has)",
    )  # fmt: skip
    x.add_argument(
        "--license", metavar="ID",
        help="the card's license (a Hub license id); default: the base model's where zerosum "
        "knows it, else other",
    )  # fmt: skip
    x.add_argument(
        "--eval", action="append", metavar="FILE",
        help="a `zerosum eval --out` results file for the card (repeatable; the run "
        "directory's own *.json results are found without it)",
    )  # fmt: skip
    x.set_defaults(func=cmd_export, keep_adapter=False)


def _add_match(sub) -> None:
    m = sub.add_parser("match", help="play N games between two players, both seat orders")
    m.add_argument("--game", required=True, help="game name (see `zerosum games`)")
    m.add_argument(
        "--players",
        nargs=2,
        required=True,
        metavar=("A", "B"),
        help=f"player specs: {', '.join(PLAYER_SPECS)}",
    )
    count = bounded(int, POSITIVE)
    m.add_argument("--games", type=count, default=100, help="number of games (seats alternate)")
    m.add_argument("--seed", type=bounded(int, SEED), default=0, help=SEED_HELP)
    m.add_argument(
        "--max-turns", type=count, default=MATCH_MAX_TURNS, help="longer games are draws"
    )
    m.add_argument(
        "--invalid", choices=INVALID_MODES, default=EVAL_INVALID.mode, help="invalid-move policy"
    )
    m.set_defaults(func=cmd_match)


def _add_play(sub) -> None:
    p = sub.add_parser("play", help="play a game yourself against a bot, a checkpoint or an API")
    p.add_argument("--game", required=True, help="game name (see `zerosum games`)")
    p.add_argument(
        "--opponent", required=True, metavar="SPEC", help=f"player spec: {', '.join(PLAYER_SPECS)}"
    )
    p.add_argument(
        "--seat", choices=("0", "1", "alternate"), default="alternate",
        help="your seat in every game, or alternate starting with seat 0",
    )  # fmt: skip
    count = bounded(int, POSITIVE)
    p.add_argument("--games", type=count, default=1, help="number of games in the series")
    p.add_argument(
        "--seed", type=bounded(int, SEED), default=None,
        help="game i is seeded from (SEED, i); default: a fresh seed, printed at the start",
    )  # fmt: skip
    p.add_argument(
        "--max-turns", type=count, default=MATCH_MAX_TURNS, help="longer games are draws"
    )
    p.add_argument(
        "--show-reasoning", action="store_true",
        help="show a model's or API's reply text with its moves (it may reveal what it knows)",
    )  # fmt: skip
    p.add_argument("--arena", metavar="DIR", help="record your finished games in this arena")
    p.add_argument("--name", help="your name in the arena: the player human:NAME")
    p.set_defaults(func=cmd_play)


def _add_eval(sub) -> None:
    e = sub.add_parser("eval", help="win rates against fixed opponents, exploitability")
    add_settings(e, EvalSettings)  # every flag is an EvalSettings field
    e.add_argument("--out", help="write the results JSON here")
    e.set_defaults(func=cmd_eval)


def _add_benchmark(sub) -> None:
    b = sub.add_parser(
        "benchmark",
        help="several models through one suite of in-domain games, held-out games and math; "
        "one table, resumable",
    )
    b.add_argument(
        "--suite", required=True,
        help=f"a packaged suite ({', '.join(packaged_suites())}) or a suite YAML file",
    )  # fmt: skip
    b.add_argument(
        "--models", type=comma_list, required=True, metavar="[LABEL=]SPEC,...",
        help="the table's rows, in order (the first is the baseline of the paired "
        "differences): HF ids, local paths, run directories, bot specs (games only) or "
        "api:FILE (games only)",
    )  # fmt: skip
    b.add_argument(
        "--opponents", type=comma_list, metavar="SPEC,...",
        help=f"replace every game's opponents: {', '.join(PLAYER_SPECS)}",
    )  # fmt: skip
    b.add_argument(
        "--out", metavar="DIR",
        help="output directory: database, benchmark.json, benchmark.md (default: "
        "benchmarks/SUITE_NAME); run again to resume",
    )  # fmt: skip
    b.add_argument(
        "overrides", nargs="*", metavar="KEY=VALUE",
        help="suite field overrides, YAML values (games_per_cell=4, 'math={gsm8k: 10}')",
    )  # fmt: skip
    b.set_defaults(func=cmd_benchmark)


def _add_train(sub) -> None:
    t = sub.add_parser("train", help="self-play training from a YAML recipe")
    t.add_argument("--config", help="YAML recipe (see configs/)")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR exactly")
    t.add_argument("--overwrite", action="store_true", help="replace a run already in run.out_dir")
    t.add_argument("--help-config", action="store_true", help="list every config field")
    t.add_argument(
        "--ray-address",
        metavar="ADDR",
        help="distributed.backend ray: the Ray cluster to join (auto, host:port, "
        "ray://host:10001); sets distributed.ray_address",
    )
    t.add_argument("overrides", nargs="*", help="section.field=value overrides")
    t.set_defaults(func=cmd_train)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="zerosum", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    g = sub.add_parser("games", help="list every game with its source and capabilities")
    g.add_argument(
        "--check", nargs="*", metavar="GAME",
        help="run the conformance checks on these games (none named: all of them)",
    )  # fmt: skip
    g.add_argument(
        "--seeds", type=bounded(int, POSITIVE), default=20, help="random episodes per game"
    )
    g.set_defaults(func=cmd_games)

    _add_match(sub)
    _add_play(sub)
    _add_eval(sub)
    _add_benchmark(sub)
    _add_train(sub)

    a = sub.add_parser(
        "arena", help="tournament of models, bots and API players; durable, resumable, rated"
    )
    a.add_argument("--config", help="arena YAML (see configs/arena_example.yaml)")
    a.add_argument("--dir", help="arena directory (overrides the config's dir)")
    a.add_argument("--report", action="store_true", help="only report, from the arena's database")
    a.set_defaults(func=cmd_arena)

    r = sub.add_parser(
        "report", help="one self-contained HTML report of a run, an eval results file or an arena"
    )
    r.add_argument(
        "source", metavar="DIR_OR_FILE",
        help="a training run directory, a zerosum eval --out file, an arena directory or a "
        "benchmark directory",
    )  # fmt: skip
    r.add_argument("--out", help="the HTML file to write (default: DIR/report.html, FILE.html)")
    r.add_argument(
        "--replays", type=bounded(int, NON_NEGATIVE), default=MAX_REPLAYS,
        help="at most this many games in the replay browser (a run's latest, an arena's first)",
    )  # fmt: skip
    r.set_defaults(func=cmd_report)
    _add_export(sub)
    return parser


def _is_override(arg: str) -> bool:
    return not arg.startswith("-") and "=" in arg


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    # Overrides may sit on both sides of an option (`train a.b=1 --config X c.d=2`): the
    # `nargs="*"` positional takes the first group only, and argparse's intermixed parsing
    # refuses subparsers, so the rest come back unparsed.
    args, extra = parser.parse_known_args(argv)
    if extra and args.command in ("train", "benchmark") and all(map(_is_override, extra)):
        args.overrides = [*args.overrides, *extra]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        code = args.func(args)
    except ValueError as err:  # bad input: one line naming the value and what is valid
        print(f"zerosum: error: {one_line(err)}", file=sys.stderr)
        return 2
    except OSError as err:  # the environment: read-only or full disk, permissions
        print(f"zerosum: error: {_os_error(err)}", file=sys.stderr)
        return 1
    except RunStopped as err:  # a run that lost a part it cannot do without
        print(f"zerosum: error: {one_line(err)}", file=sys.stderr)
        return 1
    return code or 0


def _os_error(err: OSError) -> str:
    """`strerror: 'path'` without the errno number; other exception types keep tracebacks."""
    paths = [repr(str(p)) for p in (err.filename, err.filename2) if p is not None]
    if err.strerror and paths:
        return one_line(f"{err.strerror}: {' -> '.join(paths)}")
    return one_line(str(err) or type(err).__name__)


if __name__ == "__main__":
    sys.exit(main())
