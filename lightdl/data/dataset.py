"""Torch datasets and collation for padded series."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.utils.data import Dataset


class SeriesDataset(Dataset):
    """Series ``x (N, C, L)`` (zero-padded at the end), labels ``y (N,)``, ``lengths (N,)``.

    An item is ``(x_i (C, L) float32, y_i int64)``, or ``(x_i, length_i int64, y_i)`` when
    ``with_lengths`` is True.  ``transform(x_i, length_i)`` (augmentation) runs per item.
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        lengths: torch.Tensor | None = None,
        *,
        with_lengths: bool = False,
        transform: Callable[[torch.Tensor, int], torch.Tensor] | None = None,
    ) -> None:
        if len(x) != len(y):
            raise ValueError(f"x has {len(x)} samples but y has {len(y)}")
        self.x = x.float()
        self.y = y.long()
        self.lengths = lengths.long() if lengths is not None else torch.full((len(x),), x.shape[-1])
        self.with_lengths = with_lengths
        self.transform = transform

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):
        x = self.x[i]
        if self.transform is not None:
            x = self.transform(x, int(self.lengths[i]))
        if self.with_lengths:
            return x, self.lengths[i], self.y[i]
        return x, self.y[i]


def collate_padded(batch: list[tuple]) -> tuple[torch.Tensor, ...]:
    """Stack a batch of ``(x, length, y)`` items and trim the padding to the batch's longest.

    Returns ``(x (B, C, L_max), lengths (B,) int64, y (B,) int64)``.
    """
    xs, lengths, ys = zip(*batch, strict=True)
    lengths_t = torch.stack(list(lengths)).long()
    x = torch.stack(list(xs))[..., : int(lengths_t.max())]
    return x, lengths_t, torch.stack(list(ys)).long()
