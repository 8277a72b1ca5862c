"""Readers on small fixture files written here (WFDB via wfdb itself, text by hand)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from lightdl.data import DataError, RRIntervalDataModule, StrideIntervalDataModule, UCRDataModule
from lightdl.data.readers import (
    find_gait_files,
    list_wfdb_records,
    read_af_record,
    read_array_file,
    read_gait_file,
    read_ts,
)

wfdb = pytest.importorskip("wfdb")
# wfdb calls pandas with the deprecated inplace=...; not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword:Warning")

FS = 128


# --------------------------------------------------------------------------- WFDB fixtures
def write_af_record(
    folder: Path, name: str, n_sinus: int, n_af: int, seed: int, rhythm_af: str = "(AFIB"
) -> tuple[np.ndarray, np.ndarray]:
    """A record of ``n_sinus`` sinus beats followed by ``n_af`` AF beats; returns (rr, af)."""
    rng = np.random.default_rng(seed)
    rr = np.concatenate([rng.normal(0.9, 0.03, n_sinus), 0.45 + rng.exponential(0.2, n_af)])
    beats = np.round(np.concatenate([[0.5], 0.5 + np.cumsum(rr)]) * FS).astype(int)
    n_samp = int(beats[-1] + FS)
    wfdb.wrsamp(
        name,
        fs=FS,
        units=["mV"],
        sig_name=["ECG"],
        p_signal=np.zeros((n_samp, 1)),
        fmt=["16"],
        write_dir=str(folder),
    )
    switch = beats[n_sinus]  # first AF beat closes interval n_sinus - 1
    wfdb.wrann(
        name,
        "atr",
        np.array([beats[0] - 10, switch - 5]),
        symbol=["+", "+"],
        aux_note=["(N", rhythm_af],
        fs=FS,
        write_dir=str(folder),
    )
    wfdb.wrann(name, "qrs", beats, symbol=["N"] * len(beats), fs=FS, write_dir=str(folder))
    rr_q = np.diff(beats) / FS
    af = np.arange(len(rr_q)) >= n_sinus - 1
    return rr_q, af


@pytest.fixture(scope="module")
def af_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("afdb")
    truth = {}
    for i in range(6):
        name = f"rec{i:02d}"
        truth[name] = write_af_record(folder, name, 150 + 20 * i, 150 if i % 2 else 0, i)
    return folder, truth


def test_read_af_record_matches_written_beats(af_folder):
    folder, truth = af_folder
    assert list_wfdb_records(folder) == sorted(truth)
    rec = read_af_record(folder, "rec01")
    rr, af = truth["rec01"]
    np.testing.assert_allclose(rec.rr, rr, atol=1e-9)
    assert np.array_equal(rec.af, af)
    assert set(rec.rhythm) == {"N", "AFIB"}
    # flutter only counts as AF when asked to
    write_af_record(folder, "flut", 100, 80, 9, rhythm_af="(AFL")
    assert not read_af_record(folder, "flut").af.any()
    assert read_af_record(folder, "flut", af_rhythms=["AFIB", "AFL"]).af.sum() == 81
    for ext in ("hea", "dat", "atr", "qrs"):
        (folder / f"flut.{ext}").unlink()


def test_read_af_record_atr_beats_skip_rhythm_marks(tmp_path):
    rr, _ = write_af_record(tmp_path, "r", 50, 0, 0)
    beats = np.round(np.concatenate([[0.5], 0.5 + np.cumsum(rr)]) * FS).astype(int)
    samples = np.concatenate([[beats[0] - 10], beats])
    wfdb.wrann(
        "r",
        "atr",
        samples,
        symbol=["+"] + ["N"] * len(beats),
        aux_note=["(N"] + [""] * len(beats),
        fs=FS,
        write_dir=str(tmp_path),
    )
    rec = read_af_record(tmp_path, "r", beat_annotator="atr")
    assert len(rec.rr) == len(beats) - 1 and not rec.af.any()


def test_wfdb_errors_name_the_file(tmp_path):
    with pytest.raises(DataError, match="WFDB folder not found"):
        list_wfdb_records(tmp_path / "nope")
    write_af_record(tmp_path, "a", 40, 40, 1)
    (tmp_path / "a.qrs").unlink()
    with pytest.raises(DataError, match=r"a\.qrs: annotation file not found"):
        read_af_record(tmp_path, "a")
    write_af_record(tmp_path, "b", 40, 40, 1, rhythm_af="(XYZ")
    with pytest.raises(DataError, match=r"b\.atr: annotation 1 .*unknown rhythm '\(XYZ'"):
        read_af_record(tmp_path, "b")


def test_rr_datamodule_physionet_splits_by_record(af_folder):
    folder, truth = af_folder
    dm = RRIntervalDataModule(
        source="physionet",
        root=str(folder),
        window=30,
        stride=15,
        val_fraction=0.2,
        test_fraction=0.2,
        batch_size=8,
    )
    assert dm.num_classes == 2 and dm.input_shape == (1, 30) and not dm.variable_length
    dm.setup()
    parts = [set(dm.groups[s].tolist()) for s in ("train", "val", "test")]
    assert all(parts) and not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (8, 1, 30) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert set(dm.split_arrays("train").y.tolist()) <= {0, 1}
    with pytest.raises(ValueError, match="needs root"):
        RRIntervalDataModule(source="physionet")


# --------------------------------------------------------------------------- gait fixtures
def write_gait(path: Path, n: int, seed: int, cols: int = 2, mean: float = 1.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    iv = mean + 0.03 * rng.standard_normal(n)
    t = np.cumsum(iv)
    with path.open("w") as fh:
        for ti, v in zip(t, iv, strict=True):
            row = [ti, v] if cols == 2 else [ti, v, v + 0.01] + [0.4] * 10
            fh.write("\t".join(f"{c:.4f}" for c in row) + "\n")
    return iv


def test_read_gait_two_and_thirteen_columns(tmp_path):
    iv = write_gait(tmp_path / "park3.let", 50, 0)
    rec = read_gait_file(tmp_path / "park3.let")
    assert rec.subject == "park3" and rec.group == "parkinson"
    np.testing.assert_allclose(rec.interval, iv, atol=1e-4)
    iv = write_gait(tmp_path / "hunt12.ts", 40, 1, cols=13)
    np.testing.assert_allclose(read_gait_file(tmp_path / "hunt12.ts").interval, iv, atol=1e-4)
    right = read_gait_file(tmp_path / "hunt12.ts", column="right").interval
    np.testing.assert_allclose(right, iv + 0.01, atol=1e-4)
    write_gait(tmp_path / "hunt12.rit", 30, 2)
    files = find_gait_files(tmp_path)
    assert files["hunt12"].suffix == ".ts" and files["park3"].suffix == ".let"


@pytest.mark.parametrize(
    ("content", "line", "message"),
    [
        ("1.0 1.0\n2.0\n", 2, "expected 2 columns like the first line, got 1"),
        ("# header\n1.0\n", 2, r"expected 2 columns \(time, interval\) or 13 columns"),
        ("1.0 1.0\n2.0 abc\n", 2, "non-numeric value"),
        ("1.0 1.0\n\n3.0 -1.0\n", 3, "stride interval must be positive"),
    ],
)
def test_gait_malformed_lines(tmp_path, content, line, message):
    p = tmp_path / "als1.rit"
    p.write_text(content)
    with pytest.raises(DataError, match=rf"als1\.rit:{line}: {message}"):
        read_gait_file(p)


def test_gait_name_and_folder_errors(tmp_path):
    (tmp_path / "subject1.ts").write_text("1 1\n")
    with pytest.raises(DataError, match="must start with control, park, hunt or als"):
        read_gait_file(tmp_path / "subject1.ts")
    with pytest.raises(DataError, match="no gait files"):
        find_gait_files(tmp_path)
    with pytest.raises(DataError, match="gait folder not found"):
        find_gait_files(tmp_path / "missing")


@pytest.fixture(scope="module")
def gait_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gaitndd")
    means = {"control": 1.0, "park": 1.1, "hunt": 1.2, "als": 1.3}
    for k, (prefix, m) in enumerate(means.items()):
        for i in range(1, 6):
            write_gait(folder / f"{prefix}{i}.ts", 80 + 7 * i, 10 * k + i, cols=13, mean=m)
    return folder


def test_stride_datamodule_physionet_variable_length(gait_folder):
    dm = StrideIntervalDataModule(
        source="physionet", root=str(gait_folder), window=None, batch_size=4, skip_seconds=5.0
    )
    assert dm.variable_length and dm.input_shape == (1, None) and dm.num_classes == 4
    dm.setup()
    subjects = [set(dm.groups[s].tolist()) for s in ("train", "val", "test")]
    assert not (subjects[0] & subjects[2]) and not (subjects[0] & subjects[1])
    x, lengths, y = next(iter(dm.test_dataloader()))
    assert x.shape[0] == lengths.shape[0] == y.shape[0] and lengths.dtype == torch.int64
    assert x.shape[2] == lengths.max()
    for xi, li in zip(x, lengths, strict=True):
        assert torch.all(xi[:, li:] == 0)  # zero padding at the end
    windowed = StrideIntervalDataModule(
        source="physionet", root=str(gait_folder), window=16, classes=["control", "als"]
    )
    windowed.setup()
    xb, yb = next(iter(windowed.train_dataloader()))
    assert xb.shape[1:] == (1, 16) and set(yb.tolist()) <= {0, 1}


# --------------------------------------------------------------------------- UCR fixtures
UNI = """# a comment
@problemName Toy
@timeStamps false
@univariate true
@equalLength true
@seriesLength 6
@classLabel true up down
@data
1,2,3,4,5,6:up
6,5,4,3,2,1:down
1,2,3,4,5,7:up
7,5,4,3,2,1:down
2,2,3,4,5,6:up
6,5,4,3,2,0:down
1,3,3,4,5,6:up
6,5,4,2,2,1:down
1,2,3,4,6,6:up
5,5,4,3,2,1:down
"""

MULTI = """@problemName Multi
@univariate false
@dimensions 2
@equalLength false
@classLabel true a b c
@data
1,2,3:4,5,6:a
1,2:3,4:b
1,2,3,4,5:5,4,3,2,1:c
1,2,?,4:2,3,4,5:a
9,8:7,6:b
1,1,1,1,1,1,1:2,2,2,2,2,2,2:c
"""


def write_ucr(root: Path, name: str, train: str, test: str) -> None:
    (root / name).mkdir(parents=True, exist_ok=True)
    (root / name / f"{name}_TRAIN.ts").write_text(train)
    (root / name / f"{name}_TEST.ts").write_text(test)


def test_read_ts_univariate_and_multivariate(tmp_path):
    write_ucr(tmp_path, "Toy", UNI, UNI)
    d = read_ts(tmp_path / "Toy" / "Toy_TRAIN.ts")
    assert d.class_names == ["up", "down"] and len(d.series) == 10
    assert d.series[0].shape == (1, 6) and d.labels[1] == "down"
    write_ucr(tmp_path, "Multi", MULTI, MULTI)
    m = read_ts(tmp_path / "Multi" / "Multi_TRAIN.ts")
    assert [s.shape for s in m.series[:3]] == [(2, 3), (2, 2), (2, 5)]
    assert np.isnan(m.series[3][0, 2])  # "?" is missing


@pytest.mark.parametrize(
    ("body", "line", "message"),
    [
        ("1,2,3,4,5,6:foo\n", 9, r"class label 'foo' is not among @classLabel \{up, down\}"),
        ("1,2,3,4,5,6:1,2,3,4,5,6:up\n", 9, r"expected 1 dimension\(s\)"),
        ("1,2,x,4,5,6:up\n", 9, "dimension 0: non-numeric value 'x'"),
        ("1,2,3,4,5,6:up\n1,2,3:up\n", 10, "series length 3 differs from 6"),
    ],
)
def test_ts_errors_name_file_and_line(tmp_path, body, line, message):
    header = UNI.split("@data\n")[0] + "@data\n"
    p = tmp_path / "bad.ts"
    p.write_text(header + body)
    with pytest.raises(DataError, match=rf"bad\.ts:{line}: {message}"):
        read_ts(p)


def test_ts_header_errors(tmp_path):
    p = tmp_path / "h.ts"
    p.write_text("@problemName X\n@classLabel true a b\n1,2:a\n")
    with pytest.raises(DataError, match=r"h\.ts:3: data before the @data line"):
        read_ts(p)
    p.write_text("@problemName X\n@data\n1,2:a\n")
    with pytest.raises(DataError, match="no '@classLabel true <labels>' line"):
        read_ts(p)
    p.write_text("@targetLabel true\n@data\n1,2:0.5\n")
    with pytest.raises(DataError, match=r"h\.ts:1: regression files"):
        read_ts(p)


def test_ucr_datamodule_equal_length(tmp_path):
    write_ucr(tmp_path, "Toy", UNI, UNI)
    dm = UCRDataModule(root=str(tmp_path), name="Toy", batch_size=4, val_fraction=0.2)
    assert dm.num_classes == 2 and dm.class_names == ["up", "down"]
    assert dm.input_shape == (1, 6) and not dm.variable_length
    dm.setup()
    assert len(dm.val_dataset) == 2 and len(dm.train_dataset) == 8 and len(dm.test_dataset) == 10
    x, y = next(iter(dm.test_dataloader()))
    assert x.shape == (4, 1, 6) and y.tolist() == [0, 1, 0, 1]
    # per-series z-normalisation is the UCR default
    np.testing.assert_allclose(x.mean(dim=2), 0, atol=1e-5)


def test_ucr_datamodule_unequal_length_pads_and_keeps_lengths(tmp_path):
    write_ucr(tmp_path, "Multi", MULTI, MULTI)
    dm = UCRDataModule(
        root=str(tmp_path), name="Multi", batch_size=6, val_fraction=0.0, normalize="none"
    )
    assert dm.variable_length and dm.input_shape == (2, None) and dm.num_classes == 3
    dm.setup()
    x, lengths, y = next(iter(dm.test_dataloader()))
    assert lengths.tolist() == [3, 2, 5, 4, 2, 7] and y.tolist() == [0, 1, 2, 0, 1, 2]
    assert x.shape == (6, 2, 7)
    assert torch.equal(x[1, :, :2], torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
    assert torch.all(x[1, :, 2:] == 0) and x[3, 0, 2] == 0  # padding and missing value -> 0


def test_ucr_folder_and_label_errors(tmp_path):
    with pytest.raises(
        DataError,
        match=r"UCR folder not found: .*Nope \(expected Nope_TRAIN\.ts and Nope_TEST\.ts\)",
    ):
        UCRDataModule(root=str(tmp_path), name="Nope")
    test = (
        UNI.replace("@classLabel true up down", "@classLabel true up down left")
        + "1,1,1,1,1,1:left\n"
    )
    write_ucr(tmp_path, "Toy", UNI, test)
    dm = UCRDataModule(root=str(tmp_path), name="Toy")
    with pytest.raises(DataError, match=r"Toy_TEST\.ts: class label\(s\) \['left'\] not among"):
        dm.setup()
    two_dims = "@dimensions 2\n@classLabel true up down\n@data\n1,2,3,4,5,6:1,2,3,4,5,6:up\n"
    write_ucr(tmp_path, "Dim", UNI, two_dims)
    with pytest.raises(
        DataError, match=r"Dim_TEST\.ts: series have \[2\] dimension\(s\), the training file has 1"
    ):
        UCRDataModule(root=str(tmp_path), name="Dim").setup()


# --------------------------------------------------------------------------- CSV / NPZ
def test_npz_and_csv_reader(tmp_path):
    x = np.arange(24, dtype=np.float32).reshape(4, 6)
    x[1, 4:] = np.nan
    np.savez(tmp_path / "d.npz", x=x, y=np.array([0, 1, 0, 1]))
    series, labels = read_array_file(tmp_path / "d.npz")
    assert [s.shape for s in series] == [(1, 6), (1, 4), (1, 6), (1, 6)]
    assert labels.tolist() == ["0", "1", "0", "1"]
    np.savez(tmp_path / "bad.npz", x=np.zeros((2, 2, 2, 2)), y=np.zeros(2))
    with pytest.raises(DataError, match=r"bad\.npz: x must be \(N, L\) or \(N, C, L\)"):
        read_array_file(tmp_path / "bad.npz")
    np.savez(tmp_path / "nokey.npz", x=np.zeros((2, 3)))
    with pytest.raises(DataError, match=r"missing array\(s\) \['y'\]"):
        read_array_file(tmp_path / "nokey.npz")
    (tmp_path / "d.csv").write_text("label,t0,t1,t2\na,1,2,3\nb,4,5\na,7,8,9\n")
    series, labels = read_array_file(tmp_path / "d.csv")
    assert [s.shape[1] for s in series] == [3, 2, 3] and labels.tolist() == ["a", "b", "a"]
    (tmp_path / "e.csv").write_text("a,1,2,3\nb,4,x,6\n")
    with pytest.raises(DataError, match=r"e\.csv:2: non-numeric value 'x'"):
        read_array_file(tmp_path / "e.csv")


def test_ucr_datamodule_on_own_npz_without_test_file(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 3, 20)).astype(np.float32)
    y = np.repeat(["cat", "dog"], 20)
    np.savez(tmp_path / "own.npz", x=x, y=y)
    dm = UCRDataModule(
        train_file=str(tmp_path / "own.npz"), val_fraction=0.25, test_fraction=0.25, batch_size=5
    )
    assert dm.class_names == ["cat", "dog"] and dm.input_shape == (3, 20)
    dm.setup()
    assert [len(d) for d in (dm.train_dataset, dm.val_dataset, dm.test_dataset)] == [20, 10, 10]
    assert np.bincount(dm.split_arrays("test").y).tolist() == [5, 5]  # stratified
    xb, yb = next(iter(dm.train_dataloader()))
    assert xb.shape == (5, 3, 20)
