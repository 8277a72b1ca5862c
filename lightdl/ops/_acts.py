"""The activation functions lightdl knows, and their pure-PyTorch definitions.

The names (and their order) match `lightdl::Act` in csrc/activations.h.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

ACTIVATIONS: tuple[str, ...] = (
    "identity",
    "relu",
    "leaky_relu",
    "sigmoid",
    "tanh",
    "gelu",
    "gelu_tanh",
    "silu",
    "step",
    "sign",
)

# Forward-only: their derivative is 0 wherever it exists (the perceptron learns with its own
# rule, not by gradients).
FORWARD_ONLY: tuple[str, ...] = ("step", "sign")


# Activations whose derivative the backward takes from the forward output (the output is
# saved instead of the input): sigmoid and tanh (y(1-y), 1-y^2: no exp or division) only for
# float32/float64 outputs, a float16/bfloat16 output is rounded too coarsely for them; relu
# and leaky_relu with a slope >= 0 in every dtype (the output is > 0 exactly where the input
# is), which also lets the conv1d vendor path apply them in place.
def grad_from_output(act: str, dtype: torch.dtype, alpha: float = 0.01) -> bool:
    """Whether the backward of `act` reads the forward output (mirrors csrc/conv1d.cpp)."""
    if act == "relu" or (act == "leaky_relu" and alpha >= 0):
        return True
    return act in ("sigmoid", "tanh") and dtype in (torch.float32, torch.float64)


def _step(x: torch.Tensor) -> torch.Tensor:
    # Heaviside with step(0) = 1, written through sign so autograd gives the same zero
    # gradient as our kernel (torch.heaviside has no derivative at all).
    return (torch.sign(x) + 1).clamp(max=1)


_REFERENCE: dict[str, Callable[[torch.Tensor, float], torch.Tensor]] = {
    "identity": lambda x, a: x,
    "relu": lambda x, a: torch.relu(x),
    "leaky_relu": lambda x, a: F.leaky_relu(x, a),
    "sigmoid": lambda x, a: torch.sigmoid(x),
    "tanh": lambda x, a: torch.tanh(x),
    "gelu": lambda x, a: F.gelu(x),
    "gelu_tanh": lambda x, a: F.gelu(x, approximate="tanh"),
    "silu": lambda x, a: F.silu(x),
    "step": lambda x, a: _step(x),
    "sign": lambda x, a: torch.sign(x),
}


def check_act(act: object, op: str) -> str:
    if not isinstance(act, str) or act not in _REFERENCE:
        raise ValueError(f"{op}: act must be one of {', '.join(ACTIVATIONS)}; got {act!r}")
    return act


def apply_reference(x: torch.Tensor, act: str, alpha: float = 0.01) -> torch.Tensor:
    """act(x) with PyTorch's own functions: the oracle of every lightdl kernel."""
    return _REFERENCE[act](x, alpha)
