"""A language model as a fixed player (`model:PATH`), e.g. a checkpoint as an opponent."""

from __future__ import annotations

import numpy as np

from zerosum.config import EvalConfig, Fallback, RolloutConfig, SamplingConfig
from zerosum.engines.base import SamplingParams
from zerosum.games.base import GameState
from zerosum.games.parsing import parse_action
from zerosum.players.base import Move


class ModelPlayer:
    """Answers one turn at a time with its own engine; free-text answers are parsed.

    Sampling defaults to evaluation's (`EvalConfig` temperature and top-p, the config's token
    cap); `fallback` is the parser fallback (`rollout.parser_fallback`)."""

    def __init__(
        self,
        name_or_path: str,
        params: SamplingParams | None = None,
        fallback: Fallback = RolloutConfig.parser_fallback,
    ):
        from zerosum.engines.hf import HFEngine
        from zerosum.models import load_model

        model, tokenizer = load_model(name_or_path)
        self.name = f"model:{name_or_path}"
        self.tokenizer = tokenizer
        self.engine = HFEngine(model, tokenizer)
        self.params = params or SamplingParams(
            EvalConfig.temperature, EvalConfig.top_p, SamplingConfig.max_new_tokens
        )
        self.fallback = fallback

    def act(self, state: GameState, rng: np.random.Generator, feedback: str | None = None) -> Move:
        from zerosum.rollout import build_prompt

        prompt = build_prompt(self.tokenizer, state, state.current_seat(), "free", feedback)
        gen = self.engine.generate([prompt], self.params, seed=int(rng.integers(2**31)))[0]
        parsed = parse_action(gen.text, state.legal_actions(), self.fallback)
        return Move(parsed.action, gen.text, parsed.reason)
