"""Small games repeat themselves: the training step with repeated prompts prefilled once and
repeated turns scored once, against the same step without, side by side.

256 Kuhn Poker games deal at most 6 distinct views a round and about 560 turns of which at
most 24 differ. "now" is the code as it ships: the hf engine prefills each distinct prompt
once (`HFEngine._prefill`), the learner merges identical turns into one count-weighted row
(`learner.merge_duplicates`, exact) and packs prefix groups into one micro-batch when a pass
costs more than the extra tokens (`learner.PASS_TOKENS`). "apart" switches those three off
in-process (every prompt its own row, every turn its own row, groups packed only when that
saves tokens). Both run the tiny learning-test recipe (configs/tiny_kuhn_test.yaml) with the
same seed, alternately, `--repeats` times; step 1 is left out (warm-up).

    .venv/bin/python bench/bench_small_games.py [--games 64,256] [--steps 6] [--repeats 2]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import tempfile
from pathlib import Path

import torch

import zerosum.learner as learner
from zerosum.config import load_config
from zerosum.engines.hf import HFEngine
from zerosum.train import train

RECIPE = Path(__file__).resolve().parent.parent / "configs" / "tiny_kuhn_test.yaml"


@contextlib.contextmanager
def apart():
    """The step without the three savings."""
    saved = HFEngine._prefill, learner.merge_duplicates, learner.PASS_TOKENS
    HFEngine._prefill = HFEngine._prefill_rows
    learner.merge_duplicates = list
    learner.PASS_TOKENS = 0
    try:
        yield
    finally:
        HFEngine._prefill, learner.merge_duplicates, learner.PASS_TOKENS = saved


def step_times(games: int, steps: int, out: Path) -> tuple[list[float], list[float]]:
    """Rollout and learner seconds of steps 2.. of a fresh run."""
    cfg = load_config(
        RECIPE,
        [
            f"rollout.games_per_step={games}", f"rollout.max_concurrent={games}",
            f"run.steps={steps}", "run.eval_every=0", "eval.nash_conv=[]",
            f"run.out_dir={out}", "run.progress=false", "run.checkpoint_every=0",
        ],
    )  # fmt: skip
    train(cfg)
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()][1:]
    return [r["perf/rollout_s"] for r in rows], [r["perf/learn_s"] for r in rows]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--games", default="64,256")
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--repeats", type=int, default=2)
    a = p.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("games | mode | rollout s (median) | learner s (median) | step s | speed-up")
    with tempfile.TemporaryDirectory() as tmp:
        for games in map(int, a.games.split(",")):
            times: dict[str, list[tuple[float, float]]] = {"apart": [], "now": []}
            for r in range(a.repeats):
                for mode in ("apart", "now"):
                    out = Path(tmp) / f"{games}_{mode}_{r}"
                    with apart() if mode == "apart" else contextlib.nullcontext():
                        roll, learn = step_times(games, a.steps, out)
                    times[mode] += list(zip(roll, learn))
            step = {m: statistics.median(x + y for x, y in t) for m, t in times.items()}
            for mode, t in times.items():
                roll = statistics.median(x for x, _ in t)
                learn = statistics.median(y for _, y in t)
                ratio = step["apart"] / step[mode]
                print(
                    f"{games} | {mode} | {roll:.2f} | {learn:.2f} | {step[mode]:.2f} | {ratio:.1f}x"
                )


if __name__ == "__main__":
    main()
