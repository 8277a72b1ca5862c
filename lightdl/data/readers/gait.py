"""PhysioNet "Gait in Neuro-Degenerative Disease" files (gaitndd; Hausdorff et al. 2000).

File naming (as in https://physionet.org/content/gaitndd/): the group is the file-name
prefix and the subject number follows it - ``control1``...``control16``, ``park1``...,
``hunt1``..., ``als1``... - with one of these extensions:

* ``.ts`` - the 13-column text file: elapsed time (s), left stride interval (s), right
  stride interval (s), left/right swing interval (s), left/right swing (% of stride),
  left/right stance interval (s), left/right stance (% of stride), double-support interval
  (s) and (% of stride).  Columns 2 (left) or 3 (right) are the stride series.
* ``.let`` / ``.rit`` (left / right foot) and ``.txt`` - two-column text: elapsed time (s),
  stride interval (s).  If a ``.let``/``.rit`` file is a binary WFDB annotation file (as in
  the database's WFDB copy), the heel strikes are read with ``wfdb`` instead.

Any file with 2 or 13 numeric columns is accepted whatever its extension; blank lines and
lines starting with ``#`` are skipped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._optional import import_wfdb
from ..errors import DataError, at

#: file-name prefix -> group name used by :class:`StrideIntervalDataModule`
GAIT_PREFIXES = {"control": "control", "park": "parkinson", "hunt": "huntington", "als": "als"}
GAIT_EXTENSIONS = (".ts", ".let", ".rit", ".txt")
_NAME = re.compile(r"^(control|park|hunt|als)(\d+)$", re.IGNORECASE)


@dataclass(frozen=True)
class GaitRecording:
    """Stride intervals of one subject.

    Attributes:
        subject: e.g. ``"park3"``.
        group: ``"control"``, ``"parkinson"``, ``"huntington"`` or ``"als"``.
        time: float64 ``(n,)`` elapsed time at the end of each stride (s).
        interval: float64 ``(n,)`` stride intervals (s).
    """

    subject: str
    group: str
    time: np.ndarray
    interval: np.ndarray


def parse_gait_name(path: str | Path) -> tuple[str, str] | None:
    """``(subject, group)`` from a file name like ``hunt3.let``, or None if it does not match."""
    m = _NAME.match(Path(path).stem)
    if not m:
        return None
    return f"{m.group(1).lower()}{int(m.group(2))}", GAIT_PREFIXES[m.group(1).lower()]


def find_gait_files(
    root: str | Path, extensions: tuple[str, ...] | list[str] = GAIT_EXTENSIONS
) -> dict[str, Path]:
    """Map subject -> file in ``root``; per subject the first extension in ``extensions`` wins."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"gait folder not found: {root}")
    rank = {ext.lower(): i for i, ext in enumerate(extensions)}
    found: dict[str, tuple[int, Path]] = {}
    for p in sorted(root.iterdir()):
        parsed = parse_gait_name(p)
        r = rank.get(p.suffix.lower())
        if parsed is None or r is None or not p.is_file():
            continue
        if parsed[0] not in found or r < found[parsed[0]][0]:
            found[parsed[0]] = (r, p)
    if not found:
        raise DataError(
            f"{root}: no gait files (expected names like control1.ts, park3.let, hunt12.rit, "
            f"als4.ts with extensions {list(extensions)})"
        )
    return {s: p for s, (_, p) in sorted(found.items())}


def _read_binary_annotation(path: Path) -> tuple[np.ndarray, np.ndarray]:
    wfdb = import_wfdb()
    try:
        ann = wfdb.rdann(str(path.with_suffix("")), path.suffix[1:])
    except Exception as exc:
        raise DataError(
            f"{path}: binary file that is not a readable WFDB annotation: {exc}"
        ) from exc
    fs = ann.fs or 300.0  # gaitndd footswitch signals are sampled at 300 Hz
    t = np.asarray(ann.sample, dtype=np.float64) / fs
    return t[1:], np.diff(t)


def read_gait_file(path: str | Path, column: str = "left") -> GaitRecording:
    """Read one subject's stride intervals.

    Args:
        path: a gaitndd file (see the module docstring for the formats).
        column: ``"left"`` or ``"right"`` stride interval of 13-column files.

    Raises:
        DataError: ``"{path}:{line}: ..."`` for a malformed line or a wrong column count,
        or when the name does not follow the gaitndd naming.
    """
    path = Path(path)
    parsed = parse_gait_name(path)
    if parsed is None:
        raise DataError(f"{path}: file name must start with control, park, hunt or als + number")
    if column not in ("left", "right"):
        raise ValueError(f"column must be 'left' or 'right', got {column!r}")
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    raw = path.read_bytes()
    if b"\x00" in raw[:512]:
        t, iv = _read_binary_annotation(path)
        return GaitRecording(parsed[0], parsed[1], t, iv)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not a text file ({exc})") from exc
    rows: list[list[float]] = []
    line_nos: list[int] = []
    n_cols = None
    for line_no, line in enumerate(text.splitlines(), start=1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        parts = s.split()
        if n_cols is None:
            if len(parts) not in (2, 13):
                raise at(
                    path,
                    line_no,
                    f"expected 2 columns (time, interval) or 13 columns (time, left, right, "
                    f"...), got {len(parts)}",
                )
            n_cols = len(parts)
        elif len(parts) != n_cols:
            raise at(
                path, line_no, f"expected {n_cols} columns like the first line, got {len(parts)}"
            )
        try:
            rows.append([float(v) for v in parts])
            line_nos.append(line_no)
        except ValueError:
            raise at(path, line_no, f"non-numeric value in {s!r}") from None
    if not rows:
        raise DataError(f"{path}: no data lines")
    arr = np.asarray(rows)
    col = 1 if n_cols == 2 or column == "left" else 2
    interval = arr[:, col]
    bad = np.flatnonzero(~(interval > 0))
    if bad.size:
        raise at(
            path, line_nos[bad[0]], f"stride interval must be positive, got {interval[bad[0]]}"
        )
    return GaitRecording(parsed[0], parsed[1], arr[:, 0], interval)
