"""LightningDataModules of lightdl."""

from .base import SeriesDataModule
from .digits import DigitsDataModule
from .logic import LogicGatesDataModule
from .rr import RRIntervalDataModule
from .stride import StrideIntervalDataModule
from .ucr import UCRDataModule

__all__ = [
    "DigitsDataModule",
    "LogicGatesDataModule",
    "RRIntervalDataModule",
    "SeriesDataModule",
    "StrideIntervalDataModule",
    "UCRDataModule",
]
