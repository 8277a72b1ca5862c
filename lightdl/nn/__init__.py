"""Drop-in replacements for torch.nn layers, running lightdl's fused ops."""

from lightdl.nn.activation import Activation
from lightdl.nn.fuse import fuse  # noqa: E402  (after the layers it swaps in)
from lightdl.nn.linear import FusedLinear

__all__ = ["Activation", "FusedLinear", "fuse"]
