"""The learner: log-probabilities of sampled responses, and one optimizer step.

Micro-batches are formed by sorting samples by length and packing them under a token budget
(padded tokens), so similar lengths share a batch and little compute goes to padding; the
loss of a step is accumulated over micro-batches (the summed Dr.GRPO loss adds up exactly).
PPO: every epoch is one optimizer step over the whole batch, so the first epoch's
log-probabilities are exactly those of the policy that produced the batch, and serve as the
"old" log-probabilities of the later epochs (no extra forward pass).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, replace
from typing import NamedTuple, Protocol

import torch

from zerosum.batching import (
    MIN_SHARED_PREFIX,
    common_prefix,
    prefix_used,
    prefixed_batch,
    with_prefix,
)
from zerosum.config import (
    Aggregation,
    AlgoConfig,
    LossKind,
    OptimConfig,
    SamplingConfig,
    TrainConfig,
)
from zerosum.loss import policy_loss, token_kl, truncated_importance_weights
from zerosum.models import enable_activation_checkpointing, trainable_parameters
from zerosum.snapshot import Snapshot


@dataclass
class Sample:
    """One turn as training data."""

    prompt_ids: list[int]
    response_ids: list[int]
    advantage: float
    allowed: list[list[int]] | None = None  # constrained mode: allowed token ids per step
    logprobs: list[float] | None = None  # the engine's, when sampled (async mode: for TIS)
    count: int = 1  # identical turns this row stands for (`merge_duplicates`)

    def __len__(self) -> int:
        return len(self.prompt_ids) + len(self.response_ids)


def merge_duplicates(samples: Sequence[Sample]) -> list[Sample]:
    """Identical turns (the same prompt, response, allowed tokens and engine log-probs) as one
    row whose `count` is their number and whose advantage is their mean, kept apart by the
    advantage's sign: PPO's clip picks its side by that sign, so within a group the loss is
    exactly count x one turn's. Small games repeat the same turn many times in a batch (256
    Kuhn Poker games: about 560 turns, at most 24 distinct); the learner scores each once."""
    groups: dict[tuple, list[Sample]] = {}
    for x in samples:
        allowed = None if x.allowed is None else tuple(map(tuple, x.allowed))
        logprobs = None if x.logprobs is None else tuple(x.logprobs)
        key = (tuple(x.prompt_ids), tuple(x.response_ids), allowed, logprobs, x.advantage > 0)
        groups.setdefault(key, []).append(x)
    merged = []
    for group in groups.values():
        count = sum(x.count for x in group)
        advantage = sum(x.advantage * x.count for x in group) / count
        merged.append(replace(group[0], advantage=advantage, count=count))
    return merged


def micro_batches(lengths: Sequence[int], budget: int) -> list[list[int]]:
    """Indices grouped so that (count x longest) <= budget; a longer sample goes alone."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        longest = lengths[current[0]] if current else lengths[i]
        if current and (len(current) + 1) * longest > budget:
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


def plan_micro_batches(
    samples: Sequence[Sample], budget: int, shared_prefix: bool
) -> list[list[int]]:
    """The micro-batches of a batch: by length, or grouped by prompt prefix when the shared
    prefix runs once per micro-batch."""
    if shared_prefix and len(samples) > 1:
        return prefix_micro_batches(samples, budget)
    return micro_batches([len(x) for x in samples], budget)


# What a forward and backward pass costs beyond its tokens, in tokens: the embedding's and
# output layer's dense gradients and their accumulation, paid once per micro-batch. Measured
# on a 2-core CPU with Kuhn Poker's 24 distinct turns, one pass of 2232 tokens against six of
# 1422: 160 tokens a pass make the two equal for SmolLM2-135M (within its noise), and the tiny
# test model steps 2x faster in the one pass.
PASS_TOKENS = 160


def prefix_micro_batches(samples: Sequence[Sample], budget: int) -> list[list[int]]:
    """Micro-batches for the shared-prefix forward: samples whose prompts share at least
    half the median prompt length (the seat, the rules, the history so far) are grouped, so
    each micro-batch's common prefix is long; consecutive groups (and lone samples) then share
    a micro-batch when that runs fewer tokens than apart plus a pass (`PASS_TOKENS`). The budget
    counts each sample's tokens after its micro-batch's common prefix."""
    prompts = [s.prompt_ids for s in samples]
    need = max(MIN_SHARED_PREFIX, sorted(len(p) for p in prompts)[len(prompts) // 2] // 2)
    order = sorted(range(len(samples)), key=lambda i: prompts[i])  # shared prefixes adjacent
    groups: list[list[int]] = []
    for i in order:
        if groups and common_prefix(prompts[groups[-1][0]], prompts[i]) >= need:
            groups[-1].append(i)
        else:
            groups.append([i])

    def cost(rows: list[int]) -> tuple[int, int]:
        """The rows' common prefix and the tokens after it (every row padded to the longest)."""
        shared = min(common_prefix(prompts[rows[0]], prompts[i]) for i in rows)
        return shared, len(rows) * max(len(samples[i]) - shared for i in rows)

    batches: list[list[int]] = []
    current: list[int] = []
    for group in groups:
        shared, rest = cost(group)
        if rest > budget:  # too large on its own: split by length
            batches += [current] if current else []
            current = []
            lengths = [len(samples[i]) - shared for i in group]
            batches += [[group[j] for j in b] for b in micro_batches(lengths, budget)]
            continue
        if current:
            both_shared, both_rest = cost(current + group)
            apart = sum(cost(current)) + shared + rest + PASS_TOKENS
            if both_rest <= budget and both_shared + both_rest <= apart:
                current += group
                continue
            batches.append(current)
        current = list(group)
    return batches + ([current] if current else [])


class Scores(NamedTuple):
    """`response_logprobs` per response token, [B, T] left-aligned (T the longest response)."""

    logp: torch.Tensor  # log-probability of the sampled token
    mask: torch.Tensor  # 1.0 on response tokens, 0.0 on padding
    entropy: torch.Tensor  # of the next-token distribution
    magnet_kl: torch.Tensor | None  # KL(policy || magnet) of it, when a magnet is given


def response_logprobs(
    model,
    samples: Sequence[Sample],
    temperature: float = 1.0,
    pad_id: int = 0,
    entropy_grad: bool = False,
    magnet: Snapshot | None = None,
    shared_prefix: bool = True,
    magnet_is_policy: bool = False,
) -> Scores:
    """Per-token log-probs of each response under `model`, the response mask and entropy,
    and with `magnet` the exact KL to the magnet's next-token distributions.
    `magnet_is_policy`: the magnet's weights are the model's (a magnet just replaced, before
    the update); then the KL is exactly 0 with no magnet forward pass (a no-grad pass can
    round differently from the policy's own on some CPUs' kernels).

    Constrained samples are scored under the same allowed-token restriction they were
    sampled with (the KL too). `entropy_grad` keeps the entropy's graph (for an entropy
    bonus); the KL always keeps its graph when gradients are on. `shared_prefix`: the tokens
    every sample starts with (the chat template and rules) go through the model once per call
    instead of once per sample (`_batch_inputs`); the result is the same up to float rounding.
    """
    device = next(model.parameters()).device
    t_max = max(len(s.response_ids) for s in samples)
    # FSDP gathers weights in the whole model's forward: no separate pass over the prefix.
    inputs = _batch_inputs(samples, pad_id, device, shared_prefix and not _sharded(model))
    magnet_logp_all = None
    if magnet is not None and not magnet_is_policy:
        with torch.no_grad(), magnet.swapped_in():
            magnet_logp_all = _token_logp_all(
                *_response_logits(model, inputs, samples, t_max), temperature
            )[0]
    logp_all, targets, restricted = _token_logp_all(
        *_response_logits(model, inputs, samples, t_max), temperature
    )
    logp = logp_all.gather(-1, targets.to(device)[:, :, None]).squeeze(-1)
    with torch.set_grad_enabled(entropy_grad and torch.is_grad_enabled()):
        # From the same log-softmax (no second pass); 0 * -inf on masked tokens counts as 0.
        finite = logp_all.nan_to_num(neginf=0.0) if restricted else logp_all
        entropy = -(logp_all.exp() * finite).sum(-1)
    # Back to left alignment: response token t of row i at [i, t].
    lengths = [len(s.response_ids) for s in samples]
    shift = torch.tensor([t_max - n for n in lengths])
    left = ((torch.arange(t_max)[None, :] + shift[:, None]) % t_max).to(device)  # [B, T]
    mask = torch.zeros((len(samples), t_max))
    for i, n in enumerate(lengths):
        mask[i, :n] = 1.0
    mask = mask.to(device)
    kl = None
    if magnet is not None:
        if magnet_logp_all is None:  # the magnet is the policy: KL and its gradient are 0
            magnet_logp_all = logp_all.detach()
        kl = token_kl(logp_all, magnet_logp_all).gather(1, left) * mask
    return Scores(logp.gather(1, left) * mask, mask, entropy.gather(1, left) * mask, kl)


def _batch_inputs(samples: Sequence[Sample], pad_id: int, device, shared_prefix: bool) -> dict:
    """The model inputs of a batch: every sequence left-padded, so every response is
    right-aligned and the logits needed are the last T + 1 positions of every row (only those
    go through the vocabulary projection, and their slice [:, :T] predicts the responses).

    With `shared_prefix` (and a long enough one across several samples), the common prefix is
    left out of the rows (`batching.prefixed_batch`): `_response_logits` runs it once and
    repeats its keys and values over the batch (`batching.with_prefix`; gradients flow
    through them, so training is unchanged)."""
    p = prefix_used([s.prompt_ids for s in samples], shared_prefix)
    return prefixed_batch([s.prompt_ids + s.response_ids for s in samples], p, pad_id, device)


def _token_logp_all(
    logits: torch.Tensor, targets: torch.Tensor, allowed: list, temperature: float
) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """Log-softmax [B, T, V or K] of `_response_logits` at `temperature`, -inf outside the
    allowed tokens of constrained rows; the targets; whether any row was constrained."""
    logits = logits.float()
    if temperature != 1.0:
        logits = logits / temperature
    restricted = any(a is not None for a in allowed)
    if restricted:
        keep = _allowed_mask(logits.shape, allowed)
        logits = logits.masked_fill(~keep.to(logits.device), float("-inf"))
    return torch.log_softmax(logits, dim=-1), targets, restricted


def _response_logits(
    model, inputs: dict, samples: Sequence[Sample], t_max: int
) -> tuple[torch.Tensor, torch.Tensor, list]:
    """Logits [B, T, V] predicting the right-aligned responses, their target ids [B, T] and
    the allowed token ids per step. When every sample is constrained and the output layer
    allows it, only the allowed vocabulary rows are projected ([B, T, K]), and targets and
    allowed ids are renumbered into those K."""
    targets = torch.zeros((len(samples), t_max), dtype=torch.long)  # right-aligned
    for i, s in enumerate(samples):
        targets[i, t_max - len(s.response_ids) :] = torch.tensor(s.response_ids)
    inputs = with_prefix(
        model, inputs, read_only=getattr(model, "is_gradient_checkpointing", False)
    )
    if all(s.allowed is not None for s in samples) and _plain_output_layer(model):
        # Constrained answers only ever choose among a few tokens: project the hidden states
        # onto those rows of the output embedding instead of the whole vocabulary.
        vocab_ids = sorted({tok for s in samples for step in s.allowed for tok in step})
        to_k = {tok: k for k, tok in enumerate(vocab_ids)}
        hidden = model.get_decoder()(**inputs, use_cache=False).last_hidden_state
        hidden = hidden[:, -(t_max + 1) : -1]
        head = model.get_output_embeddings()
        logits = hidden @ head.weight[vocab_ids].T  # [B, T, K]
        targets = targets.apply_(lambda tok: to_k.get(tok, 0))
        allowed = [[[to_k[tok] for tok in step] for step in s.allowed] for s in samples]
        return logits, targets, allowed
    # No cache is built (scoring, not generating; a prefix's is given read-only).
    logits = model(**inputs, logits_to_keep=t_max + 1, use_cache=False).logits[:, :-1]
    return logits, targets, [s.allowed for s in samples]


def _allowed_mask(shape: torch.Size, allowed: Sequence[list[list[int]] | None]) -> torch.Tensor:
    """[B, T, V] True where a token may be scored: everywhere in unconstrained rows, only the
    allowed ids at each (right-aligned) step of constrained ones."""
    t_max = shape[1]
    keep = torch.ones(shape, dtype=torch.bool)
    for i, steps in enumerate(allowed):
        if steps is not None:
            start = t_max - len(steps)
            keep[i, start:] = False
            for t, ok in enumerate(steps):
                keep[i, start + t, ok] = True
    return keep


def _plain_output_layer(model) -> bool:
    """True when logits are a bias-free linear map of the decoder's last hidden state (no
    soft-capping or scaling), so a subset of vocabulary rows can be projected alone."""
    if _sharded(model):  # outside the forward pass its weights are shards
        return False
    config = getattr(model, "config", None)
    if getattr(config, "final_logit_softcapping", None) or getattr(config, "logit_scale", None):
        return False
    head = model.get_output_embeddings()
    return getattr(head, "bias", None) is None and hasattr(model, "get_decoder")


@dataclass(frozen=True, kw_only=True)
class LearnerSettings:
    """What the learner reads of a run's config; each default is the config's own
    (`AlgoConfig`, `OptimConfig`, `SamplingConfig`). `from_config` builds it from a config."""

    loss: LossKind = AlgoConfig.loss
    epochs: int = AlgoConfig.ppo_epochs  # PPO only: REINFORCE makes one pass
    clip_eps: float = AlgoConfig.clip_eps
    aggregation: Aggregation = AlgoConfig.aggregation
    norm_constant: float = AlgoConfig.norm_constant
    magnet_alpha: float = 0.0  # regularizer magnet: weight of the KL to the magnet
    entropy_coef: float = AlgoConfig.entropy_coef
    grad_clip: float = OptimConfig.grad_clip
    micro_batch_tokens: int = OptimConfig.micro_batch_tokens
    shared_prefix: bool = OptimConfig.shared_prefix
    activation_checkpointing: bool = OptimConfig.activation_checkpointing
    temperature: float = SamplingConfig.temperature  # the rollouts' sampling temperature
    bf16: bool = False  # bf16 autocast; `optim.bf16: auto` must be resolved first
    # Async mode: truncated importance sampling against the engine's log-probabilities,
    # with this cap (None: off; samples are on-policy).
    tis_cap: float | None = None

    @classmethod
    def from_config(cls, cfg: TrainConfig) -> LearnerSettings:
        """The settings of `cfg.algo`, `cfg.optim` (its `bf16` already resolved to a bool,
        see `train.choose_precision`) and the rollouts' `cfg.sampling.temperature`."""
        a, o = cfg.algo, cfg.optim
        if not isinstance(o.bf16, bool):
            raise ValueError(f"optim.bf16 = {o.bf16!r} must be resolved to true or false first")
        return cls(
            loss=a.loss, epochs=a.ppo_epochs, clip_eps=a.clip_eps, aggregation=a.aggregation,
            norm_constant=a.norm_constant, entropy_coef=a.entropy_coef,
            magnet_alpha=a.magnet_alpha if a.regularizer == "magnet" else 0.0,
            grad_clip=o.grad_clip, micro_batch_tokens=o.micro_batch_tokens,
            shared_prefix=o.shared_prefix, activation_checkpointing=o.activation_checkpointing,
            temperature=cfg.sampling.temperature, bf16=o.bf16,
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
    `magnet` (regularizer `magnet`) the loss adds `magnet_alpha` times the KL to it. With
    `sync`, this is one rank of a data-parallel learner and `samples` its share."""

    def __init__(
        self,
        model,
        optimizer: torch.optim.Optimizer,
        settings: LearnerSettings,
        pad_id: int,
        magnet: Snapshot | None = None,
        sync: GradientSync | None = None,
    ):
        self.model = model
        self.optimizer = optimizer
        self.s = settings
        self.pad_id = pad_id
        self.magnet = magnet
        self.sync = sync
        if settings.activation_checkpointing:
            enable_activation_checkpointing(model)

    def _autocast(self):
        device = next(self.model.parameters()).device.type
        return torch.autocast(device, dtype=torch.bfloat16) if self.s.bf16 else nullcontext()

    def step(
        self,
        samples: Sequence[Sample],
        magnet_alpha: float | None = None,
        lr: float | None = None,
        magnet_age: int | None = None,
    ) -> dict[str, float]:
        """PPO epochs (or one REINFORCE pass) over `samples`; returns namespaced stats (with
        `sync`: this rank's share of the batch's sums, see `LearnerGroup`). `magnet_alpha`
        overrides the settings' KL weight for this step (`algo.magnet_anneal_steps`), `lr`
        the optimizer's learning rate from this step on (`optim.lr_schedule`). `magnet_age`
        0 (`Snapshot.age`): the magnet is the policy before this update."""
        if lr is not None:
            for group in self.optimizer.param_groups:
                group["lr"] = lr
        if not (self.sync.sum(len(samples)) if self.sync else samples):
            return {"loss/skipped_empty_batch": 1.0}
        self.model.train()
        s = self.s
        alpha = s.magnet_alpha if magnet_alpha is None else magnet_alpha
        turns = len(samples)
        samples = merge_duplicates(samples)
        batches = plan_micro_batches(samples, s.micro_batch_tokens, s.shared_prefix)
        total_tokens = float(sum(len(x.response_ids) * x.count for x in samples))
        if self.sync:  # the losses are normalised by the whole batch's token count
            total_tokens = self.sync.sum(total_tokens)
        old: dict[int, torch.Tensor] = {}
        tis: dict[int, torch.Tensor] = {}  # per micro-batch, from the first epoch's scores
        tis_stats: dict[str, float] = {}
        stats: dict[str, float] = {}
        padded = saved = 0
        passes = self.sync.micro_batches(len(batches)) if self.sync else len(batches)
        for epoch in range(s.passes):
            self.optimizer.zero_grad(set_to_none=True)
            sums: dict[str, float] = {}
            for _ in range(len(batches), passes):
                self._idle_pass()
            for b, idx in enumerate(batches):
                mb = [samples[i] for i in idx]
                with self._autocast():
                    logp, mask, ent, kl = response_logprobs(
                        self.model, mb, s.temperature, self.pad_id,
                        entropy_grad=s.entropy_coef > 0, magnet=self.magnet,
                        shared_prefix=s.shared_prefix,
                        magnet_is_policy=epoch == 0 and magnet_age == 0,
                    )  # fmt: skip
                counts = torch.tensor([float(x.count) for x in mb], device=logp.device)
                # this micro-batch's share of the batch's tokens
                weight = float((mask.sum(1) * counts).sum()) / total_tokens
                if epoch == 0:
                    old[b] = logp.detach()
                    if s.tis_cap is not None:
                        engine = _left_aligned([x.logprobs for x in mb], logp.shape, logp.device)
                        tis[b], st = truncated_importance_weights(
                            old[b].float(), engine, mask, s.tis_cap
                        )
                        for k, v in st.items():
                            tis_stats[k] = tis_stats.get(k, 0.0) + v * weight
                    shared = prefix_used(
                        [x.prompt_ids for x in mb], s.shared_prefix
                    )  # run once, not len(mb) times
                    padded += shared + len(mb) * max(len(x) - shared for x in mb)
                    saved += shared * (len(mb) - 1)
                adv = torch.tensor([x.advantage for x in mb], device=logp.device)
                loss, st = policy_loss(
                    logp.float(), old[b].float(), adv, mask, kind=s.loss, clip_eps=s.clip_eps,
                    magnet_kl=kl, magnet_alpha=alpha, aggregation=s.aggregation,
                    norm_constant=s.norm_constant, total_tokens=total_tokens,
                    entropy=ent.float(), entropy_coef=s.entropy_coef, tis_weight=tis.get(b),
                    counts=counts,
                )  # fmt: skip
                loss.backward()
                for k, v in st.items():
                    sums[k] = sums.get(k, 0.0) + (
                        v if k in ("loss/total", "loss/tokens") else v * weight
                    )
            trainable = list(trainable_parameters(self.model).values())
            if self.sync:  # every rank then clips and steps on the same, whole-batch gradient
                self.sync.sum_grads(trainable)
            grad_norm = torch.nn.utils.clip_grad_norm_(trainable, s.grad_clip)
            self.optimizer.step()
            stats = sums
            # FSDP: a DTensor, the same on every rank.
            full = getattr(grad_norm, "full_tensor", None)
            stats["loss/grad_norm"] = float(full() if full else grad_norm)
        real = sum(len(x) for x in samples)
        stats["perf/pad_fraction"] = 1.0 - (real - saved) / max(padded, 1)
        stats["perf/shared_prefix_fraction"] = saved / max(real, 1)  # of the tokens, not rerun
        stats["perf/forward_tokens"] = float(padded)  # per epoch, padding included
        stats["loss/micro_batches"] = float(len(batches))
        # scored once, counted often (a rank of a sharded learner may have no turns)
        stats["perf/duplicate_turns"] = 1.0 - len(samples) / max(turns, 1)
        stats.update(tis_stats)
        return stats

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
        for idx in plan_micro_batches(samples, self.s.micro_batch_tokens, self.s.shared_prefix):
            mb = [samples[i] for i in idx]
            logp, mask, _, _ = response_logprobs(
                self.model, mb, self.s.temperature, self.pad_id, shared_prefix=self.s.shared_prefix
            )
            adv = torch.tensor([x.advantage for x in mb], device=logp.device)[:, None]
            total += float(-(adv * logp * mask).sum())
            n += int(mask.sum())
        return total / max(n, 1)


def _sharded(model) -> bool:
    """True for a model sharded by FSDP (`distributed.fsdp`)."""
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)
