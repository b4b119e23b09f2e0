"""Self-play training, one iteration top to bottom (SPIRAL, arXiv 2506.24119).

    schedule games -> play them by self-play (one policy, both seats) -> RAE advantages
    -> policy-gradient step -> serve new weights -> metrics -> checkpoint

Departures from the paper, and why:
- RAE updates its per-(game, seat) baseline once per batch with the batch mean (the paper
  updates per sample); the result does not depend on the order concurrent games finish.
- PPO "old" log-probabilities come from the learner's first epoch, not from the engine,
  so top-p or engine numerics never leak into the ratio (the engine's are kept for metrics).
- Every random choice of a step is derived from (seed, step): resuming repeats a run exactly.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from zerosum.advantage import keep_nonzero, prompt_advantages, rae_advantages, repeated_fraction
from zerosum.checkpoint import TrainState, resume_candidates, resume_from, save_checkpoint
from zerosum.config import RunConfig, TrainConfig, config_to_dict
from zerosum.config_checks import check_config
from zerosum.distributed.learner_group import LearnerGroup
from zerosum.distributed.placement import Placement, driver_cuda_index
from zerosum.distributed.ray_backend import RayRollouts, require_ray
from zerosum.distributed.rollouts import LocalRollouts, Rollouts
from zerosum.engines import Engine, SamplingParams, make_engine
from zerosum.evaluation.games import evaluate_against
from zerosum.evaluation.policy import model_policy, nash_conv
from zerosum.hardware import peak_rss_gib, resolve_bf16
from zerosum.league import Assignment, OpponentPool, seat_players
from zerosum.learner import Learner, LearnerSettings, build_optimizer, learning_rate
from zerosum.magnet import Magnet
from zerosum.models import load_model, load_tokenizer, resolve_device, tiny_model
from zerosum.players import make_player
from zerosum.report import write_report
from zerosum.rollout import (
    Episode,
    RolloutSettings,
    Turn,
    game_record,
    rollout_metrics,
    schedule_games,
)
from zerosum.rundir import (
    CONFIG_NAME,
    GAMES_NAME,
    METRICS_NAME,
    RunStopped,
    latest_checkpoint,
    prepare_run_dir,
    write_atomic,
)
from zerosum.scoring import Sample
from zerosum.seeds import eval_seed, step_seed

# A LoRA adapter on a tiny model names its base relative to itself: checkpoints/step-N/base,
# the random base weights saved beside it (there is nothing to download).
TINY_BASE = "../base"


def build_model(cfg: TrainConfig):
    """The policy (full or LoRA) and its tokenizer."""
    if cfg.model.tiny:
        tokenizer = load_tokenizer(cfg.model.name)
        model = build_tiny(cfg, tokenizer)
    else:
        model, tokenizer = load_model(cfg.model.name, cfg.model.dtype)
    if cfg.model.lora:
        from peft import LoraConfig, get_peft_model  # peft costs a second: LoRA runs only

        lora = LoraConfig(
            r=cfg.model.lora_rank,
            lora_alpha=cfg.model.lora_alpha,
            target_modules="all-linear",
            task_type="CAUSAL_LM",
        )
        model = get_peft_model(model, lora)
        # The name the user gave (an alias or hub id), not this machine's cache path.
        base = TINY_BASE if cfg.model.tiny else cfg.model.name
        model.peft_config["default"].base_model_name_or_path = base
    return model.to(resolve_device(cfg.model.device)), tokenizer


def build_tiny(cfg: TrainConfig, tokenizer):
    """The tiny random model of `cfg` (the same weights on every call)."""
    m = cfg.model
    return tiny_model(tokenizer, m.tiny_hidden_size, m.tiny_layers, seed=cfg.run.seed)


def build_engine(cfg: TrainConfig, model, tokenizer) -> Engine:
    """The rollout engine: `hf` shares the learner's module; `vllm` starts a colocated vLLM
    from a snapshot of it (about 40 s on a CPU) and is refreshed by `sync_weights`."""
    return make_engine(
        cfg.engine, model, tokenizer, max_batch=cfg.rollout.max_concurrent, seed=cfg.run.seed,
        vllm=cfg.vllm,
    )  # fmt: skip


def evaluate(
    cfg: TrainConfig, model, tokenizer, engine, settings: RolloutSettings, step: int
) -> dict[str, float]:
    """Online evaluation after step `step` (`eval/...` metrics): the exact NashConv of the
    model's policy for `cfg.eval.nash_conv`, and win rates against each of `cfg.eval.opponents`
    at `cfg.eval.games`, played through `engine` with the run's rollout `settings` (forfeits
    scored -1/+1), seeded `seeds.eval_seed(run seed, step)`. A `model:PATH` opponent is
    asked and read as the run's own model is."""
    r, e = cfg.rollout, cfg.eval
    metrics = {}
    for game in e.nash_conv:
        start = time.perf_counter()
        policy = model_policy(model, tokenizer, game, cfg.sampling.temperature, r.prompting)
        for key, value in nash_conv(game, policy).items():
            metrics[f"eval/{game}/{key}"] = value
        metrics[f"perf/eval_{game}_nash_conv_s"] = time.perf_counter() - start
    params = SamplingParams(e.temperature, e.top_p, cfg.sampling.max_new_tokens)
    for game in e.games:
        for spec in e.opponents:
            opponent = make_player(spec, settings.prompting, params)
            res = evaluate_against(
                engine, tokenizer, game, opponent, e.n, eval_seed(cfg.run.seed, step), params,
                settings,
            )  # fmt: skip
            for key in ("win_rate", "draw_rate", "loss_rate", "invalid_rate", "mean_return"):
                metrics[f"eval/{game}/{spec}/{key}"] = res[key]
    return metrics


class MetricsLog:
    """Namespaced metrics per step to metrics.jsonl (and TensorBoard)."""

    def __init__(self, run_dir: Path, tensorboard: bool, resume_step: int):
        self.path = run_dir / METRICS_NAME
        if self.path.exists():  # drop steps after the checkpoint we resume from
            kept = [ln for ln, step in read_metric_lines(self.path) if step <= resume_step]
            write_atomic(self.path, "".join(ln + "\n" for ln in kept))
        self.writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(run_dir / "tensorboard"), purge_step=resume_step + 1)

    def log(self, step: int, metrics: dict[str, float]) -> None:
        # One write per line: a kill leaves at most a partial last line, which resume drops.
        with self.path.open("a") as f:
            f.write(json.dumps({"step": step, **metrics}) + "\n")
        if self.writer is not None:
            for key, value in metrics.items():
                self.writer.add_scalar(key, value, step)
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def read_metric_lines(path: Path, what: str = "metrics record") -> list[tuple[str, int]]:
    """(line, step) of every record (each line a JSON object with its `step`). A partial last
    line (a write cut by power loss or a full disk) is dropped with a warning; a bad line
    before it is an error naming its number and saying that it is not a `what`."""
    lines = path.read_text(errors="replace").splitlines()
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            step = json.loads(line)["step"]
            if not isinstance(step, int):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            if number == len(lines):
                print(
                    f"zerosum: warning: {path} line {number} is incomplete; dropped",
                    file=sys.stderr,
                )
                break
            raise ValueError(
                f"{path} line {number} is not a {what}; fix or delete that line"
            ) from None
        records.append((line, step))
    return records


def kept_step(step: int, steps: int, n_steps: int) -> bool:
    """Whether the games of step `step` (of `steps`) are kept, `n_steps` steps in all
    (`run.keep_games_steps`): step 1, every ceil(steps / n_steps)-th after it and the last. A
    function of the step, so a resumed run keeps the steps the uninterrupted one keeps."""
    stride = max(1, math.ceil(steps / n_steps))
    return (step - 1) % stride == 0 or step == steps


class GamesLog:
    """A sample of the self-play games, whole, in RUN/games.jsonl (the report's replays): the
    first `run.keep_games` games of each kept step, in the schedule's order. Nothing is drawn
    at random, so keeping games changes nothing the run computes. Resuming drops the lines of
    steps after the checkpoint, as `MetricsLog` does, and the repeated steps write them again."""

    def __init__(self, run_dir: Path, cfg: RunConfig, resume_step: int):
        self.path, self.cfg = run_dir / GAMES_NAME, cfg
        if self.path.exists():
            lines = read_metric_lines(self.path, "kept game")
            kept = [ln for ln, step in lines if step <= resume_step]
            write_atomic(self.path, "".join(ln + "\n" for ln in kept))

    def keep(
        self, step: int, rollout_seed: int, turns: list[Turn], episodes: list[Episode],
        assigned: list[Assignment], tokenizer,
    ) -> int:  # fmt: skip
        """Append the kept games of step `step` (played with `rollout_seed`: with the game's
        seed and the weights before the step it replays them); how many."""
        c = self.cfg
        if not c.keep_games or not kept_step(step, c.steps, c.keep_games_steps):
            return 0
        n = min(c.keep_games, len(episodes))
        own: list[list[Turn]] = [[] for _ in range(n)]
        for t in turns:  # in schedule order: the first n games' turns come first
            if t.episode < n:
                own[t.episode].append(t)
        lines = []
        for i in range(n):
            players = ["self", "self"]
            if i < len(assigned) and (a := assigned[i]).member is not None:
                players[1 - a.learner_seat] = a.member.name
            record = game_record(episodes[i], own[i], tokenizer.decode)
            line = {"step": step, "index": i, "rollout_seed": rollout_seed, "players": players}
            lines.append(json.dumps({**line, **record}) + "\n")
        # One write for the step: a kill leaves at most a partial last line, which resume drops.
        with self.path.open("a") as f:
            f.write("".join(lines))
        return n


def on_gpu(model) -> bool:
    """Whether `model`'s weights are on a CUDA GPU."""
    return next(model.parameters()).device.type == "cuda"


def gpu_peak_gib() -> float:
    """The most this process's tensors have held on its GPU so far (torch's allocator)."""
    return torch.cuda.max_memory_allocated() / 2**30


def choose_precision(cfg: TrainConfig, device: torch.device) -> TrainConfig:
    """Resolve `optim.bf16: auto` from the hardware, say so once, and return the config with
    the choice written in (config.json keeps it, so a resumed run computes the same way)."""
    bf16, why = resolve_bf16(cfg.optim.bf16, device)
    print(f"precision: {'bf16 autocast' if bf16 else 'float32'} ({why})", file=sys.stderr)
    return dataclasses.replace(cfg, optim=dataclasses.replace(cfg.optim, bf16=bf16))


def train(cfg: TrainConfig, resume: bool = False, overwrite: bool = False) -> Path:
    """Run (or continue) training; returns the run directory. The run directory is locked
    for the whole run; an existing run there is refused unless resumed or `overwrite`n."""
    check_config(cfg)
    run_dir = Path(cfg.run.out_dir)
    with prepare_run_dir(run_dir, resume=resume, overwrite=overwrite):
        _run(cfg, run_dir, resume)
    return run_dir


def _run(cfg: TrainConfig, run_dir: Path, resume: bool) -> None:
    """The pipeline: build the run, then train, evaluate, log and checkpoint step by step."""
    run = start_run(cfg, run_dir, resume)
    try:
        _loop(run)
    except RunStopped as err:  # the checkpoints are intact: say where to resume from
        last = latest_checkpoint(run_dir)
        where = f"its last checkpoint is {last.name}" if last else "it has no checkpoint yet"
        raise RunStopped(
            f"{err}; the run stops after step {run.state.step} ({where}): "
            f"zerosum train --resume {run_dir}"
        ) from err
    finally:  # Ray actors do not outlive the run, however it ends
        run.close()


def _loop(run: Run) -> None:
    """Train, evaluate, log and checkpoint from the step after `run.state.step` to the end."""
    cfg = run.cfg  # optim.bf16 resolved
    bar = tqdm(
        total=cfg.run.steps,
        initial=run.state.step,
        desc="train",
        disable=not cfg.run.progress,
        dynamic_ncols=True,
    )
    for step in range(run.state.step + 1, cfg.run.steps + 1):
        metrics = train_step(run, step)
        if cfg.run.eval_every and (step % cfg.run.eval_every == 0 or step == 1):
            metrics.update(
                evaluate(cfg, run.model, run.tokenizer, run.engine, run.rollout_settings, step)
            )
        run.log.log(step, metrics)
        bar.update(1)
        bar.set_postfix(
            invalid=f"{metrics['rollout/invalid_rate']:.2f}",
            resp=f"{metrics['rollout/response_tokens']:.0f}",
            loss=f"{metrics.get('loss/total', 0.0):+.4f}",
        )
        every = cfg.run.checkpoint_every
        if (every and step % every == 0) or step == cfg.run.steps:
            run.save_checkpoint()
        every = cfg.run.report_every
        if every and (step % every == 0 or step == cfg.run.steps):
            write_report(run.run_dir)
    bar.close()
    run.log.close()


@dataclass
class Run:
    """A training run's live objects, built once by `start_run`."""

    cfg: TrainConfig  # with optim.bf16 resolved to a bool
    run_dir: Path
    model: Any
    tokenizer: Any
    optimizer: torch.optim.Optimizer
    learner: Learner
    engine: Engine
    state: TrainState
    log: MetricsLog
    games: GamesLog  # the kept games (`run.keep_games`)
    rollout_backend: Rollouts  # where self-play games are played (`distributed.backend`)
    learner_group: LearnerGroup | None = None  # distributed.learner_ranks > 1: ranks 1..M-1
    tiny_base: Any = None  # LoRA on a tiny model: the random base, saved with checkpoints
    pool: OpponentPool | None = None  # opponents.pool_size or opponents.fixed
    placement: Placement | None = None  # backend ray: the reserved resources (and Ray)

    def close(self) -> None:
        """Stop the learner ranks and rollout workers, then release their resources."""
        try:
            if self.learner_group is not None:
                self.learner_group.close()
            self.rollout_backend.close()
        finally:
            if self.placement is not None:
                self.placement.close()

    @property
    def sampling(self) -> SamplingParams:
        """How self-play samples (`cfg.sampling`)."""
        s = self.cfg.sampling
        return SamplingParams(s.temperature, s.top_p, s.max_new_tokens)

    @property
    def rollout_settings(self) -> RolloutSettings:
        """How self-play games are played (`cfg.rollout`)."""
        return RolloutSettings.from_config(self.cfg.rollout)

    def save_checkpoint(self) -> None:
        """Checkpoint the current step (`checkpoint.save_checkpoint`), magnet and pool included."""
        if self.learner.magnet is not None:
            self.state.magnet = self.learner.magnet.state_dict()
        if self.pool is not None:
            self.state.pool = self.pool.state_dict()
        group = self.learner_group  # with FSDP, the optimizer state is in shards on the ranks
        with group.full_optimizer() if group is not None else nullcontext():
            save_checkpoint(
                self.run_dir, self.model, self.tokenizer, self.optimizer, self.state,
                config_to_dict(self.cfg), self.cfg.run.keep_checkpoints, base_model=self.tiny_base,
            )  # fmt: skip


def start_run(cfg: TrainConfig, run_dir: Path, resume: bool) -> Run:
    """On Ray, the run's resources first (`start_placement`); then model, optimizer and
    state (from the last good checkpoint when resuming), the metrics log, the run's
    config.json, the learner, the engine and the rollout backend (Ray workers start from the
    weights as they are now), in this order (the global torch RNG is seeded once, so the
    order is part of what a run reproduces)."""
    if cfg.distributed.backend == "ray":  # before anything slow: Ray may not be installed
        require_ray()
    candidates = resume_candidates(run_dir) if resume else []
    placement = None
    if cfg.distributed.backend == "ray":  # the resources first: the driver's GPU is Ray's choice
        placement = start_placement(cfg)
    try:
        return _build_run(cfg, run_dir, resume, candidates, placement)
    except BaseException:
        if placement is not None:  # its actors go with it
            placement.close()
        raise


def start_placement(cfg: TrainConfig) -> Placement:
    """The Ray run's resources reserved (`distributed.placement`); with the learner on a GPU,
    this process trains on the GPU of the driver's bundle from here on."""
    gpu = resolve_device(cfg.model.device).type == "cuda"
    placement = Placement(cfg.distributed, learner_on_gpu=gpu)
    if placement.driver_gpu is not None:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        try:
            torch.cuda.set_device(driver_cuda_index(placement.driver_gpu, visible))
        except BaseException:
            placement.close()
            raise
        d = cfg.distributed
        print(
            f"distributed: placement {d.placement}; the learner on GPU {placement.driver_gpu} "
            f"(cuda:{torch.cuda.current_device()} here)",
            file=sys.stderr,
        )
    return placement


def _build_run(
    cfg: TrainConfig, run_dir: Path, resume: bool, candidates: list, placement: Placement | None
) -> Run:
    """`start_run` after the placement: everything else, in that order."""
    torch.manual_seed(cfg.run.seed)
    model, tokenizer = build_model(cfg)
    optimizer = build_optimizer(cfg.optim, model)
    state = resume_from(candidates, model, optimizer) if resume else TrainState()
    log = MetricsLog(run_dir, cfg.run.tensorboard, state.step)  # a damaged log fails here
    games = GamesLog(run_dir, cfg.run, state.step)
    cfg = choose_precision(cfg, next(model.parameters()).device)
    write_atomic(run_dir / CONFIG_NAME, json.dumps(config_to_dict(cfg), indent=2))
    tiny_base = build_tiny(cfg, tokenizer) if cfg.model.tiny and cfg.model.lora else None
    learner = build_learner(cfg, model, optimizer, tokenizer, state)
    engine = build_engine(cfg, model, tokenizer)
    o = cfg.opponents
    pool = None
    if o.pool_size or o.fixed:  # fixed model players ask and read as the learner does
        pool = OpponentPool(o, model, state.pool, cfg.rollout.prompting)
    backend = make_rollouts(cfg, model, tokenizer, engine, state.step, placement)
    group = None
    if cfg.distributed.learner_ranks > 1:  # in the placement's bundles
        group = LearnerGroup(cfg, learner, tokenizer, cfg.distributed.learner_ranks, placement)
    return Run(
        cfg, run_dir, model, tokenizer, optimizer, learner, engine, state, log, games, backend,
        group, tiny_base, pool, placement,
    )  # fmt: skip


def make_rollouts(
    cfg: TrainConfig, model, tokenizer, engine: Engine, version: int, placement: Placement | None
) -> Rollouts:
    """The backend of `cfg.distributed`: the run's `engine`, or Ray workers started from
    `model` as it is now (policy `version`) in `placement`'s bundles."""
    if cfg.distributed.backend == "local":
        return LocalRollouts(engine, tokenizer)
    if placement is None:
        raise ValueError("distributed.backend 'ray' needs the run's placement (start_placement)")
    return RayRollouts(cfg, model, tokenizer, version, placement)


def build_learner(cfg: TrainConfig, model, optimizer, tokenizer, state: TrainState) -> Learner:
    """The learner of `cfg.algo` and `cfg.optim`; with `algo.regularizer: magnet` its magnet
    is a snapshot of the model as it is now (the initial weights), or the one `state` carries
    from a checkpoint."""
    magnet = None
    if cfg.algo.regularizer == "magnet":
        magnet = Magnet.from_config(cfg.algo, model, state.magnet)
    settings = LearnerSettings.from_config(cfg)
    return Learner(model, optimizer, settings, tokenizer.pad_token_id, magnet)


def train_step(run: Run, step: int) -> dict[str, float]:
    """One iteration: self-play, RAE advantages, the policy-gradient update and the new
    weights served; updates `run.state` and returns the step's metrics (without `eval/`)."""
    cfg, state, a = run.cfg, run.state, run.cfg.algo
    t0 = time.perf_counter()
    # 1. Self-play: the same model in both seats of every scheduled game (with a pool, a
    #    share of the games against earlier selves or fixed players, learning from its seat).
    schedule = schedule_games(cfg.rollout.games, cfg.rollout.games_per_step, cfg.run.seed, step)
    assigned = run.pool.assign(len(schedule), cfg.run.seed, step) if run.pool else []
    turns, episodes, backend_stats = run.rollout_backend.play(
        step, schedule, run.sampling, run.rollout_settings, step_seed(cfg.run.seed, step),
        seat_players(assigned),
    )  # fmt: skip
    t_rollout = time.perf_counter() - t0
    run.games.keep(step, step_seed(cfg.run.seed, step), turns, episodes, assigned, run.tokenizer)

    # 2. Role-conditioned advantages: return minus the EMA baseline of (game, seat), or
    #    (`algo.baseline: prompt`) minus the mean return of the other turns at that prompt.
    roles = [(t.game, t.seat) for t in turns]
    returns = [t.ret for t in turns]
    advantages, state.baselines = rae_advantages(
        returns, roles, state.baselines, a.rae_decay, a.rae
    )
    prompts = [tuple(t.prompt_ids) for t in turns]
    if a.baseline == "prompt":
        advantages = prompt_advantages(returns, prompts, advantages)
    keep = keep_nonzero(advantages) if a.drop_zero_advantage else range(len(turns))
    # Async mode: the engine's log-probabilities go along, for truncated importance sampling.
    off_policy = cfg.distributed.mode == "async"
    samples = [
        Sample(
            turns[i].prompt_ids, turns[i].response_ids, advantages[i], turns[i].allowed,
            turns[i].logprobs if off_policy else None,
        )
        for i in keep
    ]  # fmt: skip

    # 3. Policy-gradient update (the magnet, if any, pulls and is replaced when due), then
    #    the engine serves the new weights.
    t1 = time.perf_counter()
    torch.manual_seed(step_seed(cfg.run.seed, step))
    run.engine.offload()  # vllm sleep mode: the learner gets the GPU memory
    lr = learning_rate(step, cfg.optim, cfg.run.steps)
    if run.learner_group is None:
        learn_stats = run.learner.step(samples, lr, step)
    else:  # every rank on its share of the samples
        learn_stats = run.learner_group.step(samples, step_seed(cfg.run.seed, step), lr, step)
    learn_stats["optim/lr"] = lr
    run.engine.sync_weights()
    t_learn = time.perf_counter() - t1
    backend_stats.update(run.rollout_backend.publish(run.model, step))  # Ray: to every worker
    if run.pool is not None:
        learn_stats.update(run.pool.metrics(assigned))  # as drawn from, before this step's games
        run.pool.record(assigned, episodes)
        run.pool.after_step(run.model, step)

    state.step = step
    state.games_played += len(episodes)
    gen_tokens = sum(len(t.response_ids) for t in turns)
    # Tokens through the learner: every PPO epoch is a full forward and backward pass.
    train_tokens = sum(len(s) for s in samples) * run.learner.settings.passes
    return {
        **rollout_metrics(turns, episodes),
        "adv/mean": sum(advantages) / max(len(advantages), 1),
        "adv/abs_mean": sum(abs(x) for x in advantages) / max(len(advantages), 1),
        "adv/kept_fraction": len(samples) / max(len(turns), 1),
        # Where `algo.baseline: prompt` has a per-prompt baseline (the rest fall back to RAE's).
        "adv/repeated_prompt_fraction": repeated_fraction(prompts),
        **{f"adv/baseline/{k}": v for k, v in sorted(state.baselines.items())},
        **learn_stats,
        **backend_stats,
        "perf/rollout_s": t_rollout,
        "perf/learn_s": t_learn,
        "perf/gen_tokens_per_s": gen_tokens / max(t_rollout, 1e-9),
        "perf/train_tokens_per_s": train_tokens / max(t_learn, 1e-9),
        **({"perf/peak_rss_gib": rss} if (rss := peak_rss_gib()) is not None else {}),
        **({"perf/gpu_peak_gib": gpu_peak_gib()} if on_gpu(run.model) else {}),
        "progress/games": float(state.games_played),
    }
