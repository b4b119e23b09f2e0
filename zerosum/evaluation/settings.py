"""The settings of `zerosum eval`: one typed field per command-line flag (the flags, their
help and their checks are generated from these fields), stored whole in the results JSON.

A default that a training run's `eval` section also has is declared here once; `EvalConfig`
refers to it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from zerosum.engines.base import TEMPERATURE, EngineName
from zerosum.games.parsing import Fallback
from zerosum.players import PLAYER_SPECS
from zerosum.players.model import EVAL_PARAMS
from zerosum.prompts import (
    ENABLE_THINKING_HELP,
    PROMPT_FORMAT_HELP,
    REASONING_PREFIX_HELP,
    AnswerMode,
    PromptFormat,
    Prompting,
)
from zerosum.rollout import RolloutSettings
from zerosum.typed_config import POSITIVE, PROBABILITY, SEED, fld

SEED_HELP = "run seed in [0, 2**32); game i is seeded with a hash of (seed, i)"


@dataclass
class EvalSettings:
    """One `zerosum eval` run."""

    model: str = fld(
        dataclasses.MISSING, "HF id, local path, run directory or checkpoint model directory"
    )
    games: list[str] = fld([], "comma-separated game names (see `zerosum games`)")
    opponents: list[str] = fld(["random"], f"comma-separated: {', '.join(PLAYER_SPECS)}")
    n: int = fld(100, "games per (game, opponent); seats alternate", POSITIVE)
    seed: int = fld(0, SEED_HELP, SEED)
    answer_mode: AnswerMode = fld(
        Prompting.answer_mode,
        "free: reason then \\boxed{move}; constrained: the reply is only a legal move (and the "
        "policy of kuhn_poker and leduc_poker is read exactly); reasoned: reason in words "
        "(max_new_tokens), then a legal move decoded after a cue",
    )
    temperature: float = fld(
        EVAL_PARAMS.temperature, "sampling temperature; 0 is greedy decoding", TEMPERATURE
    )
    top_p: float = fld(
        EVAL_PARAMS.top_p,
        "nucleus sampling mass in (0, 1] (greedy decoding: --temperature 0)",
        PROBABILITY,
    )
    max_new_tokens: int = fld(
        EVAL_PARAMS.max_new_tokens,
        "cap per free-text turn (constrained answers are never cut)",
        POSITIVE,
    )
    max_concurrent: int = fld(RolloutSettings.max_concurrent, "games in flight", POSITIVE)
    engine: EngineName = fld(
        "hf",
        "generation engine (vllm: pip install 'zerosum[vllm]', 2-4x faster sampling on "
        "batches; seeded samples differ from hf)",
    )
    vllm_eager: bool = fld(
        True,
        "vllm: torch.compile the model (slow start; pays off after about 100k tokens)",
        flag="--vllm-compile",
    )
    device: str = fld("auto", "auto (a CUDA GPU if one is visible), cpu, cuda[:N]")
    parser_fallback: Fallback = fld(
        Prompting.parser_fallback, "without \\boxed{}: what else counts as the answer"
    )
    include_rules: bool = fld(
        Prompting.include_rules, "leave the rules out of prompts", flag="--no-rules"
    )
    prompt_format: PromptFormat = fld(Prompting.prompt_format, PROMPT_FORMAT_HELP)
    enable_thinking: bool | None = fld(Prompting.enable_thinking, ENABLE_THINKING_HELP)
    reasoning_prefix: str = fld(Prompting.reasoning_prefix, REASONING_PREFIX_HELP)
    max_turns: int = fld(RolloutSettings.max_turns, "longer games are draws", POSITIVE)
    exploit_k: int = fld(
        8,
        "free mode: sampled answers per information set for exploitability (kuhn, leduc)",
        POSITIVE,
    )
    math: list[str] = fld(
        [],
        "comma-separated benchmarks: packaged names (math500, gsm8k, aime24, amc23), JSONL "
        "files or hf:NAME[:CONFIG]:SPLIT",
    )
    math_k: int = fld(1, "samples per math problem (pass@1)", POSITIVE)
    limit: int | None = fld(None, "only the first N problems of each benchmark", POSITIVE)

    @property
    def prompting(self) -> Prompting:
        """How the model (and `model:PATH` opponents) are asked and read; its six settings
        stay flat fields here, as they are flags and keys of the results' settings."""
        return Prompting(
            answer_mode=self.answer_mode, prompt_format=self.prompt_format,
            include_rules=self.include_rules, parser_fallback=self.parser_fallback,
            enable_thinking=self.enable_thinking, reasoning_prefix=self.reasoning_prefix,
        )  # fmt: skip
