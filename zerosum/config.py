"""The training configuration: typed sections, composed from the layers below, with YAML
recipes and `section.field=value` overrides.

Every field has a default, help text (shown by `zerosum train --help-config`) and, where a
value can be out of range, its bound, declared beside it; a component that consumes a whole
section declares it (`optim`: the learner, `opponents`: the league, `vllm`: the engines) and a
default that a component also has is the component's own. Loading is strict
(`typed_config.load_dataclass`): an unknown key, a value of the wrong type (a bool is not an
int), a float that is not finite or a value out of bounds fails at start with one line naming
the field and what is allowed. The checks across sections that need the games or the players
are `config_checks.check_config`, which the command line and `train` call.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from zerosum.advantage import RAE_DECAY
from zerosum.engines.base import (
    MAX_TEMPERATURE,
    TEMPERATURE,
    EngineName,
    SamplingParams,
    VLLMConfig,
)
from zerosum.evaluation.settings import EvalSettings
from zerosum.games.parsing import Fallback
from zerosum.league import OpponentsConfig
from zerosum.learner import LearnerSettings, OptimConfig
from zerosum.loss import TIS_CAP, Aggregation, LossKind
from zerosum.models import DEVICE_NAME, Dtype, TinyFamily
from zerosum.prompts import (
    ENABLE_THINKING_HELP,
    PROMPT_FORMAT_HELP,
    REASONING_PREFIX_HELP,
    AnswerMode,
    PromptFormat,
    Prompting,
)
from zerosum.rollout import TRAIN_INVALID, InvalidMode, RolloutSettings
from zerosum.typed_config import (
    NON_NEGATIVE,
    POSITIVE,
    PROBABILITY,
    SEED,
    Bound,
    ConfigError,
    check_combination,
    fld,
    ints,
    load_dataclass,
    load_yaml,
    numbers,
    settings_help,
    yaml_problem,
)
from zerosum.wandb_logger import WandbConfig

__all__ = [
    "ConfigError",
    "OpponentsConfig",
    "OptimConfig",
    "TrainConfig",
    "VLLMConfig",
    "WandbConfig",
    "config_from_dict",
    "config_help",
    "config_to_dict",
    "load_config",
]

Regularizer = Literal["none", "magnet"]
Baseline = Literal["seat", "prompt", "role"]
DistBackend = Literal["local", "ray"]
DistMode = Literal["sync", "async"]
PlacementMode = Literal["split", "colocated"]
WeightSync = Literal["object_store", "broadcast"]

# Retired fields: what to write instead (named in the unknown-field error) and the value
# that meant "off", which a run's config.json from an older version holds; set to it, the
# field is dropped silently so such a run resumes unchanged.
RETIRED: dict[str, tuple[str, object]] = {
    "algo.kl_coef": (
        "algo.regularizer: magnet, algo.magnet_alpha: <the coefficient>, algo.magnet_reset: 0 "
        "(a KL penalty to the initial model is a magnet that never moves)",
        0.0,
    ),
}

_f = fld  # the short name of the sections below
_WORKERS = ints(1, 4096)
_DEVICE = Bound(lambda v: DEVICE_NAME.fullmatch(v) is not None, "auto, cpu, cuda or cuda:N")
# Ray's GPU requests: a fraction of one GPU (to 4 decimals) or whole GPUs.
_GPUS = Bound(
    lambda v: 0 < v < 4096 and (v == int(v) if v >= 1 else round(v, 4) == v),
    "null, a fraction in (0, 1) with at most 4 decimals, or a whole number in [1, 4096)",
)


@dataclass
class ModelConfig:
    """`model`: the policy's weights and where the learner runs."""

    name: str = _f(
        "smollm2-135m-instruct", "HF model id, local path, or the packaged default alias"
    )
    dtype: Dtype = _f("float32", "weights dtype of the learner")
    device: str = _f(
        "auto", "learner device: auto (a CUDA GPU if one is visible), cpu, cuda[:N]", _DEVICE
    )
    lora: bool = _f(False, "train a LoRA adapter (PEFT) instead of all weights")
    lora_rank: int = _f(16, "LoRA rank", POSITIVE)
    lora_alpha: int = _f(32, "LoRA alpha", POSITIVE)
    tiny: bool = _f(False, "replace the weights by a tiny randomly initialised model (tests)")
    tiny_hidden_size: int = _f(64, "hidden size of the tiny model", POSITIVE)
    tiny_layers: int = _f(2, "layers of the tiny model", POSITIVE)
    tiny_family: TinyFamily = _f(
        "smollm2",
        "architecture of the tiny model, built from its transformers configuration class: "
        "smollm2 (a Llama with tied embeddings), llama3, qwen3, gemma3",
    )


@dataclass
class SamplingConfig:
    """`sampling`: how self-play answers are sampled."""

    temperature: float = _f(
        SamplingParams.temperature,
        "sampling temperature of rollouts (> 0: policy gradients need sampled moves)",
        numbers(
            0,
            MAX_TEMPERATURE,
            lo_open=True,
            note="(training samples its moves; greedy decoding, temperature 0, is for "
            "eval.temperature)",
        ),  # fmt: skip
    )
    top_p: float = _f(SamplingParams.top_p, "nucleus sampling mass of rollouts", PROBABILITY)
    reasoning_temperature: float | None = _f(
        None,
        "rollout.answer_mode reasoned: the reasoning's sampling temperature (null: "
        "sampling.temperature); the learner scores the reasoning at it, so the policy trained "
        "is the one sampled, and the move keeps sampling.temperature",
        numbers(0, MAX_TEMPERATURE, lo_open=True),
    )
    max_new_tokens: int = _f(
        SamplingParams.max_new_tokens,
        "cap on generated tokens per free-text turn; constrained answers always get the "
        "longest legal action's tokens plus end-of-sequence",
        POSITIVE,
    )


@dataclass
class RolloutConfig:
    """`rollout`: which games are played and how (prompts, answers, invalid moves)."""

    games: dict[str, float] = _f({"kuhn_poker": 1.0}, "games to train on with mixture weights")
    games_per_step: int = _f(16, "complete games played per training step", POSITIVE)
    max_concurrent: int = _f(
        RolloutSettings.max_concurrent, "games in flight at once (one engine batch)", POSITIVE
    )
    max_turns: int = _f(RolloutSettings.max_turns, "turns after which a game is a draw", POSITIVE)
    answer_mode: AnswerMode = _f(
        Prompting.answer_mode,
        "free: reason then \\boxed{move}; constrained: reply is only a legal move; "
        "reasoned: reason in words (max_new_tokens), then a legal move decoded after a cue",
    )
    parser_fallback: Fallback = _f(
        Prompting.parser_fallback,
        "without \\boxed{}: last_bracket takes the last [action]; last_mention also the last "
        "legal action named as a word (in free-text games: the whole answer); none rejects",
    )
    invalid_mode: InvalidMode = _f(TRAIN_INVALID.mode, "invalid-move policy")
    invalid_loss: float = _f(
        TRAIN_INVALID.loss, "return of the seat that forfeits by an invalid move"
    )
    invalid_win: float = _f(TRAIN_INVALID.win, "return of the other seat on a forfeit")
    invalid_retries: int = _f(
        TRAIN_INVALID.retries, "retries before forfeiting, in retry mode", NON_NEGATIVE
    )
    include_rules: bool = _f(Prompting.include_rules, "put the game's rules into every prompt")
    prompt_format: PromptFormat = _f(
        Prompting.prompt_format,
        PROMPT_FORMAT_HELP,
    )
    enable_thinking: bool | None = _f(
        Prompting.enable_thinking,
        ENABLE_THINKING_HELP,
    )
    reasoning_prefix: str = _f(Prompting.reasoning_prefix, REASONING_PREFIX_HELP)

    @property
    def prompting(self) -> Prompting:
        """How the model is asked for its moves and how its answers are read: the section's
        six prompting fields, flat in the config file."""
        return Prompting(
            answer_mode=self.answer_mode, prompt_format=self.prompt_format,
            include_rules=self.include_rules, parser_fallback=self.parser_fallback,
            enable_thinking=self.enable_thinking, reasoning_prefix=self.reasoning_prefix,
        )  # fmt: skip


@dataclass
class AlgoConfig:
    """`algo`: advantages and the policy-gradient loss."""

    loss: LossKind = _f(LearnerSettings.loss, "policy-gradient loss")
    ppo_epochs: int = _f(
        LearnerSettings.epochs, "passes over each batch (one optimizer step each)", POSITIVE
    )
    clip_eps: float = _f(
        LearnerSettings.clip_eps, "PPO ratio clip", numbers(0, 1, lo_open=True, hi_open=True)
    )
    rae: bool = _f(
        True,
        "role-conditioned advantage estimation; off: the advantage is the raw return (with the "
        "default loss, PPO on raw returns)",
    )
    rae_decay: float = _f(RAE_DECAY, "EMA decay of the per-(game, seat) baseline", numbers(0, 1))
    baseline: Baseline = _f(
        "seat",
        "seat: RAE's EMA per (game, seat); prompt: the mean return of the batch's other turns "
        "with the same prompt (leave-one-out), RAE's for a prompt seen once (small games, "
        "where a prompt is an information set: docs: Training); role: MARSHAL's turn-level "
        "return standardised among the batch's turns of the same (game, seat)",
    )
    drop_zero_advantage: bool = _f(True, "drop samples whose advantage is zero")
    aggregation: Aggregation = _f(
        LearnerSettings.aggregation, "token loss: sum / constant (Dr.GRPO) or mean"
    )
    norm_constant: float = _f(
        LearnerSettings.norm_constant, "divisor of the summed token loss", numbers(0, lo_open=True)
    )
    regularizer: Regularizer = _f(
        "none",
        "magnet: add magnet_alpha * KL(policy || magnet) per response token (magnetic mirror "
        "descent); the magnet is a frozen snapshot of the policy (docs: The magnet)",
    )
    magnet_alpha: float = _f(
        0.1, "weight of the KL to the magnet (regularizer: magnet)", numbers(0)
    )
    magnet_reset: int = _f(
        0,
        "replace the magnet by the current policy every N steps (0: keep the initial model)",
        NON_NEGATIVE,
    )
    magnet_anneal_steps: int = _f(
        0,
        "lower the KL weight geometrically from magnet_alpha to magnet_alpha_final over this "
        "many steps, then keep it there (0: a constant magnet_alpha)",
        NON_NEGATIVE,
    )
    magnet_alpha_final: float = _f(
        0.01,
        "magnet_anneal_steps > 0: the KL weight at the end of the annealing",
        numbers(0, lo_open=True),
    )
    entropy_coef: float = _f(
        LearnerSettings.entropy_coef,
        "weight of the entropy bonus (keeps self-play exploring)",
        numbers(0),
    )
    reasoning_weight: float = _f(
        LearnerSettings.reasoning_weight,
        "rollout.answer_mode reasoned: the loss weight of the reasoning's tokens, every term "
        "of them (advantage, entropy, and the magnet KL unless algo.reasoning_kl_weight is "
        "set), the move's being 1 (0: only the move learns)",
        numbers(0, 1),
    )
    reasoning_kl_weight: float | None = _f(
        LearnerSettings.reasoning_kl_weight,
        "rollout.answer_mode reasoned: the magnet KL's own weight on the reasoning's tokens "
        "(null: algo.reasoning_weight); with reasoning_weight 0 and this 1, the magnet holds "
        "the words while only the move learns from the advantage",
        numbers(0, 1, note="or null"),
    )
    move_kl_weight: float = _f(
        LearnerSettings.move_kl_weight,
        "rollout.answer_mode reasoned: the magnet KL's weight on the move's tokens (0 with "
        "algo.magnet_model the base model: the base model holds the words, not the moves)",
        numbers(0, 1),
    )
    magnet_model: str | None = _f(
        None,
        "regularizer magnet: the first magnet's weights are this model's (a name, directory or "
        "checkpoint of model.name's architecture; null: the initial policy's), e.g. the base "
        "model, to hold a fine-tuned checkpoint's words to the base model's",
    )


@dataclass
class RunConfig:
    """`run`: length, seed, output directory, checkpoints and logging."""

    steps: int = _f(10, "training steps", POSITIVE)
    seed: int = _f(0, "seed of games, sampling and initialisation", SEED)
    out_dir: str = _f("runs/default", "run directory: metrics, checkpoints, config")
    eval_every: int = _f(
        0, "evaluate after step 1 and every N steps (0: never); see eval", NON_NEGATIVE
    )
    checkpoint_every: int = _f(
        5, "save a checkpoint every N steps (0: only at the end)", NON_NEGATIVE
    )
    keep_checkpoints: int = _f(2, "number of recent checkpoints kept", POSITIVE)
    tensorboard: bool = _f(True, "also write TensorBoard event files")
    progress: bool = _f(True, "show a progress bar")
    keep_games: int = _f(
        4,
        "games of each kept step written whole to RUN/games.jsonl, the report's replays: the "
        "first N of the step's schedule, every turn's prompt, response and move (0: none)",
        NON_NEGATIVE,
    )
    keep_games_steps: int = _f(
        50,
        "the steps whose games are kept, spread over run.steps: step 1, every ceil(steps / N)-th "
        "after it and the last (at most N + 1 steps)",
        POSITIVE,
    )
    report_every: int = _f(
        0,
        "also rewrite RUN/report.html every N steps during training (0: only when zerosum "
        "train ends)",
        NON_NEGATIVE,
    )


@dataclass
class EvalConfig:
    """`eval`: online evaluation during training (and the defaults of `zerosum eval`)."""

    nash_conv: list[str] = _f(
        [], "games whose exact NashConv is computed (constrained mode; games with `nash`)"
    )
    games: list[str] = _f([], "games played against each fixed opponent online")
    opponents: list[str] = _f(
        [], "fixed opponents: random, mcts:N, perfect, nash[:N], stockfish[:LEVEL]"
    )
    n: int = _f(EvalSettings.n, "games per (game, opponent), seats alternating", POSITIVE)
    temperature: float = _f(
        EvalSettings.temperature,
        "sampling temperature of evaluation games (SPIRAL: 0.6; 0: greedy decoding)",
        TEMPERATURE,
    )
    top_p: float = _f(
        EvalSettings.top_p, "nucleus mass of evaluation games (SPIRAL: 0.95)", PROBABILITY
    )


@dataclass
class DistributedConfig:
    """`distributed`: where rollouts and the learner run (docs: Scale-out on Ray)."""

    backend: DistBackend = _f(
        "local",
        "local: one process (engine and learner together); ray: rollout workers as Ray actors, "
        "each with its own engine and a slice of every step's games",
    )
    mode: DistMode = _f(
        "sync",
        "sync: every batch comes from the current policy (on-policy); async: workers keep "
        "playing while the learner trains, batches up to max_staleness updates old, "
        "corrected by truncated importance sampling",
    )
    rollout_workers: int = _f(
        2, "backend ray: rollout workers (Ray actors, one engine each)", _WORKERS
    )
    learner_ranks: int = _f(
        1,
        "backend ray: data-parallel learner ranks (torch.distributed, gloo on CPUs, nccl on "
        "GPUs); this process is rank 0, the others are Ray actors",
        _WORKERS,
    )
    fsdp: bool = _f(
        False,
        "learner_ranks > 1: shard the trained weights, gradients and optimizer state over the "
        "ranks (FSDP2) instead of a full copy on every rank (DDP); rank 0 keeps the full "
        "weights to play, evaluate and checkpoint (docs: Scale-out on Ray)",
    )
    placement: PlacementMode = _f(
        "split",
        "backend ray, learner on GPUs: split: each rollout worker on GPUs of its own "
        "(worker_gpus), beside one GPU per learner rank; colocated: the workers share the "
        "learner ranks' GPUs, spread evenly, each with a fraction of one (for engines that "
        "sleep while the learner steps); docs: Scale-out on Ray",
    )
    worker_gpus: float | None = _f(
        None,
        "placement split, learner on GPUs: GPUs each rollout worker reserves (null: 1; a "
        "fraction packs several workers on one GPU, a whole number > 1 is for a tensor-"
        "parallel engine)",
        _GPUS,
    )
    weight_sync: WeightSync = _f(
        "object_store",
        "backend ray: how the new trainable weights reach the rollout workers after each step; "
        "object_store: one put into Ray's object store, read by every worker; broadcast: a "
        "torch.distributed broadcast from the learner to the workers over a group of their "
        "own (gloo; nccl when the learner and every worker have GPUs of their own); docs: "
        "Scale-out on Ray",
    )
    max_staleness: int = _f(
        1,
        "async: a batch may come from a policy at most this many optimizer steps old",
        NON_NEGATIVE,
    )
    tis_cap: float = _f(
        TIS_CAP,
        "async: cap C of the truncated importance weight min(pi_learner / pi_engine, C) per token",
        numbers(1, note="(a cap below 1 would shrink even on-policy tokens)"),
    )
    ray_address: str | None = _f(
        None,
        "backend ray: the cluster to join (auto, host:port or ray://host:10001); null starts "
        "Ray on this machine (train --ray-address sets it)",
        Bound(
            lambda v: bool(v.strip()), "null (start Ray here), auto, host:port or ray://host:port"
        ),
    )


@dataclass
class TrainConfig:
    """A training run's whole configuration, one field per section."""

    model: ModelConfig = field(default_factory=ModelConfig)
    engine: EngineName = _f("hf", "generation backend")
    vllm: VLLMConfig = field(default_factory=VLLMConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    opponents: OpponentsConfig = field(default_factory=OpponentsConfig)
    algo: AlgoConfig = field(default_factory=AlgoConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    distributed: DistributedConfig = field(default_factory=DistributedConfig)
    wandb: WandbConfig = field(default_factory=WandbConfig)


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> TrainConfig:
    """A validated `TrainConfig` from a YAML file and `a.b=value` overrides (YAML values)."""
    data: dict = {}
    if path is not None:
        data = load_yaml(path, "config file") or {}
        if not isinstance(data, dict):
            raise ConfigError(f"config file {str(path)!r} must hold a mapping of sections")
    for item in overrides or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r} must look like section.field=value")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as err:
            raise ConfigError(f"override {item!r}: not a YAML value: {yaml_problem(err)}") from None
        _set_dotted(data, key.strip(), value)
    return config_from_dict(data)


def _set_dotted(data: dict, key: str, value: Any) -> None:
    parts = key.split(".")
    node = data
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {key!r}: {part!r} is not a section")
    node[parts[-1]] = value


def _drop_retired_off(data: Any) -> Any:
    """`data` without the retired fields (`RETIRED`) that are set to their "off" value,
    as the config.json of a run from an older version holds them: such a run resumes
    unchanged. Set to anything else they stay, and are refused in one line with the hint."""
    if not isinstance(data, dict):
        return data
    out = dict(data)
    for path, (_, off) in RETIRED.items():
        section, name = path.split(".")
        fields = out.get(section)
        if isinstance(fields, dict) and name in fields and fields[name] == off:
            out[section] = {k: v for k, v in fields.items() if k != name}
    return out


def config_from_dict(data: dict) -> TrainConfig:
    """A validated `TrainConfig` from nested mappings (a recipe's sections); a bad key, type or
    value is a `ConfigError` with one line naming the field and what is allowed. The checks
    that need the games or players are `config_checks.check_config`'s."""
    hints = {path: hint for path, (hint, _) in RETIRED.items()}
    cfg = load_dataclass(TrainConfig, _drop_retired_off(data), renamed=hints)
    _check_distributed(cfg)
    if cfg.algo.baseline != "seat" and not cfg.algo.rae:
        raise ConfigError(
            f"config field 'algo.baseline' = {cfg.algo.baseline!r} needs algo.rae = true "
            "(without RAE the advantage is the raw return); allowed with rae false: 'seat'"
        )
    if not cfg.rollout.games:
        raise ConfigError(
            "config field 'rollout.games' is empty; allowed: a mapping of game name to weight"
        )
    # The prompting fields' combinations (a reasoning prefix needs reasoned answers, ...).
    check_combination(cfg.rollout, "rollout.", lambda: cfg.rollout.prompting)
    return cfg


def _check_distributed(cfg: TrainConfig) -> None:
    """What the `distributed` section can be combined with (what is built so far)."""
    d = cfg.distributed
    if d.backend == "local":
        for key, value, default in (
            ("mode", d.mode, "sync"),
            ("learner_ranks", d.learner_ranks, 1),
            ("fsdp", d.fsdp, False),
            ("ray_address", d.ray_address, None),
            ("placement", d.placement, "split"),
            ("worker_gpus", d.worker_gpus, None),
            ("weight_sync", d.weight_sync, "object_store"),
        ):
            if value != default:
                raise ConfigError(
                    f"config field 'distributed.{key}' = {value!r} needs distributed.backend = "
                    "'ray' (the local backend is one synchronous process)"
                )
        return
    if d.worker_gpus is not None and d.placement == "colocated":
        raise ConfigError(
            f"config field 'distributed.worker_gpus' = {d.worker_gpus!r} applies to placement "
            "split; with placement 'colocated' the workers share the learners' GPUs evenly "
            "(allowed: null)"
        )
    if cfg.model.device.startswith("cuda:"):
        raise ConfigError(
            f"config field 'model.device' = {cfg.model.device!r}: with distributed.backend "
            "'ray' Ray chooses every process's GPU; allowed: auto, cpu, cuda"
        )
    if d.fsdp and d.learner_ranks < 2:
        raise ConfigError(
            "config field 'distributed.fsdp' = True needs distributed.learner_ranks >= 2 (one "
            f"rank has nothing to shard over), got {d.learner_ranks}"
        )
    if d.fsdp and cfg.algo.regularizer != "none":
        raise ConfigError(
            f"config field 'algo.regularizer' = {cfg.algo.regularizer!r} is not supported with "
            "distributed.fsdp yet (a magnet of sharded weights); allowed: 'none', or fsdp false"
        )
    if d.rollout_workers > cfg.rollout.games_per_step:
        raise ConfigError(
            f"config field 'distributed.rollout_workers' = {d.rollout_workers!r} is more than "
            f"rollout.games_per_step = {cfg.rollout.games_per_step}; allowed: at most one "
            "worker per game"
        )
    o = cfg.opponents
    if o.pool_size or o.fixed:
        field, value = (
            ("opponents.pool_size", o.pool_size) if o.pool_size else ("opponents.fixed", o.fixed)
        )
        raise ConfigError(
            f"config field '{field}' = {value!r} (an opponent pool) is not supported with "
            "distributed.backend = 'ray' yet; allowed: pool_size 0 and no fixed members"
        )


def config_to_dict(cfg: TrainConfig) -> dict:
    """Plain nested dicts (config.json, checkpoints); `config_from_dict` reads them back."""
    return dataclasses.asdict(cfg)


def config_help() -> str:
    """Every field with its default and help text."""
    return settings_help(TrainConfig)
