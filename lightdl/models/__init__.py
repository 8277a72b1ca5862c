"""Models as plain nn.Modules, each with a `fused` switch: True runs lightdl's fused layers,
False builds the same network (same parameters, same function) from torch.nn layers.

Every model takes `input_shape` (one sample's shape, or an int: features/channels) and
`num_classes` first; the CLI fills both in from the data module.
"""

from lightdl.models.cnn1d import CNN1d
from lightdl.models.cnn2d import CNN2d
from lightdl.models.init import INITS, init_weights
from lightdl.models.mlp import MLP
from lightdl.models.perceptron import Perceptron
from lightdl.models.rnn import RNNClassifier
from lightdl.models.rnn_generator import RNNGenerator
from lightdl.models.vae import VAE

__all__ = ["CNN1d", "CNN2d", "INITS", "MLP", "Perceptron", "RNNClassifier", "RNNGenerator", "VAE", "init_weights"]
