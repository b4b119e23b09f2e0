"""Typed training configuration: YAML recipes plus `section.field=value` overrides.

Every field has a default and help text (the `help` metadata, shown by `zerosum train
--help-config`). Loading is strict: an unknown key, a value of the wrong type (a bool is not
an int), a float that is not finite (nan, inf, `1e400`) or a value outside its allowed range
fails at start with one line naming the field and what is allowed. `load_dataclass` is that
loader for any config dataclass (the arena's and API players' too).
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args

import dacite
import yaml

from zerosum.engines.base import MAX_TEMPERATURE

# Every choice's allowed values are declared once, here; the tuples that command-line choices
# and runtime checks use are derived from these Literals.
LossKind = Literal["reinforce", "ppo"]
Aggregation = Literal["sum", "mean"]
AnswerMode = Literal["free", "constrained"]
Fallback = Literal["last_bracket", "last_mention", "none"]
InvalidMode = Literal["forfeit", "retry", "random"]
PromptFormat = Literal["chat", "plain"]
LoraSync = Literal["auto", "adapter", "merge"]
EngineName = Literal["hf", "vllm"]
Dtype = Literal["float32", "bfloat16"]
Regularizer = Literal["none", "magnet"]
Baseline = Literal["seat", "prompt"]
PoolSampling = Literal["uniform", "pfsp"]
PoolEviction = Literal["oldest", "weakest"]
DistBackend = Literal["local", "ray"]
DistMode = Literal["sync", "async"]
LrSchedule = Literal["constant", "linear", "cosine"]
OptimizerKind = Literal["adamw", "sgd"]

LOSS_KINDS: tuple[str, ...] = get_args(LossKind)
AGGREGATIONS: tuple[str, ...] = get_args(Aggregation)
ANSWER_MODES: tuple[str, ...] = get_args(AnswerMode)
FALLBACKS: tuple[str, ...] = get_args(Fallback)
INVALID_MODES: tuple[str, ...] = get_args(InvalidMode)
PROMPT_FORMATS: tuple[str, ...] = get_args(PromptFormat)
LORA_SYNCS: tuple[str, ...] = get_args(LoraSync)
ENGINES: tuple[str, ...] = get_args(EngineName)
DTYPES: tuple[str, ...] = get_args(Dtype)
REGULARIZERS: tuple[str, ...] = get_args(Regularizer)
POOL_SAMPLINGS: tuple[str, ...] = get_args(PoolSampling)
POOL_EVICTIONS: tuple[str, ...] = get_args(PoolEviction)
DIST_BACKENDS: tuple[str, ...] = get_args(DistBackend)
DIST_MODES: tuple[str, ...] = get_args(DistMode)

# The device names a config or command line may give (`models.resolve_device` checks that
# the device exists).
DEVICE_NAME = re.compile(r"auto|cpu|cuda(:\d+)?")
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


def check_choice(what: str, value: object, allowed: tuple[str, ...]) -> None:
    """Raise `ValueError("unknown WHAT 'value'; valid: a, b")` unless `value` is allowed
    (the runtime check of an API that takes one of these choices)."""
    if value not in allowed:
        raise ValueError(f"unknown {what} {value!r}; valid: {', '.join(allowed)}")


def fld(default: Any, help: str, **kw: Any) -> Any:
    """A config field with help text; a list or dict default is copied for each instance, and
    `dataclasses.MISSING` makes the field required."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help}, **kw)
    return field(default=default, metadata={"help": help}, **kw)


_f = fld  # the short name of the sections below


@dataclass
class ModelConfig:
    """`model`: the policy's weights and where the learner runs."""

    name: str = _f(
        "smollm2-135m-instruct", "HF model id, local path, or the packaged default alias"
    )
    dtype: Dtype = _f("float32", "weights dtype of the learner")
    device: str = _f("auto", "learner device: auto (a CUDA GPU if one is visible), cpu, cuda[:N]")
    lora: bool = _f(False, "train a LoRA adapter (PEFT) instead of all weights")
    lora_rank: int = _f(16, "LoRA rank")
    lora_alpha: int = _f(32, "LoRA alpha")
    tiny: bool = _f(False, "replace the weights by a tiny randomly initialised model (tests)")
    tiny_hidden_size: int = _f(64, "hidden size of the tiny model")
    tiny_layers: int = _f(2, "layers of the tiny model")


@dataclass
class VLLMConfig:
    """Options of `engine: vllm` (ignored by `hf`)."""

    lora_sync: LoraSync = _f(
        "auto",
        "LoRA runs: adapter serves each new adapter as a LoRARequest; merge reloads the base "
        "weights with the adapter folded in (no LoRA kernels at generation); auto: adapter on "
        "GPUs, merge on CPUs (4.8x faster generation there, BENCHMARKS.md)",
    )
    enforce_eager: bool = _f(False, "skip torch.compile and graph capture (faster start)")
    kv_cache_gib: int = _f(2, "CPU only: KV cache size in GiB (VLLM_CPU_KVCACHE_SPACE)")
    gpu_memory_utilization: float = _f(
        0.3, "GPU only: share of GPU memory vLLM may take (the learner shares the GPU)"
    )
    tensor_parallel_size: int = _f(1, "GPUs (or CPU workers) one model is split over")
    sleep: bool = _f(
        False, "GPU only: release vLLM's GPU memory while the learner steps (sleep mode)"
    )


@dataclass
class SamplingConfig:
    """`sampling`: how self-play answers are sampled."""

    temperature: float = _f(
        1.0, "sampling temperature of rollouts (> 0: policy gradients need sampled moves)"
    )
    top_p: float = _f(1.0, "nucleus sampling mass of rollouts")
    max_new_tokens: int = _f(
        256,
        "cap on generated tokens per free-text turn; constrained answers always get the "
        "longest legal action's tokens plus end-of-sequence",
    )


@dataclass
class RolloutConfig:
    """`rollout`: which games are played and how (prompts, answers, invalid moves)."""

    games: dict[str, float] = _f({"kuhn_poker": 1.0}, "games to train on with mixture weights")
    games_per_step: int = _f(16, "complete games played per training step")
    max_concurrent: int = _f(16, "games in flight at once (one engine batch)")
    max_turns: int = _f(50, "turns after which a game is a draw")
    answer_mode: AnswerMode = _f(
        "free", "free: reason then \\boxed{move}; constrained: reply is only a legal move"
    )
    parser_fallback: Fallback = _f(
        "last_bracket",
        "without \\boxed{}: last_bracket takes the last [action]; last_mention also the last "
        "legal action named as a word; none rejects",
    )
    invalid_mode: InvalidMode = _f("forfeit", "invalid-move policy")
    invalid_loss: float = _f(-1.5, "return of the seat that forfeits by an invalid move")
    invalid_win: float = _f(0.5, "return of the other seat on a forfeit")
    invalid_retries: int = _f(2, "retries before forfeiting, in retry mode")
    include_rules: bool = _f(True, "put the game's rules into every prompt")
    prompt_format: PromptFormat = _f(
        "chat", "chat: the model's chat template; plain: the view then 'Answer:' (base models)"
    )


@dataclass
class OpponentsConfig:
    """`opponents`: who the learning policy plays (default: itself, in both seats)."""

    self_play: float = _f(
        1.0, "share of games the latest policy plays against itself; the rest against the pool"
    )
    pool_size: int = _f(
        0, "earlier selves kept as opponents (0: none); the initial model is the first"
    )
    pool_every: int = _f(10, "add the current policy to the pool every N steps")
    evict: PoolEviction = _f(
        "oldest", "when the pool is full: drop the oldest snapshot, or the one beaten most"
    )
    sampling: PoolSampling = _f(
        "uniform",
        "uniform (fictitious self-play), or pfsp: weight (1 - win rate)^pfsp_power, towards "
        "the opponents the policy beats least",
    )
    pfsp_power: float = _f(2.0, "pfsp: the exponent of the weighting")
    win_rate_decay: float = _f(0.9, "EMA decay of the running win rate against each member")
    fixed: list[str] = _f(
        [], "fixed pool members: bots (random, mcts:N, nash, perfect) or model:PATH checkpoints"
    )


@dataclass
class AlgoConfig:
    """`algo`: advantages and the policy-gradient loss."""

    loss: LossKind = _f("ppo", "policy-gradient loss")
    ppo_epochs: int = _f(2, "passes over each batch (one optimizer step each)")
    clip_eps: float = _f(0.2, "PPO ratio clip")
    rae: bool = _f(
        True,
        "role-conditioned advantage estimation; off: the advantage is the raw return (with the "
        "default loss, PPO on raw returns)",
    )
    rae_decay: float = _f(0.95, "EMA decay of the per-(game, seat) baseline")
    baseline: Baseline = _f(
        "seat",
        "seat: RAE's EMA per (game, seat); prompt: the mean return of the batch's other turns "
        "with the same prompt (leave-one-out), RAE's for a prompt seen once (small games, "
        "where a prompt is an information set: README, Training)",
    )
    drop_zero_advantage: bool = _f(True, "drop samples whose advantage is zero")
    aggregation: Aggregation = _f("sum", "token loss: sum / constant (Dr.GRPO) or mean")
    norm_constant: float = _f(4096.0, "divisor of the summed token loss")
    regularizer: Regularizer = _f(
        "none",
        "magnet: add magnet_alpha * KL(policy || magnet) per response token (magnetic mirror "
        "descent); the magnet is a frozen snapshot of the policy (README: Regularised self-play)",
    )
    magnet_alpha: float = _f(0.1, "weight of the KL to the magnet (regularizer: magnet)")
    magnet_reset: int = _f(
        0, "replace the magnet by the current policy every N steps (0: keep the initial model)"
    )
    magnet_anneal_steps: int = _f(
        0,
        "lower the KL weight geometrically from magnet_alpha to magnet_alpha_final over this "
        "many steps, then keep it there (0: a constant magnet_alpha)",
    )
    magnet_alpha_final: float = _f(
        0.01, "magnet_anneal_steps > 0: the KL weight at the end of the annealing"
    )
    entropy_coef: float = _f(0.0, "weight of the entropy bonus (keeps self-play exploring)")


@dataclass
class OptimConfig:
    """`optim`: the optimizer and the learner's batching and precision."""

    optimizer: OptimizerKind = _f(
        "adamw",
        "adamw, or sgd (with momentum): steps proportional to the gradient, whose sampling "
        "noise then shrinks with more games a step, where Adam's per-parameter normalisation "
        "keeps it at lr (README: Regularised self-play)",
    )
    lr: float = _f(1e-6, "learning rate (the peak, with a schedule)")
    lr_schedule: LrSchedule = _f(
        "constant",
        "constant: lr throughout; linear or cosine: after warm-up, decay to lr * lr_final_ratio "
        "over decay_steps (self-play's noisy updates settle as the steps shrink)",
    )
    warmup_steps: int = _f(0, "first steps with a linearly rising learning rate, any schedule")
    decay_steps: int = _f(
        0, "length of the decay after warm-up (0: until run.steps, which an extended resume moves)"
    )
    lr_final_ratio: float = _f(0.0, "linear or cosine: the final learning rate over lr")
    beta1: float = _f(0.9, "Adam beta1")
    beta2: float = _f(0.95, "Adam beta2")
    momentum: float = _f(0.0, "SGD momentum")
    weight_decay: float = _f(0.0, "weight decay (decoupled for AdamW, L2 for SGD)")
    grad_clip: float = _f(1.0, "max global gradient norm")
    # 2048: measured fastest per epoch on a 2-core CPU (bench_learner.py, BENCHMARKS.md),
    # and about 1 GiB less peak memory than 4096 for the default model.
    micro_batch_tokens: int = _f(2048, "padded tokens per micro-batch")
    shared_prefix: bool = _f(
        True,
        "run the prompt prefix all samples of a micro-batch share (chat template, rules) once, "
        "not once per sample; the same gradients up to float rounding",
    )
    activation_checkpointing: bool = _f(
        False,
        "keep only each decoder layer's input during the learner's forward and recompute the "
        "rest in the backward pass: much less memory for activations, a slower learner "
        "(BENCHMARKS.md)",
    )
    bf16: bool | Literal["auto"] = _f(
        "auto",
        "bf16 autocast for the learner's forward/backward; auto: only where the hardware "
        "multiplies bf16 natively (CUDA with bf16, CPUs with AVX512-BF16 or AMX; elsewhere "
        "it is emulated and slower than fp32). The run's config.json records the choice.",
    )


@dataclass
class RunConfig:
    """`run`: length, seed, output directory, checkpoints and logging."""

    steps: int = _f(10, "training steps")
    seed: int = _f(0, "seed of games, sampling and initialisation")
    out_dir: str = _f("runs/default", "run directory: metrics, checkpoints, config")
    eval_every: int = _f(0, "evaluate after step 1 and every N steps (0: never); see eval")
    checkpoint_every: int = _f(5, "save a checkpoint every N steps (0: only at the end)")
    keep_checkpoints: int = _f(2, "number of recent checkpoints kept")
    tensorboard: bool = _f(True, "also write TensorBoard event files")
    progress: bool = _f(True, "show a progress bar")


@dataclass
class EvalConfig:
    """`eval`: online evaluation during training (and the defaults of `zerosum eval`)."""

    nash_conv: list[str] = _f(
        [], "games whose exact NashConv is computed (constrained mode; kuhn_poker, leduc_poker)"
    )
    games: list[str] = _f([], "games played against each fixed opponent online")
    opponents: list[str] = _f([], "fixed opponents: random, mcts:N, perfect, nash[:N]")
    n: int = _f(100, "games per (game, opponent), seats alternating")
    temperature: float = _f(
        0.6, "sampling temperature of evaluation games (SPIRAL: 0.6; 0: greedy decoding)"
    )
    top_p: float = _f(0.95, "nucleus mass of evaluation games (SPIRAL: 0.95)")


@dataclass
class DistributedConfig:
    """`distributed`: where rollouts and the learner run (README: Scale-out on Ray)."""

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
    rollout_workers: int = _f(2, "backend ray: rollout workers (Ray actors, one engine each)")
    learner_ranks: int = _f(
        1,
        "backend ray: data-parallel learner ranks (torch.distributed, gloo on CPUs, nccl on "
        "GPUs); this process is rank 0, the others are Ray actors",
    )
    fsdp: bool = _f(
        False,
        "learner_ranks > 1: shard the trained weights, gradients and optimizer state over the "
        "ranks (FSDP2) instead of a full copy on every rank (DDP); rank 0 keeps the full "
        "weights to play, evaluate and checkpoint (README: Scale-out on Ray)",
    )
    max_staleness: int = _f(
        1, "async: a batch may come from a policy at most this many optimizer steps old"
    )
    tis_cap: float = _f(
        2.0,
        "async: cap C of the truncated importance weight min(pi_learner / pi_engine, C) per token",
    )
    ray_address: str | None = _f(
        None,
        "backend ray: the cluster to join (auto, host:port or ray://host:10001); null starts "
        "Ray on this machine (train --ray-address sets it)",
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


class ConfigError(ValueError):
    """A bad configuration value; the message is one line."""


T = TypeVar("T")
# A range check of `load_dataclass`: (field path, e.g. "optim.lr", predicate, what is allowed).
Check = tuple[str, Callable[[Any], bool], str]

_CHECKS: list[Check] = [
    (
        "model.device",
        lambda v: DEVICE_NAME.fullmatch(v) is not None,
        "auto, cpu, cuda or cuda:N",
    ),
    (
        "sampling.temperature",
        lambda v: 0 < v <= MAX_TEMPERATURE,
        f"a number in (0, {MAX_TEMPERATURE:g}]; training samples its moves (greedy decoding, "
        "temperature 0, is for eval.temperature)",
    ),
    ("sampling.top_p", lambda v: 0 < v <= 1, "a number in (0, 1]"),
    ("sampling.max_new_tokens", lambda v: v >= 1, "an integer >= 1"),
    ("rollout.games_per_step", lambda v: v >= 1, "an integer >= 1"),
    ("rollout.max_concurrent", lambda v: v >= 1, "an integer >= 1"),
    ("rollout.max_turns", lambda v: v >= 1, "an integer >= 1"),
    ("rollout.invalid_retries", lambda v: v >= 0, "an integer >= 0"),
    ("algo.ppo_epochs", lambda v: v >= 1, "an integer >= 1"),
    ("algo.clip_eps", lambda v: 0 < v < 1, "a number in (0, 1)"),
    ("algo.rae_decay", lambda v: 0 <= v <= 1, "a number in [0, 1]"),
    ("algo.norm_constant", lambda v: v > 0, "a number > 0"),
    ("opponents.self_play", lambda v: 0 <= v <= 1, "a number in [0, 1]"),
    ("opponents.pool_size", lambda v: 0 <= v <= 1000, "an integer in [0, 1000]"),
    ("opponents.pool_every", lambda v: v >= 1, "an integer >= 1"),
    ("opponents.pfsp_power", lambda v: v >= 0, "a number >= 0"),
    ("opponents.win_rate_decay", lambda v: 0 <= v < 1, "a number in [0, 1)"),
    ("algo.magnet_alpha", lambda v: v >= 0, "a number >= 0"),
    ("algo.magnet_reset", lambda v: v >= 0, "an integer >= 0"),
    ("algo.magnet_anneal_steps", lambda v: v >= 0, "an integer >= 0"),
    ("algo.magnet_alpha_final", lambda v: v > 0, "a number > 0"),
    ("algo.entropy_coef", lambda v: v >= 0, "a number >= 0"),
    ("optim.lr", lambda v: 0 < v <= 1, "a number in (0, 1]"),
    ("optim.warmup_steps", lambda v: v >= 0, "an integer >= 0"),
    ("optim.decay_steps", lambda v: v >= 0, "an integer >= 0"),
    ("optim.lr_final_ratio", lambda v: 0 <= v <= 1, "a number in [0, 1]"),
    ("optim.beta1", lambda v: 0 <= v < 1, "a number in [0, 1)"),
    ("optim.beta2", lambda v: 0 <= v < 1, "a number in [0, 1)"),
    ("optim.momentum", lambda v: 0 <= v < 1, "a number in [0, 1)"),
    ("optim.weight_decay", lambda v: v >= 0, "a number >= 0"),
    ("optim.grad_clip", lambda v: v > 0, "a number > 0"),
    ("optim.micro_batch_tokens", lambda v: v >= 1, "an integer >= 1"),
    ("run.steps", lambda v: v >= 1, "an integer >= 1"),
    ("run.checkpoint_every", lambda v: v >= 0, "an integer >= 0"),
    ("run.eval_every", lambda v: v >= 0, "an integer >= 0"),
    ("eval.n", lambda v: v >= 1, "an integer >= 1"),
    (
        "eval.temperature",
        lambda v: 0 <= v <= MAX_TEMPERATURE,
        f"a number in [0, {MAX_TEMPERATURE:g}] (0: greedy decoding)",
    ),
    ("eval.top_p", lambda v: 0 < v <= 1, "a number in (0, 1]"),
    ("run.keep_checkpoints", lambda v: v >= 1, "an integer >= 1"),
    ("vllm.kv_cache_gib", lambda v: v >= 1, "an integer >= 1"),
    ("vllm.gpu_memory_utilization", lambda v: 0 < v <= 1, "a number in (0, 1]"),
    ("vllm.tensor_parallel_size", lambda v: v >= 1, "an integer >= 1"),
    ("model.lora_rank", lambda v: v >= 1, "an integer >= 1"),
    ("model.lora_alpha", lambda v: v >= 1, "an integer >= 1"),
    ("model.tiny_hidden_size", lambda v: v >= 1, "an integer >= 1"),
    ("model.tiny_layers", lambda v: v >= 1, "an integer >= 1"),
    ("run.seed", lambda v: 0 <= v < 2**32, "an integer in [0, 2**32)"),
    ("distributed.rollout_workers", lambda v: 1 <= v <= 4096, "an integer in [1, 4096]"),
    ("distributed.learner_ranks", lambda v: 1 <= v <= 4096, "an integer in [1, 4096]"),
    ("distributed.max_staleness", lambda v: v >= 0, "an integer >= 0"),
    (
        "distributed.tis_cap",
        lambda v: v >= 1,
        "a number >= 1 (a cap below 1 would shrink even on-policy tokens)",
    ),
    (
        "distributed.ray_address",
        lambda v: v is None or bool(v.strip()),
        "null (start Ray here), auto, host:port or ray://host:port",
    ),
]


def _set_dotted(data: dict, key: str, value: Any) -> None:
    parts = key.split(".")
    node = data
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {key!r}: {part!r} is not a section")
    node[parts[-1]] = value


def _known_keys(cls: type, prefix: str = "") -> list[str]:
    keys = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            keys += _known_keys(hints[f.name], f"{prefix}{f.name}.")
        else:
            keys.append(prefix + f.name)
    return keys


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> TrainConfig:
    """A validated `TrainConfig` from a YAML file and `a.b=value` overrides (YAML values)."""
    data: dict = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {str(p)!r} does not exist")
        try:
            data = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as err:
            raise ConfigError(
                f"config file {str(p)!r} is not valid YAML: {str(err).splitlines()[0]}"
            ) from None
        if not isinstance(data, dict):
            raise ConfigError(f"config file {str(p)!r} must hold a mapping of sections")
    for item in overrides or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r} must look like section.field=value")
        _set_dotted(data, key.strip(), yaml.safe_load(raw) if raw.strip() else "")
    return config_from_dict(data)


def _to_float(value: Any) -> Any:
    """Accept ints and numeric strings for float fields (YAML reads `1e-6` as a string)."""
    if isinstance(value, bool):
        return repr(value)  # a string, so the type check rejects it
    if isinstance(value, int):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _to_int(value: Any) -> Any:
    """A bool is not an int here (`run.steps: true` is a mistake, not 1 step)."""
    return repr(value) if isinstance(value, bool) else value


def _float_values(obj: Any, prefix: str = "") -> Iterator[tuple[str, str, float]]:
    """(field, which entry, value) of every float in the config, including mapping values."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        key, value, hint = prefix + f.name, getattr(obj, f.name), hints[f.name]
        if dataclasses.is_dataclass(hint):
            yield from _float_values(value, f"{key}.")
        elif hint is float:
            yield key, "", value
        elif typing.get_origin(hint) is dict and typing.get_args(hint)[1] is float:
            yield from ((key, f" value of {k!r}", v) for k, v in value.items())


def _check_keys(data: dict, cls: type, prefix: str, root: type, renamed: Mapping[str, str]) -> None:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key, value in data.items():
        if prefix + str(key) in renamed:
            raise ConfigError(
                f"config field {prefix + str(key)!r} was replaced; write "
                f"{renamed[prefix + str(key)]}"
            )
        if key not in names:
            valid = ", ".join(_known_keys(root))
            raise ConfigError(f"unknown config field {prefix + str(key)!r}; valid fields: {valid}")
        if dataclasses.is_dataclass(hints[key]):
            if not isinstance(value, dict):
                raise ConfigError(
                    f"config section {prefix + key!r} must be a mapping, got {value!r}"
                )
            _check_keys(value, hints[key], f"{prefix}{key}.", root, renamed)


def load_dataclass(
    cls: type[T],
    data: Any,
    checks: Sequence[Check] = (),
    where: str = "",
    renamed: Mapping[str, str] | None = None,
) -> T:
    """A `cls` (a dataclass, whose fields may be dataclass sections) from nested mappings.

    Strict: an unknown key (or one of `renamed`, whose message says what replaced it), a
    missing required field, a value of the wrong type (a bool is not a number), a float that
    is not finite or a value failing its entry in `checks` is a `ConfigError` with one line
    naming the field (`where` + its path, e.g. "players[1]." + "top_p") and what is allowed.
    """
    if not isinstance(data, dict):
        what = f"config field {where.rstrip('.')!r}" if where else "the config"
        raise ConfigError(f"{what} must be a mapping, got {data!r}")
    _check_keys(data, cls, where, cls, renamed or {})
    obj = _typed(cls, data, where)
    _check_values(obj, checks, where)
    return obj


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
    value is a `ConfigError` with one line naming the field and what is allowed."""
    hints = {path: hint for path, (hint, _) in RETIRED.items()}
    cfg = load_dataclass(TrainConfig, _drop_retired_off(data), _CHECKS, renamed=hints)
    _check_games(cfg)
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
    return cfg


def _lookup(data: Any, path: str, default: Any) -> Any:
    """The value at dotted `path` of the raw `data`, or `default`."""
    for part in path.split("."):
        if not isinstance(data, Mapping) or part not in data:
            return default
        data = data[part]
    return data


def _typed(cls: type[T], data: dict, where: str) -> T:
    hooks = {float: _to_float, int: _to_int}
    try:
        return dacite.from_dict(
            cls, data, config=dacite.Config(strict=True, check_types=True, type_hooks=hooks)
        )
    except dacite.MissingValueError as err:
        raise ConfigError(f"config field {where + err.field_path!r} is required") from None
    except dacite.WrongTypeError as err:
        value = _lookup(data, err.field_path, err.value)  # dacite may hold a generator
        raise ConfigError(
            f"config field {where + err.field_path!r} = {value!r} is invalid; allowed: {_describe(err.field_type)}"
        ) from None
    except dacite.DaciteError as err:
        at = f" at {where.rstrip('.')!r}" if where else ""
        raise ConfigError(f"bad config{at}: {err}") from None


def _check_values(obj: Any, checks: Sequence[Check], where: str) -> None:
    """Finite floats, then every field's range (`checks`)."""
    for key, entry, value in _float_values(obj):
        if not math.isfinite(value):  # nan fails no `v > 0` check; inf crashes a run later
            raise ConfigError(
                f"config field {where + key!r}{entry} = {value!r} is invalid; allowed: a finite number"
            )
    for key, ok, allowed in checks:
        value = obj
        for name in key.split("."):
            value = getattr(value, name)
        if not ok(value):
            raise ConfigError(
                f"config field {where + key!r} = {value!r} is invalid; allowed: {allowed}"
            )


def _check_games(cfg: TrainConfig) -> None:
    """Game names and weights, and what evaluation can play (these import the games)."""
    from zerosum.games import game_names

    for game, weight in cfg.rollout.games.items():
        if game not in game_names():
            raise ConfigError(
                f"config field 'rollout.games' names unknown game {game!r}; valid games: {', '.join(game_names())}"
            )
        if not weight > 0:
            raise ConfigError(
                f"config field 'rollout.games' weight of {game!r} = {weight!r} is invalid; allowed: a number > 0"
            )
    from zerosum.solvers import NASH_GAMES

    for game in cfg.eval.nash_conv:
        if game not in NASH_GAMES:
            raise ConfigError(
                f"config field 'eval.nash_conv' names {game!r}; allowed: {', '.join(NASH_GAMES)}"
            )
    if cfg.eval.nash_conv and cfg.rollout.answer_mode != "constrained":
        raise ConfigError(
            "config field 'eval.nash_conv' needs rollout.answer_mode = 'constrained' (exact policy)"
        )
    from zerosum.players import make_player, unsupported

    o = cfg.opponents
    if o.self_play < 1 and not (o.pool_size or o.fixed):
        raise ConfigError(
            f"config field 'opponents.self_play' = {o.self_play!r} leaves games to an empty pool; "
            "set opponents.pool_size >= 1 or opponents.fixed"
        )
    for spec in o.fixed:
        try:
            if not spec.startswith("model:"):
                make_player(spec)
        except ValueError as err:
            raise ConfigError(f"config field 'opponents.fixed': {err}") from None
        for game in cfg.rollout.games:
            if reason := unsupported(spec, game):
                raise ConfigError(
                    f"config field 'opponents.fixed': {spec!r} cannot play {game!r}: {reason}"
                )
    for spec in cfg.eval.opponents:
        try:
            if not spec.startswith("model:"):  # a model loads only when it is used
                make_player(spec)
        except ValueError as err:
            raise ConfigError(f"config field 'eval.opponents': {err}") from None
    for game in cfg.eval.games:
        if game not in game_names():
            raise ConfigError(
                f"config field 'eval.games' names unknown game {game!r}; valid games: {', '.join(game_names())}"
            )
        for spec in cfg.eval.opponents:
            if reason := unsupported(spec, game):
                raise ConfigError(
                    f"config field 'eval.opponents': {spec!r} cannot play {game!r}: {reason}"
                )


def _check_distributed(cfg: TrainConfig) -> None:
    """What the `distributed` section can be combined with (what is built so far)."""
    d = cfg.distributed
    if d.backend == "local":
        for key, value, default in (
            ("mode", d.mode, "sync"),
            ("learner_ranks", d.learner_ranks, 1),
            ("fsdp", d.fsdp, False),
            ("ray_address", d.ray_address, None),
        ):
            if value != default:
                raise ConfigError(
                    f"config field 'distributed.{key}' = {value!r} needs distributed.backend = "
                    "'ray' (the local backend is one synchronous process)"
                )
        return
    if d.fsdp and d.learner_ranks < 2:
        raise ConfigError(
            "config field 'distributed.fsdp' = True needs distributed.learner_ranks >= 2 (one "
            f"rank has nothing to shard over), got {d.learner_ranks}"
        )
    if d.learner_ranks > 1 and cfg.algo.regularizer != "none":
        raise ConfigError(
            f"config field 'algo.regularizer' = {cfg.algo.regularizer!r} is not supported with "
            "distributed.learner_ranks > 1 yet (only rank 0 holds the magnet); allowed: 'none'"
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


def _describe(tp: Any) -> str:
    if typing.get_origin(tp) is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return " or ".join(_describe(arg) for arg in typing.get_args(tp))
    if tp is bool:
        return "true or false"
    if tp is type(None):
        return "null"  # as YAML writes it
    return getattr(tp, "__name__", str(tp))


def config_to_dict(cfg: TrainConfig) -> dict:
    """Plain nested dicts (config.json, checkpoints); `config_from_dict` reads them back."""
    return dataclasses.asdict(cfg)


def config_help() -> str:
    """Every field with its default and help text."""
    lines = []

    def walk(cls: type, prefix: str) -> None:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if dataclasses.is_dataclass(hints[f.name]):
                walk(hints[f.name], f"{prefix}{f.name}.")
            else:
                default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
                lines.append(f"{prefix}{f.name} = {default!r}  # {f.metadata.get('help', '')}")

    walk(TrainConfig, "")
    return "\n".join(lines)
