"""Policy-gradient losses as pure functions of per-token log-probabilities.

Shapes: B sequences (turns) by T response tokens; `mask` is 1 on tokens the policy chose
and 0 on padding. All turns of a seat in one game share that seat's advantage.

Aggregation follows Dr.GRPO by default: the masked token losses are summed and divided by
a constant (SPIRAL: 4,096, the max response length), so long answers are not down-weighted
per token and micro-batches simply add up. `mean` divides by the number of real tokens in
the whole batch (pass `total_tokens` when the batch is split into micro-batches).

Asynchronous rollouts (`distributed.mode: async`) sample with a policy up to a few updates
older than the learner's, and engines compute log-probabilities with their own numerics:
`truncated_importance_weights` corrects that gap token by token (TIS), and `policy_loss`
multiplies its policy-gradient term by those weights (`tis_weight`).
"""

from __future__ import annotations

from typing import Literal, get_args

import torch

from zerosum.typed_config import check_choice

LossKind = Literal["reinforce", "ppo"]
LOSS_KINDS: tuple[str, ...] = get_args(LossKind)
Aggregation = Literal["sum", "mean"]
AGGREGATIONS: tuple[str, ...] = get_args(Aggregation)
TIS_CAP = 2.0  # the default cap of the truncated importance weight


def truncated_importance_weights(
    old_logprobs: torch.Tensor,  # [B, T] the learner's policy before this update
    engine_logprobs: torch.Tensor,  # [B, T] the engine's, of the same tokens, when sampled
    mask: torch.Tensor,  # [B, T] 1.0 on response tokens
    cap: float = TIS_CAP,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Token-level truncated importance sampling (TIS): the weight of each response token is
    min(exp(old - engine), cap) = min(pi_learner / pi_engine, cap), 1 on padding, without
    gradient; with `async/tis_clip_frac` (the share of real tokens whose ratio exceeded the cap)
    and `async/tis_weight_mean`.

    The ratio corrects for sampling from the engine's (stale) policy rather than the learner's;
    the cap bounds the variance a token the engine found unlikely would otherwise bring. Only
    ratios above the cap are cut: tokens the learner finds less likely than the engine did are
    down-weighted in full."""
    if cap < 1 or cap != cap:
        raise ValueError(f"TIS cap = {cap!r} is invalid; allowed: a number >= 1")
    real = mask > 0
    ratio = torch.exp((old_logprobs - engine_logprobs).detach().masked_fill(~real, 0.0))
    weights = torch.where(real, ratio.clamp(max=cap), torch.ones_like(ratio))
    n = real.sum().clamp(min=1)
    stats = {
        "async/tis_clip_frac": float((real & (ratio > cap)).sum() / n),
        "async/tis_weight_mean": float(weights.masked_fill(~real, 0.0).sum() / n),
    }
    return weights, stats


def token_kl(logp_all: torch.Tensor, magnet_logp_all: torch.Tensor) -> torch.Tensor:
    """Exact KL(policy || magnet) of each next-token distribution: [..., V] -> [...].

    Both are log-probabilities over the same support; tokens outside it (-inf in both, as
    constrained answers mask them) count 0. Exact rather than a sampled estimate (k1, k3):
    the learner has every logit anyway, and the gradient is that of the KL itself."""
    diff = (logp_all - magnet_logp_all).nan_to_num(nan=0.0)  # -inf - -inf off the support
    return (logp_all.exp() * diff).sum(-1)


def policy_loss(
    logprobs: torch.Tensor,  # [B, T] under the current policy, with grad
    old_logprobs: torch.Tensor,  # [B, T] at sampling time
    advantages: torch.Tensor,  # [B]
    mask: torch.Tensor,  # [B, T] 1.0 on response tokens
    kind: LossKind = "ppo",
    clip_eps: float = 0.2,
    magnet_kl: torch.Tensor | None = None,  # [B, T] KL(policy || magnet) per token, with grad
    magnet_alpha: float = 0.0,
    aggregation: Aggregation = "sum",
    norm_constant: float = 4096.0,
    total_tokens: float | None = None,  # `mean` over micro-batches: real tokens of the batch
    entropy: torch.Tensor | None = None,  # [B, T] entropy of each next-token distribution
    entropy_coef: float = 0.0,
    tis_weight: torch.Tensor | None = None,  # [B, T] `truncated_importance_weights`
    counts: torch.Tensor | None = None,  # [B] identical turns each row stands for
    token_weights: torch.Tensor | None = None,  # [B, T] `scoring.token_weights`, per token
    kl_token_weights: torch.Tensor | None = None,  # [B, T] the KL term's own (None: the same)
) -> tuple[torch.Tensor, dict[str, float]]:
    """The policy-gradient loss and its statistics (namespaced `loss/...`); the options are
    those of the `algo` config section (`LearnerSettings` holds them for the learner).

    `entropy_coef` > 0 adds an entropy bonus (exact, from the logits): it keeps self-play
    from collapsing to a deterministic policy before the model can tell states apart.
    `magnet_kl` (regularizer `magnet`) adds `magnet_alpha` times the per-token KL to the
    magnet; with `magnet_alpha` 0 the loss is exactly that of no regularizer. `tis_weight`
    multiplies the policy-gradient term of each token (not the KL or entropy terms, which are
    exact at the learner's own policy). `counts` (`learner.merge_duplicates`) weights every
    term of a row, and its tokens in the statistics and the `mean` denominator, as that many
    identical turns; `token_weights` does the same per token (a reasoned answer's reasoning
    weighed less than its move). Both weigh the terms, never the PPO ratio.
    `kl_token_weights` weighs the magnet's KL term apart from the others (the reasoning held
    by the magnet while only the move learns); the `mean` denominator stays that of
    `token_weights`, so the KL of tokens weighed 0 there adds to their turn's move."""
    check_choice("loss", kind, LOSS_KINDS)
    check_choice("aggregation", aggregation, AGGREGATIONS)
    mask = mask.to(logprobs.dtype)
    adv = advantages.to(logprobs.dtype)[:, None]  # [B, 1]
    log_ratio = (logprobs - old_logprobs) * mask
    if counts is not None:  # each token weighs as many turns as its row stands for
        mask = mask * counts.to(logprobs.dtype)[:, None]
    kl_mask = mask if kl_token_weights is None else mask * kl_token_weights.to(logprobs.dtype)
    if token_weights is not None:
        mask = mask * token_weights.to(logprobs.dtype)
        if kl_token_weights is None:
            kl_mask = mask
    ratio = torch.exp(log_ratio)
    if kind == "reinforce":
        # ratio equals 1 in value but carries the gradient of log pi: grad(ratio) = grad(logp).
        per_token = -adv * ratio
        clipped = torch.zeros_like(per_token)
    else:
        unclipped = ratio * adv
        clipped_obj = torch.clamp(ratio, 1.0 - clip_eps, 1.0 + clip_eps) * adv
        per_token = -torch.minimum(unclipped, clipped_obj)
        clipped = (clipped_obj < unclipped).to(logprobs.dtype)
    if tis_weight is not None:
        per_token = per_token * tis_weight.detach().to(logprobs.dtype)
    if entropy is not None and entropy_coef:
        per_token = per_token - entropy_coef * entropy

    n_tokens = mask.sum()
    if aggregation == "sum":
        denom = torch.as_tensor(norm_constant, dtype=logprobs.dtype)
    else:
        denom = torch.as_tensor(
            total_tokens if total_tokens is not None else n_tokens, dtype=logprobs.dtype
        )
    total = (per_token * mask).sum()
    if magnet_kl is not None and magnet_alpha:
        total = total + magnet_alpha * (magnet_kl * kl_mask).sum()
    loss = total / denom.clamp(min=1e-8)
    return loss, _stats(loss, mask, clipped, ratio, log_ratio, entropy, magnet_kl, kl_mask)


def _stats(loss, mask, clipped, ratio, log_ratio, entropy, magnet_kl, kl_mask) -> dict[str, float]:
    """`loss/...` statistics: per-token means over the real tokens of the batch."""
    n_tokens = mask.sum()
    safe_n = n_tokens.clamp(min=1.0)
    stats = {
        "loss/total": float(loss.detach()),
        "loss/clip_frac": float((clipped * mask).sum() / safe_n),
        "loss/ratio_mean": float((ratio.detach() * mask).sum() / safe_n),
        "loss/approx_kl_old": float(((-log_ratio.detach()) * mask).sum() / safe_n),
        "loss/tokens": float(n_tokens),
    }
    if entropy is not None:
        stats["loss/entropy"] = float((entropy.detach() * mask).sum() / safe_n)
    if magnet_kl is not None:
        kl_n = kl_mask.sum().clamp(min=1.0)
        stats["loss/magnet_kl"] = float((magnet_kl.detach() * kl_mask).sum() / kl_n)
    return stats
