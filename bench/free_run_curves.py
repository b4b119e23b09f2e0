"""Training curves of the free-text Kuhn runs, one line per seed.

`--run TAG=RUN_DIR` keeps the run's config and a few of its metrics (OUT/TAG/config.json and
OUT/TAG/metrics.csv.gz: small enough to commit, unlike metrics.jsonl); RUN_DIR may be OUT/TAG
itself. Then every OUT/*/metrics.csv.gz is drawn into OUT/training.png.

    .venv/bin/python bench/free_run_curves.py --out bench/results/kuhn_free_smollm2 \\
        --run seed1=bench/results/kuhn_free_smollm2/seed1
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import shutil
from pathlib import Path

COLUMNS = {
    "rollout/invalid_rate": "invalid answers (share of turns)",
    "rollout/response_tokens": "response length (tokens)",
    "rollout/kuhn_poker/return_seat0": "self-play return, seat 0",
    "loss/entropy": "token entropy",
    "loss/magnet_kl": "KL to the magnet",
}


def keep(tag: str, run: Path, out: Path) -> None:
    """OUT/TAG/config.json and the COLUMNS of RUN/metrics.jsonl as OUT/TAG/metrics.csv.gz."""
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x]
    dest = out / tag
    dest.mkdir(parents=True, exist_ok=True)
    if (run / "config.json").resolve() != (dest / "config.json").resolve():
        shutil.copyfile(run / "config.json", dest / "config.json")
    with gzip.open(dest / "metrics.csv.gz", "wt", newline="") as f:
        w = csv.writer(f)
        w.writerow(["step", *COLUMNS])
        for r in rows:
            w.writerow([r["step"], *(r.get(k, "") for k in COLUMNS)])


def read(path: Path) -> dict[str, list[float]]:
    with gzip.open(path, "rt", newline="") as f:
        rows = list(csv.DictReader(f))
    return {k: [float(r[k]) if r.get(k) else float("nan") for r in rows] for k in rows[0]}


def plot(out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = {p.parent.name: read(p) for p in sorted(out.glob("*/metrics.csv.gz"))}
    panels = [k for k in COLUMNS if any(k in r for r in runs.values())]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.2))
    for ax, key in zip(axes, panels):
        for tag, r in runs.items():
            if key in r:
                ax.plot(r["step"], r[key], label=tag, linewidth=1)
        ax.set_title(COLUMNS[key], fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "training.png", dpi=110)
    return out / "training.png"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="bench/results/kuhn_free_smollm2")
    p.add_argument("--run", action="append", default=[], help="TAG=RUN_DIR, repeatable")
    a = p.parse_args()
    out = Path(a.out)
    for spec in a.run:
        tag, _, run = spec.partition("=")
        keep(tag, Path(run), out)
    print(plot(out))


if __name__ == "__main__":
    main()
