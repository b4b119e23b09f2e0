"""A language model as a player: a checkpoint as a fixed opponent (`model:PATH`), a pool's
fixed member, an arena player. It asks and reads exactly as its `Prompting` says (the answer
mode, the prompt format, the rules, the parser fallback), so a checkpoint trained with
constrained answers and plain prompts plays with those; how it samples is up to the caller,
who hands it a `generate` function (one engine of its own, or the arena's shared sampler).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from zerosum.engines.base import Engine, Generation, SamplingParams
from zerosum.engines.hf import HFEngine
from zerosum.games.base import GameState
from zerosum.models import load_model
from zerosum.players.base import Move, Usage
from zerosum.prompts import Prompting

# One answer to (prompt token ids, allowed answers or None, seed).
Generate = Callable[[list[int], "list[str] | None", int], Generation]
# How a model player samples unless told otherwise: SPIRAL's evaluation sampling.
EVAL_PARAMS = SamplingParams(temperature=0.6, top_p=0.95)


class ModelPlayer:
    """Answers each turn with one sample from `generate`, seeded from the game's RNG."""

    def __init__(self, name: str, tokenizer, generate: Generate, prompting: Prompting):
        self.name = name
        self.tokenizer = tokenizer
        self.generate = generate
        self.prompting = prompting

    def act(self, state: GameState, rng: np.random.Generator, feedback: str | None = None) -> Move:
        asking = self.prompting
        prompt = asking.prompt(self.tokenizer, state, state.current_seat(), feedback)

        def generate(prompts, choices, seeds, reasoning=False):  # one request at a time
            return [self.generate(prompts[0], choices[0] if choices else None, seeds[0])]

        choices = None if (legal := asking.choices(state)) is None else [legal]
        (gen,) = asking.answer(
            generate, self.tokenizer, [prompt], choices, [int(rng.integers(2**31))]
        )
        action, reason = asking.read(gen.text, state.legal_actions())
        return Move(action, gen.text, reason, Usage(len(prompt), len(gen.token_ids), "tokenizer"))


def engine_generate(engine: Engine, params: SamplingParams) -> Generate:
    """`Generate` of one request at a time through `engine`."""

    def generate(prompt: list[int], choices: list[str] | None, seed: int) -> Generation:
        allowed = None if choices is None else [choices]
        return engine.generate([prompt], params, allowed, seed=seed)[0]

    return generate


def load_model_player(
    name_or_path: str, prompting: Prompting, params: SamplingParams = EVAL_PARAMS
) -> ModelPlayer:
    """The model at `name_or_path` (an HF id, a checkpoint or a run directory) with an engine
    of its own, named `model:NAME_OR_PATH`."""
    model, tokenizer = load_model(name_or_path)
    engine = HFEngine(model, tokenizer)
    return ModelPlayer(
        f"model:{name_or_path}", tokenizer, engine_generate(engine, params), prompting
    )
