"""Drop-in replacements for torch.nn layers, running lightdl's fused ops."""

from lightdl.nn.activation import Activation
from lightdl.nn.conv1d import FusedConv1d
from lightdl.nn.fuse import fuse
from lightdl.nn.linear import FusedLinear
from lightdl.nn.norm import FusedBatchNorm1d
from lightdl.nn.pool import FusedAvgPool1d, FusedMaxPool1d
from lightdl.nn.rnn import FusedGRU, FusedGRUCell, FusedLSTM, FusedLSTMCell

__all__ = ["Activation", "FusedAvgPool1d", "FusedBatchNorm1d", "FusedConv1d", "FusedGRU", "FusedGRUCell", "FusedLSTM",
           "FusedLSTMCell", "FusedLinear", "FusedMaxPool1d", "fuse"]
