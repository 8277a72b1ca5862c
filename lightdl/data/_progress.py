"""A one-line progress report on stderr, shown only when a loop runs longer than ~2 s."""

from __future__ import annotations

import sys
import time


class Progress:
    """``with Progress("generating RR records", total) as p: ... p.update(i)``."""

    def __init__(self, label: str, total: int, after_s: float = 2.0) -> None:
        self.label, self.total, self.after_s = label, total, after_s
        self.start = self.last = time.perf_counter()
        self.shown = False

    def update(self, done: int) -> None:
        now = time.perf_counter()
        if now - self.start < self.after_s or now - self.last < 0.25:
            return
        self.last, self.shown = now, True
        sys.stderr.write(f"\r{self.label}: {done}/{self.total} ({now - self.start:.0f} s)")
        sys.stderr.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.shown:
            sys.stderr.write(f"\r{self.label}: {self.total}/{self.total} done\n")
            sys.stderr.flush()
