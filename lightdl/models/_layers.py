"""Layer factories behind every model's `fused` switch.

`fused=True` builds lightdl's fused layers, `fused=False` the torch.nn layers they replace.
Both variants of a layer have the same parameters under the same names (the activation
module of the unfused variant has none), so the two networks share one state_dict and
compute the same function.
"""

from __future__ import annotations

import torch
from torch import nn

from lightdl import nn as lnn
from lightdl.ops._acts import FORWARD_ONLY, apply_reference, check_act


class TorchActivation(nn.Module):
    """An activation by name from plain PyTorch ops (the `fused=False` counterpart of
    `lightdl.nn.Activation`); step and sign included, which torch.nn lacks as modules."""

    def __init__(self, act: str = "relu", alpha: float = 0.01) -> None:
        super().__init__()
        self.act = check_act(act, "TorchActivation")
        self.alpha = float(alpha)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return apply_reference(x, self.act, self.alpha)

    def extra_repr(self) -> str:
        return f"act={self.act!r}"


_TORCH_ACTS = {
    "relu": lambda a: nn.ReLU(),
    "leaky_relu": lambda a: nn.LeakyReLU(a),
    "sigmoid": lambda a: nn.Sigmoid(),
    "tanh": lambda a: nn.Tanh(),
    "gelu": lambda a: nn.GELU(),
    "gelu_tanh": lambda a: nn.GELU(approximate="tanh"),
    "silu": lambda a: nn.SiLU(),
}


def activation(act: str, alpha: float = 0.01) -> nn.Module:
    """A standalone activation module (nn.Identity for identity).

    Where an activation cannot be fused into the layer before it (it follows a norm layer, a
    pooling or a torch.nn layer) nor into a norm + pooling around it (CNN1d does that: see
    lightdl.nn.FusedBatchNorm1d and FusedMaxPool1d), both variants use PyTorch's: on its own our activation op is
    one elementwise pass like torch's, measured at 0.8x of torch.relu's bandwidth, and its
    Python-registered autograd costs more per call (profiler, af_cnn: ~0.3 ms more per
    conv-BN-act block and step, forward+backward).
    """
    check_act(act, "activation")
    if act == "identity":
        return nn.Identity()
    if act in FORWARD_ONLY:
        return TorchActivation(act, alpha)
    return _TORCH_ACTS[act](alpha)


class LinearAct(nn.Module):
    """`act(linear(x))`: one FusedLinear when fused, else nn.Linear then the activation.
    Parameters: `linear.weight`, `linear.bias`."""

    def __init__(self, in_features: int, out_features: int, act: str = "identity",
                 fused: bool = True, alpha: float = 0.01, bias: bool = True) -> None:
        super().__init__()
        if fused:
            self.linear = lnn.FusedLinear(in_features, out_features, bias=bias, act=act,
                                          alpha=alpha)
            self.act = nn.Identity()
        else:
            self.linear = nn.Linear(in_features, out_features, bias=bias)
            self.act = activation(act, alpha)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.linear(x))


class Conv1dAct(nn.Module):
    """`act(conv1d(x))`: one FusedConv1d when fused, else nn.Conv1d then the activation.
    Parameters: `conv.weight`, `conv.bias`. Input (B, C_in, L) -> (B, C_out, L_out)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int | str = 0, dilation: int = 1, act: str = "identity",
                 fused: bool = True, alpha: float = 0.01, bias: bool = True) -> None:
        super().__init__()
        args = dict(stride=stride, padding=padding, dilation=dilation, bias=bias)
        if fused:
            self.conv = lnn.FusedConv1d(in_channels, out_channels, kernel_size, act=act,
                                        alpha=alpha, **args)
            self.act = nn.Identity()
        else:
            self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, **args)
            self.act = activation(act, alpha)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(x))


def recurrent(cell: str, input_size: int, hidden_size: int, num_layers: int, bidirectional: bool,
              dropout: float, fused: bool) -> nn.Module:
    """A batch-first LSTM or GRU stack: lightdl's FusedLSTM/FusedGRU when fused, else
    nn.LSTM/nn.GRU. Same parameter names either way."""
    cell = cell.lower()
    if cell not in ("lstm", "gru"):
        raise ValueError(f"cell must be 'lstm' or 'gru', got {cell!r}")
    if fused:
        cls = lnn.FusedLSTM if cell == "lstm" else lnn.FusedGRU
    else:
        cls = nn.LSTM if cell == "lstm" else nn.GRU
    return cls(input_size, hidden_size, num_layers=num_layers, bidirectional=bidirectional,
               dropout=dropout if num_layers > 1 else 0.0, batch_first=True)
