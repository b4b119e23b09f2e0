"""Are the words real? The reasonings of a `reasoned` (or free-text) Kuhn Poker run, read from
its kept games (RUN/games.jsonl): per kept step, the share of reasonings that name the seat's
own card (its letter as a word, or jack/queen/king), the share that name another card, the
mean reasoning length, and a few samples from the first and the last kept step.

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

from zerosum.prompts import REASONED_CUE

NAMES = {"J": "jack", "Q": "queen", "K": "king"}
CARD = re.compile(r"your card is ([JQK])")


def reasoning_of(response: str) -> str:
    if REASONED_CUE in response:
        return response.rsplit(REASONED_CUE, 1)[0]
    return response.rsplit("\\boxed", 1)[0]


def names(text: str, card: str) -> bool:
    """Whether `text` names `card`: the capital letter as a word of its own, or the card's
    name in any case (king, Kings)."""
    letter = re.search(rf"(?<![A-Za-z]){card}(?![A-Za-z])", text)
    return letter is not None or re.search(rf"\b{NAMES[card]}s?\b", text, re.IGNORECASE) is not None


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
                by_step[game["step"]].append((match.group(1), reasoning_of(turn["response"])))
    print("| step | reasonings | name own card | name another card | mean words |")
    print("|---|---|---|---|---|")
    for step, rows in sorted(by_step.items()):
        own = sum(names(r, c) for c, r in rows) / len(rows)
        other = sum(any(names(r, o) for o in NAMES if o != c) for c, r in rows) / len(rows)
        words = sum(len(r.split()) for _, r in rows) / len(rows)
        print(f"| {step} | {len(rows)} | {own:.2f} | {other:.2f} | {words:.1f} |")
    steps = sorted(by_step)
    for label, step in (("first", steps[0]), ("last", steps[-1])):
        print(f"\nSamples, {label} kept step ({step}):")
        for card, text in by_step[step][: a.samples]:
            print(f"- card {card}: {json.dumps(text.strip())}")


if __name__ == "__main__":
    main()
