"""Benchmark harness: timing, machine limits and result files (grows into `lightdl bench`)."""

from lightdl.bench.timing import (
    Timer,
    allocator_description,
    full_float32,
    machine_description,
    median,
)

__all__ = ["Timer", "allocator_description", "full_float32", "machine_description", "median"]
