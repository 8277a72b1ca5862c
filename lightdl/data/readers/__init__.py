"""Readers of real recordings: PhysioNet AF (WFDB), PhysioNet gait, UCR/UEA ``.ts``, CSV/NPZ."""

from .arrays import read_array_file
from .gait import GaitRecording, find_gait_files, read_gait_file
from .ucr import UCRData, read_ts, read_ts_header
from .wfdb_af import AFRecording, list_wfdb_records, read_af_record

__all__ = [
    "AFRecording",
    "GaitRecording",
    "UCRData",
    "find_gait_files",
    "list_wfdb_records",
    "read_af_record",
    "read_array_file",
    "read_gait_file",
    "read_ts",
    "read_ts_header",
]
