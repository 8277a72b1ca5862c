"""Functional ops with fused native kernels (torch.ops.lightdl) and pure-PyTorch references.

Each op works with autograd, torch.compile (no graph break), autocast and DDP. Select the
implementation with `use_backend("native" | "reference")`.
"""

from lightdl.ops._acts import ACTIVATIONS, FORWARD_ONLY
from lightdl.ops._backend import BACKENDS, build_info, get_backend, use_backend
from lightdl.ops.bias_act import activation, activation_reference, bias_act, bias_act_reference
from lightdl.ops.conv1d import fused_conv1d, fused_conv1d_reference
from lightdl.ops.linear import fused_linear, fused_linear_reference
from lightdl.ops.norm import batch_norm_act_pool1d, batch_norm_act_pool1d_reference
from lightdl.ops.pool import act_pool1d, act_pool1d_reference
from lightdl.ops.rnn import (
    gru,
    gru_cell,
    gru_cell_reference,
    gru_reference,
    lstm,
    lstm_cell,
    lstm_cell_reference,
    lstm_reference,
)

__all__ = [
    "ACTIVATIONS",
    "BACKENDS",
    "FORWARD_ONLY",
    "act_pool1d",
    "act_pool1d_reference",
    "activation",
    "activation_reference",
    "bias_act",
    "bias_act_reference",
    "batch_norm_act_pool1d",
    "batch_norm_act_pool1d_reference",
    "build_info",
    "fused_conv1d",
    "fused_conv1d_reference",
    "fused_linear",
    "fused_linear_reference",
    "get_backend",
    "gru",
    "gru_cell",
    "gru_cell_reference",
    "gru_reference",
    "lstm",
    "lstm_cell",
    "lstm_cell_reference",
    "lstm_reference",
    "use_backend",
]
