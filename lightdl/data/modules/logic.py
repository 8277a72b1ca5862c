"""Logic gates AND, OR, XOR: the perceptron's first data set."""

from __future__ import annotations

import lightning as L
import numpy as np
import torch
from torch.utils.data import TensorDataset

from .loaders import SplitLoaders

GATES = {
    "and": np.array([0, 0, 0, 1]),
    "or": np.array([0, 1, 1, 1]),
    "xor": np.array([0, 1, 1, 0]),
}
_INPUTS = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)


class LogicGatesDataModule(SplitLoaders, L.LightningDataModule):
    """The truth table of a gate, repeated: ``x (B, 2)`` float32 in {0, 1}, ``y (B,)`` in {0, 1}.

    Train, val and test are all the 4-row truth table repeated ``repeats`` times, each with
    its own input noise N(0, noise^2) (seeded; noise-free when ``noise=0``).  This is on
    purpose: the lesson is separability (AND and OR are linearly separable, so a perceptron
    learns them; XOR is not, so it cannot - an MLP can), not generalisation to unseen inputs.

    Args:
        gate: ``"and"``, ``"or"`` or ``"xor"``.
        repeats: copies of the truth table per split.
        noise: SD of Gaussian noise added to the inputs.
        batch_size, num_workers, seed: as usual.
    """

    def __init__(
        self,
        gate: str = "xor",
        repeats: int = 25,
        noise: float = 0.0,
        batch_size: int = 16,
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        gate = gate.lower()
        if gate not in GATES:
            raise ValueError(f"gate must be one of {list(GATES)}, got {gate!r}")
        if repeats < 1:
            raise ValueError(f"repeats must be >= 1, got {repeats}")
        self.gate = gate
        self.repeats = repeats
        self.noise = noise
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.seed = seed
        self.num_classes = 2
        self.class_names = ["0", "1"]
        self.input_shape: tuple = (2,)
        self.variable_length = False

    def _split(self, k: int) -> TensorDataset:
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, k]))
        x = np.tile(_INPUTS, (self.repeats, 1))
        if self.noise > 0:
            x = x + rng.normal(0.0, self.noise, x.shape).astype(np.float32)
        y = np.tile(GATES[self.gate], self.repeats).astype(np.int64)
        return TensorDataset(torch.from_numpy(x), torch.from_numpy(y))

    def setup(self, stage: str | None = None) -> None:
        self.train_dataset, self.val_dataset, self.test_dataset = (self._split(k) for k in range(3))
