"""The learner's micro-batch planner: a group of prompts too large for one micro-batch cut
where the prompts part (now) against cut by length (before), on two batch shapes:

- `kuhn`: many answers to a few prompts, as in a free-text Kuhn Poker step of
  configs/kuhn_smollm2_free.yaml: every information set of the first two moves (3 cards x 4
  histories = 12 distinct prompts of the default model's chat template with the rules), each
  answered `--answers` times with 24 tokens.
- `dialogue`: one answer per prompt, each seat's prompts extending its previous ones, as in a
  step of configs/adversarial_taboo.yaml: 16 games of 10 messages of 64 tokens after the
  rules (16 x 10 distinct prompts, up to about 900 tokens).

Where the two planners choose the same micro-batches the shape is not timed. Otherwise both
run in turn in one process on the same batch, `--repeats` times each, from the same weights,
in the precision the recipes choose on this CPU (bf16 autocast where the CPU has native
bf16); figures are medians.

    .venv/bin/python bench/bench_prefix_split.py [--answers 16] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Sequence

import torch

MODEL = os.environ.get("ZEROSUM_BENCH_MODEL", "smollm2-135m-instruct")


def kuhn_batch(tokenizer, answers: int, gen: torch.Generator) -> list:
    from zerosum.games import load_game
    from zerosum.prompts import Prompting
    from zerosum.scoring import Sample

    game = load_game("kuhn_poker")
    samples = []
    for deal in range(3):  # seeds 0-2 deal different cards to seat 0
        for history in ([], ["check"], ["bet"], ["check", "bet"]):
            state = game.new_episode(seed=deal)
            for move in history:
                state.apply_action(move)
            prompt = Prompting().prompt(tokenizer, state, state.current_seat())
            for _ in range(answers):
                samples.append(Sample(prompt, words(tokenizer, 24, gen), sign(gen)))
    return samples


def dialogue_batch(tokenizer, gen: torch.Generator, games: int = 16, messages: int = 10) -> list:
    from zerosum.games import load_game
    from zerosum.prompts import Prompting
    from zerosum.scoring import Sample

    rules = Prompting().prompt(tokenizer, load_game("adversarial_taboo").new_episode(0), 0)
    samples = []
    for _ in range(games):
        said: list[int] = []
        for turn in range(messages):
            seat = [turn % 2]  # each seat's prompts extend its own previous ones
            message = words(tokenizer, 64, gen)
            samples.append(Sample(rules + seat + said, message, sign(gen)))
            said = said + message
    return samples


def words(tokenizer, n: int, gen: torch.Generator) -> list[int]:
    return torch.randint(100, tokenizer.vocab_size - 100, (n,), generator=gen).tolist()


def sign(gen: torch.Generator) -> float:
    return 1.0 if torch.rand((), generator=gen) < 0.5 else -1.0


def before(samples: Sequence, budget: int) -> list[list[int]]:
    """The planner before, verbatim: prompts sharing half the median prompt grouped, a group
    too large for the budget cut by length."""
    from zerosum.batching import MIN_SHARED_PREFIX, common_prefix
    from zerosum.scoring import PASS_TOKENS, micro_batches

    prompts = [s.prompt_ids for s in samples]
    need = max(MIN_SHARED_PREFIX, sorted(len(p) for p in prompts)[len(prompts) // 2] // 2)
    order = sorted(range(len(samples)), key=lambda i: prompts[i])
    groups: list[list[int]] = []
    for i in order:
        if groups and common_prefix(prompts[groups[-1][0]], prompts[i]) >= need:
            groups[-1].append(i)
        else:
            groups.append([i])

    def cost(rows: list[int]) -> tuple[int, int]:
        shared = min(common_prefix(prompts[rows[0]], prompts[i]) for i in rows)
        return shared, len(rows) * max(len(samples[i]) - shared for i in rows)

    batches: list[list[int]] = []
    current: list[int] = []
    for group in groups:
        shared, rest = cost(group)
        if rest > budget:
            batches += [current] if current else []
            current = []
            lengths = [len(samples[i]) - shared for i in group]
            batches += [[group[j] for j in b] for b in micro_batches(lengths, budget)]
            continue
        if current:
            both_shared, both_rest = cost(current + group)
            apart = sum(cost(current)) + shared + rest + PASS_TOKENS
            if both_rest <= budget and both_shared + both_rest <= apart:
                current += group
                continue
            batches.append(current)
        current = list(group)
    return batches + ([current] if current else [])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--answers", type=int, default=16, help="answers per Kuhn prompt")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--budget", type=int, default=4096, help="micro_batch_tokens")
    p.add_argument("--shapes", default="kuhn,dialogue")
    args = p.parse_args()

    import zerosum.scoring as scoring_mod
    from zerosum.hardware import cpu_model, resolve_bf16
    from zerosum.learner import Learner, LearnerSettings
    from zerosum.models import load_model

    model, tokenizer = load_model(MODEL)
    bf16, _ = resolve_bf16("auto", torch.device("cpu"))
    gen = torch.Generator().manual_seed(0)
    shapes = {"kuhn": lambda: kuhn_batch(tokenizer, args.answers, gen),
              "dialogue": lambda: dialogue_batch(tokenizer, gen)}  # fmt: skip
    state = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.AdamW(model.parameters(), lr=1e-6)
    settings = LearnerSettings(loss="reinforce", micro_batch_tokens=args.budget, bf16=bf16)
    planners = {"before": lambda s, budget, shared: before(s, budget),
                "now": scoring_mod.plan_micro_batches}  # fmt: skip
    print(
        f"{cpu_model()}, torch threads {torch.get_num_threads()}, "
        f"{'bf16 autocast' if bf16 else 'float32'}, budget {args.budget} tokens"
    )
    print(
        f"{'batch':<10}{'turns':>6}{'planner':>8}{'step s':>8}{'forward tokens':>16}{'passes':>8}"
    )
    for shape in args.shapes.split(","):
        samples = shapes[shape]()
        plans = [
            sorted(map(sorted, plan(samples, args.budget, True))) for plan in planners.values()
        ]
        if plans[0] == plans[1]:  # nothing to time: the same passes over the same rows
            print(
                f"{shape:<10}{len(samples):>6}  both planners: the same {len(plans[0])} "
                "micro-batches"
            )
            continue
        times: dict[str, list[float]] = {k: [] for k in planners}
        stats: dict[str, dict] = {}
        for _ in range(args.repeats):
            for name, plan in planners.items():
                model.load_state_dict(state)
                scoring_mod.plan_micro_batches = plan  # what the learner's `plan_batch` calls
                start = time.perf_counter()
                stats[name] = Learner(model, opt, settings, tokenizer.pad_token_id).step(samples)
                times[name].append(time.perf_counter() - start)
        for name in planners:
            print(
                f"{shape:<10}{len(samples):>6}{name:>8}{statistics.median(times[name]):>8.2f}"
                f"{stats[name]['perf/forward_tokens']:>16.0f}"
                f"{stats[name]['loss/micro_batches']:>8.0f}"
            )
        ratio = statistics.median(times["before"]) / statistics.median(times["now"])
        print(f"{shape}: now {ratio:.2f}x the speed of before")


if __name__ == "__main__":
    main()
