"""lightdl.data - data modules, synthetic generators, file readers and augmentations.

Public data modules (for ``data.class_path`` in configs):
:class:`RRIntervalDataModule`, :class:`StrideIntervalDataModule`, :class:`UCRDataModule`,
:class:`DigitsDataModule`, :class:`LogicGatesDataModule`.  Every one has ``num_classes``,
``input_shape``, ``class_names`` and ``variable_length`` right after construction.
"""

from .augment import AUGMENTATIONS, build_augment
from .errors import DataError
from .modules import (
    DigitsDataModule,
    LogicGatesDataModule,
    RRIntervalDataModule,
    SeriesDataModule,
    StrideIntervalDataModule,
    UCRDataModule,
)
from .synthetic import generate_gait_subjects, generate_rr_records

__all__ = [
    "AUGMENTATIONS",
    "DataError",
    "DigitsDataModule",
    "LogicGatesDataModule",
    "RRIntervalDataModule",
    "SeriesDataModule",
    "StrideIntervalDataModule",
    "UCRDataModule",
    "build_augment",
    "generate_gait_subjects",
    "generate_rr_records",
]
