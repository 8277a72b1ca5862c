"""scikit-learn's bundled 8x8 handwritten digits (UCI optdigits test set; 1,797 images)."""

from __future__ import annotations

import lightning as L
import numpy as np
import torch
from torch.utils.data import TensorDataset

from ..split import split_indices
from .loaders import SplitLoaders


class DigitsDataModule(SplitLoaders, L.LightningDataModule):
    """Digits 0-9 as ``x (B, 1, 8, 8)`` float32 (or ``(B, 64)`` with ``flatten``), ``y (B,)``.

    Pixels (0-16) are scaled to [0, 1] and then, with ``normalize`` (default), standardised
    with the training split's pixel mean and SD (one scalar each).  Turn ``normalize`` off
    for a VAE with a Bernoulli/BCE decoder, which wants values in [0, 1].  Splits are
    seeded and stratified by digit.  No download: the data ship with scikit-learn
    (``sklearn.datasets.load_digits``; Alpaydin & Kaynak 1998, UCI).

    Args:
        batch_size, num_workers, seed, val_fraction, test_fraction: as usual.
        normalize: standardise with train statistics after scaling to [0, 1].
        flatten: give ``(64,)`` vectors instead of ``(1, 8, 8)`` images.
        digits: keep only these digits (e.g. ``[5, 6, 7, 8, 9]`` for a fine-tuning task);
            labels become their positions in the sorted list, class names the digits.
    """

    def __init__(
        self,
        batch_size: int = 64,
        num_workers: int = 0,
        seed: int = 0,
        val_fraction: float = 0.15,
        test_fraction: float = 0.15,
        normalize: bool = True,
        flatten: bool = False,
        digits: list[int] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.seed = seed
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.normalize = normalize
        self.flatten = flatten
        chosen = sorted(set(digits)) if digits else list(range(10))
        if not chosen or any(not 0 <= d <= 9 for d in chosen):
            raise ValueError(f"digits must be a non-empty list of digits 0-9, got {digits!r}")
        self.digits = chosen
        self.num_classes = len(chosen)
        self.class_names = [str(d) for d in chosen]
        self.input_shape: tuple = (64,) if flatten else (1, 8, 8)
        self.variable_length = False
        self.norm_mean: float | None = None
        self.norm_std: float | None = None
        self._ready = False

    def setup(self, stage: str | None = None) -> None:
        if self._ready:
            return
        from sklearn.datasets import load_digits

        d = load_digits()
        x = (d.images.astype(np.float32) / 16.0)[:, None]  # (N, 1, 8, 8) in [0, 1]
        y = d.target.astype(np.int64)
        keep = np.isin(y, self.digits)
        x, y = x[keep], np.searchsorted(self.digits, y[keep]).astype(np.int64)
        ids = np.arange(len(y))
        idx = split_indices(ids, ids, y, self.val_fraction, self.test_fraction, self.seed)
        if self.normalize:
            tr = x[idx["train"]]
            self.norm_mean, self.norm_std = float(tr.mean()), float(tr.std())
            x = (x - self.norm_mean) / self.norm_std
        if self.flatten:
            x = x.reshape(len(x), -1)
        self.indices = idx
        ds = {
            k: TensorDataset(torch.from_numpy(x[v]), torch.from_numpy(y[v])) for k, v in idx.items()
        }
        self.train_dataset, self.val_dataset, self.test_dataset = ds["train"], ds["val"], ds["test"]
        self._ready = True
