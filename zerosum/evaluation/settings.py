"""The settings of `zerosum eval`, a light module (the command line reads its defaults).

Every default that a training run's config also has is the config's own (`EvalConfig`,
`RolloutConfig`, `SamplingConfig`, `ModelConfig`); the rest (math, exploitability sampling)
exists only here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from zerosum.config import (
    AnswerMode,
    EngineName,
    EvalConfig,
    Fallback,
    ModelConfig,
    PromptFormat,
    RolloutConfig,
    SamplingConfig,
)


@dataclass
class EvalSettings:
    """One `zerosum eval` run; stored whole in the results JSON."""

    model: str  # HF id, local path, run directory or checkpoint
    games: list[str]
    opponents: list[str]  # player specs
    n: int = EvalConfig.n  # games per (game, opponent), seats alternating
    seed: int = 0
    answer_mode: AnswerMode = RolloutConfig.answer_mode
    temperature: float = EvalConfig.temperature  # 0 is greedy decoding
    top_p: float = EvalConfig.top_p
    max_new_tokens: int = SamplingConfig.max_new_tokens
    max_concurrent: int = RolloutConfig.max_concurrent
    engine: EngineName = "hf"  # vllm: 2-4x faster sampling on batches (BENCHMARKS.md)
    vllm_eager: bool = True  # vllm: skip torch.compile (90-120 s at start on a CPU)
    device: str = ModelConfig.device  # auto: the first CUDA GPU if one is visible, else the CPU
    parser_fallback: Fallback = RolloutConfig.parser_fallback
    include_rules: bool = RolloutConfig.include_rules
    prompt_format: PromptFormat = RolloutConfig.prompt_format
    max_turns: int = RolloutConfig.max_turns
    exploit_k: int = 8  # free mode: sampled answers per information set (kuhn, leduc)
    math: list[str] = field(default_factory=list)  # benchmark names, JSONL files, hf: ids
    math_k: int = 1  # samples per problem
    limit: int | None = None  # first N problems of each benchmark
