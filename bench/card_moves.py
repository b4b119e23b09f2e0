"""Do the moves read the card during training? Kuhn Poker move frequencies by card and spot,
read from a run's kept games (RUN/games.jsonl; keep every game of a kept step with
`run.keep_games` at least `rollout.games_per_step`), pooled over windows of steps so that
each cell has a few dozen moves. A card-blind policy has the same frequencies in every
column of a spot; the equilibrium bets a king more than a jack and folds a jack to a bet.

    .venv/bin/python bench/card_moves.py runs/kuhn_smollm2_reasoned --window 5

Printed as a Markdown table; its last column counts the moves behind each row.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from free_play_evidence import CARDS, KUHN_SPOTS  # noqa: E402
from reasoning_words import CARD  # noqa: E402

# The spot a turn is played from (the public moves before it) -> its label, as the
# evaluation's action-frequency tables name it.
SPOTS = {history: label for label, history, _ in KUHN_SPOTS}


def frequencies(games: list[dict], window: int) -> tuple[dict, dict[int, set[int]]]:
    """{first step of a window: {(spot, card): [aggressive moves, moves]}}, and the kept
    steps each window pools."""
    cells: dict[int, dict] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    steps: dict[int, set[int]] = defaultdict(set)
    for game in games:
        start = (game["step"] - 1) // window * window + 1
        steps[start].add(game["step"])
        history = ""
        for turn in game["turns"]:
            card = CARD.search(turn["prompt"])
            if card is None or history not in SPOTS:
                break
            cell = cells[start][(history, card.group(1))]
            aggressive = turn["move"] in ("bet", "call")
            cell[0] += aggressive
            cell[1] += 1
            history += "b" if aggressive else "p"
    return cells, steps


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("run", type=Path)
    p.add_argument("--window", type=int, default=5, help="steps pooled in one row")
    a = p.parse_args()
    games = [json.loads(line) for line in (a.run / "games.jsonl").open()]
    freq, steps = frequencies([g for g in games if g["game"] == "kuhn_poker"], a.window)
    labels = list(SPOTS.values())
    print("| kept steps | " + " | ".join(f"{label}, J / Q / K" for label in labels) + " | moves |")
    print("|---" * (len(labels) + 2) + "|")
    for start in sorted(freq):
        cells = freq[start]
        row = [
            " / ".join(f"{cells[(h, c)][0] / max(cells[(h, c)][1], 1):.2f}" for c in CARDS)
            for h in SPOTS
        ]
        moves = sum(n for _, n in cells.values())
        kept = ", ".join(map(str, sorted(steps[start])))
        print(f"| {kept} | " + " | ".join(row) + f" | {moves} |")


if __name__ == "__main__":
    main()
