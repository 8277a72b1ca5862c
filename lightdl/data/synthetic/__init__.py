"""Synthetic data generators (pure functions of a seed); models and sources in DATA.md."""

from .fgn import fgn
from .rr import RRRecord, generate_rr_records
from .stride import GAIT_GROUPS, GaitSubjects, generate_gait_subjects

__all__ = [
    "GAIT_GROUPS",
    "GaitSubjects",
    "RRRecord",
    "fgn",
    "generate_gait_subjects",
    "generate_rr_records",
]
