"""The default recipe's training step as it was and as it ships now, side by side: seconds
per step (rollout, learner) and the process's peak resident memory.

"before" is the recipe as it was before the speed work: bf16 autocast forced, 4096-token
micro-batches, every prompt forwarded whole. "now" is configs/kuhn_poker_cpu.yaml as it
is: `optim.bf16: auto` (bf16 only where the CPU multiplies it natively), the micro-batch
budget chosen from bench_learner.py, the shared-prompt-prefix forward and activation
checkpointing. All run the same games (same seed; the first step's batch is identical).
Each is `zerosum train` for `--steps` steps in a child process, in turn, repeated; step 1
is left out (warm-up).

    .venv/bin/python bench/bench_recipe.py [--steps 3] [--repeats 1] [--settings before,now]

"no ckpt" is "now" without activation checkpointing (`optim.activation_checkpointing`, which
the recipe turns on), "now 4096" the recipe at 4096-token micro-batches.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_distributed import run_settings  # noqa: E402
from bench_learner import load  # noqa: E402

SETTINGS = {
    "before": [
        "optim.bf16=true",
        "optim.micro_batch_tokens=4096",
        "optim.shared_prefix=false",
        "optim.activation_checkpointing=false",
    ],
    "now": [],
    # Without activation checkpointing (the recipe turns it on): the memory it saves and the
    # recompute it costs; and with it at a budget only checkpointing leaves room for.
    "no ckpt": ["optim.activation_checkpointing=false"],
    "now 4096": ["optim.micro_batch_tokens=4096"],
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--settings", default=",".join(SETTINGS), help="names of SETTINGS")
    a = p.parse_args()
    names = a.settings.split(",")
    runs = run_settings({n: SETTINGS[n] for n in names}, a.steps, a.repeats)
    rows = {name: [r for run in got for r in run[1:]] for name, got in runs.items()}
    peak = {
        name: max(r["perf/peak_rss_gib"] for run in got for r in run) for name, got in runs.items()
    }
    mean = statistics.mean
    print(f"\n{'recipe':<7} {'rollout s':>9} {'learn s':>8} {'step s':>7} {'peak RSS GiB':>13}")
    step = {}
    for name in names:
        roll = mean(r["perf/rollout_s"] for r in rows[name])
        learn = mean(r["perf/learn_s"] for r in rows[name])
        step[name] = roll + learn
        print(f"{name:<7} {roll:>9.1f} {learn:>8.1f} {step[name]:>7.1f} {peak[name]:>13.2f}")
    learn = {n: mean(r["perf/learn_s"] for r in rows[n]) for n in names}
    base = "before" if "before" in names else names[0]
    for name in names:
        if name != base:
            print(f"{name} vs {base}: step {step[base] / step[name]:.2f}x faster, learner "
                  f"{learn[base] / learn[name]:.2f}x, peak RSS {peak[name] - peak[base]:+.2f} GiB")  # fmt: skip
    print(f"load average {load()}")


if __name__ == "__main__":
    main()
