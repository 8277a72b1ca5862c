"""Data modules: attributes, splits, normalisation, batches, augmentation, describe."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lightdl.data import (
    AUGMENTATIONS,
    DigitsDataModule,
    LogicGatesDataModule,
    RRIntervalDataModule,
    StrideIntervalDataModule,
    build_augment,
)
from lightdl.data.describe import main as describe_main
from lightdl.data.split import split_groups

SMALL_RR = {"n_records": 40, "record_beats": 300}
SMALL_GAIT = {"subjects_per_class": 10, "series_length": 200}


def _disjoint(groups: dict[str, np.ndarray]) -> bool:
    tr, va, te = (set(groups[k].tolist()) for k in ("train", "val", "test"))
    return not (tr & va or tr & te or va & te)


def test_rr_attributes_before_setup_and_batches():
    dm = RRIntervalDataModule(window=48, stride=24, batch_size=16, **SMALL_RR)
    assert (dm.num_classes, dm.input_shape, dm.class_names, dm.variable_length) == (
        2,
        (1, 48),
        ["non-AF", "AF"],
        False,
    )
    dm.setup()
    for loader in (dm.train_dataloader(), dm.val_dataloader(), dm.test_dataloader()):
        x, y = next(iter(loader))
        assert x.shape == (16, 1, 48) and x.dtype == torch.float32
        assert y.shape == (16,) and y.dtype == torch.int64
    assert _disjoint(dm.groups)  # by record, never by window
    for split in ("train", "val", "test"):
        assert set(dm.split_arrays(split).y.tolist()) == {0, 1}  # stratified by record kind


def test_rr_normalisation_uses_train_only():
    raw = RRIntervalDataModule(normalize="none", **SMALL_RR)
    raw.setup()
    tr = raw.split_arrays("train").x
    assert 0.4 < tr.mean() < 1.2  # seconds
    dm = RRIntervalDataModule(**SMALL_RR)
    dm.setup()
    np.testing.assert_allclose(dm.norm_mean, [tr.mean(dtype=np.float64)], rtol=1e-5)
    np.testing.assert_allclose(dm.norm_std, [tr.std(dtype=np.float64)], rtol=1e-4)
    everything = np.concatenate([raw.split_arrays(s).x for s in ("train", "val", "test")])
    assert abs(everything.mean() - tr.mean()) > 1e-6  # the train statistics are not the global ones
    assert abs(dm.split_arrays("train").x.mean()) < 1e-4
    per = RRIntervalDataModule(normalize="per_series", **SMALL_RR)
    per.setup()
    np.testing.assert_allclose(per.split_arrays("test").x.std(axis=2), 1, atol=1e-3)


def test_rr_label_rule_and_seed():
    maj = RRIntervalDataModule(label_rule="majority", **SMALL_RR)
    any_ = RRIntervalDataModule(label_rule="any", **SMALL_RR)
    maj.setup(), any_.setup()
    assert any_.split_arrays("train").y.sum() > maj.split_arrays("train").y.sum()
    again = RRIntervalDataModule(**SMALL_RR)
    again.setup()
    other = RRIntervalDataModule(seed=1, **SMALL_RR)
    other.setup()
    assert np.array_equal(again.split_arrays("test").x, maj.split_arrays("test").x)
    assert not np.array_equal(other.split_arrays("train").x[:10], maj.split_arrays("train").x[:10])
    with pytest.raises(ValueError, match="label_rule"):
        RRIntervalDataModule(label_rule="some")


def test_stride_module_classes_and_subject_split():
    dm = StrideIntervalDataModule(window=32, batch_size=8, **SMALL_GAIT)
    assert dm.num_classes == 4 and dm.input_shape == (1, 32)
    assert dm.class_names == ["control", "parkinson", "huntington", "als"]
    dm.setup()
    assert _disjoint(dm.groups)
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (8, 1, 32) and y.dtype == torch.int64
    for split in ("train", "val", "test"):
        assert set(dm.split_arrays(split).y.tolist()) == {0, 1, 2, 3}
    binary = StrideIntervalDataModule(classes=["control", "huntington"], **SMALL_GAIT)
    assert binary.num_classes == 2 and binary.class_names == ["control", "huntington"]
    whole = StrideIntervalDataModule(window=None, **SMALL_GAIT)
    assert whole.input_shape == (1, 200) and not whole.variable_length
    with pytest.raises(ValueError, match="classes"):
        StrideIntervalDataModule(classes=["control", "flu"])


def test_augmentation_off_by_default_and_train_only():
    assert RRIntervalDataModule(**SMALL_RR).augment == []
    dm = RRIntervalDataModule(
        augment=["jitter", "scaling"], augment_strength={"jitter": 0.1}, **SMALL_RR
    )
    dm.setup()
    torch.manual_seed(0)
    a, b = dm.train_dataset[0][0], dm.train_dataset[0][0]
    assert not torch.equal(a, b)  # a fresh draw every time
    assert torch.equal(dm.val_dataset[0][0], dm.val_dataset[0][0])
    assert torch.equal(dm.test_dataset[0][0], torch.from_numpy(dm.split_arrays("test").x[0]))
    assert dm.val_dataset.transform is None and dm.test_dataset.transform is None
    with pytest.raises(ValueError, match="unknown augmentation"):
        RRIntervalDataModule(augment=["mixup"])


@pytest.mark.parametrize("name", AUGMENTATIONS)
def test_each_augmentation_keeps_shape_and_padding(name):
    torch.manual_seed(1)
    x = torch.zeros(2, 50)
    x[:, :40] = torch.sin(torch.linspace(0, 6, 40)) + 1
    out = build_augment([name], {name: 0.3})(x, 40)
    assert out.shape == x.shape and torch.all(out[:, 40:] == 0)
    assert not torch.equal(out, x)
    assert build_augment(None) is None


def test_digits_module():
    dm = DigitsDataModule(batch_size=32)
    assert dm.num_classes == 10 and dm.input_shape == (1, 8, 8)
    dm.setup()
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (32, 1, 8, 8) and x.dtype == torch.float32 and y.dtype == torch.int64
    train_x = dm.train_dataset.tensors[0]
    assert abs(float(train_x.mean())) < 1e-4 and abs(float(train_x.std()) - 1) < 1e-2
    sizes = [len(dm.train_dataset), len(dm.val_dataset), len(dm.test_dataset)]
    assert sum(sizes) == 1797 and sizes[1] > 200
    flat = DigitsDataModule(flatten=True, normalize=False)
    flat.setup()
    xf = flat.train_dataset.tensors[0]
    assert flat.input_shape == (64,) and xf.shape[1] == 64 and 0 <= xf.min() and xf.max() <= 1


@pytest.mark.parametrize(
    ("gate", "truth"), [("and", [0, 0, 0, 1]), ("or", [0, 1, 1, 1]), ("xor", [0, 1, 1, 0])]
)
def test_logic_gates(gate, truth):
    dm = LogicGatesDataModule(gate=gate, repeats=3, batch_size=12)
    assert dm.input_shape == (2,) and dm.num_classes == 2
    dm.setup()
    x, y = dm.test_dataset.tensors
    assert x.shape == (12, 2) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert y[:4].tolist() == truth and set(x.flatten().tolist()) == {0.0, 1.0}
    noisy = LogicGatesDataModule(gate=gate, repeats=3, noise=0.1)
    noisy.setup()
    xn = noisy.train_dataset.tensors[0]
    assert not torch.equal(xn, x) and (xn - x).abs().max() < 1
    xb, yb = next(iter(dm.train_dataloader()))
    assert xb.shape == (12, 2)


def test_split_groups_stratified_and_complete():
    groups = np.arange(30)
    strata = np.repeat(["a", "b", "c"], 10)
    parts = split_groups(groups, strata, 0.2, 0.2, seed=0)
    assert sorted(np.concatenate(list(parts.values())).tolist()) == list(range(30))
    for k, n in (("train", 6), ("val", 2), ("test", 2)):
        assert all((strata[parts[k]] == s).sum() == n for s in "abc")
    assert np.array_equal(parts["test"], split_groups(groups, strata, 0.2, 0.2, seed=0)["test"])
    small = split_groups(np.arange(3), np.zeros(3), 0.1, 0.1, seed=0)
    assert [len(small[k]) for k in ("train", "val", "test")] == [1, 1, 1]
    with pytest.raises(ValueError):
        split_groups(groups, strata, 0.6, 0.5, seed=0)


def test_describe_writes_png(tmp_path, capsys):
    out = tmp_path / "rr.png"
    assert (
        describe_main(
            ["rr", "--arg", "n_records=20", "--arg", "record_beats=200", "--out", str(out)]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert out.stat().st_size > 1000 and "non-AF" in text and str(out) in text
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(
        "data:\n  class_path: lightdl.data.LogicGatesDataModule\n"
        "  init_args: {gate: and, repeats: 2}\n"
    )
    out2 = tmp_path / "gates.png"
    assert describe_main(["--config", str(cfg), "--arg", "noise=0.05", "-o", str(out2)]) == 0
    assert out2.stat().st_size > 1000
