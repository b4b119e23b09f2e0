"""The exact policy read behind NashConv (`eval.nash_conv`, `zerosum eval --answer-mode
constrained`): every information set's legal answers scored by the model, one information set
per forward pass (as before batching) against batches of about 16k padded tokens, with and
without the shared-prefix forward. Leduc Poker has 936 information sets, Kuhn Poker 12.

    .venv/bin/python bench/bench_policy_read.py                       # the tiny test model
    .venv/bin/python bench/bench_policy_read.py --model smollm2-135m-instruct --rules

All settings run in one process, interleaved, best of `--repeats`; the policies they read are
compared (max absolute difference of any action probability).
"""

from __future__ import annotations

import argparse
import os
import time

from zerosum.hardware import cpu_model


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="tiny", help="tiny (the learning test's model) or a model")
    p.add_argument("--game", default="leduc_poker")
    p.add_argument("--rules", action="store_true", help="rules in the prompt (chat format)")
    p.add_argument("--repeats", type=int, default=2)
    a = p.parse_args()
    import torch

    from zerosum.evaluation.policy import states_action_probs
    from zerosum.games import load_game
    from zerosum.models import load_model, load_tokenizer, tiny_model
    from zerosum.prompts import Prompting
    from zerosum.solvers import info_set_states

    if a.model == "tiny":
        tokenizer = load_tokenizer()
        model = tiny_model(tokenizer, hidden_size=256, layers=2, seed=0)
    else:
        model, tokenizer = load_model(a.model)
    model.eval()
    fmt = "chat" if a.rules else "plain"
    asking = Prompting(answer_mode="constrained", prompt_format=fmt, include_rules=a.rules)
    game = load_game(a.game)
    states = [game.state_from_history(s.history()) for s in info_set_states(a.game).values()]
    settings = {
        "one info set per pass": dict(batch_tokens=1),
        "batched, whole prompts": dict(shared_prefix=False),
        "batched, shared prefix": dict(shared_prefix=True),
    }
    best: dict[str, float] = {}
    probs: dict[str, list] = {}
    with torch.no_grad():
        for _ in range(a.repeats):
            for name, kw in settings.items():
                start = time.perf_counter()
                probs[name] = states_action_probs(model, tokenizer, states, 1.0, asking, **kw)
                best[name] = min(best.get(name, float("inf")), time.perf_counter() - start)
    print(f"CPU: {cpu_model()}; {torch.get_num_threads()} threads; load {os.getloadavg()[0]:.2f}")
    print(f"{a.game}: {len(states)} information sets, model {a.model}, prompt format {fmt}")
    base = settings and next(iter(best))
    for name, t in best.items():
        diff = max(abs(x[k] - y[k]) for x, y in zip(probs[name], probs[base]) for k in x)
        print(f"  {name:<24} {t:7.2f} s  {best[base] / t:5.1f}x   max |dp| {diff:.1e}")


if __name__ == "__main__":
    main()
