"""Generation throughput: the `vllm` engine against the `hf` engine, side by side in one run.

Same model (the default SmolLM2-135M-Instruct, float32), same game prompts (first moves of
several games, from `zerosum.prompts.Prompting.prompt`), 64 new tokens, temperature 1.0,
batch 16 and 64. Throughput counts generated tokens (responses may stop early at end-of-sequence).
Two vLLM configurations, each in a child process beside its own hf measurement: the default
(torch.compile) and `enforce_eager=True`, with their start times. Also reports how far vLLM's
sampling log-probabilities are from the learner's own.

    .venv-vllm/bin/python bench/bench_engines.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")

GAMES = ("kuhn_poker", "tic_tac_toe", "leduc_poker", "connect_four")


def game_prompts(tokenizer, n: int) -> list[list[int]]:
    """`n` first-move prompts cycling over games and deals (free-answer mode, chat template)."""
    from zerosum.games import load_game
    from zerosum.prompts import Prompting

    out = []
    for i in range(n):
        state = load_game(GAMES[i % len(GAMES)]).new_episode(seed=i)
        out.append(Prompting().prompt(tokenizer, state, state.current_seat()))
    return out


def throughput(engine, prompts, params, seed: int) -> tuple[float, list]:
    start = time.perf_counter()
    gens = engine.generate(prompts, params, seed=seed)
    return sum(len(g.token_ids) for g in gens) / (time.perf_counter() - start), gens


def measure(eager: bool) -> dict:
    """hf and one vllm engine side by side in this process (one vLLM engine per process)."""
    import torch

    from zerosum.engines.base import SamplingParams
    from zerosum.engines.hf import HFEngine
    from zerosum.engines.vllm import VLLMEngine
    from zerosum.models import load_model
    from zerosum.scoring import Sample, response_logprobs

    model, tokenizer = load_model("smollm2-135m-instruct")
    hf = HFEngine(model, tokenizer, max_batch=64)
    params = SamplingParams(temperature=1.0, max_new_tokens=64)
    warm = game_prompts(tokenizer, 4)
    # vLLM's CPU worker pins OpenMP threads when it starts: check hf is not slowed by it.
    hf.generate(warm, SamplingParams(max_new_tokens=4))
    out = {"hf_16_before_vllm": throughput(hf, game_prompts(tokenizer, 16), params, seed=16)[0]}
    start = time.perf_counter()
    vllm = VLLMEngine(model, tokenizer, max_batch=64, enforce_eager=eager)
    out["start_s"] = time.perf_counter() - start
    hf.generate(warm, SamplingParams(max_new_tokens=4))
    vllm.generate(warm, SamplingParams(max_new_tokens=4))
    for batch in (16, 64):
        prompts = game_prompts(tokenizer, batch)
        out[f"hf_{batch}"], _ = throughput(hf, prompts, params, seed=batch)
        out[f"vllm_{batch}"], gens = throughput(vllm, prompts, params, seed=batch)
    samples = [Sample(p, g.token_ids, 0.0) for p, g in zip(prompts[:16], gens[:16])]
    with torch.no_grad():
        logp, _, _, _ = response_logprobs(model, samples, 1.0, tokenizer.pad_token_id)
    out["logprob_gap"] = max(
        float((logp[i, : len(g.token_ids)] - torch.tensor(g.logprobs)).abs().max())
        for i, g in enumerate(gens[:16])
    )
    return out


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        print(json.dumps(measure(eager=sys.argv[2] == "eager")))
        return
    results = {}
    for mode in ("compiled", "eager"):  # enforce_eager=False (vLLM's default) and True
        cmd = [sys.executable, __file__, "--child", mode]
        run = subprocess.run(cmd, capture_output=True, text=True, check=True)
        results[mode] = json.loads(run.stdout.strip().splitlines()[-1])
    print(f"{'vllm mode':>9} {'start s':>8} {'batch':>5} {'hf tok/s':>9} {'vllm tok/s':>11} "
          f"{'ratio':>6}")  # fmt: skip
    for mode, r in results.items():
        for batch in (16, 64):
            hf, vl = r[f"hf_{batch}"], r[f"vllm_{batch}"]
            print(f"{mode:>9} {r['start_s']:>8.1f} {batch:>5} {hf:>9.1f} {vl:>11.1f} "
                  f"{vl / hf:>5.2f}x")  # fmt: skip
    for mode, r in results.items():
        print(f"{mode}: hf batch 16 before vLLM starts {r['hf_16_before_vllm']:.1f} tok/s; "
              f"max |vllm - learner| token logprob (16 responses, float32) "
              f"{r['logprob_gap']:.2e}")  # fmt: skip


if __name__ == "__main__":
    main()
