"""Lazy import of optional dependencies with a message that says how to install them."""

from __future__ import annotations

from types import ModuleType


def import_wfdb() -> ModuleType:
    """Return the ``wfdb`` module or raise ImportError naming the extra to install."""
    try:
        import wfdb
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "reading PhysioNet WFDB files needs the 'wfdb' package: "
            "pip install lightdl[physionet]  (or: pip install wfdb)"
        ) from exc
    return wfdb
