"""Frozen snapshots of the policy's trainable weights: the magnet of regularised self-play
(`zerosum.magnet`) and the earlier selves of an opponent pool (`zerosum.league`).

A pool opponent is a snapshot the engine serves for the opponent's seats; the magnet's
forward pass runs the learner's model as the snapshot. A snapshot holds the trainable
parameters only: all of them in full fine-tuning (one more copy of the weights), the adapter
alone with LoRA (the same frozen base with the snapshot adapter: no second base model).
Computing as the snapshot swaps it into the live parameters (`.data`, no copy), so there is
never a second module.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext

import torch

from zerosum.models import trainable_parameters


def fits(weights: dict[str, torch.Tensor], params: dict[str, torch.nn.Parameter]) -> bool:
    """Whether `weights` has exactly `params`' names, each of its shape."""
    return set(weights) == set(params) and all(
        weights[n].shape == p.shape for n, p in params.items()
    )


class Snapshot:
    """A snapshot of `model`'s trainable parameters, taken at `step` (0: the initial model)."""

    def __init__(self, model, saved: dict | None = None, step: int = 0):
        """Snapshot `model` now (as of `step`), or restore `saved` (a `state_dict()`, or
        another model's weights with `foreign` true: not a snapshot of `model` until the
        next `refresh`)."""
        self.params = trainable_parameters(model)
        self.foreign = bool(saved and saved.get("foreign", False))
        if saved is None:
            self.step = step
            self.weights = {n: p.detach().clone() for n, p in self.params.items()}
            return
        weights = saved.get("weights", {})
        if not fits(weights, self.params):
            raise ValueError("a checkpoint's weight snapshot does not match the model's parameters")
        self.step = int(saved["step"])
        self.weights = {n: weights[n].to(p.device, p.dtype) for n, p in self.params.items()}

    def refresh(self, step: int) -> None:
        """Take the current weights again (the magnet's reset, R-NaD's new regularised game)."""
        with torch.no_grad():
            for n, p in self.params.items():
                self.weights[n].copy_(p)
        self.step = step
        self.foreign = False

    def age(self, step: int) -> int:
        """Updates between the snapshot and the policy that training step `step` updates (0:
        the snapshot is that policy)."""
        return step - 1 - self.step

    @contextmanager
    def swapped_in(self) -> Iterator[None]:
        """Inside, the model computes as the snapshot (call under `torch.no_grad()`), with
        autocast's weight cache off: the cache is keyed by the parameter, not by the tensor
        swapped into it, so a cached pass here would hand the snapshot's bf16 copies (without
        gradient) to the live model's next pass in the same autocast region (the magnet's
        pass then made the policy's compute as the magnet, its linear layers untrained)."""
        live = {n: p.data for n, p in self.params.items()}
        try:
            for n, p in self.params.items():
                p.data = self.weights[n]
            device_type = next((p.device.type for p in self.params.values()), "cpu")
            with _uncached_autocast(device_type):
                yield
        finally:
            for n, p in self.params.items():
                p.data = live[n]

    def state_dict(self) -> dict:
        """What a checkpoint stores (tensors, an int and a bool: loads with `weights_only`)."""
        return {"step": self.step, "weights": self.weights, "foreign": self.foreign}

    def nbytes(self) -> int:
        """Memory (and checkpoint space) the snapshot takes."""
        return sum(w.nelement() * w.element_size() for w in self.weights.values())


def _uncached_autocast(device_type: str) -> AbstractContextManager:
    """The autocast in force on `device_type`, without its weight cache (none: no autocast)."""
    if not torch.is_autocast_enabled(device_type):
        return nullcontext()
    dtype = torch.get_autocast_dtype(device_type)
    return torch.autocast(device_type, dtype=dtype, cache_enabled=False)
