"""The learner: the optimizer, its learning-rate schedule, and one update per training step.

A step scores the batch's responses (`scoring.response_logprobs`, in micro-batches) and
accumulates the loss over micro-batches (the summed Dr.GRPO loss adds up exactly).
PPO: every epoch is one optimizer step over the whole batch, so the first epoch's
log-probabilities are exactly those of the policy that produced the batch, and serve as the
"old" log-probabilities of the later epochs (no extra forward pass).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import torch

from zerosum.loss import Aggregation, LossKind, policy_loss, truncated_importance_weights
from zerosum.magnet import Magnet
from zerosum.models import enable_activation_checkpointing, trainable_parameters
from zerosum.scoring import (
    MicroBatch,
    Sample,
    merge_duplicates,
    plan_batch,
    plan_micro_batches,
    response_logprobs,
    token_weights,
)
from zerosum.typed_config import NON_NEGATIVE, POSITIVE, fld, numbers

LrSchedule = Literal["constant", "linear", "cosine"]
OptimizerKind = Literal["adamw", "sgd"]
_UNIT = numbers(0, 1)  # [0, 1]
_BELOW_ONE = numbers(0, 1, hi_open=True)  # [0, 1): Adam's betas, momentum


@dataclass
class OptimConfig:
    """`optim`: the optimizer and the learner's batching and precision."""

    optimizer: OptimizerKind = fld(
        "adamw",
        "adamw, or sgd (with momentum): steps proportional to the gradient, whose sampling "
        "noise then shrinks with more games a step, where Adam's per-parameter normalisation "
        "keeps it at lr (docs: The magnet)",
    )
    lr: float = fld(1e-6, "learning rate (the peak, with a schedule)", numbers(0, 1, lo_open=True))
    lr_schedule: LrSchedule = fld(
        "constant",
        "constant: lr throughout; linear or cosine: after warm-up, decay to lr * lr_final_ratio "
        "over decay_steps (self-play's noisy updates settle as the steps shrink)",
    )
    warmup_steps: int = fld(
        0, "first steps with a linearly rising learning rate, any schedule", NON_NEGATIVE
    )
    decay_steps: int = fld(
        0,
        "length of the decay after warm-up (0: until run.steps, which an extended resume moves)",
        NON_NEGATIVE,
    )
    lr_final_ratio: float = fld(0.0, "linear or cosine: the final learning rate over lr", _UNIT)
    beta1: float = fld(0.9, "Adam beta1", _BELOW_ONE)
    beta2: float = fld(0.95, "Adam beta2", _BELOW_ONE)
    momentum: float = fld(0.0, "SGD momentum", _BELOW_ONE)
    weight_decay: float = fld(0.0, "weight decay (decoupled for AdamW, L2 for SGD)", numbers(0))
    grad_clip: float = fld(1.0, "max global gradient norm", numbers(0, lo_open=True))
    # 2048: measured fastest per epoch on a 2-core CPU (bench_learner.py, BENCHMARKS.md),
    # and about 1 GiB less peak memory than 4096 for the default model.
    micro_batch_tokens: int = fld(2048, "padded tokens per micro-batch", POSITIVE)
    shared_prefix: bool = fld(
        True,
        "run the prompt prefix all samples of a micro-batch share (chat template, rules) once, "
        "not once per sample; the same gradients up to float rounding",
    )
    activation_checkpointing: bool = fld(
        False,
        "keep only each decoder layer's input during the learner's forward and recompute the "
        "rest in the backward pass: much less memory for activations, a slower learner "
        "(BENCHMARKS.md)",
    )
    bf16: bool | Literal["auto"] = fld(
        "auto",
        "bf16 autocast for the learner's forward/backward; auto: only where the hardware "
        "multiplies bf16 natively (CUDA with bf16, CPUs with AVX512-BF16 or AMX; elsewhere "
        "it is emulated and slower than fp32). The run's config.json records the choice.",
    )


def build_optimizer(optim: OptimConfig, model) -> torch.optim.Optimizer:
    """AdamW (or SGD) over the trainable parameters (all of them, or the LoRA adapter's)."""
    params = list(trainable_parameters(model).values())
    if optim.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=optim.lr, momentum=optim.momentum, weight_decay=optim.weight_decay
        )
    return torch.optim.AdamW(
        params,
        lr=optim.lr,
        betas=(optim.beta1, optim.beta2),
        weight_decay=optim.weight_decay,
        fused=True,
    )


def learning_rate(step: int, optim: OptimConfig, run_steps: int) -> float:
    """The learning rate of training step `step` (1-based): a linear warm-up over
    `warmup_steps` (lr / warmup_steps at step 1), then `lr_schedule` from `lr` at the first
    step after it to `lr * lr_final_ratio` at the last step of the decay (`decay_steps`, or
    the rest of the run), constant after."""
    if step <= optim.warmup_steps:
        return optim.lr * step / optim.warmup_steps
    if optim.lr_schedule == "constant":
        return optim.lr
    horizon = optim.decay_steps or max(run_steps - optim.warmup_steps, 1)
    done = min((step - optim.warmup_steps - 1) / max(horizon - 1, 1), 1.0)
    shape = 1.0 - done if optim.lr_schedule == "linear" else 0.5 * (1.0 + math.cos(math.pi * done))
    return optim.lr * (optim.lr_final_ratio + (1.0 - optim.lr_final_ratio) * shape)


@dataclass(frozen=True, kw_only=True)
class LearnerSettings:
    """What the learner reads of a run's config (the `algo` section's defaults are these;
    `optim`'s are `OptimConfig`'s). `from_config` builds it from a config."""

    loss: LossKind = "ppo"
    epochs: int = 2  # PPO only: REINFORCE makes one pass
    clip_eps: float = 0.2
    aggregation: Aggregation = "sum"
    norm_constant: float = 4096.0
    entropy_coef: float = 0.0
    # Reasoned answers: the loss weight of the reasoning's tokens (the move's is 1).
    reasoning_weight: float = 1.0
    # Its weight in the magnet KL term alone (None: `reasoning_weight`).
    reasoning_kl_weight: float | None = None
    move_kl_weight: float = 1.0  # the move's (and cue's) weight in the magnet KL term
    grad_clip: float = OptimConfig.grad_clip
    micro_batch_tokens: int = OptimConfig.micro_batch_tokens
    shared_prefix: bool = OptimConfig.shared_prefix
    activation_checkpointing: bool = OptimConfig.activation_checkpointing
    temperature: float = 1.0  # the rollouts' sampling temperature
    # Reasoned answers: the reasoning's (its steps allow any token, `[]`); None: `temperature`.
    reasoning_temperature: float | None = None
    bf16: bool = False  # bf16 autocast; `optim.bf16: auto` must be resolved first
    # Async mode: truncated importance sampling against the engine's log-probabilities,
    # with this cap (None: off; samples are on-policy).
    tis_cap: float | None = None

    @classmethod
    def from_config(cls, cfg: Any) -> LearnerSettings:
        """The settings of `cfg.algo`, `cfg.optim` (its `bf16` already resolved to a bool,
        see `train.choose_precision`) and the rollouts' `cfg.sampling.temperature`."""
        a, o = cfg.algo, cfg.optim
        if not isinstance(o.bf16, bool):
            raise ValueError(f"optim.bf16 = {o.bf16!r} must be resolved to true or false first")
        return cls(
            loss=a.loss, epochs=a.ppo_epochs, clip_eps=a.clip_eps, aggregation=a.aggregation,
            norm_constant=a.norm_constant, entropy_coef=a.entropy_coef,
            reasoning_weight=a.reasoning_weight, reasoning_kl_weight=a.reasoning_kl_weight,
            move_kl_weight=a.move_kl_weight, grad_clip=o.grad_clip,
            micro_batch_tokens=o.micro_batch_tokens,
            shared_prefix=o.shared_prefix, activation_checkpointing=o.activation_checkpointing,
            temperature=cfg.sampling.temperature,
            reasoning_temperature=cfg.sampling.reasoning_temperature, bf16=o.bf16,
            tis_cap=cfg.distributed.tis_cap if cfg.distributed.mode == "async" else None,
        )  # fmt: skip

    @property
    def passes(self) -> int:
        """Forward and backward passes over a batch: every PPO epoch, one for REINFORCE."""
        return self.epochs if self.loss == "ppo" else 1


def _left_aligned(rows: Sequence[list[float] | None], shape: torch.Size, device) -> torch.Tensor:
    """Per-token values of each response, [B, T] left-aligned like `Scores` (0 as padding)."""
    out = torch.zeros(shape, dtype=torch.float32)
    for i, row in enumerate(rows):
        if row is None:
            raise ValueError("truncated importance sampling needs the engine's log-probabilities")
        out[i, : len(row)] = torch.tensor(row, dtype=torch.float32)
    return out.to(device)


# `policy_loss` statistics that are totals; the others are means, weighted to add up.
_TOTAL_STATS = ("loss/total", "loss/tokens")


@dataclass
class _Update:
    """What one update's micro-batches share across epochs: normaliser, magnet, first scores."""

    total_tokens: float  # the whole batch's response tokens (`Learner._total_tokens`)
    alpha: float  # the magnet's KL weight
    magnet_is_policy: bool  # `Magnet.is_policy`: the KL is 0, no magnet pass in epoch 0
    old: dict[int, torch.Tensor] = field(default_factory=dict)  # per micro-batch
    tis: dict[int, torch.Tensor] = field(default_factory=dict)  # per micro-batch (async mode)
    tis_stats: dict[str, float] = field(default_factory=dict)


def _plan_stats(plan: Sequence[MicroBatch], merged: int, turns: int) -> dict[str, float]:
    """An epoch's cost (padding, prefix reuse, duplicates) from the counts its plan carries."""
    padded = sum(mb.padded for mb in plan)
    saved = sum(mb.saved for mb in plan)
    real = sum(mb.real for mb in plan)
    return {
        "perf/pad_fraction": 1.0 - (real - saved) / max(padded, 1),
        "perf/shared_prefix_fraction": saved / max(real, 1),  # of the tokens, not rerun
        "perf/forward_tokens": float(padded),  # per epoch, padding included
        "loss/micro_batches": float(len(plan)),
        # scored once, counted often (a rank of a sharded learner may have no turns)
        "perf/duplicate_turns": 1.0 - merged / max(turns, 1),
    }


class GradientSync(Protocol):
    """Data-parallel learner ranks (`zerosum.distributed.learner_group`): each rank steps
    on its own share of a batch and these sums across ranks make the update the whole
    batch's."""

    def sum(self, value: float) -> float:
        """`value` summed over the ranks."""
        ...

    def sum_grads(self, params: Sequence[torch.nn.Parameter]) -> None:
        """Replace every parameter's gradient by its sum over the ranks (None counts as 0)."""
        ...

    def micro_batches(self, count: int) -> int:
        """How many forward and backward passes this rank runs per epoch, given its own
        `count` of micro-batches: `count` when gradients are summed once per epoch, the
        ranks' maximum when every backward pass is a collective (FSDP); the extra passes
        carry no gradient."""
        ...


class Learner:
    """Owns the optimizer; `step(samples)` is one training iteration's update. With a
    `magnet` (regularizer `magnet`) the loss adds the magnet's weight times the KL to it. With
    `sync`, this is one rank of a data-parallel learner and `samples` its share."""

    def __init__(
        self,
        model,
        optimizer: torch.optim.Optimizer,
        settings: LearnerSettings,
        pad_id: int,
        magnet: Magnet | None = None,
        sync: GradientSync | None = None,
    ):
        self.model = model
        self.optimizer = optimizer
        self.settings = settings
        self.pad_id = pad_id
        self.magnet = magnet
        self.sync = sync
        if settings.activation_checkpointing:
            enable_activation_checkpointing(model)

    def _autocast(self):
        device = next(self.model.parameters()).device.type
        return torch.autocast(device, dtype=torch.bfloat16) if self.settings.bf16 else nullcontext()

    def step(
        self, samples: Sequence[Sample], lr: float | None = None, step: int | None = None
    ) -> dict[str, float]:
        """PPO epochs (or one REINFORCE pass) over `samples` as training step `step`; returns
        namespaced stats (with `sync`: this rank's share of the batch's sums, see
        `LearnerGroup`). `lr` is the optimizer's learning rate from this step on
        (`optim.lr_schedule`). The magnet's weight and age are those of `step` (None: its
        unscheduled weight), and it is replaced after the update when that is due."""
        if lr is not None:
            for group in self.optimizer.param_groups:
                group["lr"] = lr
        if self.magnet is None:
            return self._update(samples, 0.0, False)
        magnet_stats = self.magnet.metrics(step)  # of the magnet this update is pulled to
        stats = self._update(samples, self.magnet.weight(step), self.magnet.is_policy(step))
        self.magnet.after_update(step)
        return {**stats, **magnet_stats}

    def _update(
        self, samples: Sequence[Sample], alpha: float, magnet_is_policy: bool
    ) -> dict[str, float]:
        """`step` with the magnet's KL weight `alpha`; `magnet_is_policy`: the magnet is the
        policy being updated."""
        if not (self.sync.sum(len(samples)) if self.sync else samples):
            return {"loss/skipped_empty_batch": 1.0}
        self.model.train()
        s = self.settings
        turns = len(samples)
        samples = merge_duplicates(samples)
        plan = plan_batch(samples, s.micro_batch_tokens, s.shared_prefix)
        update = _Update(self._total_tokens(samples), alpha, magnet_is_policy)
        passes = self.sync.micro_batches(len(plan)) if self.sync else len(plan)
        stats: dict[str, float] = {}
        for epoch in range(s.passes):  # the last epoch's statistics are reported
            stats = self._epoch(samples, plan, passes, epoch, update)
        return {**stats, **_plan_stats(plan, len(samples), turns), **update.tis_stats}

    def _total_tokens(self, samples: Sequence[Sample]) -> float:
        """The loss's normaliser: the batch's response tokens (all ranks'), per turn a row
        holds, each at its `token_weights`."""
        w = self.settings.reasoning_weight
        total = float(sum(sum(token_weights(x, w)) * x.count for x in samples))
        return self.sync.sum(total) if self.sync else total

    def _epoch(
        self,
        samples: Sequence[Sample],
        plan: Sequence[MicroBatch],
        passes: int,
        epoch: int,
        update: _Update,
    ) -> dict[str, float]:
        """One optimizer step (a PPO epoch): every micro-batch's backward, then clip and step."""
        self.optimizer.zero_grad(set_to_none=True)
        sums: dict[str, float] = {}
        for _ in range(len(plan), passes):  # join the collectives of others' extra passes (FSDP)
            self._idle_pass()
        for b, mb in enumerate(plan):
            rows = [samples[i] for i in mb.rows]
            for k, v in self._micro_batch(b, rows, epoch, update).items():
                sums[k] = sums.get(k, 0.0) + v
        sums["loss/grad_norm"] = self._optimizer_step()
        return sums

    def _micro_batch(
        self, b: int, mb: Sequence[Sample], epoch: int, update: _Update
    ) -> dict[str, float]:
        """Accumulate micro-batch `b`'s gradient; its loss stats, weighted by its token share."""
        s = self.settings
        magnet = self.magnet
        with self._autocast():
            logp, mask, ent, kl = response_logprobs(
                self.model, mb, s.temperature, self.pad_id,
                entropy_grad=s.entropy_coef > 0,
                magnet=magnet.snapshot if magnet is not None else None,
                shared_prefix=s.shared_prefix,
                magnet_is_policy=epoch == 0 and update.magnet_is_policy,
                reasoning_temperature=s.reasoning_temperature,
            )  # fmt: skip
        counts = torch.tensor([float(x.count) for x in mb], device=logp.device)
        per_token = per_token_kl = None  # every token weighs 1, the KL as the rest
        if s.reasoning_weight != 1.0:
            per_token = self._token_weights(mb, s.reasoning_weight, logp)
        kl_weight = s.reasoning_weight if s.reasoning_kl_weight is None else s.reasoning_kl_weight
        if kl_weight != s.reasoning_weight or s.move_kl_weight != 1.0:
            per_token_kl = self._token_weights(mb, kl_weight, logp, s.move_kl_weight)
        weighed = mask if per_token is None else mask * per_token
        weight = float((weighed.sum(1) * counts).sum()) / update.total_tokens
        if epoch == 0:
            self._first_scores(b, mb, logp, mask, weight, update)
        adv = torch.tensor([x.advantage for x in mb], device=logp.device)
        loss, st = policy_loss(
            logp.float(), update.old[b].float(), adv, mask, kind=s.loss, clip_eps=s.clip_eps,
            magnet_kl=kl, magnet_alpha=update.alpha, aggregation=s.aggregation,
            norm_constant=s.norm_constant, total_tokens=update.total_tokens,
            entropy=ent.float(), entropy_coef=s.entropy_coef, tis_weight=update.tis.get(b),
            counts=counts, token_weights=per_token, kl_token_weights=per_token_kl,
        )  # fmt: skip
        loss.backward()
        return {k: v if k in _TOTAL_STATS else v * weight for k, v in st.items()}

    @staticmethod
    def _token_weights(
        mb: Sequence[Sample], reasoning_weight: float, logp: torch.Tensor, move_weight: float = 1.0
    ) -> torch.Tensor:
        """[B, T] `token_weights` of a micro-batch, left-aligned as `logp`."""
        weights = [token_weights(x, reasoning_weight, move_weight) for x in mb]
        return _left_aligned(weights, logp.shape, logp.device)

    def _first_scores(
        self,
        b: int,
        mb: Sequence[Sample],
        logp: torch.Tensor,
        mask: torch.Tensor,
        weight: float,
        update: _Update,
    ) -> None:
        """Keep the first epoch's scores, the sampling policy's, for later ratios and TIS weights."""
        update.old[b] = logp.detach()
        if self.settings.tis_cap is None:
            return
        engine = _left_aligned([x.logprobs for x in mb], logp.shape, logp.device)
        update.tis[b], st = truncated_importance_weights(
            update.old[b].float(), engine, mask, self.settings.tis_cap
        )
        for k, v in st.items():
            update.tis_stats[k] = update.tis_stats.get(k, 0.0) + v * weight

    def _optimizer_step(self) -> float:
        """Sum over ranks, clip to `grad_clip` and step; returns the norm before clipping."""
        trainable = list(trainable_parameters(self.model).values())
        if self.sync:  # every rank then clips and steps on the same, whole-batch gradient
            self.sync.sum_grads(trainable)
        grad_norm = torch.nn.utils.clip_grad_norm_(trainable, self.settings.grad_clip)
        self.optimizer.step()
        full = getattr(grad_norm, "full_tensor", None)  # FSDP: a DTensor, the same on every rank
        return float(full() if full else grad_norm)

    def _idle_pass(self) -> None:
        """A forward and backward pass of one token with zero loss: with FSDP, a rank with
        fewer micro-batches than the others still joins every gradient reduction."""
        ids = torch.tensor([[self.pad_id]], device=next(self.model.parameters()).device)
        with self._autocast():
            logits = self.model(input_ids=ids, logits_to_keep=1, use_cache=False).logits
        (logits.float().sum() * 0.0).backward()

    @torch.no_grad()
    def surrogate_loss(self, samples: Sequence[Sample]) -> float:
        """REINFORCE surrogate -sum(A * logp) / tokens at the current weights (for tests and
        diagnostics: it falls when an update moved probability towards positive advantages)."""
        total = 0.0
        n = 0
        s = self.settings
        for idx in plan_micro_batches(samples, s.micro_batch_tokens, s.shared_prefix):
            mb = [samples[i] for i in idx]
            logp, mask, _, _ = response_logprobs(
                self.model, mb, s.temperature, self.pad_id, shared_prefix=s.shared_prefix,
                reasoning_temperature=s.reasoning_temperature,
            )  # fmt: skip
            adv = torch.tensor([x.advantage for x in mb], device=logp.device)[:, None]
            total += float(-(adv * logp * mask).sum())
            n += int(mask.sum())
        return total / max(n, 1)
