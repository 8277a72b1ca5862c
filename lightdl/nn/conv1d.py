"""`FusedConv1d`: nn.Conv1d with the bias and activation fused into the convolution."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lightdl.ops import fused_conv1d
from lightdl.ops._acts import check_act


class FusedConv1d(nn.Conv1d):
    """`act(conv1d(x) + bias)`: same constructor, parameters, initialisation and state_dict keys
    as `nn.Conv1d`, plus `act` and `alpha`. Input (N, C_in, L) or (C_in, L) ->
    (N, C_out, L_out) or (C_out, L_out).

    padding_mode "reflect", "replicate" and "circular" pad the input with F.pad first (as
    nn.Conv1d does), then convolve without padding.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int],
        stride: int | tuple[int] = 1,
        padding: int | str | tuple[int] = 0,
        dilation: int | tuple[int] = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        act: str = "identity",
        alpha: float = 0.01,
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, padding_mode, device=device, dtype=dtype)
        self.act = check_act(act, "FusedConv1d")
        self.alpha = float(alpha)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        padding = self.padding if isinstance(self.padding, str) else self.padding[0]
        if self.padding_mode != "zeros":
            # nn.Conv1d's _reversed_padding_repeated_twice: (left, right) for the last dim.
            x = F.pad(x, self._reversed_padding_repeated_twice, mode=self.padding_mode)
            padding = 0
        return fused_conv1d(x, self.weight, self.bias, self.stride[0], padding, self.dilation[0],
                            self.groups, self.act, self.alpha)

    def extra_repr(self) -> str:
        extra = f", act={self.act!r}"
        if self.act == "leaky_relu":
            extra += f", alpha={self.alpha}"
        return super().extra_repr() + extra
