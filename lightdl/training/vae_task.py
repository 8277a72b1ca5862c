"""`VAETask`: trains a VAE by maximising the ELBO."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable

from lightdl.models.vae import VAE
from lightdl.training._task import Task, save_task_hyperparameters, unpack
from lightdl.training.callbacks import run_dir


def kl_to_standard_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) per sample, (B,)."""
    return -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(-1)


class VAETask(Task):
    """Minimises -ELBO = reconstruction + beta * KL per sample and logs `{stage}/loss`
    (that sum), `{stage}/recon`, `{stage}/kl` and `{stage}/elbo` (= -(recon + KL), the bound
    on log p(x) in nats, for beta = 1). After fitting, `VAEPlots` saves reconstructions.png,
    samples.png and, for a 2-D latent, latent_space.png into the run directory.

    Args:
        model: a lightdl.models.VAE.
        beta: weight of the KL term (beta-VAE; 1 is the plain ELBO).
        likelihood: "bernoulli" (data in [0, 1]: binary cross-entropy on the logits) or
            "gaussian" (unit-variance Gaussian: half the squared error).
        optimizer, scheduler, scheduler_monitor: as for Classifier.
        class_names: for the latent-space plot (filled in from the data module).
    """

    def __init__(self, model: VAE, beta: float = 1.0, likelihood: str = "bernoulli",
                 optimizer: OptimizerCallable = torch.optim.Adam,
                 scheduler: LRSchedulerCallable | None = None,
                 scheduler_monitor: str = "val/loss",
                 class_names: list[str] | None = None) -> None:
        super().__init__(model, optimizer, scheduler, scheduler_monitor)
        if not isinstance(model, VAE):
            raise TypeError(f"VAETask trains a lightdl.models.VAE, got {type(model).__name__}")
        if likelihood not in ("bernoulli", "gaussian"):
            raise ValueError(f"likelihood must be 'bernoulli' or 'gaussian', got {likelihood!r}")
        if beta < 0:
            raise ValueError(f"beta must be >= 0, got {beta}")
        save_task_hyperparameters(self)
        self.beta, self.likelihood = beta, likelihood
        self.class_names = list(class_names) if class_names else None

    def losses(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(reconstruction, KL), each (B,), in nats."""
        logits, mu, logvar = self.model(x)
        logits, mu, logvar = logits.float(), mu.float(), logvar.float()
        if self.likelihood == "bernoulli":
            recon = F.binary_cross_entropy_with_logits(logits, x.float(), reduction="none")
        else:
            recon = 0.5 * (logits - x.float()) ** 2
        return recon.flatten(1).sum(-1), kl_to_standard_normal(mu, logvar)

    def _shared(self, batch: Any, stage: str) -> torch.Tensor:
        x, _, _ = unpack(batch)
        recon, kl = self.losses(x)
        loss = (recon + self.beta * kl).mean()
        self.accumulate(stage, len(x), loss=loss, recon=recon.mean(), kl=kl.mean(),
                        elbo=-(recon + kl).mean())
        return loss

    def predict_step(self, batch: Any, batch_idx: int) -> dict[str, torch.Tensor]:
        x, _, y = unpack(batch)
        mu, _ = self.model.encode(x)
        return {"pred": mu, "target": y}

    def configure_callbacks(self) -> list:
        return self.new_callbacks(VAEPlots())


class VAEPlots(L.Callback):
    """Reconstructions of validation images, samples from the prior and the latent space."""

    def __init__(self, n: int = 16) -> None:
        self.n = n
        self.dir: Path | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self.dir = run_dir(trainer)  # on every rank: a collective call under DDP

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.global_rank != 0 or trainer.fast_dev_run or trainer.datamodule is None:
            return
        from lightdl.training.plots import plot_image_grid, plot_latent_space

        model: VAE = pl_module.model
        was_training = model.training
        model.eval()
        xs, ys = [], []
        with torch.no_grad():
            for batch in trainer.datamodule.val_dataloader():
                x, _, y = unpack(batch)
                xs.append(x)
                ys.append(y)
        x, y = torch.cat(xs).to(pl_module.device), torch.cat(ys)
        shape = model.input_shape
        with torch.no_grad():
            recon = torch.sigmoid(model(x[: self.n])[0]).cpu()
            samples = model.sample(self.n, torch.Generator().manual_seed(0)).cpu()
            mu = model.encode(x)[0].cpu()
        model.train(was_training)
        self.dir.mkdir(parents=True, exist_ok=True)
        plot_image_grid([x[: self.n].cpu(), recon], shape, self.dir / "reconstructions.png",
                        rows_titles=["input", "reconstruction"])
        plot_image_grid([samples], shape, self.dir / "samples.png",
                        rows_titles=["samples from the prior"])
        if model.latent_dim == 2:
            plot_latent_space(mu.numpy(), y.numpy(), pl_module.class_names,
                              self.dir / "latent_space.png")
