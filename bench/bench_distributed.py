"""Scale-out on one machine: the Ray backend (rollout workers, learner ranks, async mode)
against the local backend, on the default recipe.

Every setting is `zerosum train` of configs/kuhn_poker_cpu.yaml (SmolLM2-135M-Instruct,
Kuhn Poker, free text, 8 games a step) for `--steps` steps in a child process, with
responses capped at 64 tokens instead of 128 so a setting takes minutes. Settings run in
turn (repeated with `--repeats`); the first step of each run is left out (warm-up), and
the figures are means over the remaining steps of each run's own `perf/` metrics:

- rollout: `perf/rollout_s` and generated tokens per second (`perf/gen_tokens_per_s`);
- learner: `perf/learn_s` (the learner ranks' update, the same batch in every sync setting:
  the games of a step are a function of the seed, whoever plays them);
- step: rollout + learn + weight sync (`perf/weight_sync_s`), and steps per hour from it.

    .venv/bin/python bench/bench_distributed.py [--steps 4] [--repeats 1]

Ray workers run one torch thread each (Ray sets OMP_NUM_THREADS to an actor's CPUs); the
train process (the learner's rank 0) keeps torch's default. On 2 cores the settings compete
for the same two cores, which caps any gain: see BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_learner import cpu_model, load  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SHORT = ["sampling.max_new_tokens=64"]
RAY = ["distributed.backend=ray"]
SETTINGS = {
    "local": [],
    "ray sync, 1 worker": [*RAY, "distributed.rollout_workers=1"],
    "ray sync, 2 workers": [*RAY, "distributed.rollout_workers=2"],
    "ray sync, 2 workers, 2 ranks": [
        *RAY,
        "distributed.rollout_workers=2",
        "distributed.learner_ranks=2",
    ],  # fmt: skip
    "ray async, 2 workers": [
        *RAY,
        "distributed.rollout_workers=2",
        "distributed.mode=async",
        "distributed.max_staleness=1",
    ],  # fmt: skip
}


def train_run(run_dir: Path, overrides: list[str], steps: int) -> tuple[list[dict], float]:
    """`zerosum train` of the default recipe with `overrides` in a child process; its
    metrics rows and wall-clock seconds."""
    cmd = [
        sys.executable, "-m", "zerosum.cli", "train", "--config", "configs/kuhn_poker_cpu.yaml",
        "--overwrite", f"run.out_dir={run_dir}", f"run.steps={steps}", "run.progress=false",
        "run.checkpoint_every=0", *overrides,
    ]  # fmt: skip
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    took = time.perf_counter() - start
    if done.returncode:
        sys.exit(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return rows, took


def run_settings(
    settings: dict[str, list[str]], steps: int, repeats: int
) -> dict[str, list[list[dict]]]:
    """Every setting's `train_run` (name -> overrides), in turn and `repeats` times, each in
    its own temporary run directory; per setting, the metrics rows of each of its runs."""
    print(f"CPU: {cpu_model()}; load average {load()}", flush=True)
    runs: dict[str, list[list[dict]]] = {name: [] for name in settings}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(repeats):
            for name, overrides in settings.items():
                run_dir = Path(tmp) / name.replace(" ", "_").replace(",", "")
                rows, took = train_run(run_dir, overrides, steps)
                runs[name].append(rows)
                print(f"  {name}: {took:.0f} s for {steps} steps; load average {load()}",
                      flush=True)  # fmt: skip
    return runs


def step_seconds(row: dict) -> float:
    return row["perf/rollout_s"] + row["perf/learn_s"] + row.get("perf/weight_sync_s", 0.0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--repeats", type=int, default=1)
    a = p.parse_args()
    runs = run_settings({n: [*SHORT, *o] for n, o in SETTINGS.items()}, a.steps, a.repeats)
    # Step 1 of every run is left out: it warms up (allocator, threads, first sync).
    rows = {name: [r for run in got for r in run[1:]] for name, got in runs.items()}
    base = rows["local"]
    mean = statistics.mean

    def of(name: str, key) -> float:
        return mean(key(r) for r in rows[name])

    print(
        f"\n{'setting':<30} {'rollout s':>9} {'gen tok/s':>9} {'learn s':>8} {'step s':>7} "
        f"{'steps/h':>7} {'vs local':>8}"
    )
    for name in SETTINGS:
        step = of(name, step_seconds)
        print(
            f"{name:<30} {of(name, lambda r: r['perf/rollout_s']):>9.1f} "
            f"{of(name, lambda r: r['perf/gen_tokens_per_s']):>9.1f} "
            f"{of(name, lambda r: r['perf/learn_s']):>8.1f} {step:>7.1f} {3600 / step:>7.0f} "
            f"{mean(step_seconds(r) for r in base) / step:>7.2f}x"
        )
    same = all(
        {k: v for k, v in x.items() if k.startswith("rollout/")}
        == {k: v for k, v in y.items() if k.startswith("rollout/")}
        for x, y in zip(rows["local"], rows["ray sync, 2 workers"])
    )
    print(f"\nsync on Ray played the local run's games (rollout/ metrics equal): {same}")
    print(f"load average {load()}")


if __name__ == "__main__":
    main()
