"""The DataLoaders every lightdl data module serves, in one place."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.utils.data import DataLoader, Dataset


class SplitLoaders:
    """Mixin for a LightningDataModule with ``train_dataset``/``val_dataset``/``test_dataset``
    and ``batch_size``, ``num_workers``, ``seed``: the training loader shuffles with a generator
    seeded by ``seed`` (every run sees the same epochs), the others keep their order;
    ``predict`` serves the test split."""

    batch_size: int
    num_workers: int
    seed: int
    train_dataset: Dataset
    val_dataset: Dataset
    test_dataset: Dataset

    def _collate_fn(self) -> Callable | None:
        """A custom collate function (padding for variable lengths), or None for the default."""
        return None

    def _loader(self, dataset: Dataset, shuffle: bool) -> DataLoader:
        gen = torch.Generator().manual_seed(self.seed) if shuffle else None
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            generator=gen,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            collate_fn=self._collate_fn(),
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_dataset, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_dataset, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_dataset, shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader(self.test_dataset, shuffle=False)
