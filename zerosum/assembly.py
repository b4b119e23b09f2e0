"""A training run's assembly: the model, optimizer, learner, engine, rollout backend, opponent
pool and logs built in a fixed order (the global torch RNG is seeded once, so the order is part
of what a run reproduces), resumed from the last good checkpoint, and closed whatever happens.
The loop that drives it is `zerosum.train`."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from zerosum.checkpoint import TrainState, resume_candidates, resume_from, save_checkpoint
from zerosum.config import TrainConfig, config_to_dict
from zerosum.distributed.learner_group import LearnerGroup
from zerosum.distributed.placement import Placement, driver_cuda_index
from zerosum.distributed.ray_backend import RayRollouts, require_ray
from zerosum.distributed.rollouts import LocalRollouts, Rollouts
from zerosum.engines import Engine, SamplingParams, make_engine
from zerosum.hardware import resolve_bf16
from zerosum.league import Assignment, OpponentPool, seat_names
from zerosum.learner import Learner, LearnerSettings, build_optimizer
from zerosum.magnet import Magnet
from zerosum.models import (
    load_model,
    load_tokenizer,
    resolve_device,
    tiny_model,
    trainable_parameters,
)
from zerosum.plan import StepPlan
from zerosum.report import write_report
from zerosum.rollout import Episode, RolloutSettings, Turn, game_records
from zerosum.rundir import (
    CONFIG_NAME,
    GamesLog,
    MetricsLog,
    RunStopped,
    latest_checkpoint,
    write_atomic,
)
from zerosum.snapshot import fits
from zerosum.wandb_logger import WandbLogger, require_wandb

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
    return tiny_model(
        tokenizer, m.tiny_hidden_size, m.tiny_layers, seed=cfg.run.seed, family=m.tiny_family
    )


def build_engine(cfg: TrainConfig, model, tokenizer) -> Engine:
    """The rollout engine: `hf` shares the learner's module; `vllm` starts a colocated vLLM
    from a snapshot of it (about 40 s on a CPU) and is refreshed by `sync_weights`."""
    return make_engine(
        cfg.engine, model, tokenizer, max_batch=cfg.rollout.max_concurrent, seed=cfg.run.seed,
        vllm=cfg.vllm,
    )  # fmt: skip


def choose_precision(cfg: TrainConfig, device: torch.device) -> TrainConfig:
    """Resolve `optim.bf16: auto` from the hardware, say so once, and return the config with
    the choice written in (config.json keeps it, so a resumed run computes the same way)."""
    bf16, why = resolve_bf16(cfg.optim.bf16, device)
    print(f"precision: {'bf16 autocast' if bf16 else 'float32'} ({why})", file=sys.stderr)
    return dataclasses.replace(cfg, optim=dataclasses.replace(cfg.optim, bf16=bf16))


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
    wandb: WandbLogger | None = None  # wandb.mode not disabled: also a sink of `log`

    def close(self) -> None:
        """Stop the learner ranks and rollout workers, then release their resources (a W&B
        run still open here ended badly: it finishes as failed)."""
        try:
            if self.learner_group is not None:
                self.learner_group.close()
            self.rollout_backend.close()
        finally:
            if self.placement is not None:
                self.placement.close()
            if self.wandb is not None:
                self.wandb.abort()

    @property
    def sampling(self) -> SamplingParams:
        """How self-play samples (`cfg.sampling`)."""
        s = self.cfg.sampling
        return SamplingParams(s.temperature, s.top_p, s.max_new_tokens, s.reasoning_temperature)

    @property
    def rollout_settings(self) -> RolloutSettings:
        """How self-play games are played (`cfg.rollout`)."""
        return RolloutSettings.from_config(self.cfg.rollout)

    def keep_games(
        self, plan: StepPlan, turns: Sequence[Turn], episodes: Sequence[Episode],
        assigned: Sequence[Assignment],
    ) -> None:  # fmt: skip
        """Write the step's first games whole to RUN/games.jsonl when the step is kept."""
        n = self.games.wanted(plan.step, len(episodes))
        if n:
            records = game_records(episodes, turns, n, self.tokenizer.decode)
            players = seat_names(assigned, n)
            self.games.write(plan.step, plan.seed, [
                {"players": seats, **record} for seats, record in zip(players, records)
            ])  # fmt: skip

    @contextmanager
    def stopped_says_where(self) -> Iterator[None]:
        """A `RunStopped` (a rank or worker lost for good) leaves the checkpoints intact: its
        message gains where the run stopped and the command that resumes it."""
        try:
            yield
        except RunStopped as err:
            last = latest_checkpoint(self.run_dir)
            where = f"its last checkpoint is {last.name}" if last else "it has no checkpoint yet"
            raise RunStopped(
                f"{err}; the run stops after step {self.state.step} ({where}): "
                f"zerosum train --resume {self.run_dir}"
            ) from err

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
    require_wandb(cfg.wandb.mode)
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
    games = GamesLog(
        run_dir, state.step, keep_games=cfg.run.keep_games, steps=cfg.run.steps,
        keep_games_steps=cfg.run.keep_games_steps,
    )  # fmt: skip
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
    tracker = None
    if cfg.wandb.mode != "disabled":  # last: nothing after it can fail and leave it open
        tracker = WandbLogger(
            cfg.wandb, run_dir, config_to_dict(cfg), resume, report=lambda: write_report(run_dir)
        )
        log.sinks.append(tracker)
    return Run(
        cfg=cfg, run_dir=run_dir, model=model, tokenizer=tokenizer, optimizer=optimizer,
        learner=learner, engine=engine, state=state, log=log, games=games,
        rollout_backend=backend, learner_group=group, tiny_base=tiny_base, pool=pool,
        placement=placement, wandb=tracker,
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
        magnet = Magnet.from_config(cfg.algo, model, _first_magnet(cfg, model, state))
    settings = LearnerSettings.from_config(cfg)
    return Learner(model, optimizer, settings, tokenizer.pad_token_id, magnet)


def _first_magnet(cfg: TrainConfig, model, state: TrainState) -> dict | None:
    """The magnet's saved state: the checkpoint's, else `algo.magnet_model`'s weights, else
    None (a snapshot of the policy as it is now)."""
    name = cfg.algo.magnet_model
    if state.magnet is not None or name is None:
        return state.magnet
    other, _ = load_model(name)
    weights = {n: p.detach() for n, p in trainable_parameters(other).items()}
    if not fits(weights, trainable_parameters(model)):
        raise ValueError(
            f"config field 'algo.magnet_model' = {name!r} does not fit model.name "
            f"{cfg.model.name!r}: its weights differ in names or shapes; name a model of the "
            "same architecture"
        )
    return {"step": 0, "weights": weights, "foreign": True}
