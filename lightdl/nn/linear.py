"""`FusedLinear`: nn.Linear with a fused bias+activation epilogue."""

from __future__ import annotations

import torch
from torch import nn

from lightdl.ops import fused_linear
from lightdl.ops._acts import check_act


class FusedLinear(nn.Linear):
    """`act(x @ weight.T + bias)`: same constructor, parameters, initialisation and state_dict
    keys as `nn.Linear`, plus `act` and `alpha`. Input (*, in_features) -> (*, out_features).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        act: str = "identity",
        alpha: float = 0.01,
    ) -> None:
        super().__init__(in_features, out_features, bias=bias, device=device, dtype=dtype)
        self.act = check_act(act, "FusedLinear")
        self.alpha = float(alpha)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fused_linear(x, self.weight, self.bias, self.act, self.alpha)

    def extra_repr(self) -> str:
        extra = f", act={self.act!r}"
        if self.act == "leaky_relu":
            extra += f", alpha={self.alpha}"
        return super().extra_repr() + extra
