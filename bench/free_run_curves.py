"""Training curves of self-play runs, one line per run: the free-text Kuhn runs by default,
the red-team game's with `--preset redteam`.

`--run TAG=RUN_DIR` keeps the run's config and a few of its metrics (OUT/TAG/config.json and
OUT/TAG/metrics.csv.gz: small enough to commit, unlike metrics.jsonl); RUN_DIR may be OUT/TAG
itself. Then every OUT/*/metrics.csv.gz is drawn into OUT/training.png, and `--window N`
prints each kept metric's mean over consecutive windows of N steps (a Markdown table).

    .venv/bin/python bench/free_run_curves.py --out bench/results/kuhn_free_smollm2 \\
        --run seed1=bench/results/kuhn_free_smollm2/seed1
    .venv/bin/python bench/free_run_curves.py --preset redteam --window 10 \\
        --out bench/results/redteam_selfplay --run seed0=bench/results/redteam_selfplay/seed0
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import shutil
from pathlib import Path

PRESETS = {
    "kuhn": {
        "rollout/invalid_rate": "invalid answers (share of turns)",
        "rollout/response_tokens": "response length (tokens)",
        "rollout/kuhn_poker/return_seat0": "self-play return, seat 0",
        "loss/entropy": "token entropy",
        "loss/magnet_kl": "KL to the magnet",
    },
    "redteam": {
        "rollout/redteam/win_rate_seat0": "Attacker wins (share of games)",
        "rollout/redteam/forfeit_rate": "forfeited games",
        "rollout/redteam/extraction/refused": "Defender refuses extraction",
        "rollout/redteam/benign/refused": "Defender refuses benign",
        "rollout/redteam/extraction/attacker_won": "Attacker wins extraction (judged)",
        "rollout/redteam/benign/attacker_won": "Attacker wins benign (judged)",
    },
}
COLUMNS = PRESETS["kuhn"]


def keep(tag: str, run: Path, out: Path, columns: dict[str, str] = COLUMNS) -> None:
    """OUT/TAG/config.json and the COLUMNS of RUN/metrics.jsonl as OUT/TAG/metrics.csv.gz."""
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x]
    dest = out / tag
    dest.mkdir(parents=True, exist_ok=True)
    if (run / "config.json").resolve() != (dest / "config.json").resolve():
        shutil.copyfile(run / "config.json", dest / "config.json")
    with gzip.open(dest / "metrics.csv.gz", "wt", newline="") as f:
        w = csv.writer(f)
        w.writerow(["step", *columns])
        for r in rows:
            w.writerow([r["step"], *(r.get(k, "") for k in columns)])


def read(path: Path) -> dict[str, list[float]]:
    with gzip.open(path, "rt", newline="") as f:
        rows = list(csv.DictReader(f))
    return {k: [float(r[k]) if r.get(k) else float("nan") for r in rows] for k in rows[0]}


def plot(out: Path, columns: dict[str, str] = COLUMNS) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = {p.parent.name: read(p) for p in sorted(out.glob("*/metrics.csv.gz"))}
    panels = [k for k in columns if any(k in r for r in runs.values())]
    cols = len(panels) if len(panels) <= 5 else 3
    rows = -(-len(panels) // cols)
    fig, grid = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.2 * rows), squeeze=False)
    axes = list(grid.flat)
    for ax, key in zip(axes, panels):
        for tag, r in runs.items():
            if key in r:
                ax.plot(r["step"], r[key], label=tag, linewidth=1)
        ax.set_title(columns[key], fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "training.png", dpi=110)
    return out / "training.png"


def windows(out: Path, columns: dict[str, str], n: int) -> str:
    """Each run's mean of every kept metric over consecutive windows of `n` steps (the mean
    of the steps' values that have it: a step whose games never reached a state has none)."""
    lines = ["| run | steps | " + " | ".join(columns.values()) + " |",
             "|---|---|" + "---|" * len(columns)]  # fmt: skip
    for p in sorted(out.glob("*/metrics.csv.gz")):
        r = read(p)
        steps = [int(s) for s in r["step"]]
        for start in range(0, len(steps), n):
            cells = []
            for key in columns:
                vals = [v for v in r.get(key, [])[start : start + n] if v == v]  # not NaN
                cells.append(f"{sum(vals) / len(vals):.2f}" if vals else "-")
            span = f"{steps[start]}-{steps[min(start + n, len(steps)) - 1]}"
            lines.append(f"| {p.parent.name} | {span} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="bench/results/kuhn_free_smollm2")
    p.add_argument("--run", action="append", default=[], help="TAG=RUN_DIR, repeatable")
    p.add_argument("--preset", choices=sorted(PRESETS), default="kuhn", help="metrics kept")
    p.add_argument("--window", type=int, default=0, help="print means over N-step windows")
    a = p.parse_args()
    out, columns = Path(a.out), PRESETS[a.preset]
    for spec in a.run:
        tag, _, run = spec.partition("=")
        keep(tag, Path(run), out, columns)
    print(plot(out, columns))
    if a.window:
        print(windows(out, columns, a.window))


if __name__ == "__main__":
    main()
