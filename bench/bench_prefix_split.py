"""Many answers to a few prompts: the learner's step when a too-large group of prompts is cut
where the prompts part (each micro-batch runs its whole prompt once), against the same step
when it is cut by length (each micro-batch shares only the chat template and the rules).

The batch looks like a free-text Kuhn Poker step of configs/kuhn_smollm2_free.yaml: every
information set of the first two moves (3 cards x 4 histories = 12 distinct prompts of the
default model's chat template with the rules), each answered `--answers` times with 24
sampled-looking tokens. Both planners run in turn in one process, `--repeats` times each,
with the same weights restored before each step; figures are medians.

    .venv/bin/python bench/bench_prefix_split.py [--answers 16] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

MODEL = os.environ.get("ZEROSUM_BENCH_MODEL", "smollm2-135m-instruct")


def make_batch(tokenizer, answers: int, seed: int = 0) -> list:
    from zerosum.games import load_game
    from zerosum.prompts import build_prompt
    from zerosum.scoring import Sample

    gen = torch.Generator().manual_seed(seed)
    game = load_game("kuhn_poker")
    samples = []
    for deal in range(3):  # seeds 0-2 deal different cards to seat 0
        for history in ([], ["check"], ["bet"], ["check", "bet"]):
            state = game.new_episode(seed=deal)
            for move in history:
                state.apply_action(move)
            prompt = build_prompt(tokenizer, state, state.current_seat(), "free")
            for _ in range(answers):
                response = torch.randint(100, tokenizer.vocab_size - 100, (24,), generator=gen)
                sign = 1.0 if torch.rand((), generator=gen) < 0.5 else -1.0
                samples.append(Sample(prompt, response.tolist(), sign))
    return samples


def by_length(samples, budget: int) -> list[list[int]]:
    """The planner before: prompts sharing half the median prompt grouped, a group too large
    for the budget cut by length (sharing only the common start of the whole group)."""
    from zerosum.batching import common_prefix
    from zerosum.scoring import micro_batches

    prompts = [s.prompt_ids for s in samples]
    order = sorted(range(len(samples)), key=lambda i: prompts[i])
    shared = min(common_prefix(prompts[order[0]], prompts[i]) for i in order)
    lengths = [len(samples[i]) - shared for i in order]
    return [[order[j] for j in b] for b in micro_batches(lengths, budget)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--answers", type=int, default=16, help="answers per prompt")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--budget", type=int, default=4096, help="micro_batch_tokens")
    args = p.parse_args()

    import zerosum.learner as learner_mod
    from zerosum.hardware import cpu_model
    from zerosum.learner import Learner, LearnerSettings
    from zerosum.models import load_model

    model, tokenizer = load_model(MODEL)
    samples = make_batch(tokenizer, args.answers)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.AdamW(model.parameters(), lr=1e-6)
    settings = LearnerSettings(micro_batch_tokens=args.budget)
    planners = {"cut where prompts part": learner_mod.plan_micro_batches, "cut by length": None}
    planners["cut by length"] = lambda s, budget, shared: by_length(s, budget)
    times: dict[str, list[float]] = {k: [] for k in planners}
    tokens: dict[str, float] = {}
    passes: dict[str, float] = {}
    for _ in range(args.repeats):
        for name, plan in planners.items():
            model.load_state_dict(state)
            learner_mod.plan_micro_batches = plan
            start = time.perf_counter()
            stats = Learner(model, opt, settings, tokenizer.pad_token_id).step(samples)
            times[name].append(time.perf_counter() - start)
            tokens[name] = stats["perf/forward_tokens"]
            passes[name] = stats["loss/micro_batches"]
    print(
        f"{cpu_model()}, torch threads {torch.get_num_threads()}, {len(samples)} turns "
        f"(12 prompts x {args.answers} answers of 24 tokens), budget {args.budget}"
    )
    print(f"{'planner':<24}{'step s':>8}{'forward tokens':>16}{'passes':>8}")
    for name in planners:
        print(
            f"{name:<24}{statistics.median(times[name]):>8.2f}{tokens[name]:>16.0f}"
            f"{passes[name]:>8.0f}"
        )
    before, now = (statistics.median(times[k]) for k in ("cut by length", "cut where prompts part"))
    print(f"speed-up: {before / now:.2f}x")


if __name__ == "__main__":
    main()
