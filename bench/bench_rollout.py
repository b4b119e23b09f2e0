"""Rollout throughput: zerosum's game loop against the bare engine on the same prompts, and
against a one-game-at-a-time loop, at 16 and 64 concurrent games.

Kuhn Poker self-play with the default recipe's settings (configs/kuhn_poker_cpu.yaml: free
answers, temperature 0.7, at most 128 new tokens, the default model in float32). Three ways
to play the same scheduled games:

- zerosum: `play_games` with every game in flight (`max_concurrent` = the number of games).
- bare: the engine alone, called with exactly the prompt batches (and per-answer seeds) the
  game loop sent, recorded from the zerosum run: the cost of generation with no game logic.
- one at a time: `play_games` with `max_concurrent` 1, each game to its end before the next.
- (hf) whole prompts: zerosum's loop with the engine's shared-prefix prefill off.

Per-answer seeds make the three generate the same tokens (checked and printed), so the
ratios compare equal work. Settings are interleaved and repeated in one process; the
one-at-a-time games are timed each and split over the repeats (they take longest).

    .venv/bin/python bench/bench_rollout.py [--repeats 2] [--engine hf]
    .venv-vllm/bin/python bench/bench_rollout.py --engine vllm
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import time

os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
sys.path.insert(0, os.path.dirname(__file__))

from bench_learner import cpu_model, load  # noqa: E402

SIZES = (16, 64)


class Recorder:
    """An engine that records every call (prompts, choices, seeds) and passes it on."""

    def __init__(self, engine):
        self.engine, self.calls = engine, []

    def generate(self, prompts, params, choices=None, seed=0, seeds=None):
        self.calls.append((list(prompts), choices, list(seeds)))
        return self.engine.generate(prompts, params, choices, seeds=seeds)

    def sync_weights(self) -> None:
        self.engine.sync_weights()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--engine", choices=("hf", "vllm"), default="hf")
    p.add_argument(
        "--alone", type=int, default=max(SIZES),
        help="games timed one at a time (the first N); beyond N the per-game mean is scaled",
    )  # fmt: skip
    a = p.parse_args()
    import torch

    from zerosum.config import RolloutConfig
    from zerosum.engines import make_engine
    from zerosum.engines.base import SamplingParams
    from zerosum.models import load_model
    from zerosum.rollout import RolloutSettings, play_games

    model, tokenizer = load_model("smollm2-135m-instruct")
    engine = make_engine(a.engine, model, tokenizer, max_batch=max(SIZES))
    # hf: the same loop with every prompt prefilled whole, to show what the shared prefix buys.
    whole = None
    if a.engine == "hf":
        from zerosum.engines.hf import HFEngine

        whole = HFEngine(model, tokenizer, max_batch=max(SIZES), shared_prefix=False)
    params = SamplingParams(temperature=0.7, top_p=1.0, max_new_tokens=128)
    recipe = RolloutConfig(
        answer_mode="free", parser_fallback="last_mention", invalid_mode="forfeit",
        invalid_loss=-1.5, invalid_win=0.5,
    )  # fmt: skip
    schedule = [("kuhn_poker", 1000 + i) for i in range(max(SIZES))]

    def settings(concurrent: int) -> RolloutSettings:
        return dataclasses.replace(RolloutSettings.from_config(recipe), max_concurrent=concurrent)

    def play(games, concurrent, eng=engine):
        start = time.perf_counter()
        turns, _ = play_games(
            eng, tokenizer, games, params=params, settings=settings(concurrent), seed=0
        )
        return time.perf_counter() - start, turns

    print(f"CPU: {cpu_model()}; torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"engine {a.engine}; load average {load()}")  # fmt: skip
    play(schedule[:4], 4)  # warm-up
    times: dict[str, list[float]] = {}
    tokens: dict[int, int] = {}
    batched: dict[int, list] = {}
    single_s: list[float] = []
    single_turns: list = []
    per_rep = -(-a.alone // a.repeats)
    for rep in range(a.repeats):
        for n in SIZES:
            rec = Recorder(engine)
            t, turns = play(schedule[:n], n, rec)
            times.setdefault(f"zerosum {n}", []).append(t)
            tokens[n] = sum(len(x.response_ids) for x in turns)
            batched[n] = turns
            start = time.perf_counter()
            for prompts, choices, seeds in rec.calls:
                engine.generate(prompts, params, choices, seeds=seeds)
            times.setdefault(f"bare {n}", []).append(time.perf_counter() - start)
            rounds = len(rec.calls)
            if whole is not None:
                times.setdefault(f"whole {n}", []).append(play(schedule[:n], n, whole)[0])
        for game in schedule[: a.alone][rep * per_rep : (rep + 1) * per_rep]:
            t, turns = play([game], 1)
            single_s.append(t)
            single_turns += turns
        print(f"  repeat {rep + 1}/{a.repeats} done; load average {load()}", flush=True)
    alone_games = len(single_s)
    first = [t for t in batched[max(SIZES)] if t.episode < alone_games]
    same = sum(x.response_ids == y.response_ids for x, y in zip(first, single_turns))
    print(
        f"\nturns identical batched vs one at a time: {same}/{len(single_turns)} "
        f"(per-answer seeds; float differences between batch shapes can flip a sample)"
    )
    print(f"engine rounds at {max(SIZES)} games: {rounds}; load average {load()}\n")
    print(f"{'games':>5} {'tokens':>7} {'zerosum s':>9} {'bare s':>7} {'alone s':>8} "
          f"{'tok/s':>7} {'vs bare':>8} {'vs alone':>9}")  # fmt: skip
    for n in SIZES:
        z = statistics.median(times[f"zerosum {n}"])
        b = statistics.median(times[f"bare {n}"])
        if whole is not None:
            w = statistics.median(times[f"whole {n}"])
            print(f"{n:>5} games, every prompt prefilled whole: {w:.1f} s "
                  f"(the shared prefix: {w / z:.2f}x)")  # fmt: skip
        # Beyond the games timed alone: their mean time per game, times n (marked ~).
        alone = sum(single_s[:n]) if n <= alone_games else statistics.mean(single_s) * n
        mark = "" if n <= alone_games else "~"
        print(f"{n:>5} {tokens[n]:>7} {z:>9.1f} {b:>7.1f} {mark + f'{alone:.1f}':>8} "
              f"{tokens[n] / z:>7.1f} {b / z:>7.2f}x {mark + f'{alone / z:.2f}x':>9}")  # fmt: skip


if __name__ == "__main__":
    main()
