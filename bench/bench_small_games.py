"""Small games repeat themselves: the training step with repeated prompts prefilled once and
repeated turns scored once, against the same step without, side by side.

256 Kuhn Poker games deal at most 6 distinct views a round and about 560 turns of which at
most 24 differ. "now" is the code as it ships: the hf engine prefills each distinct prompt
once (`HFEngine._prefill`), the learner merges identical turns into one count-weighted row
(`scoring.merge_duplicates`, exact) and packs prefix groups into one micro-batch when a pass
costs more than the extra tokens (`scoring.PASS_TOKENS`); the engine also writes a
constrained answer's forced tail without decode steps (`HFEngine._finish_forced`), keeps
repeated rows on their copy's KV cache and logits until a decode needs them
(`_Step.materialise`), and the game runner and engine read prompt and legal-action token ids
once (`GameRunner.encoded`, `HFEngine.choice_ids`). The mode labelled "dedup only" switches
these four rollout savings off in-process; "apart" switches all of them off (every prompt
its own row, every turn its own row, groups packed only when that saves tokens). All run the
tiny learning-test recipe (configs/tiny_kuhn_test.yaml) with the same seed, alternately,
`--repeats` times; step 1 is left out (warm-up).

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
import zerosum.scoring as scoring
from zerosum.config import load_config
from zerosum.engines.hf import HFEngine, _Step
from zerosum.rollout import GameRunner
from zerosum.train import train

RECIPE = Path(__file__).resolve().parent.parent / "configs" / "tiny_kuhn_test.yaml"


class _Forgetful(dict):
    """A cache that never hits."""

    def __contains__(self, key) -> bool:
        return False


@contextlib.contextmanager
def dedup_only():
    """The step without the four rollout savings (forced tails, shared rows, token ids)."""
    saved = HFEngine._finish_forced, HFEngine._prefill, HFEngine.__init__, GameRunner.__init__
    engine_init, runner_init, prefill = HFEngine.__init__, GameRunner.__init__, HFEngine._prefill

    def eager_prefill(self, prompts) -> _Step:
        step = prefill(self, prompts)
        step.materialise()  # every row its own cache and logits at once
        return step

    def uncached_engine(self, *args, **kwargs) -> None:
        engine_init(self, *args, **kwargs)
        self.choice_ids = self.choice_ids.__wrapped__  # the engine's own lookup, uncached

    def uncached_runner(self, *args, **kwargs) -> None:
        runner_init(self, *args, **kwargs)
        self.encoded = _Forgetful()

    HFEngine._finish_forced = lambda *a: False
    HFEngine._prefill, HFEngine.__init__ = eager_prefill, uncached_engine
    GameRunner.__init__ = uncached_runner
    try:
        yield
    finally:
        HFEngine._finish_forced, HFEngine._prefill, HFEngine.__init__, GameRunner.__init__ = saved


@contextlib.contextmanager
def apart():
    """The step without any of the savings."""
    saved = learner.merge_duplicates, scoring.PASS_TOKENS
    learner.merge_duplicates = list
    scoring.PASS_TOKENS = 0
    with dedup_only():
        HFEngine._prefill = HFEngine._prefill_rows  # (dedup_only puts the original back)
        try:
            yield
        finally:
            learner.merge_duplicates, scoring.PASS_TOKENS = saved


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
    p.add_argument("--games", default="64,256,1024")
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--repeats", type=int, default=2)
    a = p.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("games | mode | rollout s (median) | learner s (median) | step s | speed-up")
    with tempfile.TemporaryDirectory() as tmp:
        for games in map(int, a.games.split(",")):
            modes = {"apart": apart, "dedup only": dedup_only, "now": contextlib.nullcontext}
            times: dict[str, list[tuple[float, float]]] = {m: [] for m in modes}
            for r in range(a.repeats):
                for mode, switch in modes.items():
                    out = Path(tmp) / f"{games}_{mode.replace(' ', '')}_{r}"
                    with switch():
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
