"""Are the words real? The reasonings of a `reasoned` (or free-text) Kuhn Poker run, read from
its kept games (RUN/games.jsonl): per kept step, the share of reasonings that name the seat's
own card (its letter as a word, or jack/queen/king; training logs the same check over all
of a step's turns as `rollout/kuhn_poker/reasoning_names_private`), the share that name
another card, the mean reasoning length, and a few samples from the first and the last kept
step.

    .venv/bin/python bench/reasoning_words.py runs/kuhn_smollm2_reasoned --samples 4

The reasoning is the answer before the cue (`prompts.REASONED_CUE`; in free text, before the
last \\boxed{}). The seat's card is read from the prompt ("your card is K").
"""

from __future__ import annotations

import argparse
import json
import re
from collections import defaultdict
from pathlib import Path

from zerosum.games.openspiel_games import CARD_NAMES
from zerosum.games.parsing import names_any
from zerosum.prompts import REASONED_CUE, reasoning_of

CARD = re.compile(r"your card is ([JQK])")


def names(text: str, card: str) -> bool:
    """Whether `text` names `card`, as the run's `reasoning_names_private` measure reads it."""
    return names_any(text, (card, CARD_NAMES[card]))


def reasoning(response: str) -> str:
    mode = "reasoned" if REASONED_CUE in response else "free"
    return reasoning_of(response, mode) or ""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("run", type=Path)
    p.add_argument("--samples", type=int, default=4, help="reasonings shown per end")
    a = p.parse_args()
    by_step: dict[int, list[tuple[str, str]]] = defaultdict(list)
    for line in (a.run / "games.jsonl").read_text().splitlines():
        game = json.loads(line)
        for turn in game["turns"]:
            if match := CARD.search(turn["prompt"]):
                by_step[game["step"]].append((match.group(1), reasoning(turn["response"])))
    print("| step | reasonings | name own card | name another card | mean words |")
    print("|---|---|---|---|---|")
    for step, rows in sorted(by_step.items()):
        own = sum(names(r, c) for c, r in rows) / len(rows)
        other = sum(any(names(r, o) for o in CARD_NAMES if o != c) for c, r in rows) / len(rows)
        words = sum(len(r.split()) for _, r in rows) / len(rows)
        print(f"| {step} | {len(rows)} | {own:.2f} | {other:.2f} | {words:.1f} |")
    steps = sorted(by_step)
    for label, step in (("first", steps[0]), ("last", steps[-1])):
        print(f"\nSamples, {label} kept step ({step}):")
        for card, text in by_step[step][: a.samples]:
            print(f"- card {card}: {json.dumps(text.strip())}")


if __name__ == "__main__":
    main()
