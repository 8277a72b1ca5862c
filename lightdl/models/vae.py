"""Variational autoencoder (Kingma & Welling 2014) with a Gaussian latent."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from lightdl.models._layers import LinearAct, activation
from lightdl.models._shape import as_shape, flat_features
from lightdl.models.init import init_weights


class VAE(nn.Module):
    """Encoder q(z|x) = N(mu, diag(exp(logvar))), decoder p(x|z); z of size `latent_dim`.

    Args:
        input_shape: one sample's shape, e.g. (1, 8, 8) or (64,).
        latent_dim: size of z (2 lets you plot the latent space).
        hidden: sizes of the encoder's hidden layers (the decoder mirrors them).
        kind: "mlp" (fused Linear layers) or "conv" (for (C, H, W) images with H, W
            divisible by 4: two stride-2 convolutions, mirrored by transposed convolutions,
            around fused Linear layers).
        act: hidden activation; init: weight initialisation; fused: lightdl's fused layers
            or torch.nn (same parameters).
    Input (B, *input_shape) -> (logits of x's reconstruction (B, *input_shape), mu, logvar).
    The logits are Bernoulli logits for data in [0, 1] (a Gaussian decoder's mean otherwise).
    """

    def __init__(self, input_shape: int | Sequence[int] = (1, 8, 8), latent_dim: int = 2,
                 hidden: Sequence[int] = (128, 64), kind: str = "mlp", act: str = "relu",
                 init: str = "default", fused: bool = True) -> None:
        super().__init__()
        if kind not in ("mlp", "conv"):
            raise ValueError(f"VAE: kind must be 'mlp' or 'conv', got {kind!r}")
        if latent_dim < 1 or not hidden:
            raise ValueError("VAE: latent_dim must be >= 1 and hidden non-empty")
        self.input_shape = as_shape(input_shape, "VAE")
        self.latent_dim = latent_dim
        self.kind = kind
        n_in = flat_features(self.input_shape, "VAE")
        if kind == "conv":
            if len(self.input_shape) != 3 or self.input_shape[1] % 4 or self.input_shape[2] % 4:
                raise ValueError(f"VAE(kind='conv') needs (C, H, W) with H, W divisible by 4, "
                                 f"got {self.input_shape}")
            c, h, w = self.input_shape
            self.enc_conv = nn.Sequential(
                nn.Conv2d(c, 16, 3, stride=2, padding=1), activation(act),
                nn.Conv2d(16, 32, 3, stride=2, padding=1), activation(act))
            self._conv_shape = (32, h // 4, w // 4)
            n_in = math.prod(self._conv_shape)
        sizes = [n_in, *hidden]
        self.encoder = nn.ModuleList(LinearAct(a, b, act=act, fused=fused)
                                     for a, b in zip(sizes[:-1], sizes[1:], strict=True))
        self.mu = LinearAct(sizes[-1], latent_dim, fused=fused)
        self.logvar = LinearAct(sizes[-1], latent_dim, fused=fused)
        back = [latent_dim, *reversed(hidden)]
        self.decoder = nn.ModuleList(LinearAct(a, b, act=act, fused=fused)
                                     for a, b in zip(back[:-1], back[1:], strict=True))
        self.out = LinearAct(back[-1], n_in, act=act if kind == "conv" else "identity", fused=fused)
        if kind == "conv":
            self.dec_conv = nn.Sequential(
                nn.ConvTranspose2d(32, 16, 4, stride=2, padding=1), activation(act),
                nn.ConvTranspose2d(16, c, 4, stride=2, padding=1))
        init_weights(self, init, act)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu, logvar), each (B, latent_dim)."""
        h = self.enc_conv(x).flatten(1) if self.kind == "conv" else x.flatten(1)
        for layer in self.encoder:
            h = layer(h)
        return self.mu(h), self.logvar(h)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Reconstruction logits (B, *input_shape)."""
        h = z
        for layer in self.decoder:
            h = layer(h)
        h = self.out(h)
        if self.kind == "conv":
            return self.dec_conv(h.view(-1, *self._conv_shape))
        return h.view(-1, *self.input_shape)

    @staticmethod
    def reparameterize(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """z = mu + sigma * eps, eps ~ N(0, I): a sample through which gradients flow."""
        return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.encode(x)
        z = self.reparameterize(mu, logvar) if self.training else mu
        return self.decode(z), mu, logvar

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n samples from the prior decoded to data space (Bernoulli means), (n, *input_shape)."""
        p = next(self.parameters())
        z = torch.randn(n, self.latent_dim, generator=generator, dtype=p.dtype).to(p.device)
        return torch.sigmoid(self.decode(z))
