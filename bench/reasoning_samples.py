"""What does a model write when it reasons before its Kuhn Poker move, at each temperature?
Reasoned-mode answers (reasoning, the cue, the constrained move) to the first decision of a
few deals, sampled at several reasoning temperatures: the evidence for choosing
`sampling.reasoning_temperature`.

    .venv/bin/python bench/reasoning_samples.py --model smollm2-135m-instruct \\
        --temperatures 1.0,0.7,0.5 --deals 6 --max-new-tokens 24
"""

from __future__ import annotations

import argparse

import torch

from zerosum.engines import SamplingParams, make_engine
from zerosum.games import load_game
from zerosum.hardware import cpu_model
from zerosum.models import load_model
from zerosum.prompts import Prompting, engine_batch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="smollm2-135m-instruct", help="model, checkpoint or run")
    p.add_argument("--temperatures", default="1.0,0.7,0.5")
    p.add_argument("--deals", type=int, default=6, help="first decisions asked (deals 0..)")
    p.add_argument("--max-new-tokens", type=int, default=24, help="the reasoning budget")
    a = p.parse_args()
    model, tokenizer = load_model(a.model, "float32")
    game = load_game("kuhn_poker")
    asking = Prompting(answer_mode="reasoned")
    states = [game.new_episode(seed) for seed in range(a.deals)]
    prompts = [asking.prompt(tokenizer, s, s.current_seat()) for s in states]
    choices = [asking.choices(s) for s in states]
    engine = make_engine("hf", model, tokenizer, max_batch=len(states), seed=0)
    print(
        f"{a.model}, {a.max_new_tokens} reasoning tokens, move at temperature 1.0 ({cpu_model()})"
    )
    for temperature in (float(t) for t in a.temperatures.split(",")):
        params = SamplingParams(1.0, 1.0, a.max_new_tokens, reasoning_temperature=temperature)
        with torch.no_grad():
            answers = asking.answer(
                engine_batch(engine, params), tokenizer, prompts, choices, list(range(len(states)))
            )
        print(f"\nreasoning temperature {temperature}:")
        for state, answer in zip(states, answers):
            card = state.observation(state.current_seat(), False).split("your card is")[-1][:3]
            print(f"- card {card.strip()}: {answer.text!r}")


if __name__ == "__main__":
    main()
