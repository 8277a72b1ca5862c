"""Shared machinery of the time-series data modules.

A subclass describes its data (``_load``: arrays plus the group each sample belongs to and
which split it goes to); this base class normalises with training statistics, builds the
datasets (augmentation on train only) and the loaders, and keeps the batch convention:
``(x (B, C, L) float32, y (B,) int64)``, or ``(x, lengths (B,) int64, y)`` when
``variable_length`` is True (x zero-padded at the end to the batch's longest series).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import lightning as L
import numpy as np
import torch

from ..augment import build_augment, check_augment
from ..dataset import SeriesDataset, collate_padded
from ..normalize import NORMALIZE_MODES, apply_norm, fit_global
from .loaders import SplitLoaders

SPLITS = ("train", "val", "test")


@dataclass
class SplitArrays:
    """One split before normalisation: ``x (N, C, L)``, ``lengths (N,)``, ``y (N,)``,
    ``groups (N,)`` (record / subject id of every sample)."""

    x: np.ndarray
    lengths: np.ndarray
    y: np.ndarray
    groups: np.ndarray

    def take(self, idx: np.ndarray) -> SplitArrays:
        return SplitArrays(self.x[idx], self.lengths[idx], self.y[idx], self.groups[idx])


def pad_series(
    series: Sequence[np.ndarray], max_len: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """List of ``(C, L_i)`` arrays -> zero-padded float32 ``(N, C, L_max)`` and lengths ``(N,)``."""
    lengths = np.array([s.shape[-1] for s in series], dtype=np.int64)
    max_len = max_len or int(lengths.max(initial=1))
    n_ch = series[0].shape[0] if len(series) else 1
    x = np.zeros((len(series), n_ch, max_len), dtype=np.float32)
    for i, s in enumerate(series):
        x[i, :, : s.shape[-1]] = s
    return x, lengths


class SeriesDataModule(SplitLoaders, L.LightningDataModule):
    """Base class; see the subclasses for the arguments.

    Attributes (available right after construction): ``num_classes``, ``input_shape``
    ``(C, L)`` (``L`` None when lengths vary), ``class_names``, ``variable_length``.
    After ``setup()``: ``train_dataset``/``val_dataset``/``test_dataset``, ``norm_mean`` and
    ``norm_std`` ``(C,)`` (train statistics, global mode), ``groups`` ``{split: (N,) ids}``.
    """

    num_classes: int
    input_shape: tuple
    class_names: list[str]
    variable_length: bool = False

    def __init__(
        self,
        batch_size: int = 64,
        num_workers: int = 0,
        seed: int = 0,
        val_fraction: float = 0.15,
        test_fraction: float = 0.15,
        normalize: str = "global",
        augment: list[str] | None = None,
        augment_strength: dict[str, float] | None = None,
    ) -> None:
        super().__init__()
        if normalize not in NORMALIZE_MODES:
            raise ValueError(f"normalize must be one of {NORMALIZE_MODES}, got {normalize!r}")
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.seed = seed
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.normalize = normalize
        self.augment = check_augment(augment, augment_strength)
        self.augment_strength = dict(augment_strength or {})
        self.norm_mean: np.ndarray | None = None
        self.norm_std: np.ndarray | None = None
        self.groups: dict[str, np.ndarray] = {}
        self._splits: dict[str, SplitArrays] | None = None

    # -- subclasses -----------------------------------------------------------------
    def _load(self) -> dict[str, SplitArrays]:
        """Return the raw (unnormalised) ``train``/``val``/``test`` arrays."""
        raise NotImplementedError

    # -- LightningDataModule --------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        if self._splits is not None:
            return
        raw = self._load()
        tr = raw["train"]
        if len(tr.y) == 0:
            raise ValueError(f"{type(self).__name__}: the training split is empty")
        if self.normalize == "global":
            self.norm_mean, self.norm_std = fit_global(tr.x, tr.lengths)
        self._splits = {}
        for split in SPLITS:
            a = raw[split]
            x = apply_norm(a.x, a.lengths, self.normalize, self.norm_mean, self.norm_std)
            self._splits[split] = SplitArrays(x, a.lengths, a.y, a.groups)
            self.groups[split] = a.groups
        transform = build_augment(self.augment, self.augment_strength)
        self.train_dataset = self._dataset("train", transform)
        self.val_dataset = self._dataset("val", None)
        self.test_dataset = self._dataset("test", None)

    def _dataset(self, split: str, transform) -> SeriesDataset:
        a = self._splits[split]
        return SeriesDataset(
            torch.from_numpy(a.x),
            torch.from_numpy(np.asarray(a.y, dtype=np.int64)),
            torch.from_numpy(np.asarray(a.lengths, dtype=np.int64)),
            with_lengths=self.variable_length,
            transform=transform,
        )

    def _collate_fn(self):
        return collate_padded if self.variable_length else None

    # -- helpers for describe / notebooks -------------------------------------------
    def split_arrays(self, split: str) -> SplitArrays:
        """Normalised arrays of a split (runs ``setup`` if needed)."""
        self.setup()
        return self._splits[split]
