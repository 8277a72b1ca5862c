"""UCR/UEA time-series archive ``.ts`` files (univariate and multivariate).

Format (sktime / UEA archive, Bagnall et al. 2018, http://timeseriesclassification.com):
comment lines start with ``#``; header lines ``@problemName``, ``@timeStamps``,
``@missing``, ``@univariate``, ``@dimensions``, ``@equalLength``, ``@seriesLength``,
``@classLabel true <label> <label> ...`` and finally ``@data``; then one series per line,
dimensions separated by ``:``, values by ``,``, the class label last.  ``?`` is a missing
value (read as NaN).  Labels are kept as strings in the order ``@classLabel`` declares them.
Time-stamped data (``@timeStamps true``) and regression files (``@targetLabel``) are not
supported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DataError, at


@dataclass
class TSHeader:
    """Parsed header of a ``.ts`` file; ``data_line`` is the line number of ``@data``."""

    path: Path
    problem_name: str = ""
    univariate: bool | None = None
    dimensions: int | None = None
    equal_length: bool | None = None
    series_length: int | None = None
    class_labels: list[str] = field(default_factory=list)
    data_line: int = 0


@dataclass(frozen=True)
class UCRData:
    """Series of one ``.ts`` file.

    Attributes:
        series: list of float32 arrays ``(C, L_i)``.
        labels: ``(N,)`` class labels as strings.
        class_names: labels in ``@classLabel`` order.
        header: the parsed header.
    """

    series: list[np.ndarray]
    labels: np.ndarray
    class_names: list[str]
    header: TSHeader


def _bool(path: Path, line_no: int, key: str, value: str) -> bool:
    v = value.strip().lower()
    if v not in ("true", "false"):
        raise at(path, line_no, f"{key} must be true or false, got {value!r}")
    return v == "true"


def read_ts_header(path: str | Path) -> TSHeader:
    """Read only the header (cheap: stops at ``@data``)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    h = TSHeader(path)
    has_labels = False
    with path.open(encoding="utf-8", errors="replace") as fh:
        for line_no, line in enumerate(fh, start=1):
            s = line.strip()
            if not s or s.startswith("#"):
                continue
            if not s.startswith("@"):
                raise at(path, line_no, "data before the @data line")
            key, _, rest = s.partition(" ")
            key = key.lower()
            if key == "@data":
                h.data_line = line_no
                break
            if key == "@problemname":
                h.problem_name = rest.strip()
            elif key == "@timestamps":
                if _bool(path, line_no, key, rest):
                    raise at(path, line_no, "@timeStamps true is not supported")
            elif key == "@univariate":
                h.univariate = _bool(path, line_no, key, rest)
            elif key in ("@dimensions", "@dimension"):
                try:
                    h.dimensions = int(rest)
                except ValueError:
                    raise at(
                        path, line_no, f"@dimensions must be an integer, got {rest!r}"
                    ) from None
            elif key == "@equallength":
                h.equal_length = _bool(path, line_no, key, rest)
            elif key == "@serieslength":
                try:
                    h.series_length = int(rest)
                except ValueError:
                    raise at(
                        path, line_no, f"@seriesLength must be an integer, got {rest!r}"
                    ) from None
            elif key == "@classlabel":
                parts = rest.split()
                if not parts or not _bool(path, line_no, key, parts[0]):
                    raise at(
                        path,
                        line_no,
                        "only classification files (@classLabel true ...) are supported",
                    )
                if len(parts) < 2:
                    raise at(path, line_no, "@classLabel true needs the list of labels")
                h.class_labels = parts[1:]
                has_labels = True
            elif key == "@targetlabel":
                raise at(path, line_no, "regression files (@targetLabel) are not supported")
            # other keys (@missing, ...) carry nothing we need
    if not h.data_line:
        raise DataError(f"{path}: no @data line")
    if not has_labels:
        raise DataError(f"{path}: no '@classLabel true <labels>' line before @data")
    if h.univariate and h.dimensions not in (None, 1):
        raise DataError(f"{path}: @univariate true but @dimensions {h.dimensions}")
    if h.univariate and h.dimensions is None:
        h.dimensions = 1
    return h


def read_ts(path: str | Path) -> UCRData:
    """Read a whole ``.ts`` file.

    Raises:
        DataError: ``"{path}:{line}: ..."`` for a wrong number of dimensions, a
        non-numeric value, a length that breaks ``@equalLength true``, or a class label not
        declared by ``@classLabel``.
    """
    h = read_ts_header(path)
    path = h.path
    labels_set = set(h.class_labels)
    series: list[np.ndarray] = []
    labels: list[str] = []
    n_dims = h.dimensions
    first_len = h.series_length if h.equal_length else None
    with path.open(encoding="utf-8", errors="replace") as fh:
        for line_no, line in enumerate(fh, start=1):
            if line_no <= h.data_line:
                continue
            s = line.strip()
            if not s or s.startswith("#"):
                continue
            parts = s.split(":")
            label = parts[-1].strip()
            dims = parts[:-1]
            if len(parts) < 2:
                raise at(path, line_no, "expected '<values>:<label>', found no ':' separator")
            if n_dims is None:
                n_dims = len(dims)
            if len(dims) != n_dims:
                raise at(
                    path,
                    line_no,
                    f"expected {n_dims} dimension(s) (series + label = "
                    f"{n_dims + 1} ':'-separated fields), got {len(dims)}",
                )
            if label not in labels_set:
                shown = ", ".join(h.class_labels)
                raise at(
                    path, line_no, f"class label {label!r} is not among @classLabel {{{shown}}}"
                )
            rows = []
            for j, d in enumerate(dims):
                try:
                    vals = [float("nan") if v.strip() == "?" else float(v) for v in d.split(",")]
                except ValueError:
                    bad = next(v for v in d.split(",") if not _is_float(v))
                    raise at(
                        path, line_no, f"dimension {j}: non-numeric value {bad.strip()!r}"
                    ) from None
                rows.append(vals)
            lens = {len(r) for r in rows}
            if len(lens) != 1:
                raise at(
                    path, line_no, f"dimensions have different lengths {[len(r) for r in rows]}"
                )
            length = lens.pop()
            if h.equal_length:
                if first_len is None:
                    first_len = length
                elif length != first_len:
                    raise at(
                        path,
                        line_no,
                        f"series length {length} differs from {first_len} "
                        "although @equalLength is true",
                    )
            series.append(np.asarray(rows, dtype=np.float32))
            labels.append(label)
    if not series:
        raise DataError(f"{path}: no series after @data")
    return UCRData(series, np.asarray(labels), list(h.class_labels), h)


def _is_float(v: str) -> bool:
    try:
        float(v)
    except ValueError:
        return v.strip() == "?"
    return True
