"""Token sequences as one padded batch, shared by the learner and the `hf` engine, and the
shared-prefix forward both use: the tokens every row starts with (a chat template, a game's
rules) run through the decoder once, their keys and values repeated over the rows."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import contextmanager

import torch
from transformers.cache_utils import DynamicLayer


def left_pad(
    rows: Sequence[Sequence[int]], pad_id: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rows of token ids right-aligned in one [B, T] batch (T the longest row), padded on the
    left with `pad_id`, so every row's last token is in the last column.

    Returns input ids, the attention mask (1 on real tokens) and position ids (0 at each row's
    first real token, 0 on padding), all int64 on the CPU.
    """
    batch, width = len(rows), max(len(r) for r in rows)
    ids = torch.full((batch, width), pad_id, dtype=torch.long)
    attn = torch.zeros((batch, width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, width - len(row) :] = torch.tensor(row, dtype=torch.long)
        attn[i, width - len(row) :] = 1
    positions = (attn.cumsum(-1) - 1).clamp(min=0)
    return ids, attn, positions


# A shared prefix shorter than this is not worth a separate forward pass.
MIN_SHARED_PREFIX = 16


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """How many tokens `a` and `b` start with in common."""
    n = min(len(a), len(b))
    k = 0
    while k < n and a[k] == b[k]:
        k += 1
    return k


def shared_prefix_len(prompts: Sequence[Sequence[int]]) -> int:
    """Tokens every prompt starts with, leaving each at least its last token (whose logits
    predict the first generated or trained token)."""
    first = prompts[0]
    n = min(len(p) for p in prompts) - 1
    for p in prompts[1:]:
        n = min(n, common_prefix(first, p))
    return max(n, 0)


def prefix_used(prompts: Sequence[Sequence[int]], enabled: bool = True) -> int:
    """The prefix a batch of `prompts` runs once (0: none, or too short to pay)."""
    p = shared_prefix_len(prompts) if enabled and len(prompts) > 1 else 0
    return p if p >= MIN_SHARED_PREFIX else 0


def prefixed_batch(rows: Sequence[Sequence[int]], prefix: int, pad_id: int, device) -> dict:
    """Model inputs for `rows` whose first `prefix` tokens are common: the rest of each row
    left-padded (`left_pad`), positions continuing from `prefix`, and the prefix itself as
    `prefix_ids` [1, P] for `with_prefix` (absent when `prefix` is 0). The padding then sits
    between the prefix and each row's own tokens, masked."""
    ids, attn, positions = left_pad([r[prefix:] for r in rows], pad_id)
    inputs = {
        "input_ids": ids.to(device),
        "attention_mask": attn.to(device),
        "position_ids": (positions + prefix).to(device),
    }
    if prefix:
        inputs["prefix_ids"] = torch.tensor([list(rows[0][:prefix])], device=device)
    return inputs


class _ReadOnlyLayer(DynamicLayer):
    """A cache layer that returns the prefix's keys and values followed by the new ones
    without storing them, so a forward pass can run twice over it (activation checkpointing
    recomputes each decoder layer in the backward pass) and see the same prefix."""

    def update(self, key_states, value_states, *args, **kwargs):
        return torch.cat([self.keys, key_states], -2), torch.cat([self.values, value_states], -2)


@contextmanager
def _not_checkpointed(module: torch.nn.Module):
    """Activation checkpointing off inside (transformers' flag on the decoder and its layers):
    it would drop the cache a forward is asked to fill."""
    flagged = [m for m in module.modules() if getattr(m, "gradient_checkpointing", False)]
    for m in flagged:
        m.gradient_checkpointing = False
    try:
        yield
    finally:
        for m in flagged:
            m.gradient_checkpointing = True


def with_prefix(model, inputs: dict, read_only: bool = False) -> dict:
    """`inputs` for a forward pass: a shared prefix (if any) run once through the decoder
    and given as the batch's past keys and values, its positions unmasked in every row. Under
    autograd the rows' gradients flow back into the prefix (summed by the repeat).

    `read_only`: the forward adds nothing to those keys and values, so it can run again over
    them (activation checkpointing); generation needs them to grow and leaves it off."""
    if "prefix_ids" not in inputs:
        return inputs
    inputs = dict(inputs)
    prefix = inputs.pop("prefix_ids")
    decoder = model.get_decoder()
    with _not_checkpointed(decoder):  # one row: its activations are cheap to keep
        cache = decoder(input_ids=prefix, use_cache=True).past_key_values
    batch = inputs["input_ids"].shape[0]
    cache.batch_repeat_interleave(batch)
    for layer in cache.layers if read_only else ():
        if type(layer) is not DynamicLayer:  # sliding windows etc. update in their own way
            raise ValueError(
                f"activation checkpointing with a shared prefix does not support "
                f"{type(layer).__name__} cache layers; set optim.shared_prefix=false"
            )
        layer.__class__ = _ReadOnlyLayer
    ones = torch.ones((batch, prefix.shape[1]), dtype=inputs["attention_mask"].dtype)
    inputs["attention_mask"] = torch.cat([ones.to(prefix.device), inputs["attention_mask"]], 1)
    inputs["past_key_values"] = cache
    return inputs
