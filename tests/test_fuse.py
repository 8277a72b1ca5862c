"""`lightdl.nn.fuse`: plain PyTorch models swapped onto fused layers, outputs equal."""

from __future__ import annotations

import torch
from torch import nn

import lightdl.nn as lnn
from lightdl.nn import fuse
from lightdl.nn.fuse import fused_layers


def _same(a: nn.Module, b: nn.Module, x: torch.Tensor) -> None:
    a.eval()
    b.eval()
    want = a(x)
    # float32 rounding in the layers (sums, normalisations that cancel) scales with the values'
    # magnitude, not with each output: up to 3e-6 of max |output| in 300 random runs of the
    # batch-norm stack below, 1.1e-6 absolute on an output of 4e-4 (an absolute 1e-6 failed 1
    # run in 25).
    torch.testing.assert_close(b(x), want, rtol=1e-5, atol=1e-5 * max(1.0, want.abs().max().item()))


def test_sequential_stack_folds_activations():
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 16), nn.GELU(approximate="tanh"),
                          nn.Linear(16, 8), nn.LeakyReLU(0.2), nn.Dropout(0.1), nn.Linear(8, 3))
    fused = fuse(model)
    assert [type(m) for m in fused] == [lnn.FusedLinear, nn.Identity, lnn.FusedLinear, nn.Identity,
                                        lnn.FusedLinear, nn.Identity, nn.Dropout, lnn.FusedLinear]
    assert (fused[0].act, fused[2].act, fused[4].act, fused[4].alpha, fused[7].act) == (
        "relu", "gelu_tanh", "leaky_relu", 0.2, "identity")
    assert type(model[0]) is nn.Linear  # the original is untouched
    assert list(fused.state_dict()) == list(model.state_dict())
    _same(model, fused, torch.randn(5, 6))


def test_conv_stack_and_named_children():
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.features = nn.Sequential(nn.Conv1d(1, 8, 7, padding=3), nn.ReLU(),
                                          nn.Conv1d(8, 8, 3, padding=1), nn.Tanh())
            self.rnn = nn.LSTM(8, 12, batch_first=True, bidirectional=True)
            self.gru = nn.GRU(8, 5, batch_first=True)
            self.head = nn.Linear(24 + 5, 2)

        def forward(self, x):
            h = self.features(x).transpose(1, 2)
            y, _ = self.rnn(h)
            z, _ = self.gru(h)
            return self.head(torch.cat([y[:, -1], z[:, -1]], 1))

    model = Net()
    fused = fuse(model)
    expected = {"features.0", "features.2", "head"}
    if hasattr(lnn, "FusedConv1d"):
        assert isinstance(fused.features[0], lnn.FusedConv1d) and fused.features[0].act == "relu"
    else:
        expected -= {"features.0", "features.2"}
    if hasattr(lnn, "FusedLSTM"):
        expected |= {"rnn", "gru"}
    assert set(fused_layers(fused)) == expected
    _same(model, fused, torch.randn(3, 1, 40))


def test_fuse_a_single_layer_and_keep_training_mode():
    layer = nn.Linear(4, 4).train()
    fused = fuse(layer)
    assert isinstance(fused, lnn.FusedLinear) and fused.training
    _same(layer, fused, torch.randn(2, 4))


def _train_step_equal(model, fused, x):
    model.train()
    fused.train()
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    model(xa).square().sum().backward()
    fused(xb).square().sum().backward()
    torch.testing.assert_close(xb.grad, xa.grad, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(fused.state_dict(), model.state_dict(), rtol=1e-5, atol=1e-6)


def test_activation_before_a_pool_moves_into_the_fused_pool():
    model = nn.Sequential(nn.Conv1d(2, 8, 5, padding=2), nn.Dropout(0.0), nn.SiLU(),
                          nn.AvgPool1d(3, 2, 1), nn.Tanh(), nn.MaxPool1d(2, ceil_mode=True),
                          nn.MaxPool1d(2)).eval()
    fused = fuse(model)
    assert [type(m) for m in fused] == [
        lnn.FusedConv1d, nn.Dropout, nn.Identity, lnn.FusedAvgPool1d, nn.Tanh, nn.MaxPool1d,
        lnn.FusedMaxPool1d]
    assert (fused[3].act, fused[3].stride, fused[3].padding, fused[6].act) == (
        "silu", 2, 1, "identity")
    _same(model, fused, torch.randn(4, 2, 50))


def test_batchnorm_act_pool_becomes_one_fused_batchnorm():
    model = nn.Sequential(nn.Conv1d(2, 8, 5, padding=2, bias=False), nn.BatchNorm1d(8), nn.ReLU(),
                          nn.MaxPool1d(2), nn.Conv1d(8, 8, 3), nn.BatchNorm1d(8, momentum=None),
                          nn.AvgPool1d(3, 2, 1), nn.BatchNorm1d(8), nn.GELU(),
                          nn.MaxPool1d(2, ceil_mode=True))
    with torch.no_grad():  # non-trivial statistics and affine parameters
        for m in model:
            if isinstance(m, nn.BatchNorm1d):
                m.running_mean.normal_()
                m.running_var.uniform_(0.5, 2)
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_()
    model.eval()
    fused = fuse(model)
    assert [type(m) for m in fused] == [
        lnn.FusedConv1d, lnn.FusedBatchNorm1d, nn.Identity, nn.Identity, lnn.FusedConv1d,
        lnn.FusedBatchNorm1d, nn.Identity, nn.BatchNorm1d, nn.GELU, nn.MaxPool1d]
    assert (fused[1].act, fused[1].pool, fused[5].act, fused[5].pool, fused[5].stride,
            fused[5].padding, fused[5].momentum) == ("relu", "max", "identity", "avg", 2, 1, None)
    assert list(fused.state_dict()) == list(model.state_dict())
    x = torch.randn(4, 2, 50)
    _same(model, fused, x)
    _train_step_equal(model, fused, x)
