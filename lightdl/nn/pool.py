"""`FusedMaxPool1d` and `FusedAvgPool1d`: nn.MaxPool1d / nn.AvgPool1d with an optional
activation applied before the pooling, in one op (lightdl.ops.act_pool1d)."""

from __future__ import annotations

import torch
from torch import nn

from lightdl.ops import act_pool1d
from lightdl.ops._acts import check_act


def _single(value: int | tuple[int] | None, name: str, cls: str) -> int | None:
    if isinstance(value, (tuple, list)):
        if len(value) != 1:
            raise ValueError(f"{cls}: `{name}` must be an int or a 1-tuple, got {value!r}")
        value = value[0]
    return value


class _ActPool1d(nn.Module):
    _pool = "max"

    def __init__(self, kernel_size: int | tuple[int], stride: int | tuple[int] | None,
                 padding: int | tuple[int], act: str, alpha: float) -> None:
        super().__init__()
        cls = type(self).__name__
        self.kernel_size = _single(kernel_size, "kernel_size", cls)
        stride = _single(stride, "stride", cls)
        self.stride = self.kernel_size if stride is None else stride
        self.padding = _single(padding, "padding", cls)
        self.act = check_act(act, cls)
        self.alpha = float(alpha)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return act_pool1d(x, self.act, self._pool, self.kernel_size, self.stride, self.padding,
                          self.alpha)

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"act={self.act!r}" + (f", alpha={self.alpha}" if self.act == "leaky_relu" else ""))


class FusedMaxPool1d(_ActPool1d):
    """`nn.MaxPool1d(kernel_size, stride, padding)` of `act(x)`, in one pass.

    Input (N, C, L) or (C, L); output (N, C, L_out), L_out = (L + 2 padding - kernel_size)
    // stride + 1. dilation != 1, return_indices and ceil_mode are not supported (a clear
    error); padding must be at most kernel_size / 2, as for nn.MaxPool1d.
    """

    _pool = "max"

    def __init__(self, kernel_size: int | tuple[int], stride: int | tuple[int] | None = None,
                 padding: int | tuple[int] = 0, dilation: int | tuple[int] = 1,
                 return_indices: bool = False, ceil_mode: bool = False, act: str = "identity",
                 alpha: float = 0.01) -> None:
        if _single(dilation, "dilation", "FusedMaxPool1d") != 1:
            raise ValueError(f"FusedMaxPool1d: dilation={dilation!r} is not supported (only 1); "
                             "use nn.MaxPool1d")
        if return_indices or ceil_mode:
            raise ValueError("FusedMaxPool1d: return_indices=True and ceil_mode=True are not "
                             "supported; use nn.MaxPool1d")
        super().__init__(kernel_size, stride, padding, act, alpha)


class FusedAvgPool1d(_ActPool1d):
    """`nn.AvgPool1d(kernel_size, stride, padding)` of `act(x)` (zero padding counted in the
    average, divisor kernel_size), in one pass.

    Input (N, C, L) or (C, L); output (N, C, L_out) as for FusedMaxPool1d. ceil_mode and
    count_include_pad=False are not supported (a clear error).
    """

    _pool = "avg"

    def __init__(self, kernel_size: int | tuple[int], stride: int | tuple[int] | None = None,
                 padding: int | tuple[int] = 0, ceil_mode: bool = False,
                 count_include_pad: bool = True, act: str = "identity",
                 alpha: float = 0.01) -> None:
        if ceil_mode or not count_include_pad:
            raise ValueError("FusedAvgPool1d: ceil_mode=True and count_include_pad=False are not "
                             "supported; use nn.AvgPool1d")
        super().__init__(kernel_size, stride, padding, act, alpha)
