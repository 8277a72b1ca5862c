"""PhysioNet AF databases (WFDB records with rhythm annotations) read with ``wfdb``.

Layout of e.g. the MIT-BIH Atrial Fibrillation Database (Moody & Mark, Computers in
Cardiology 10:227, 1983; https://physionet.org/content/afdb/): ``{record}.hea`` (header),
``{record}.atr`` (reference annotations; rhythm changes are annotations whose aux note is
``(AFIB``, ``(AFL``, ``(J`` or ``(N``), ``{record}.qrs`` / ``{record}.qrsc`` (beat
detections, automatic / manually corrected).  The long-term AF database (ltafdb) and the
MIT-BIH arrhythmia database use the same scheme with more rhythm names, listed in
:data:`KNOWN_RHYTHMS`.  The signals themselves are never read.

RR intervals come from a beat annotator: ``qrs``/``qrsc`` (every annotation is a beat) or
``atr`` (only beat symbols count).  Interval ``k`` ends at beat ``k+1`` and takes the rhythm
in force at that beat; beats before the first rhythm annotation are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._optional import import_wfdb
from ..errors import DataError

#: Rhythm names (aux notes without the leading "(") of the PhysioNet AF and arrhythmia DBs.
KNOWN_RHYTHMS = frozenset("AFIB AFL J N AB B BII IVR NOD P PREX SBR SVTA T VFL VT".split())

# WFDB beat annotation symbols (wfdb.io.annotation.ann_label_table, "is beat")
_BEAT_SYMBOLS = frozenset("N L R B A a J S V r F e j n E / f Q ?".split())


@dataclass(frozen=True)
class AFRecording:
    """RR intervals of one record.

    Attributes:
        name: record name.
        rr: float64 ``(n,)`` RR intervals in seconds.
        rhythm: ``(n,)`` rhythm name in force at each interval's closing beat.
        af: bool ``(n,)`` True where the rhythm is one of the AF rhythms asked for.
    """

    name: str
    rr: np.ndarray
    rhythm: np.ndarray
    af: np.ndarray


def list_wfdb_records(root: str | Path) -> list[str]:
    """Record names in ``root``: from its ``RECORDS`` file if any, else every ``*.hea``."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"WFDB folder not found: {root}")
    rec_file = root / "RECORDS"
    if rec_file.is_file():
        names = [ln.strip() for ln in rec_file.read_text().splitlines() if ln.strip()]
    else:
        names = sorted(p.stem for p in root.glob("*.hea"))
    if not names:
        raise DataError(f"{root}: no WFDB records (no RECORDS file and no *.hea headers)")
    return names


def read_af_record(
    root: str | Path,
    name: str,
    beat_annotator: str = "qrs",
    af_rhythms: tuple[str, ...] | list[str] = ("AFIB",),
) -> AFRecording:
    """Read one record's RR intervals and rhythm labels.

    Args:
        root: folder holding ``{name}.atr`` and ``{name}.{beat_annotator}``.
        name: record name, e.g. ``"04015"``.
        beat_annotator: ``"qrs"``, ``"qrsc"`` or ``"atr"``.
        af_rhythms: rhythm names labelled AF (``("AFIB", "AFL")`` to count flutter).

    Raises:
        DataError: missing file, unknown rhythm, or too few beats; the message names the file.
    """
    wfdb = import_wfdb()
    root = Path(root)
    stem = str(root / name)
    for ext in {"atr", beat_annotator}:
        if not (root / f"{name}.{ext}").is_file():
            raise DataError(f"{stem}.{ext}: annotation file not found (record {name!r})")
    try:
        rhythm_ann = wfdb.rdann(stem, "atr")
        beat_ann = rhythm_ann if beat_annotator == "atr" else wfdb.rdann(stem, beat_annotator)
    except Exception as exc:  # wfdb raises assorted types for corrupt files
        raise DataError(f"{stem}: cannot read annotations: {exc}") from exc
    fs = beat_ann.fs
    if not fs:
        try:
            fs = wfdb.rdheader(stem).fs
        except Exception as exc:
            raise DataError(f"{stem}.hea: cannot read the sampling frequency: {exc}") from exc

    # rhythm changes: annotations whose aux note starts with "("
    r_samples, r_names = [], []
    for i, (s, note) in enumerate(zip(rhythm_ann.sample, rhythm_ann.aux_note, strict=False)):
        note = (note or "").strip().rstrip("\x00")
        if not note.startswith("("):
            continue
        rname = note[1:]
        if rname not in KNOWN_RHYTHMS:
            raise DataError(
                f"{stem}.atr: annotation {i} (sample {s}): unknown rhythm {note!r}; "
                f"known: {sorted(KNOWN_RHYTHMS)}"
            )
        r_samples.append(int(s))
        r_names.append(rname)
    if not r_samples:
        raise DataError(f"{stem}.atr: no rhythm annotations (aux notes like '(AFIB', '(N')")

    beats = np.asarray(beat_ann.sample, dtype=np.int64)
    if beat_annotator == "atr":
        is_beat = np.array([sym in _BEAT_SYMBOLS for sym in beat_ann.symbol], dtype=bool)
        beats = beats[is_beat]
    beats = np.unique(beats)
    if beats.size < 2:
        raise DataError(f"{stem}.{beat_annotator}: fewer than 2 beats")
    rr = np.diff(beats) / float(fs)
    ends = beats[1:]
    which = np.searchsorted(np.asarray(r_samples), ends, side="right") - 1
    known = which >= 0  # beats before the first rhythm label have no label
    rhythm = np.asarray(r_names, dtype=object)[which[known]].astype(str)
    af = np.isin(rhythm, list(af_rhythms))
    return AFRecording(name, rr[known], rhythm, af)
