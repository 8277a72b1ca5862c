"""lightdl: perceptrons, MLPs, CNNs and RNNs trained with PyTorch Lightning on fused
C++ (CPU) and CUDA (GPU) kernels, each with a pure-PyTorch fallback.

`lightdl.ops` holds the functional ops, `lightdl.nn` the drop-in modules. The training,
data and model layers are imported on demand (`import lightdl.data`, ...), so importing
lightdl stays cheap.
"""

from lightdl import nn, ops
from lightdl._version import __version__

__all__ = ["__version__", "nn", "ops"]
