"""Drop-in replacements for torch.nn layers, running lightdl's fused ops."""

from lightdl.nn.activation import Activation
from lightdl.nn.linear import FusedLinear
from lightdl.nn.rnn import FusedGRU, FusedGRUCell, FusedLSTM, FusedLSTMCell

__all__ = ["Activation", "FusedGRU", "FusedGRUCell", "FusedLSTM", "FusedLSTMCell", "FusedLinear"]
