"""Self-play training, one iteration top to bottom (SPIRAL, arXiv 2506.24119).

    plan the step -> play its games by self-play (one policy, both seats) -> RAE advantages
    -> policy-gradient step -> serve the new weights -> evaluate, log, checkpoint

Each stage is one call into the module that owns it; the run's objects are built by
`zerosum.assembly`, its files written by `zerosum.rundir`. Departures from the paper, and why:
- RAE updates its per-(game, seat) baseline once per batch with the batch mean (the paper
  updates per sample); the result does not depend on the order concurrent games finish.
- PPO "old" log-probabilities come from the learner's first epoch, not from the engine,
  so top-p or engine numerics never leak into the ratio (the engine's are kept for metrics).
- Every random choice of a step is derived from (seed, step) (`plan.plan_step`): resuming
  repeats a run exactly.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import torch
from tqdm import tqdm

from zerosum.advantage import (
    keep_nonzero,
    prompt_advantages,
    rae_advantages,
    repeated_fraction,
    role_normalized_advantages,
)
from zerosum.assembly import Run, start_run
from zerosum.config import TrainConfig
from zerosum.config_checks import check_config
from zerosum.engines import SamplingParams
from zerosum.evaluation.games import evaluate_against
from zerosum.evaluation.policy import model_policy, nash_conv
from zerosum.hardware import memory_metrics
from zerosum.league import seat_players
from zerosum.plan import StepPlan, plan_step
from zerosum.players import make_player
from zerosum.report import write_report
from zerosum.rollout import Turn, rollout_metrics
from zerosum.rundir import prepare_run_dir
from zerosum.scoring import Sample


def train(cfg: TrainConfig, resume: bool = False, overwrite: bool = False) -> Path:
    """Run (or continue) training; returns the run directory. The run directory is locked
    for the whole run; an existing run there is refused unless resumed or `overwrite`n."""
    check_config(cfg)
    run_dir = Path(cfg.run.out_dir)
    with prepare_run_dir(run_dir, resume=resume, overwrite=overwrite):
        run = start_run(cfg, run_dir, resume)
        try:
            with run.stopped_says_where():
                loop(run)
        finally:  # Ray actors do not outlive the run, however it ends
            run.close()
    return run_dir


def loop(run: Run) -> None:
    """Train, evaluate, log and checkpoint from the step after `run.state.step` to the end."""
    cfg = run.cfg  # optim.bf16 resolved
    bar = tqdm(total=cfg.run.steps, initial=run.state.step, desc="train",
               disable=not cfg.run.progress, dynamic_ncols=True)  # fmt: skip
    for step in range(run.state.step + 1, cfg.run.steps + 1):
        plan = plan_step(cfg, step)
        metrics = train_step(run, plan)
        if cfg.run.eval_every and (step % cfg.run.eval_every == 0 or step == 1):
            metrics.update(evaluate(run, plan))
        run.log.log(step, metrics)
        bar.update(1)
        bar.set_postfix(
            invalid=f"{metrics['rollout/invalid_rate']:.2f}",
            resp=f"{metrics['rollout/response_tokens']:.0f}",
            loss=f"{metrics.get('loss/total', 0.0):+.4f}",
        )
        if (cfg.run.checkpoint_every and step % cfg.run.checkpoint_every == 0) or (
            step == cfg.run.steps
        ):
            run.save_checkpoint()
        if cfg.run.report_every and (step % cfg.run.report_every == 0 or step == cfg.run.steps):
            write_report(run.run_dir)
    bar.close()
    run.log.close()


def train_step(run: Run, plan: StepPlan) -> dict[str, float]:
    """One iteration: self-play, RAE advantages, the policy-gradient update and the new
    weights served; updates `run.state` and returns the step's metrics (without `eval/`)."""
    cfg, state, a = run.cfg, run.state, run.cfg.algo
    # 1. Self-play: the same model in both seats of every scheduled game (with a pool, a
    #    share of the games against earlier selves or fixed players, learning from its seat).
    t0 = time.perf_counter()
    assigned = run.pool.assign(len(plan.schedule), cfg.run.seed, plan.step) if run.pool else []
    turns, episodes, backend_stats = run.rollout_backend.play(
        plan, run.sampling, run.rollout_settings, seat_players(assigned)
    )
    t_rollout = time.perf_counter() - t0
    run.keep_games(plan, turns, episodes, assigned)

    # 2. Role-conditioned advantages: return minus the EMA baseline of (game, seat), or
    #    (`algo.baseline: prompt`) minus the mean return of the other turns at that prompt,
    #    or (`role`, MARSHAL) standardised among the batch's turns of the same (game, seat).
    returns, roles = [t.ret for t in turns], [(t.game, t.seat) for t in turns]
    advantages, state.baselines = rae_advantages(
        returns, roles, state.baselines, a.rae_decay, a.rae
    )
    prompts = [tuple(t.prompt_ids) for t in turns]
    if a.baseline == "prompt":
        advantages = prompt_advantages(returns, prompts, advantages)
    elif a.baseline == "role":
        advantages = role_normalized_advantages(returns, roles)
    keep = keep_nonzero(advantages) if a.drop_zero_advantage else range(len(turns))
    # Async mode: the engine's log-probabilities go along, for truncated importance sampling.
    samples = to_samples(turns, advantages, keep, off_policy=cfg.distributed.mode == "async")

    # 3. Policy-gradient update (the magnet, if any, pulls and is replaced when due), then
    #    the engine serves the new weights (on Ray, every worker).
    t1 = time.perf_counter()
    torch.manual_seed(plan.seed)
    run.engine.offload()  # vllm sleep mode: the learner gets the GPU memory
    if run.learner_group is None:
        learn_stats = run.learner.step(samples, plan.lr, plan.step)
    else:  # every rank on its share of the samples
        learn_stats = run.learner_group.step(samples, plan.seed, plan.lr, plan.step)
    learn_stats["optim/lr"] = plan.lr
    run.engine.sync_weights()
    t_learn = time.perf_counter() - t1
    backend_stats.update(run.rollout_backend.publish(run.model, plan.step))
    if run.pool is not None:  # as drawn from, before this step's games
        learn_stats.update(run.pool.finish_step(assigned, episodes, run.model, plan.step))

    state.step = plan.step
    state.games_played += len(episodes)
    # Tokens through the learner: every PPO epoch is a full forward and backward pass.
    train_tokens = sum(len(s) for s in samples) * run.learner.settings.passes
    gen_tokens = sum(len(t.response_ids) for t in turns)
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
        **memory_metrics(run.model),
        "progress/games": float(state.games_played),
    }


def to_samples(
    turns: Sequence[Turn], advantages: Sequence[float], keep: Sequence[int], off_policy: bool
) -> list[Sample]:
    """The learner's samples: the kept turns with their advantages (and, `off_policy`, the
    engine's log-probabilities of the response)."""
    return [
        Sample(
            turns[i].prompt_ids, turns[i].response_ids, advantages[i], turns[i].allowed,
            turns[i].logprobs if off_policy else None,
        )
        for i in keep
    ]  # fmt: skip


def evaluate(run: Run, plan: StepPlan) -> dict[str, float]:
    """Online evaluation after step `plan.step` (`eval/...` metrics): the exact NashConv of
    the model's policy for `eval.nash_conv`, and win rates against each of `eval.opponents`
    at `eval.games`, played through the run's engine as self-play plays (forfeits scored
    -1/+1), seeded `plan.eval_seed`. A `model:PATH` opponent is asked and read as the run's
    own model is."""
    cfg, settings = run.cfg, run.rollout_settings
    r, e = cfg.rollout, cfg.eval
    metrics = {}
    for game in e.nash_conv:
        start = time.perf_counter()
        policy = model_policy(run.model, run.tokenizer, game, cfg.sampling.temperature, r.prompting)
        for key, value in nash_conv(game, policy).items():
            metrics[f"eval/{game}/{key}"] = value
        metrics[f"perf/eval_{game}_nash_conv_s"] = time.perf_counter() - start
    params = SamplingParams(e.temperature, e.top_p, cfg.sampling.max_new_tokens)
    for game in e.games:
        for spec in e.opponents:
            opponent = make_player(spec, settings.prompting, params)
            res = evaluate_against(
                run.engine, run.tokenizer, game, opponent, n=e.n, seed=plan.eval_seed,
                params=params, settings=settings,
            )  # fmt: skip
            for key in ("win_rate", "draw_rate", "loss_rate", "invalid_rate", "mean_return"):
                metrics[f"eval/{game}/{spec}/{key}"] = res[key]
    return metrics
