"""The `hf` engine with and without compaction (finished rows leave the batch and KV cache).

Default model (SmolLM2-135M-Instruct, float32), first-move game prompts in free-answer mode,
temperature 0.7 and 128 new tokens as in the default recipe (configs/kuhn_poker_cpu.yaml), so
responses end at very different steps. Both settings run on the same prompts and seeds in this
process, alternating, best of 2. Samples differ once a row finishes (compaction changes how
the random stream is spent), so the speed-up is the ratio of generated tokens per second.

    .venv/bin/python bench/bench_hf_compaction.py
"""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_engines import game_prompts  # noqa: E402


def main() -> None:
    from zerosum.engines.base import SamplingParams
    from zerosum.engines.hf import HFEngine
    from zerosum.models import load_model

    model, tokenizer = load_model("smollm2-135m-instruct")
    params = SamplingParams(temperature=0.7, max_new_tokens=128)
    engines = {c: HFEngine(model, tokenizer, max_batch=64, compact=c) for c in (False, True)}
    engines[True].generate(game_prompts(tokenizer, 4), SamplingParams(max_new_tokens=4))
    print(f"{'batch':>5} {'compact':>8} {'s':>7} {'tokens':>7} {'tok/s':>7} {'stopped':>8}")
    for batch in (16, 64):
        prompts = game_prompts(tokenizer, batch)
        best = {}
        for _ in range(2):
            for compact, engine in engines.items():
                start = time.perf_counter()
                gens = engine.generate(prompts, params, seed=batch)
                took = time.perf_counter() - start
                if compact not in best or took < best[compact][0]:
                    best[compact] = (took, gens)
        tps = {}
        for compact, (took, gens) in best.items():
            tokens = sum(len(g.token_ids) for g in gens)
            tps[compact] = tokens / took
            stopped = sum(g.finish_reason == "stop" for g in gens)
            print(f"{batch:>5} {compact!s:>8} {took:>7.1f} {tokens:>7} {tps[compact]:>7.1f} "
                  f"{stopped:>5}/{batch}")  # fmt: skip
        print(f"{batch:>5} speed-up (tok/s) {tps[True] / tps[False]:.2f}x")


if __name__ == "__main__":
    main()
