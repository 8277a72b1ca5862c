"""The default synthetic data sets are learnable: a small 1-D CNN, plain torch, one thread."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lightdl.data import RRIntervalDataModule, StrideIntervalDataModule


def small_cnn(in_channels: int, num_classes: int) -> nn.Module:
    """conv-BN-ReLU x3, global average pooling, linear head."""
    layers: list[nn.Module] = []
    for out, k in ((16, 7), (32, 5), (32, 3)):
        layers += [nn.Conv1d(in_channels, out, k, padding=k // 2), nn.BatchNorm1d(out), nn.ReLU()]
        in_channels = out
    return nn.Sequential(
        *layers, nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(in_channels, num_classes)
    )


def fit_and_test(dm, epochs: int, lr: float = 3e-3) -> float:
    """Adam + one-cycle schedule; test accuracy of the final model."""
    dm.setup()
    model = small_cnn(dm.input_shape[0], dm.num_classes)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps = epochs * len(dm.train_dataloader())
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps)
    for _ in range(epochs):
        model.train()
        for x, y in dm.train_dataloader():
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
            sched.step()
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for x, y in dm.test_dataloader():
            correct += int((model(x).argmax(1) == y).sum())
            total += len(y)
    return correct / total


@pytest.fixture
def one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(old)


@pytest.mark.slow
def test_cnn_learns_default_af_data(one_thread):
    # measured 0.998-1.0 over 5 init seeds with 8 epochs (~6 s on one core); 0.95 leaves margin
    acc = fit_and_test(RRIntervalDataModule(), epochs=8)
    assert acc >= 0.95, acc


@pytest.mark.slow
def test_cnn_learns_gait_above_chance(one_thread):
    # 4 classes, chance 0.25; split by subject; measured 0.59-0.61 over 5 init seeds, 15 epochs
    acc = fit_and_test(StrideIntervalDataModule(), epochs=15)
    assert acc >= 0.45, acc
