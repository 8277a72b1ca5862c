"""`FusedBatchNorm1d`: nn.BatchNorm1d with an activation and a max/avg pooling after it, in
one op (lightdl.ops.batch_norm_act_pool1d): the norm -> act -> pool tail of a conv block."""

from __future__ import annotations

import torch
from torch import nn

from lightdl.ops import batch_norm_act_pool1d
from lightdl.ops._acts import check_act


class FusedBatchNorm1d(nn.BatchNorm1d):
    """`pool(act(nn.BatchNorm1d(num_features, ...)(x)))` in one op.

    Same parameters, buffers, init and state_dict keys as nn.BatchNorm1d (a BatchNorm1d's
    state_dict loads into it and back), and the same running-statistics updates (momentum,
    or a cumulative average with momentum=None).

    Args:
        num_features, eps, momentum, affine, track_running_stats, device, dtype: as for
            nn.BatchNorm1d.
        act: one of lightdl.ops.ACTIVATIONS, applied after the norm; alpha: leaky_relu's slope.
        pool: "max", "avg" or None (no pooling); kernel_size, stride (default kernel_size),
            padding: the pooling window, as nn.MaxPool1d / nn.AvgPool1d (zero padding counted
            in the average, floor output length).

    Input (N, C, L); without pooling also (N, C). Output (N, C, L_out), L_out = (L + 2 padding
    - kernel_size) // stride + 1.

    Statistics are per process under DDP, as nn.BatchNorm1d's. Not for
    nn.SyncBatchNorm.convert_sync_batchnorm (Lightning's `sync_batchnorm=True`): it would
    replace this layer with a plain SyncBatchNorm and drop the activation and pooling
    (lightdl's training tasks refuse that combination with a clear error); use torch.nn
    layers (`fused=False`) where statistics must be synchronised.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True,
                 device: torch.device | str | None = None, dtype: torch.dtype | None = None,
                 act: str = "identity", pool: str | None = None, kernel_size: int = 2,
                 stride: int | None = None, padding: int = 0, alpha: float = 0.01) -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device, dtype)
        self.act = check_act(act, "FusedBatchNorm1d")
        if pool not in (None, "max", "avg"):
            raise ValueError(f"FusedBatchNorm1d: `pool` must be 'max', 'avg' or None, got {pool!r}")
        self.pool = pool
        # No pooling is a max pooling of window 1.
        self.kernel_size = kernel_size if pool is not None else 1
        self.stride = (stride or kernel_size) if pool is not None else 1
        self.padding = padding if pool is not None else 0
        self.alpha = float(alpha)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(x)
        if x.dim() == 2:
            if self.pool is not None:
                raise ValueError("FusedBatchNorm1d: pooling needs (N, C, L) input, got shape "
                                 f"{tuple(x.shape)}")
            return self.forward(x.unsqueeze(-1)).squeeze(-1)
        # The running-statistics bookkeeping of nn.BatchNorm1d.forward.
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            factor = (1.0 / float(self.num_batches_tracked) if self.momentum is None
                      else self.momentum)
        batch_stats = self.training or (self.running_mean is None and self.running_var is None)
        keep = not self.training or self.track_running_stats
        return batch_norm_act_pool1d(
            x, self.running_mean if keep else None, self.running_var if keep else None,
            self.weight, self.bias, batch_stats, factor, self.eps, self.act,
            self.pool or "max", self.kernel_size, self.stride, self.padding, self.alpha)

    def extra_repr(self) -> str:
        s = super().extra_repr() + f", act={self.act!r}"
        if self.act == "leaky_relu":
            s += f", alpha={self.alpha}"
        if self.pool is not None:
            s += (f", pool={self.pool!r}, kernel_size={self.kernel_size}, stride={self.stride}, "
                  f"padding={self.padding}")
        return s
