"""Your own series as NPZ or CSV/TSV files.

* ``.npz`` - arrays ``x`` (``(N, L)`` univariate or ``(N, C, L)``) and ``y`` (``(N,)``
  labels, integers or strings).  Unequal lengths: pad at the end with NaN.
* ``.csv`` / ``.tsv`` / ``.txt`` - one univariate series per row, the class label in the
  first column (the UCR 2018 ``.tsv`` convention; ``label_column="last"`` for the other
  side); comma-separated (tab for ``.tsv``; whitespace also accepted).  An optional header
  row is skipped when its value fields are not numbers.  Rows may differ in length (or end
  in ``NaN`` values) - the lengths are kept.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..errors import DataError, at


def _split_nan_padded(x: np.ndarray) -> list[np.ndarray]:
    """``(N, C, L)`` with trailing NaN padding -> list of ``(C, L_i)``."""
    valid = ~np.isnan(x).all(axis=1)  # (N, L): a time step is valid if any channel is
    lengths = np.where(valid.any(axis=1), x.shape[2] - np.argmax(valid[:, ::-1], axis=1), 0)
    return [x[i, :, : lengths[i]] for i in range(len(x))]


def read_array_file(
    path: str | Path, label_column: str = "first"
) -> tuple[list[np.ndarray], np.ndarray]:
    """Read ``(series, labels)``: a list of float32 ``(C, L_i)`` arrays and ``(N,)`` labels.

    Labels are returned as strings (``"3"`` for the integer 3) so that every reader agrees.

    Raises:
        DataError: missing keys / file, wrong dimension, a non-numeric value (naming file
        and line), or an empty file.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in ("x", "y") if k not in z.files]
            if missing:
                raise DataError(
                    f"{path}: missing array(s) {missing} (found {z.files}; expected x and y)"
                )
            x = np.asarray(z["x"], dtype=np.float32)
            y = np.asarray(z["y"])
        if x.ndim == 2:
            x = x[:, None, :]
        if x.ndim != 3:
            raise DataError(f"{path}: x must be (N, L) or (N, C, L), got shape {x.shape}")
        if y.ndim != 1 or len(y) != len(x):
            raise DataError(f"{path}: y must be (N,) with N = {len(x)} like x, got shape {y.shape}")
        return _split_nan_padded(x), y.astype(str)
    if suffix not in (".csv", ".tsv", ".txt"):
        raise DataError(f"{path}: unsupported extension {suffix!r} (use .npz, .csv, .tsv or .txt)")
    if label_column not in ("first", "last"):
        raise ValueError(f"label_column must be 'first' or 'last', got {label_column!r}")
    splitter = re.compile(r"\t" if suffix == ".tsv" else r"\s*,\s*|\s+")
    series, labels = [], []
    first_data = True
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        parts = [p for p in splitter.split(s) if p != ""]
        if len(parts) < 2:
            raise at(
                path, line_no, f"expected a label and at least one value, got {len(parts)} field(s)"
            )
        label, values = (
            (parts[0], parts[1:]) if label_column == "first" else (parts[-1], parts[:-1])
        )
        try:
            vals = np.asarray([float(v) for v in values], dtype=np.float32)
        except ValueError:
            if first_data:  # a header row
                first_data = False
                continue
            bad = next(v for v in values if not _is_float(v))
            raise at(path, line_no, f"non-numeric value {bad!r}") from None
        first_data = False
        nan = np.isnan(vals)
        if nan.any():
            end = len(vals) - int(np.argmax(~nan[::-1])) if (~nan).any() else 0
            vals = vals[:end]
        series.append(vals[None, :])
        labels.append(label.strip())
    if not series:
        raise DataError(f"{path}: no data rows")
    return series, np.asarray(labels)


def _is_float(v: str) -> bool:
    try:
        float(v)
    except ValueError:
        return False
    return True
