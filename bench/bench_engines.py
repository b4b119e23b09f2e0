"""Generation throughput: the `vllm` engine against the `hf` engine, side by side in one run.

Same model (the default SmolLM2-135M-Instruct, float32), same game prompts (first moves of
several games, from `zerosum.rollout.build_prompt`), 64 new tokens, temperature 1.0, batch 16
and 64. Throughput counts generated tokens (responses may stop early at end-of-sequence).
Also reports how far vLLM's sampling log-probabilities are from the learner's own.

    /work/main/.venv-vllm/bin/python bench/bench_engines.py
"""

from __future__ import annotations

import os
import time

os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")

GAMES = ("kuhn_poker", "tic_tac_toe", "leduc_poker", "connect_four")


def game_prompts(tokenizer, n: int) -> list[list[int]]:
    """`n` first-move prompts cycling over games and deals (free-answer mode, chat template)."""
    from zerosum.games import load_game
    from zerosum.rollout import build_prompt

    out = []
    for i in range(n):
        state = load_game(GAMES[i % len(GAMES)]).new_episode(seed=i)
        out.append(build_prompt(tokenizer, state, state.current_seat(), "free"))
    return out


def throughput(engine, prompts, params, seed: int) -> tuple[float, list]:
    start = time.perf_counter()
    gens = engine.generate(prompts, params, seed=seed)
    return sum(len(g.token_ids) for g in gens) / (time.perf_counter() - start), gens


def main() -> None:
    import torch

    from zerosum.engines.base import SamplingParams
    from zerosum.engines.hf import HFEngine
    from zerosum.engines.vllm import VLLMEngine
    from zerosum.learner import Sample, response_logprobs
    from zerosum.models import load_model

    model, tokenizer = load_model("smollm2-135m-instruct")
    hf = HFEngine(model, tokenizer, max_batch=64)
    params = SamplingParams(temperature=1.0, max_new_tokens=64)
    # vLLM's CPU worker pins OpenMP threads when it starts: check hf is not slowed by it.
    hf.generate(game_prompts(tokenizer, 4), SamplingParams(max_new_tokens=4))
    alone, _ = throughput(hf, game_prompts(tokenizer, 16), params, seed=16)
    print(f"hf batch 16 before vLLM starts: {alone:.1f} tok/s")
    start = time.perf_counter()
    vllm = VLLMEngine(model, tokenizer, max_batch=64)
    print(f"vllm engine start: {time.perf_counter() - start:.1f} s")
    warm = game_prompts(tokenizer, 4)
    hf.generate(warm, SamplingParams(max_new_tokens=4))
    vllm.generate(warm, SamplingParams(max_new_tokens=4))
    print(f"{'batch':>5} {'hf tok/s':>9} {'vllm tok/s':>11} {'ratio':>6}")
    for batch in (16, 64):
        prompts = game_prompts(tokenizer, batch)
        hf_tps, _ = throughput(hf, prompts, params, seed=batch)
        vllm_tps, gens = throughput(vllm, prompts, params, seed=batch)
        print(f"{batch:>5} {hf_tps:>9.1f} {vllm_tps:>11.1f} {vllm_tps / hf_tps:>5.2f}x")
    samples = [Sample(p, g.token_ids, 0.0) for p, g in zip(prompts[:16], gens[:16])]
    with torch.no_grad():
        logp, mask, _ = response_logprobs(model, samples, 1.0, tokenizer.pad_token_id)
    gap = max(
        float((logp[i, : len(g.token_ids)] - torch.tensor(g.logprobs)).abs().max())
        for i, g in enumerate(gens[:16])
    )
    print(f"max |vllm - learner| token logprob (16 responses, float32): {gap:.2e}")


if __name__ == "__main__":
    main()
