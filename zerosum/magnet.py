"""The magnet of regularised self-play: a frozen snapshot of the policy the loss pulls towards.

Magnetic mirror descent (Sokota et al., ICLR 2023) adds `alpha * KL(policy || magnet)` to the
policy-gradient loss; replacing the magnet by the current policy every few steps is the
iterated regularised game of R-NaD (DeepNash). A `Magnet` owns everything about it: its
snapshot (`Snapshot`: the trainable weights only, swapped in for its forward pass), the weight
of its KL at each step (constant, or annealed geometrically), its age, its replacement, and
what a checkpoint keeps of it. The single-process learner and every rank of a data-parallel
learner hold one each, built from the same state, so they stay equal.
"""

from __future__ import annotations

from typing import Any

from zerosum.snapshot import Snapshot


def annealed_alpha(step: int, alpha: float, final: float, anneal_steps: int) -> float:
    """The magnet's KL weight at training step `step` (1-based): `alpha` at step 1, falling
    geometrically to `final` at step `anneal_steps` + 1 and constant after (`anneal_steps`
    0: always `alpha`). With the initial (near-uniform) model as the magnet, the regularised
    equilibrium is a quantal response equilibrium whose temperature is the weight; lowering
    it moves that equilibrium towards a Nash equilibrium while the policy follows it."""
    if anneal_steps <= 0 or alpha <= 0:
        return alpha
    done = min(max(step - 1, 0), anneal_steps) / anneal_steps
    return alpha * (final / alpha) ** done


class Magnet:
    """A snapshot of `model` (or the one `saved` holds, from a checkpoint), its KL weight
    `alpha` (annealed to `alpha_final` over `anneal_steps`), replaced by the policy every
    `reset_every` steps (0: never, a KL penalty to the initial model)."""

    def __init__(
        self,
        model,
        alpha: float,
        reset_every: int = 0,
        alpha_final: float = 0.01,
        anneal_steps: int = 0,
        saved: dict | None = None,
    ):
        self.snapshot = Snapshot(model, saved)
        self.alpha, self.alpha_final, self.anneal_steps = alpha, alpha_final, anneal_steps
        self.reset_every = reset_every

    @classmethod
    def from_config(cls, algo: Any, model, saved: dict | None = None) -> Magnet:
        """The magnet of the `algo` config section (`magnet_alpha`, `magnet_reset`,
        `magnet_alpha_final`, `magnet_anneal_steps`)."""
        return cls(
            model, algo.magnet_alpha, algo.magnet_reset, algo.magnet_alpha_final,
            algo.magnet_anneal_steps, saved,
        )  # fmt: skip

    def weight(self, step: int | None) -> float:
        """The KL weight at training step `step` (None: unscheduled, `alpha`)."""
        if step is None:
            return self.alpha
        return annealed_alpha(step, self.alpha, self.alpha_final, self.anneal_steps)

    def is_policy(self, step: int | None) -> bool:
        """Whether the magnet is the policy that step `step` updates (just taken from it):
        then the KL is 0 with no forward pass. False when the step is not known, or when the
        magnet is another model's weights (`algo.magnet_model`) not yet replaced."""
        return step is not None and not self.snapshot.foreign and self.snapshot.age(step) == 0

    def after_update(self, step: int | None) -> None:
        """After step `step`'s update: replace the magnet by the policy when it is due."""
        if step is not None and self.reset_every and step % self.reset_every == 0:
            self.snapshot.refresh(step)

    def metrics(self, step: int | None) -> dict[str, float]:
        """`magnet/alpha` and `magnet/age` of step `step`, before its update."""
        if step is None:
            return {"magnet/alpha": self.alpha}
        return {"magnet/alpha": self.weight(step), "magnet/age": float(self.snapshot.age(step))}

    def state_dict(self) -> dict:
        """What a checkpoint keeps: the snapshot's step and weights."""
        return self.snapshot.state_dict()
