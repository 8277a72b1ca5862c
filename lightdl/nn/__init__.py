"""Drop-in replacements for torch.nn layers, running lightdl's fused ops."""

from lightdl.nn.activation import Activation
from lightdl.nn.conv1d import FusedConv1d
from lightdl.nn.linear import FusedLinear

__all__ = ["Activation", "FusedConv1d", "FusedLinear"]
