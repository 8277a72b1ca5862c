"""The one exception type of the data layer.

Readers and data modules raise :class:`DataError` for problems in the user's data or
arguments (missing folder, malformed line, unknown label, wrong dimension).  Messages name
the file and, where there is one, the line: ``"{path}:{line_no}: <what is wrong>"``.
"""

from __future__ import annotations

from pathlib import Path


class DataError(ValueError):
    """A data file or data argument is wrong; the message says where and how."""


def at(path: str | Path, line_no: int | None, message: str) -> DataError:
    """Build a :class:`DataError` reading ``"{path}:{line_no}: {message}"``."""
    where = f"{path}:{line_no}" if line_no is not None else f"{path}"
    return DataError(f"{where}: {message}")
