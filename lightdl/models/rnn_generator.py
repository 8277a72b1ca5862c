"""One-to-many recurrent model: a class label in, a whole series out, generated step by step."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from lightdl.models._layers import LinearAct, recurrent
from lightdl.models._shape import as_shape
from lightdl.models.init import init_weights

# log-variance range of the per-step Gaussian: keeps exp() finite and the NLL bounded while
# the head is still untrained (1e-4 .. 150 times the normalised data's unit variance).
_LOGVAR_MIN, _LOGVAR_MAX = -9.0, 5.0


class RNNGenerator(nn.Module):
    """Conditional autoregressive series model (one-to-many): p(x | class) as a product over
    steps of the distribution of x_t given the class and the values before step t, per
    channel a mixture of `mixtures` Gaussians (one Gaussian by default).

    Each step's input is the previous value (a learned start vector at step 0) concatenated
    with an embedding of the class; an LSTM or GRU stack carries the state and a linear head
    gives the step's mixture weights (logits), means and log-variances per channel. Training
    runs the whole series in one call (teacher forcing: `forward`, scored by `log_prob`);
    `generate` samples one step at a time, feeding each sample back in.

    Args:
        input_shape: (C, L) of the series it generates (the data module's sample shape; L is
            the default length of `generate` and may be None).
        num_classes: number of classes it is conditioned on.
        cell: "lstm" or "gru"; hidden_size, num_layers as in nn.LSTM (unidirectional: the
            model must not see the future).
        embed_dim: size of the class embedding.
        mixtures: Gaussian components per step and channel (more than one lets a step be,
            say, a regular beat or, now and then, a premature one).
        dropout: between stacked layers and before the head.
        init: default, or xavier_* / kaiming_* (see lightdl.models.init).
        fused: lightdl's FusedLSTM/FusedGRU and FusedLinear, or the torch.nn layers (same
            parameters).
    """

    def __init__(self, input_shape: int | Sequence[int | None] = (1, 60), num_classes: int = 2,
                 cell: str = "lstm", hidden_size: int = 64, num_layers: int = 1,
                 embed_dim: int = 8, mixtures: int = 1, dropout: float = 0.0,
                 init: str = "default", fused: bool = True) -> None:
        super().__init__()
        shape = as_shape(input_shape, "RNNGenerator")
        if len(shape) > 2:
            raise ValueError(f"RNNGenerator: input_shape must be (channels, length), got {shape}")
        if min(num_classes, embed_dim, mixtures) < 1:
            raise ValueError(f"RNNGenerator: num_classes, embed_dim and mixtures must be >= 1, "
                             f"got {num_classes}, {embed_dim} and {mixtures}")
        self.input_shape = shape
        self.channels = shape[0]
        self.length = shape[1] if len(shape) == 2 else None
        self.num_classes = num_classes
        self.mixtures = mixtures
        self.embed = nn.Embedding(num_classes, embed_dim)
        self.start = nn.Parameter(torch.zeros(self.channels))
        self.rnn = recurrent(cell, self.channels + embed_dim, hidden_size, num_layers, False,
                             dropout, fused)
        self.dropout = nn.Dropout(dropout)
        self.head = LinearAct(hidden_size, 3 * mixtures * self.channels, act="identity",
                              fused=fused)
        init_weights(self, init, "tanh")

    def _check(self, y: torch.Tensor, x: torch.Tensor | None = None) -> None:
        if y.dim() != 1 or y.dtype not in (torch.int64, torch.int32):
            raise ValueError(f"RNNGenerator: y must be class indices of shape (B,), got "
                             f"{tuple(y.shape)} {y.dtype}")
        if y.numel() and (int(y.min()) < 0 or int(y.max()) >= self.num_classes):
            raise ValueError(f"RNNGenerator: y holds classes outside 0..{self.num_classes - 1} "
                             f"(min {int(y.min())}, max {int(y.max())})")
        if x is not None and (x.dim() != 3 or x.shape[0] != y.shape[0]
                              or x.shape[1] != self.channels):
            raise ValueError(f"RNNGenerator: x must be (B, {self.channels}, L) with B = "
                             f"len(y) = {y.shape[0]}, got {tuple(x.shape)}")

    def _params(self, out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """RNN outputs (B, L, H) -> logits, mean, logvar, each (B, C, L, K)."""
        b, length, _ = out.shape
        p = self.head(self.dropout(out)).view(b, length, 3, self.channels, self.mixtures)
        logits, mean, logvar = p.permute(2, 0, 3, 1, 4).unbind(0)
        return logits, mean, logvar.clamp(_LOGVAR_MIN, _LOGVAR_MAX)

    def forward(self, x: torch.Tensor, y: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Teacher forcing: x (B, C, L) the series, y (B,) their classes -> (logits, mean,
        logvar), each (B, C, L, K): the mixture predicted for x[:, :, t] from x[:, :, :t] and
        y (`log_prob` scores x under it, `expected_value` is its mean)."""
        if x.dim() == 2:  # (B, L): univariate without its channel dim
            x = x.unsqueeze(1)
        self._check(y, x)
        b, _, length = x.shape
        start = self.start.to(x.dtype).expand(b, 1, self.channels)
        previous = torch.cat([start, x.transpose(1, 2)[:, :-1]], dim=1)  # (B, L, C)
        cond = self.embed(y).to(x.dtype)[:, None].expand(b, length, -1)
        out, _ = self.rnn(torch.cat([previous, cond], dim=2))
        return self._params(out)

    @torch.no_grad()
    def generate(self, y: torch.Tensor, length: int | None = None,
                 temperature: float = 1.0,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """Sample series for the classes y (B,) -> (B, C, length).

        Args:
            length: steps to generate (default: input_shape's length).
            temperature: scales each step's standard deviation; 0 takes, at every step, the
                mean of the most probable component.
            generator: a CPU torch.Generator for reproducible samples.
        """
        length = length if length is not None else self.length
        if length is None or length < 1:
            raise ValueError("RNNGenerator.generate: give length= (input_shape has no length)"
                             if length is None else f"length must be >= 1, got {length}")
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        self._check(y)
        device, dtype = self.start.device, self.start.dtype
        y = y.to(device)
        b = y.shape[0]
        cond = self.embed(y)[:, None]  # (B, 1, E)
        previous = self.start.expand(b, 1, self.channels)
        # Drawn up front on the CPU generator: the same samples on any device.
        noise = torch.randn(length, b, self.channels, generator=generator).to(device, dtype)
        uniform = torch.rand(length, b, self.channels, 1, generator=generator).to(device, dtype)
        state, steps = None, []
        for t in range(length):
            out, state = self.rnn(torch.cat([previous, cond], dim=2), state)
            logits, mean, logvar = (p[:, :, 0] for p in self._params(out))  # (B, C, K)
            if temperature == 0:
                k = logits.argmax(-1, keepdim=True)
            else:  # inverse CDF of the mixture weights
                cdf = logits.softmax(-1).cumsum(-1)
                k = (cdf < uniform[t] * cdf[..., -1:]).sum(-1, keepdim=True).clamp(
                    max=self.mixtures - 1)
            mu, lv = mean.gather(-1, k)[..., 0], logvar.gather(-1, k)[..., 0]
            value = mu + temperature * (0.5 * lv).exp() * noise[t]  # (B, C)
            steps.append(value)
            previous = value[:, None]
        return torch.stack(steps, dim=2)


def log_prob(params: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
             x: torch.Tensor) -> torch.Tensor:
    """Log-density of x (B, C, L) under RNNGenerator's per-step mixtures `params` (logits,
    mean, logvar, each (B, C, L, K)) -> (B, C, L), in nats."""
    logits, mean, logvar = params
    normal = torch.distributions.Normal(mean, (0.5 * logvar).exp(), validate_args=False)
    if mean.shape[-1] == 1:
        return normal.log_prob(x[..., None])[..., 0]
    return torch.distributions.MixtureSameFamily(
        torch.distributions.Categorical(logits=logits, validate_args=False), normal,
        validate_args=False).log_prob(x)


def expected_value(params: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """The mean of each step's mixture, (B, C, L)."""
    logits, mean, _ = params
    return (logits.softmax(-1) * mean).sum(-1)
