"""1-D CNN for time series: conv -> BN -> act -> pool blocks, global pooling, linear head."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from lightdl import nn as lnn
from lightdl.models._layers import Conv1dAct, LinearAct, activation
from lightdl.models._shape import as_shape
from lightdl.models.init import init_weights

# "fcn": the fully convolutional baseline for time-series classification (Wang, Yan & Oates
# 2017): three conv-BN-ReLU blocks of 128-256-128 channels with kernels 8-5-3, no pooling,
# global average pooling. "small": a light net for short windows on a CPU.
PRESETS: dict[str, dict] = {
    "fcn": dict(channels=(128, 256, 128), kernel_sizes=(8, 5, 3), pool="none", norm="batch"),
    "small": dict(channels=(16, 32, 64), kernel_sizes=(7, 5, 3), pool="max", norm="batch"),
}


def _per_block(value: int | Sequence[int], n: int, name: str) -> list[int]:
    values = [value] * n if isinstance(value, int) else list(value)
    if len(values) != n:
        raise ValueError(f"CNN1d: {name} needs one value per block ({n}), got {value!r}")
    return values


class _Block(nn.Module):
    def __init__(self, c_in: int, c_out: int, k: int, stride: int, dilation: int, padding: str,
                 norm: str, act: str, pool: str, pool_size: int, fused: bool, alpha: float):
        super().__init__()
        pad: int | str = "same" if padding == "same" and stride == 1 else (
            dilation * (k - 1) // 2 if padding == "same" else 0)
        # Without a norm layer the activation fuses into the conv's epilogue; with one, the
        # conv needs no bias (BN's shift replaces it) and the activation follows the norm.
        fuse_act = norm == "none"
        self.conv = Conv1dAct(c_in, c_out, k, stride=stride, padding=pad, dilation=dilation,
                              act=act if fuse_act else "identity", fused=fused, alpha=alpha,
                              bias=fuse_act)
        self.norm = nn.BatchNorm1d(c_out) if norm == "batch" else nn.Identity()
        if fused and norm == "batch" and pool != "none":
            # The norm, the activation and the pooling in one op (lightdl.ops.
            # batch_norm_act_pool1d); same state_dict keys as the BatchNorm1d it replaces.
            self.norm = lnn.FusedBatchNorm1d(c_out, act=act, pool=pool, kernel_size=pool_size,
                                             alpha=alpha)
            self.act = nn.Identity()
            self.pool = nn.Identity()
        elif pool == "none":
            self.act = nn.Identity() if fuse_act else activation(act, alpha)
            self.pool = nn.Identity()
        elif fused and not fuse_act:
            # After a norm, the activation fuses into the pooling instead (lightdl.ops.act_pool1d).
            self.act = nn.Identity()
            self.pool = {"max": lnn.FusedMaxPool1d, "avg": lnn.FusedAvgPool1d}[pool](
                pool_size, act=act, alpha=alpha)
        else:
            self.act = nn.Identity() if fuse_act else activation(act, alpha)
            self.pool = {"max": nn.MaxPool1d, "avg": nn.AvgPool1d}[pool](pool_size)
        self._len = (pad, k, stride, dilation, 0 if pool == "none" else pool_size)

    def out_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        pad, k, stride, dilation, pool = self._len
        if pad == "same":
            out = lengths
        else:
            out = (lengths + 2 * pad - dilation * (k - 1) - 1).div(stride, rounding_mode="floor") + 1
        if pool:
            out = out.div(pool, rounding_mode="floor")
        return out.clamp(min=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.act(self.norm(self.conv(x))))


class CNN1d(nn.Module):
    """Input (B, C, L) [+ lengths (B,)] -> logits (B, num_classes).

    Args:
        input_shape: channels, or (C, L) (L may be None for variable lengths).
        num_classes: output size.
        preset: "small" or "fcn" (see PRESETS); `channels`/`kernel_sizes` override it.
        channels, kernel_sizes: one entry per block.
        strides, dilations: an int or one per block.
        padding: "same" (keeps the length at stride 1) or "valid".
        norm: "batch" or "none"; act: activation after each block; pool: "max", "avg" or
        "none" after each block (window and stride `pool_size`).
        global_pool: "avg" or "max" over time (only the valid steps when lengths are given).
        dropout: before the head; init: weight initialisation; fused: lightdl's fused layers
        (conv + activation, or BatchNorm + activation + pooling in one FusedBatchNorm1d) or
        the torch.nn layers; both variants have the same state_dict keys.
    """

    def __init__(self, input_shape: int | Sequence[int | None] = 1, num_classes: int = 2,
                 preset: str = "small", channels: Sequence[int] | None = None,
                 kernel_sizes: Sequence[int] | None = None, strides: int | Sequence[int] = 1,
                 dilations: int | Sequence[int] = 1, padding: str = "same",
                 norm: str | None = None, act: str = "relu", pool: str | None = None,
                 pool_size: int = 2, global_pool: str = "avg", dropout: float = 0.0,
                 init: str = "default", fused: bool = True, alpha: float = 0.01) -> None:
        super().__init__()
        if preset not in PRESETS:
            raise ValueError(f"CNN1d: preset must be one of {', '.join(PRESETS)}, got {preset!r}")
        p = PRESETS[preset]
        channels = list(channels if channels is not None else p["channels"])
        kernel_sizes = list(kernel_sizes if kernel_sizes is not None else p["kernel_sizes"])
        norm = norm if norm is not None else p["norm"]
        pool = pool if pool is not None else p["pool"]
        n = len(channels)
        if n == 0 or len(kernel_sizes) != n:
            raise ValueError(f"CNN1d: channels {channels} and kernel_sizes {kernel_sizes} need "
                             "the same, non-zero number of entries")
        for name, value, allowed in (("padding", padding, ("same", "valid")),
                                     ("norm", norm, ("batch", "none")),
                                     ("pool", pool, ("max", "avg", "none")),
                                     ("global_pool", global_pool, ("avg", "max"))):
            if value not in allowed:
                raise ValueError(f"CNN1d: {name} must be one of {allowed}, got {value!r}")
        self.input_shape = as_shape(input_shape, "CNN1d")
        self.num_classes = num_classes
        in_channels = self.input_shape[0]
        strides_ = _per_block(strides, n, "strides")
        dilations_ = _per_block(dilations, n, "dilations")
        sizes = [in_channels, *channels]
        self.blocks = nn.ModuleList(
            _Block(sizes[i], sizes[i + 1], kernel_sizes[i], strides_[i], dilations_[i], padding,
                   norm, act, pool, pool_size, fused, alpha)
            for i in range(n)
        )
        self.global_pool = global_pool
        self.dropout = nn.Dropout(dropout)
        self.head = LinearAct(channels[-1], num_classes, act="identity", fused=fused)
        init_weights(self, init, act)

    def features(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Globally pooled features (B, channels[-1])."""
        if x.dim() == 2:  # (B, L): a univariate series without its channel dim
            x = x.unsqueeze(1)
        for block in self.blocks:
            x = block(x)
            if lengths is not None:
                lengths = block.out_lengths(lengths)
        if lengths is None:
            return x.mean(-1) if self.global_pool == "avg" else x.amax(-1)
        valid = torch.arange(x.shape[-1], device=x.device) < lengths.to(x.device)[:, None]
        valid = valid.unsqueeze(1)  # (B, 1, L')
        if self.global_pool == "avg":
            return (x * valid).sum(-1) / valid.sum(-1).clamp(min=1)
        return x.masked_fill(~valid, float("-inf")).amax(-1)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.dropout(self.features(x, lengths)))
