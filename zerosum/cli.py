"""The `zerosum` command line: `games`, `match`, `eval`, `train` and `arena`."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from zerosum.config import ANSWER_MODES, ENGINES, FALLBACKS, INVALID_MODES, PROMPT_FORMATS
from zerosum.engines.base import MAX_TEMPERATURE
from zerosum.evaluation.settings import EvalSettings
from zerosum.games import game_names, load_game
from zerosum.match import MAX_TURNS as MATCH_MAX_TURNS
from zerosum.match import MatchResult, run_match
from zerosum.players import PLAYER_SPECS, make_player, unsupported
from zerosum.rollout import EVAL_INVALID, InvalidMovePolicy
from zerosum.rundir import RunStopped
from zerosum.tables import reason_lines, table_row


# argparse `type=` checks: argparse prints "zerosum eval: error: argument --n: ..." with the
# message below, one line naming the flag, the bad value and what is allowed.
def _number(text: str, kind: type, ok: Callable[[Any], bool], allowed: str) -> Any:
    try:
        value = kind(text)
    except ValueError:
        value = None
    if value is None or not ok(value):
        raise argparse.ArgumentTypeError(f"{text!r} is invalid; allowed: {allowed}")
    return value


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1."""
    return _number(text, int, lambda v: v >= 1, "an integer >= 1")


def seed_int(text: str) -> int:
    """An argparse type: a seed in [0, 2**32)."""
    return _number(text, int, lambda v: 0 <= v < 2**32, "an integer in [0, 2**32)")


def temperature(text: str) -> float:
    """`--temperature`: a number in [0, MAX_TEMPERATURE]; 0 is greedy decoding."""
    return _number(
        text,
        float,
        lambda v: 0 <= v <= MAX_TEMPERATURE,  # False for nan
        f"a number in [0, {MAX_TEMPERATURE:g}] (0: greedy decoding)",
    )


def top_p(text: str) -> float:
    """`--top-p`: a number in (0, 1]."""
    return _number(
        text, float, lambda v: 0 < v <= 1, "a number in (0, 1] (greedy: --temperature 0)"
    )


def cmd_games(args: argparse.Namespace) -> None:
    for name in game_names():
        print(f"{name:22s} {load_game(name).description}")


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
    result = run_match(game, players, args.games, args.seed, invalid, args.max_turns)
    print(format_match(result, game.name))


def cmd_train(args: argparse.Namespace) -> None:
    from zerosum.config import config_help, load_config

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
        saved = Path(args.resume) / "config.json"
        if not saved.is_file():
            raise ValueError(f"--resume {args.resume!r} is not a run directory (no config.json)")
        cfg = load_config(saved, overrides + [f"run.out_dir={args.resume}"])
    else:
        cfg = load_config(args.config, overrides)
    from zerosum.train import train

    run_dir = train(cfg, resume=bool(args.resume), overwrite=args.overwrite)
    print(f"run saved in {run_dir}")


def cmd_eval(args: argparse.Namespace) -> None:
    from zerosum.evaluation.run import (
        EvalSettings,
        check_writable,
        format_results,
        run_eval,
        write_results,
    )

    if args.out:
        check_writable(args.out)
    settings = EvalSettings(
        model=args.model,
        games=[g for g in args.games.split(",") if g],
        math=[m for m in args.math.split(",") if m],
        math_k=args.math_k,
        limit=args.limit,
        opponents=[o for o in args.opponents.split(",") if o],
        n=args.n,
        seed=args.seed,
        answer_mode=args.answer_mode,
        temperature=args.temperature,
        top_p=args.top_p,
        max_new_tokens=args.max_new_tokens,
        max_concurrent=args.max_concurrent,
        max_turns=args.max_turns,
        device=args.device,
        engine=args.engine,
        vllm_eager=not args.vllm_compile,
        parser_fallback=args.parser_fallback,
        include_rules=not args.no_rules,
        prompt_format=args.prompt_format,
        exploit_k=args.exploit_k,
    )
    results = run_eval(settings)
    print(format_results(results))
    if args.out:
        write_results(results, args.out)
        print(f"results written to {args.out}")


def cmd_arena(args: argparse.Namespace) -> None:
    """Play the missing games of an arena (resumable), then print and write its results."""
    import os

    from zerosum.arena.config import load_arena_config
    from zerosum.arena.report import print_results, report
    from zerosum.arena.run import run_arena

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


SEED_HELP = "run seed in [0, 2**32); game i is seeded with a hash of (seed, i)"


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
    m.add_argument(
        "--games", type=positive_int, default=100, help="number of games (seats alternate)"
    )
    m.add_argument("--seed", type=seed_int, default=0, help=SEED_HELP)
    m.add_argument(
        "--max-turns", type=positive_int, default=MATCH_MAX_TURNS, help="longer games are draws"
    )
    m.add_argument(
        "--invalid", choices=INVALID_MODES, default=EVAL_INVALID.mode, help="invalid-move policy"
    )
    m.set_defaults(func=cmd_match)


def _add_eval(sub) -> None:
    d = EvalSettings  # every default is EvalSettings' own
    e = sub.add_parser("eval", help="win rates against fixed opponents, exploitability")
    e.add_argument("--model", required=True, help="HF id, local path or checkpoint model dir")
    e.add_argument("--games", default="", help="comma-separated game names")
    e.add_argument(
        "--math",
        default="",
        help="comma-separated benchmarks: packaged names (math500, gsm8k, aime24, amc23), "
        "JSONL files or hf:NAME[:CONFIG]:SPLIT",
    )
    e.add_argument(
        "--math-k", type=positive_int, default=d.math_k, help="samples per math problem (pass@1)"
    )
    e.add_argument("--limit", type=positive_int, help="only the first N problems of each benchmark")
    e.add_argument(
        "--opponents", default="random", help=f"comma-separated: {', '.join(PLAYER_SPECS)}"
    )
    e.add_argument(
        "--n", type=positive_int, default=d.n, help="games per (game, opponent); seats alternate"
    )
    e.add_argument("--seed", type=seed_int, default=d.seed, help=SEED_HELP)
    e.add_argument("--answer-mode", choices=ANSWER_MODES, default=d.answer_mode)
    e.add_argument(
        "--temperature",
        type=temperature,
        default=d.temperature,
        help="sampling temperature; 0 is greedy decoding",
    )
    e.add_argument(
        "--top-p",
        type=top_p,
        default=d.top_p,
        help="nucleus sampling mass in (0, 1] (greedy decoding: --temperature 0)",
    )
    e.add_argument(
        "--max-new-tokens",
        type=positive_int,
        default=d.max_new_tokens,
        help="cap per free-text turn (constrained answers are never cut)",
    )
    e.add_argument(
        "--max-concurrent", type=positive_int, default=d.max_concurrent, help="games in flight"
    )
    e.add_argument(
        "--max-turns", type=positive_int, default=d.max_turns, help="longer games are draws"
    )
    e.add_argument(
        "--device", default=d.device, help="auto (a CUDA GPU if one is visible), cpu, cuda[:N]"
    )
    e.add_argument(
        "--engine",
        choices=ENGINES,
        default=d.engine,
        help="generation engine (vllm: pip install 'zerosum[vllm]'; seeded samples differ from hf)",
    )
    e.add_argument(
        "--vllm-compile",
        action="store_true",
        help="vllm: torch.compile the model (slow start; pays off after about 100k tokens)",
    )
    e.add_argument("--parser-fallback", choices=FALLBACKS, default=d.parser_fallback)
    e.add_argument("--prompt-format", choices=PROMPT_FORMATS, default=d.prompt_format)
    e.add_argument("--no-rules", action="store_true", help="leave the rules out of prompts")
    e.add_argument(
        "--exploit-k",
        type=positive_int,
        default=d.exploit_k,
        help="free mode: sampled answers per information set for exploitability",
    )
    e.add_argument("--out", help="write the results JSON here")
    e.set_defaults(func=cmd_eval)


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

    sub.add_parser("games", help="list every game with a one-line description").set_defaults(
        func=cmd_games
    )

    _add_match(sub)
    _add_eval(sub)
    _add_train(sub)

    a = sub.add_parser(
        "arena", help="tournament of models, bots and API players; durable, resumable, rated"
    )
    a.add_argument("--config", help="arena YAML (see configs/arena_example.yaml)")
    a.add_argument("--dir", help="arena directory (overrides the config's dir)")
    a.add_argument("--report", action="store_true", help="only report, from the arena's database")
    a.set_defaults(func=cmd_arena)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except ValueError as err:  # bad input: one line naming the value and what is valid
        print(f"zerosum: error: {_one_line(str(err))}", file=sys.stderr)
        return 2
    except OSError as err:  # the environment: read-only or full disk, permissions
        print(f"zerosum: error: {_os_error(err)}", file=sys.stderr)
        return 1
    except RunStopped as err:  # a run that lost a part it cannot do without
        print(f"zerosum: error: {_one_line(str(err))}", file=sys.stderr)
        return 1
    return 0


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _os_error(err: OSError) -> str:
    """`strerror: 'path'` without the errno number; other exception types keep tracebacks."""
    paths = [repr(str(p)) for p in (err.filename, err.filename2) if p is not None]
    if err.strerror and paths:
        return _one_line(f"{err.strerror}: {' -> '.join(paths)}")
    return _one_line(str(err) or type(err).__name__)


if __name__ == "__main__":
    sys.exit(main())
