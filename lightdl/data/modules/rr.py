"""AF vs. non-AF windows of RR intervals (lab a)."""

from __future__ import annotations

import numpy as np

from ..errors import DataError
from ..split import split_indices
from ..synthetic.rr import generate_rr_records, sliding_windows, window_labels
from .base import SeriesDataModule, SplitArrays


class RRIntervalDataModule(SeriesDataModule):
    """Windows of ``window`` consecutive RR intervals (seconds), label 1 = AF, 0 = non-AF.

    Samples are ``(1, window)`` float32; batches ``(x (B, 1, window), y (B,))``.

    Sources:
        * ``"synthetic"`` (default): ``n_records`` simulated recordings of ``record_beats``
          beats (:func:`lightdl.data.synthetic.rr.generate_rr_records`; sinus rhythm with
          HRV and ectopic beats, persistent AF, paroxysmal AF - models in DATA.md).
        * ``"physionet"``: WFDB records in the local folder ``root`` (e.g. the MIT-BIH AF
          database), rhythm labels from ``.atr``, beats from ``beat_annotator``
          (``"qrs"``, ``"qrsc"`` or ``"atr"``); needs ``pip install lightdl[physionet]``.

    Windows: hop ``stride`` beats; label by ``label_rule``: ``"majority"`` (default) = AF if
    more than half of the window's beats are AF, ``"any"`` = AF if at least one beat is.
    Splits are by record (a record's windows all land in one split), stratified by record
    kind (sinus / AF / paroxysmal; for real data: has AF or not).  Normalisation: train
    mean/SD (``"global"``), per window (``"per_series"``) or none (values in seconds).

    Args:
        source: ``"synthetic"`` or ``"physionet"``.
        root: folder of WFDB records (physionet only).
        window: beats per window (30-128 in the literature).
        stride: hop between windows in beats (default half a window).
        label_rule: ``"majority"`` or ``"any"``.
        n_records: synthetic records (simulated subjects).
        record_beats: beats per synthetic record (600 is ~10 minutes).
        af_fraction: share of synthetic records in persistent AF.
        paroxysmal_fraction: share of synthetic records alternating sinus rhythm and AF.
        ectopic_fraction: mean share of premature beats in synthetic sinus rhythm.
        detection_noise: per-beat probability of a missed or extra beat (synthetic).
        beat_annotator: annotator of the beats for real records.
        af_rhythms: rhythm names counted as AF for real records (default ``["AFIB"]``).
        records: subset of record names for real data (default: all in ``root``).
        batch_size, num_workers, seed, val_fraction, test_fraction, normalize, augment,
        augment_strength: see :class:`~lightdl.data.modules.base.SeriesDataModule` and
        :mod:`lightdl.data.augment`.
    """

    def __init__(
        self,
        source: str = "synthetic",
        root: str | None = None,
        window: int = 60,
        stride: int = 30,
        label_rule: str = "majority",
        n_records: int = 200,
        record_beats: int = 600,
        af_fraction: float = 0.35,
        paroxysmal_fraction: float = 0.2,
        ectopic_fraction: float = 0.05,
        detection_noise: float = 0.0,
        beat_annotator: str = "qrs",
        af_rhythms: list[str] | None = None,
        records: list[str] | None = None,
        batch_size: int = 64,
        num_workers: int = 0,
        seed: int = 0,
        val_fraction: float = 0.15,
        test_fraction: float = 0.15,
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
            raise ValueError("source='physionet' needs root= (a local folder of WFDB records)")
        if label_rule not in ("majority", "any"):
            raise ValueError(f"label_rule must be 'majority' or 'any', got {label_rule!r}")
        if window < 2 or stride < 1:
            raise ValueError(f"window must be >= 2 and stride >= 1, got {window}, {stride}")
        if beat_annotator not in ("qrs", "qrsc", "atr"):
            raise ValueError(f"beat_annotator must be qrs, qrsc or atr, got {beat_annotator!r}")
        self.source = source
        self.root = root
        self.window = window
        self.stride = stride
        self.label_rule = label_rule
        self.n_records = n_records
        self.record_beats = record_beats
        self.af_fraction = af_fraction
        self.paroxysmal_fraction = paroxysmal_fraction
        self.ectopic_fraction = ectopic_fraction
        self.detection_noise = detection_noise
        self.beat_annotator = beat_annotator
        self.af_rhythms = list(af_rhythms or ["AFIB"])
        self.records = records
        self.num_classes = 2
        self.class_names = ["non-AF", "AF"]
        self.input_shape = (1, window)
        self.variable_length = False

    def _records(self) -> tuple[list[np.ndarray], list[np.ndarray], list[str], list[str]]:
        """``(rr per record, af flags per record, record names, strata)``."""
        if self.source == "synthetic":
            recs = generate_rr_records(
                self.n_records,
                self.record_beats,
                seed=self.seed,
                af_fraction=self.af_fraction,
                paroxysmal_fraction=self.paroxysmal_fraction,
                ectopic_fraction=self.ectopic_fraction,
                detection_noise=self.detection_noise,
            )
            names = [f"sim{i:04d}" for i in range(len(recs))]
            return [r.rr for r in recs], [r.af for r in recs], names, [r.kind for r in recs]
        from ..readers.wfdb_af import list_wfdb_records, read_af_record

        names = self.records or list_wfdb_records(self.root)
        rrs, afs = [], []
        for name in names:
            rec = read_af_record(self.root, name, self.beat_annotator, self.af_rhythms)
            rrs.append(rec.rr)
            afs.append(rec.af)
        strata = ["af" if a.any() else "non-af" for a in afs]
        return rrs, afs, list(names), strata

    def _load(self) -> dict[str, SplitArrays]:
        rrs, afs, names, strata = self._records()
        xs, ys, gs = [], [], []
        for i, (rr, af) in enumerate(zip(rrs, afs, strict=True)):
            w = sliding_windows(rr, self.window, self.stride)
            xs.append(w)
            ys.append(window_labels(sliding_windows(af, self.window, self.stride), self.label_rule))
            gs.append(np.full(len(w), i))
        x = np.concatenate(xs)[:, None, :].astype(np.float32)
        if len(x) == 0:
            where = self.root if self.source == "physionet" else "synthetic records"
            raise DataError(f"{where}: no record has {self.window} beats for one window")
        data = SplitArrays(x, np.full(len(x), self.window), np.concatenate(ys), np.concatenate(gs))
        idx = split_indices(
            data.groups,
            np.arange(len(names)),
            np.asarray(strata),
            self.val_fraction,
            self.test_fraction,
            self.seed,
        )
        self.record_names = names
        return {k: data.take(v) for k, v in idx.items()}
