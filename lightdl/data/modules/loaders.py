"""The DataLoaders every lightdl data module serves, in one place.

The training loader is resumable: its order depends only on (seed, epoch), and it reports
how many batches of the current epoch it has served (`state_dict`), which Lightning stores in
checkpoints. A run killed mid-epoch and resumed from its last checkpoint therefore sees
exactly the batches the uninterrupted run would have seen.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler


class EpochShuffleSampler(RandomSampler):
    """A random permutation per epoch drawn from (seed, epoch) alone, so epoch e has the same
    order whether or not the run was interrupted before it. Lightning calls `set_epoch`; under
    DDP it replaces this sampler (a RandomSampler) by a shuffling DistributedSampler."""

    def __init__(self, data_source: Dataset, seed: int = 0) -> None:
        super().__init__(data_source)
        self.seed = seed
        self.epoch = 0
        self.skip = 0  # samples to leave out at the start of the next pass (resumption)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        gen = torch.Generator().manual_seed(hash((self.seed, self.epoch)) & 0x7FFF_FFFF_FFFF)
        order = torch.randperm(len(self.data_source), generator=gen).tolist()
        skip, self.skip = self.skip, 0
        yield from order[skip:]


class ResumableDataLoader(DataLoader):
    """A DataLoader (same constructor) with Lightning's `state_dict`/`load_state_dict`
    interface: the state is the number of batches served in the current epoch."""

    _served = 0
    _resume = 0

    def __iter__(self) -> Iterator[Any]:
        resume, self._resume = self._resume, 0
        if resume >= len(self):  # saved at the end of an epoch: the next one starts afresh
            resume = 0
        skip_here = 0
        if resume and hasattr(self.sampler, "skip") and self.batch_size:
            self.sampler.skip = resume * self.batch_size  # skip indices, not loaded batches
        else:
            skip_here = resume
        self._served = resume
        for i, batch in enumerate(super().__iter__()):
            if i < skip_here:
                continue
            self._served += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        return {"served": self._served}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self._resume = int(state.get("served", 0))


class SplitLoaders:
    """Mixin for a LightningDataModule with ``train_dataset``/``val_dataset``/``test_dataset``
    and ``batch_size``, ``num_workers``, ``seed``: the training loader shuffles with a
    permutation per (seed, epoch) and is resumable mid-epoch, the others keep their order;
    ``predict`` serves the test split. No loader draws from the global RNG (each has its own
    generator), so the model's dropout draws do not depend on how many loaders were made."""

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
        cls = ResumableDataLoader if shuffle else DataLoader
        return cls(
            dataset,
            batch_size=self.batch_size,
            sampler=EpochShuffleSampler(dataset, self.seed) if shuffle else None,
            generator=torch.Generator().manual_seed(self.seed),
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
