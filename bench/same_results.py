"""Do two versions of zerosum give the same results? Runs five short scenarios with the
zerosum importable here and writes what they produce; `--compare` then diffs two such
directories line by line, `perf/` timings and version strings left out.

The scenarios: the tiny test recipe (10 steps, exact NashConv every 5), the tiny magnet
recipe across two magnet resets, an opponent-pool run (earlier selves and a random bot), an
arena with a `model:PATH` player (the first run's checkpoint), and `zerosum eval` of that
checkpoint against random (free, constrained and reasoned answers, exploitability included).
The kept games of the first run are compared too.

    .venv/bin/python bench/same_results.py OUT_BEFORE          # with the old code importable
    .venv/bin/python bench/same_results.py OUT_AFTER
    .venv/bin/python bench/same_results.py --compare OUT_BEFORE OUT_AFTER

To run an older checkout with this environment: `PYTHONPATH=OLD_CHECKOUT python ...`.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TINY = str(ROOT / "configs" / "tiny_kuhn_test.yaml")
MAGNET = str(ROOT / "configs" / "tiny_kuhn_magnet.yaml")
QUIET = ["run.progress=false", "run.tensorboard=false"]


def zerosum(out: Path, *args: str) -> None:
    """`zerosum ARGS` run in `out` (`python -m` puts the working directory first on the
    path: not a checkout's, so PYTHONPATH or the installed package decides)."""
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    subprocess.run([sys.executable, "-m", "zerosum.cli", *args], check=True, env=env, cwd=out)


def run_all(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    tiny = out / "tiny"
    zerosum(out, "train", "--config", TINY, f"run.out_dir={tiny}", "run.steps=10", *QUIET)
    zerosum(
        out, "train", "--config", MAGNET, f"run.out_dir={out / 'magnet'}", "run.steps=12",
        "algo.magnet_reset=5", "rollout.games_per_step=128", "rollout.max_concurrent=128",
        "run.eval_every=4", *QUIET,
    )  # fmt: skip
    zerosum(
        out, "train", "--config", TINY, f"run.out_dir={out / 'pool'}", "run.steps=6",
        "opponents.pool_size=2", "opponents.pool_every=2", "opponents.self_play=0.5",
        "opponents.fixed=[random]", "opponents.sampling=pfsp", "run.eval_every=3",
        "eval.games=[kuhn_poker]", "eval.opponents=[random]", "eval.n=20", *QUIET,
    )  # fmt: skip
    # Relative paths: a player's name (here its path) seeds its games. One game at a time: a
    # batch of one request decodes as it would alone, so the replies repeat to the last token
    # (batched rows may round differently, arena/local.py).
    arena = {"dir": "arena", "games": ["kuhn_poker", "tic_tac_toe"], "n": 4,
             "max_concurrent": 1, "players": ["random", "model:tiny"]}  # fmt: skip
    (out / "arena.yaml").write_text(json.dumps(arena))
    zerosum(out, "arena", "--config", "arena.yaml")
    for mode in ("free", "constrained", "reasoned"):
        zerosum(
            out, "eval", "--model", str(tiny), "--games", "kuhn_poker,tic_tac_toe",
            "--opponents", "random", "--n", "10", "--answer-mode", mode,
            "--prompt-format", "plain", "--no-rules", "--max-new-tokens", "16",
            "--exploit-k", "4", "--out", str(out / f"eval_{mode}.json"),
        )  # fmt: skip


def _metrics(path: Path) -> list[str]:
    """Each step's metrics, keys sorted, `perf/` timings left out."""
    rows = []
    for line in path.read_text().splitlines():
        row = {k: v for k, v in json.loads(line).items() if not k.startswith("perf/")}
        rows.append(json.dumps(row, sort_keys=True))
    return rows


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def _eval(path: Path) -> list[str]:
    data = json.loads(path.read_text())
    data.pop("versions", None)
    data["settings"].pop("model", None)  # the run directory's path
    return json.dumps(data, indent=1, sort_keys=True).splitlines()


def _arena(directory: Path) -> list[str]:
    with sqlite3.connect(directory / "arena.db") as db:
        tables = [r[0] for r in db.execute("select name from sqlite_master where type='table'")]
        lines = []
        for table in sorted(tables):
            cols = [r[1] for r in db.execute(f"pragma table_info({table})")]
            keep = [c for c in cols if c not in ("created", "finished_at", "started_at", "seconds")]
            for row in db.execute(f"select {', '.join(keep)} from {table}"):
                lines.append(f"{table}: {row}")
    return sorted(lines)  # games finish in any order; their keys and seeds are fixed


def compare(a: Path, b: Path) -> int:
    pairs = {
        **{f"{r}/metrics.jsonl": _metrics for r in ("tiny", "magnet", "pool")},
        "tiny/games.jsonl": _lines,
        **{f"eval_{mode}.json": _eval for mode in ("free", "constrained", "reasoned")},
    }
    failures = 0
    for name, read in pairs.items():
        left, right = read(a / name), read(b / name)
        same = left == right
        failures += not same
        print(f"{name}: {len(left)} lines, {'same' if same else 'DIFFERENT'}")
        if not same:
            for i, (x, y) in enumerate(zip(left, right)):
                if x != y:
                    print(f"  first difference at line {i + 1}:\n  {x[:300]}\n  {y[:300]}")
                    break
    left, right = _arena(a / "arena"), _arena(b / "arena")
    same = left == right
    failures += not same
    print(f"arena/arena.db: {len(left)} rows, {'same' if same else 'DIFFERENT'}")
    return 1 if failures else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", help="directory to write the scenarios' results to")
    parser.add_argument("--compare", nargs=2, metavar=("A", "B"), help="two such directories")
    args = parser.parse_args()
    if args.compare:
        return compare(Path(args.compare[0]), Path(args.compare[1]))
    if not args.out:
        parser.error("give OUT, or --compare A B")
    run_all(Path(args.out).resolve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
