"""Any UCR/UEA ``.ts`` file pair - or your own CSV/NPZ files - as a data module."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataError
from ..readers.arrays import read_array_file
from ..readers.ucr import read_ts, read_ts_header
from ..split import split_indices
from .base import SeriesDataModule, SplitArrays, pad_series


def _label_sort_key(label: str) -> tuple:
    try:
        return (0, float(label), label)
    except ValueError:
        return (1, 0.0, label)


class UCRDataModule(SeriesDataModule):
    """Classification series from ``{root}/{name}/{name}_TRAIN.ts`` and ``..._TEST.ts``.

    ``train_file`` / ``test_file`` override the paths; besides ``.ts`` they may be ``.npz``
    (``x``, ``y``) or ``.csv``/``.tsv`` (label first) files of your own (see
    :mod:`lightdl.data.readers.arrays`).  Without a test file the test split is drawn from
    the training file (``test_fraction``); the validation split always comes from the
    training file (``val_fraction``, stratified by class, seeded).

    Samples are ``(C, L)`` float32 with ``C`` the number of dimensions.  Unequal-length
    files give ``variable_length=True``: series are zero-padded at the end and batches are
    ``(x, lengths, y)``.  Class names come from ``@classLabel`` (or the sorted labels of a
    CSV/NPZ file); label ``k`` is ``class_names[k]``.  The default normalisation is the UCR
    convention, ``"per_series"`` z-normalisation.

    Header facts (``num_classes``, ``class_names``, ``input_shape``, ``variable_length``)
    are read at construction - only the header of a ``.ts`` file, the whole file for
    CSV/NPZ - so a missing folder fails early with a :class:`DataError`.
    """

    def __init__(
        self,
        root: str = "data",
        name: str = "",
        train_file: str | None = None,
        test_file: str | None = None,
        batch_size: int = 16,
        num_workers: int = 0,
        seed: int = 0,
        val_fraction: float = 0.2,
        test_fraction: float = 0.2,
        normalize: str = "per_series",
        augment: list[str] | None = None,
        augment_strength: dict[str, float] | None = None,
    ) -> None:
        super().__init__(
            batch_size,
            num_workers,
            seed,
            val_fraction,
            test_fraction,
            normalize,
            augment,
            augment_strength,
        )
        self.save_hyperparameters()
        if train_file is None:
            if not name:
                raise ValueError("UCRDataModule needs name= (with root=) or train_file=")
            folder = Path(root) / name
            train = folder / f"{name}_TRAIN.ts"
            test = folder / f"{name}_TEST.ts"
            if not folder.is_dir() or not train.is_file():
                raise DataError(
                    f"UCR folder not found: {folder} (expected {name}_TRAIN.ts and {name}_TEST.ts)"
                    if not folder.is_dir()
                    else f"{train}: file not found (expected {name}_TRAIN.ts and {name}_TEST.ts)"
                )
            self.train_file = train
            self.test_file = Path(test_file) if test_file else (test if test.is_file() else None)
        else:
            self.train_file = Path(train_file)
            self.test_file = Path(test_file) if test_file else None
        self.name = name or self.train_file.stem
        self._cache: dict[Path, tuple[list[np.ndarray], np.ndarray]] = {}
        self._inspect()

    def _is_ts(self, path: Path) -> bool:
        return path.suffix.lower() == ".ts"

    def _inspect(self) -> None:
        path = self.train_file
        if self._is_ts(path):
            h = read_ts_header(path)
            self.class_names = list(h.class_labels)
            n_dims, length, equal = h.dimensions, h.series_length, h.equal_length
            if n_dims is None or equal is None or (equal and length is None):
                series, _ = self._read(path)  # header incomplete: look at the data
                n_dims = series[0].shape[0]
                lens = {s.shape[1] for s in series}
                equal = len(lens) == 1 if equal is None else equal
                length = lens.pop() if equal else None
        else:
            series, labels = self._read(path)
            self.class_names = sorted(set(labels.tolist()), key=_label_sort_key)
            n_dims = series[0].shape[0]
            lens = {s.shape[1] for s in series}
            equal = len(lens) == 1
            length = next(iter(lens)) if equal else None
        if self.test_file is not None and not self.test_file.is_file():
            raise DataError(f"{self.test_file}: file not found")
        self.num_classes = len(self.class_names)
        self.variable_length = not equal
        self.input_shape = (int(n_dims), int(length) if equal else None)

    def _read(self, path: Path) -> tuple[list[np.ndarray], np.ndarray]:
        if path not in self._cache:
            if self._is_ts(path):
                d = read_ts(path)
                self._cache[path] = (d.series, d.labels)
            else:
                self._cache[path] = read_array_file(path)
        return self._cache[path]

    def _encode(self, path: Path, series: list[np.ndarray], labels: np.ndarray) -> SplitArrays:
        index = {c: i for i, c in enumerate(self.class_names)}
        unknown = sorted(set(labels.tolist()) - set(index))
        if unknown:
            raise DataError(
                f"{path}: class label(s) {unknown} not among the training classes "
                f"{self.class_names}"
            )
        dims = {s.shape[0] for s in series}
        if dims != {self.input_shape[0]}:
            raise DataError(
                f"{path}: series have {sorted(dims)} dimension(s), the training file has "
                f"{self.input_shape[0]}"
            )
        if not self.variable_length and {s.shape[1] for s in series} != {self.input_shape[1]}:
            raise DataError(
                f"{path}: series lengths differ from the training file's {self.input_shape[1]}"
            )
        x, lengths = pad_series(series)
        y = np.array([index[v] for v in labels.tolist()], dtype=np.int64)
        return SplitArrays(x, lengths, y, np.arange(len(y)))

    def _load(self) -> dict[str, SplitArrays]:
        train = self._encode(self.train_file, *self._read(self.train_file))
        test_frac = 0.0 if self.test_file is not None else self.test_fraction
        idx = split_indices(
            train.groups, train.groups, train.y, self.val_fraction, test_frac, self.seed
        )
        out = {k: train.take(v) for k, v in idx.items()}
        if self.test_file is not None:
            test = self._encode(self.test_file, *self._read(self.test_file))
            test.groups = test.groups + len(train.y)  # ids distinct from the train file's
            out["test"] = test
        # one padded width per module keeps the arrays simple; batches are trimmed anyway
        width = max(a.x.shape[2] for a in out.values())
        for a in out.values():
            if a.x.shape[2] < width:
                a.x = np.pad(a.x, ((0, 0), (0, 0), (0, width - a.x.shape[2])))
        self._cache.clear()
        return out
