"""Scoring sampled responses: per-token log-probabilities under a model, in micro-batches.

The learner, the exact policy read of evaluation and tests all score through
`response_logprobs`. Micro-batches are formed by sorting samples by length and packing them
under a token budget (padded tokens), so similar lengths share a batch and little compute goes
to padding; with a shared prompt prefix (chat template, rules), samples that share it are
grouped so it runs once per micro-batch. Identical turns, which small games repeat many times
in a batch, are scored once (`merge_duplicates`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import NamedTuple

import torch

from zerosum.batching import (
    MIN_SHARED_PREFIX,
    common_prefix,
    prefix_used,
    prefixed_batch,
    with_prefix,
)
from zerosum.loss import token_kl
from zerosum.snapshot import Snapshot


@dataclass
class Sample:
    """One turn as training data."""

    prompt_ids: list[int]
    response_ids: list[int]
    advantage: float
    # Constrained and reasoned mode: the allowed token ids per step ([]: any token).
    allowed: list[list[int]] | None = None
    logprobs: list[float] | None = None  # the engine's, when sampled (async mode: for TIS)
    count: int = 1  # identical turns this row stands for (`merge_duplicates`)

    def __len__(self) -> int:
        return len(self.prompt_ids) + len(self.response_ids)


def token_weights(
    sample: Sample, reasoning_weight: float = 1.0, move_weight: float = 1.0
) -> list[float]:
    """The loss weight of each response token: `reasoning_weight` on a reasoned answer's
    reasoning (its steps allow any token, `[]`), `move_weight` on its constrained steps (the
    cue and the move; every step of a constrained answer), 1 on a free answer's tokens."""
    if sample.allowed is None:
        return [1.0] * len(sample.response_ids)
    return [move_weight if step else reasoning_weight for step in sample.allowed]


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


@dataclass(frozen=True)
class MicroBatch:
    """A learner pass's rows with its token counts, known where planned, not measured again."""

    rows: list[int]  # indices into the planned samples
    prefix: int  # prompt tokens the rows share, run once (`batching.prefix_used`; 0: none)
    padded: int  # tokens the forward runs: the prefix once, each row's rest padded to the longest
    real: int  # the rows' own tokens, the shared prefix counted in every row

    @property
    def saved(self) -> int:
        """Tokens of the shared prefix not run again: once per row after the first."""
        return self.prefix * (len(self.rows) - 1)

    @classmethod
    def of(cls, samples: Sequence[Sample], rows: list[int], shared_prefix: bool) -> MicroBatch:
        """Count `rows` as the forward runs them: the prefix `_batch_inputs` runs once."""
        mb = [samples[i] for i in rows]
        prefix = prefix_used([x.prompt_ids for x in mb], shared_prefix)
        padded = prefix + len(mb) * max(len(x) - prefix for x in mb)
        return cls(rows, prefix, padded, sum(len(x) for x in mb))


def plan_batch(samples: Sequence[Sample], budget: int, shared_prefix: bool) -> list[MicroBatch]:
    """`plan_micro_batches` with each micro-batch's token counts, for the learner."""
    return [
        MicroBatch.of(samples, rows, shared_prefix)
        for rows in plan_micro_batches(samples, budget, shared_prefix)
    ]


# What a forward and backward pass costs beyond its tokens, in tokens: the embedding's and
# output layer's dense gradients and their accumulation, paid once per micro-batch. Measured
# on a 2-core CPU with Kuhn Poker's 24 distinct turns, one pass of 2232 tokens against six of
# 1422: 160 tokens a pass make the two equal for SmolLM2-135M (within its noise), and the tiny
# test model steps 2x faster in the one pass.
PASS_TOKENS = 160
# How many times `prefix_micro_batches` cuts a group where its prompts part before it stops
# looking for longer shared prefixes (a bound on its recursion).
MAX_SPLIT_DEPTH = 64


def prefix_micro_batches(samples: Sequence[Sample], budget: int) -> list[list[int]]:
    """Micro-batches for the shared-prefix forward: samples whose prompts share at least
    half the median prompt length (the seat, the rules, the history so far) are grouped, so
    each micro-batch's common prefix is long; a group too large for the budget is cut by
    length or where its prompts part, whichever runs fewer tokens (`split`); consecutive
    pieces (and lone samples) then share a micro-batch when that runs fewer tokens than apart
    plus a pass (`PASS_TOKENS`). The budget counts each sample's tokens after its
    micro-batch's common prefix."""
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

    def by_length(rows: list[int], shared: int) -> list[list[int]]:
        lengths = [len(samples[i]) - shared for i in rows]
        return [[rows[j] for j in b] for b in micro_batches(lengths, budget)]

    def tokens(chunks: list[list[int]]) -> int:
        return sum(sum(cost(c)) + PASS_TOKENS for c in chunks)

    def split(rows: list[int], depth: int = 0) -> list[list[int]]:
        """`rows` (in prompt order) in chunks that fit the budget: a group too large is cut
        by length, or where its prompts part (at the first token after their common prefix,
        each part then cut the same way) when that runs fewer tokens. Many answers to one
        prompt (a small game's information set) then run that prompt once per micro-batch;
        a dialogue's growing prompts, which share less, stay cut by length."""
        shared, rest = cost(rows)
        if rest <= budget:
            return [rows]
        cut = by_length(rows, shared)
        if depth == MAX_SPLIT_DEPTH or all(len(prompts[i]) == shared for i in rows):
            return cut
        parts: dict[int, list[int]] = {}  # adjacent in prompt order; -1: the prompt ended
        for i in rows:
            after = prompts[i][shared] if len(prompts[i]) > shared else -1
            parts.setdefault(after, []).append(i)
        parted = [chunk for part in parts.values() for chunk in split(part, depth + 1)]
        return parted if tokens(parted) < tokens(cut) else cut

    batches: list[list[int]] = []
    current: list[int] = []
    for group in (chunk for g in groups for chunk in split(g)):
        shared, rest = cost(group)
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
    reasoning_temperature: float | None = None,
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
    `reasoning_temperature`: a reasoned answer's reasoning (its steps allow any token, `[]`)
    is scored at this temperature, the rest at `temperature` (None: all at `temperature`).
    """
    temps = (temperature, reasoning_temperature)
    device = next(model.parameters()).device
    t_max = max(len(s.response_ids) for s in samples)
    # FSDP gathers weights in the whole model's forward: no separate pass over the prefix.
    inputs = _batch_inputs(samples, pad_id, device, shared_prefix and not _sharded(model))
    magnet_logp_all = None
    if magnet is not None and not magnet_is_policy:
        with torch.no_grad(), magnet.swapped_in():
            magnet_logp_all = _token_logp_all(
                *_response_logits(model, inputs, samples, t_max), *temps
            )[0]
    logp_all, targets, restricted = _token_logp_all(
        *_response_logits(model, inputs, samples, t_max), *temps
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
    logits: torch.Tensor,
    targets: torch.Tensor,
    allowed: list,
    temperature: float,
    reasoning_temperature: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """Log-softmax [B, T, V or K] of `_response_logits` at `temperature` (a reasoning's steps
    at `reasoning_temperature`), -inf outside the allowed tokens of constrained rows; the
    targets; whether any row was constrained."""
    logits = logits.float()
    if reasoning_temperature is not None and reasoning_temperature != temperature:
        logits = logits / _step_temperatures(logits.shape, allowed, temperature,
                                             reasoning_temperature).to(logits.device)  # fmt: skip
    elif temperature != 1.0:
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
    constrained = all(s.allowed is not None and all(s.allowed) for s in samples)
    if constrained and _plain_output_layer(model):
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


def _step_temperatures(
    shape: torch.Size, allowed: Sequence[list[list[int]] | None], temperature: float,
    reasoning_temperature: float,
) -> torch.Tensor:  # fmt: skip
    """[B, T, 1] the temperature of each (right-aligned) step: `reasoning_temperature` where
    a reasoned answer's reasoning allows any token (`[]`), `temperature` elsewhere."""
    t_max = shape[1]
    temps = torch.full((shape[0], t_max, 1), float(temperature))
    for i, steps in enumerate(allowed):
        if steps is not None:
            start = t_max - len(steps)
            for t, ok in enumerate(steps):
                if not ok:
                    temps[i, start + t] = reasoning_temperature
    return temps


def _allowed_mask(shape: torch.Size, allowed: Sequence[list[list[int]] | None]) -> torch.Tensor:
    """[B, T, V] True where a token may be scored: everywhere in unconstrained rows and at
    unconstrained steps (`[]`: a reasoned answer's reasoning), only the allowed ids at each
    (right-aligned) constrained step."""
    t_max = shape[1]
    keep = torch.ones(shape, dtype=torch.bool)
    for i, steps in enumerate(allowed):
        if steps is not None:
            start = t_max - len(steps)
            for t, ok in enumerate(steps):
                if ok:
                    keep[i, start + t] = False
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


def _sharded(model) -> bool:
    """True for a model sharded by FSDP (`distributed.fsdp`)."""
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)
