"""What does a model write when it reasons before its Kuhn Poker move, at each temperature?
Reasoned-mode answers (reasoning, the cue, the constrained move) to the first decision of a
few deals, sampled at several reasoning temperatures: the evidence for choosing
`sampling.reasoning_temperature` and `rollout.reasoning_prefix`. Per temperature, the share of
reasonings naming the seat's own card (as training's `reasoning_names_private` reads it) and
the first `--show` answers.

    .venv/bin/python bench/reasoning_samples.py --model smollm2-135m-instruct \\
        --temperatures 1.0,0.7,0.5 --deals 6 --max-new-tokens 24
    .venv/bin/python bench/reasoning_samples.py --temperatures 0.7,0.3 --deals 24 --show 4 \\
        --max-new-tokens 16 --prefix "My card is"
"""

from __future__ import annotations

import argparse

import torch

from zerosum.engines import SamplingParams, make_engine
from zerosum.games import load_game
from zerosum.games.parsing import names_any
from zerosum.hardware import cpu_model
from zerosum.models import load_model
from zerosum.prompts import Prompting, engine_batch, reasoning_of


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="smollm2-135m-instruct", help="model, checkpoint or run")
    p.add_argument("--temperatures", default="1.0,0.7,0.5")
    p.add_argument("--deals", type=int, default=6, help="first decisions asked (deals 0..)")
    p.add_argument("--max-new-tokens", type=int, default=24, help="the reasoning budget")
    p.add_argument("--prefix", default="", help="rollout.reasoning_prefix")
    p.add_argument("--show", type=int, default=0, help="answers shown (0: all)")
    a = p.parse_args()
    model, tokenizer = load_model(a.model, "float32")
    game = load_game("kuhn_poker")
    asking = Prompting(answer_mode="reasoned", reasoning_prefix=a.prefix)
    states = [game.new_episode(seed) for seed in range(a.deals)]
    prompts = [asking.prompt(tokenizer, s, s.current_seat()) for s in states]
    choices = [asking.choices(s) for s in states]
    engine = make_engine("hf", model, tokenizer, max_batch=len(states), seed=0)
    print(
        f"{a.model}, {a.max_new_tokens} reasoning tokens, prefix {a.prefix!r}, move at "
        f"temperature 1.0 ({cpu_model()})"
    )
    for temperature in (float(t) for t in a.temperatures.split(",")):
        params = SamplingParams(1.0, 1.0, a.max_new_tokens, reasoning_temperature=temperature)
        with torch.no_grad():
            answers = asking.answer(
                engine_batch(engine, params), tokenizer, prompts, choices, list(range(len(states)))
            )
        words = [s.private_words(s.current_seat()) for s in states]  # ("K", "king")
        named = sum(
            names_any(reasoning_of(answer.text, "reasoned") or "", card)
            for card, answer in zip(words, answers)
        )
        print(f"\nreasoning temperature {temperature}: names its own card {named}/{len(states)}")
        for card, answer in list(zip(words, answers))[: a.show or None]:
            print(f"- card {card[0]}: {a.prefix + answer.text!r}")


if __name__ == "__main__":
    main()
