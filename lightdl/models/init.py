"""Weight initialisation schemes (Glorot/Xavier, He/Kaiming) with zero biases."""

from __future__ import annotations

from torch import nn

INITS = ("default", "xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal")

_WEIGHTED = (nn.Linear, nn.Conv1d, nn.Conv2d)


def _gain_act(act: str) -> str:
    # Kaiming's gain: ReLU family as such, everything else as linear-ish (tanh/sigmoid use
    # Xavier in practice).
    return "leaky_relu" if act == "leaky_relu" else "relu" if act in ("relu", "gelu", "gelu_tanh", "silu") else "linear"


def init_weights(module: nn.Module, scheme: str = "default", act: str = "relu") -> None:
    """Re-initialise every Linear/Conv weight of `module` with `scheme` and zero its biases;
    recurrent weights get Xavier (input-hidden) and orthogonal (hidden-hidden) matrices.
    `default` keeps PyTorch's own initialisation untouched.

    Args:
        scheme: one of INITS.
        act: the hidden activation, for Kaiming's gain.
    """
    if scheme not in INITS:
        raise ValueError(f"init must be one of {', '.join(INITS)}; got {scheme!r}")
    if scheme == "default":
        return
    nonlinearity = _gain_act(act)
    for m in module.modules():
        if isinstance(m, _WEIGHTED):
            if scheme == "xavier_uniform":
                nn.init.xavier_uniform_(m.weight)
            elif scheme == "xavier_normal":
                nn.init.xavier_normal_(m.weight)
            elif scheme == "kaiming_uniform":
                nn.init.kaiming_uniform_(m.weight, nonlinearity=nonlinearity)
            else:
                nn.init.kaiming_normal_(m.weight, nonlinearity=nonlinearity)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.RNNBase):  # nn.LSTM/GRU and lightdl's FusedLSTM/GRU
            for name, p in m.named_parameters():
                if name.startswith("weight_ih"):
                    nn.init.xavier_uniform_(p)
                elif name.startswith("weight_hh"):
                    nn.init.orthogonal_(p)
                elif name.startswith("bias"):
                    nn.init.zeros_(p)
