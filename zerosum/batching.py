"""Token sequences as one padded batch, shared by the learner and the `hf` engine."""

from __future__ import annotations

from collections.abc import Sequence

import torch


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
