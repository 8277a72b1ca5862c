"""Control / Parkinson's / Huntington's / ALS from stride-interval series (lab b)."""

from __future__ import annotations

import numpy as np

from ..errors import DataError
from ..readers.gait import GAIT_EXTENSIONS, find_gait_files, read_gait_file
from ..split import split_indices
from ..synthetic.rr import sliding_windows
from ..synthetic.stride import GAIT_GROUPS, generate_gait_subjects
from .base import SeriesDataModule, SplitArrays, pad_series

GAIT_CLASSES = tuple(GAIT_GROUPS)


class StrideIntervalDataModule(SeriesDataModule):
    """Windows of stride intervals (seconds) labelled by the subject's group.

    Samples are ``(1, window)`` float32 (``window`` strides, hop ``hop``); with
    ``window=None`` a sample is a subject's whole series - equal length for synthetic data,
    unequal for real recordings, in which case ``variable_length`` is True and batches are
    ``(x, lengths, y)``.

    Sources:
        * ``"synthetic"`` (default): ``subjects_per_class`` simulated subjects per group,
          ``series_length`` strides each (:mod:`lightdl.data.synthetic.stride`: group mean,
          CV and DFA alpha from DATA.md, fractional Gaussian noise).
        * ``"physionet"``: the gaitndd text files in ``root``.  Naming: the group is the
          file-name prefix, ``control<N>``, ``park<N>``, ``hunt<N>``, ``als<N>``, with
          extension ``.ts`` (13 columns; ``column`` picks left/right stride), ``.let`` /
          ``.rit`` / ``.txt`` (two columns: time, interval); see
          :mod:`lightdl.data.readers.gait`.  The first ``skip_seconds`` of each walk (gait
          initiation) are dropped and, with ``remove_outliers``, strides more than 3 SD
          (robust, from the median absolute deviation) from the subject's median (turns,
          stumbles; as in Hausdorff et al. 2000) are removed.

    Classes are ``classes`` in the given order (a subset such as ``["control",
    "parkinson"]`` gives a binary task).  Splits are by subject, stratified by class.

    Args:
        source: ``"synthetic"`` or ``"physionet"``.
        root: folder of gait files (physionet only).
        classes: groups to use, from ``control``, ``parkinson``, ``huntington``, ``als``.
        window: strides per window, or None for whole series.
        hop: strides between window starts (default: half a window).
        subjects_per_class: synthetic subjects per group.
        series_length: synthetic strides per subject (a 5-min walk has ~270-300).
        column: ``"left"`` or ``"right"`` stride series of 13-column files.
        skip_seconds: seconds dropped at the start of each real recording.
        remove_outliers: drop outlying strides of real recordings.
        batch_size, num_workers, seed, val_fraction, test_fraction, normalize, augment,
        augment_strength: see :class:`~lightdl.data.modules.base.SeriesDataModule`.
    """

    def __init__(
        self,
        source: str = "synthetic",
        root: str | None = None,
        classes: list[str] | None = None,
        window: int | None = 64,
        hop: int | None = None,
        subjects_per_class: int = 40,
        series_length: int = 300,
        column: str = "left",
        skip_seconds: float = 20.0,
        remove_outliers: bool = True,
        batch_size: int = 32,
        num_workers: int = 0,
        seed: int = 0,
        val_fraction: float = 0.15,
        test_fraction: float = 0.2,
        normalize: str = "global",
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
        if source not in ("synthetic", "physionet"):
            raise ValueError(f"source must be 'synthetic' or 'physionet', got {source!r}")
        if source == "physionet" and not root:
            raise ValueError("source='physionet' needs root= (a folder of gaitndd files)")
        classes = list(classes or GAIT_CLASSES)
        unknown = [c for c in classes if c not in GAIT_CLASSES]
        if unknown or len(set(classes)) != len(classes) or len(classes) < 2:
            raise ValueError(
                f"classes must be >= 2 distinct names from {list(GAIT_CLASSES)}, got {classes}"
            )
        if window is not None and window < 2:
            raise ValueError(f"window must be >= 2 or None, got {window}")
        self.source = source
        self.root = root
        self.window = window
        self.hop = hop or (max(1, window // 2) if window else None)
        self.subjects_per_class = subjects_per_class
        self.series_length = series_length
        self.column = column
        self.skip_seconds = skip_seconds
        self.remove_outliers = remove_outliers
        self.class_names = classes
        self.num_classes = len(classes)
        self.variable_length = source == "physionet" and window is None
        length = (
            window if window is not None else (series_length if source == "synthetic" else None)
        )
        self.input_shape = (1, length)

    def _subjects(self) -> tuple[list[np.ndarray], list[str], list[str]]:
        """``(series per subject, subject ids, group per subject)``."""
        if self.source == "synthetic":
            g = generate_gait_subjects(
                self.subjects_per_class,
                self.series_length,
                classes=self.class_names,
                seed=self.seed,
            )
            ids = [f"{grp}{i}" for i, grp in enumerate(g.group)]
            return list(g.series), ids, [str(x) for x in g.group]
        files = find_gait_files(self.root, GAIT_EXTENSIONS)
        series, ids, groups = [], [], []
        for subject, path in files.items():
            rec = read_gait_file(path, self.column)
            if rec.group not in self.class_names:
                continue
            iv = (
                rec.interval[rec.time >= rec.time[0] + self.skip_seconds]
                if self.skip_seconds
                else rec.interval
            )
            if self.remove_outliers and iv.size > 4:
                med = np.median(iv)
                mad = 1.4826 * np.median(np.abs(iv - med)) or iv.std() or 1.0
                iv = iv[np.abs(iv - med) <= 3 * mad]
            series.append(iv)
            ids.append(subject)
            groups.append(rec.group)
        if not series:
            raise DataError(f"{self.root}: no gait files of the classes {self.class_names}")
        return series, ids, groups

    def _load(self) -> dict[str, SplitArrays]:
        series, ids, groups = self._subjects()
        label = {c: i for i, c in enumerate(self.class_names)}
        xs: list[np.ndarray] = []
        ys, gs = [], []
        for i, (s, grp) in enumerate(zip(series, groups, strict=True)):
            w = [s] if self.window is None else list(sliding_windows(s, self.window, self.hop))
            xs.extend(np.asarray(v, dtype=np.float32)[None, :] for v in w)
            ys.extend([label[grp]] * len(w))
            gs.extend([i] * len(w))
        if not xs:
            raise DataError(f"{self.root or 'synthetic'}: no subject has {self.window} strides")
        x, lengths = pad_series(xs)
        data = SplitArrays(x, lengths, np.asarray(ys, dtype=np.int64), np.asarray(gs))
        idx = split_indices(
            data.groups,
            np.arange(len(ids)),
            np.asarray(groups),
            self.val_fraction,
            self.test_fraction,
            self.seed,
        )
        self.subject_ids = ids
        return {k: data.take(v) for k, v in idx.items()}
