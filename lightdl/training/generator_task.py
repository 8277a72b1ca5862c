"""`GeneratorTask`: trains an RNNGenerator (one-to-many) by maximum likelihood, and shows what
it generates next to real series of each class."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable

from lightdl.models.rnn_generator import RNNGenerator, expected_value, log_prob
from lightdl.training._task import Task, save_task_hyperparameters, unpack
from lightdl.training.callbacks import run_dir


class GeneratorTask(Task):
    """Minimises the negative log-likelihood of each step given the steps before it and the
    class (teacher forcing), averaged over every value; logs `{stage}/loss` (nats per value)
    and `{stage}/mse` (squared error of the predicted means, one step ahead). After
    fitting, `GeneratorPlots` saves generated_series.png and generation_stats.json into the
    run directory; `lightdl predict` writes one generated series per test sample, of that
    sample's class.

    Args:
        model: a lightdl.models.RNNGenerator.
        temperature: scales the sampling noise of `predict` and the plots (0: the means).
        optimizer, scheduler, scheduler_monitor: as for Classifier.
        class_names: for plots and CSV (filled in from the data module).
    """

    def __init__(self, model: RNNGenerator, temperature: float = 1.0,
                 optimizer: OptimizerCallable = torch.optim.Adam,
                 scheduler: LRSchedulerCallable | None = None,
                 scheduler_monitor: str = "val/loss",
                 class_names: list[str] | None = None) -> None:
        super().__init__(model, optimizer, scheduler, scheduler_monitor)
        if not isinstance(model, RNNGenerator):
            raise TypeError(f"GeneratorTask trains a lightdl.models.RNNGenerator, got "
                            f"{type(model).__name__}")
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        save_task_hyperparameters(self)
        self.temperature = temperature
        self.class_names = list(class_names) if class_names else None

    def _shared(self, batch: Any, stage: str) -> torch.Tensor:
        x, lengths, y = unpack(batch)
        if x.dim() == 2:
            x = x.unsqueeze(1)
        params = tuple(p.float() for p in self.model(x, y))
        target = x.float()
        nll = -log_prob(params, target)
        err = (expected_value(params) - target) ** 2
        if lengths is None:
            loss, mse = nll.mean(), err.mean()
        else:  # padded steps carry no data; being causal, they never affect the real ones
            valid = torch.arange(x.shape[2], device=x.device) < lengths.to(x.device)[:, None]
            valid = valid[:, None].expand_as(nll)
            loss, mse = nll[valid].mean(), err[valid].mean()
        self.accumulate(stage, len(x), loss=loss, mse=mse)
        return loss

    def predict_step(self, batch: Any, batch_idx: int) -> dict[str, torch.Tensor]:
        x, lengths, y = unpack(batch)
        # A fixed seed per batch: the same checkpoint predicts the same series.
        gen = torch.Generator().manual_seed(batch_idx)
        series = self.model.generate(y, x.shape[-1], self.temperature, gen)
        series = denormalize(series, self.trainer.datamodule)
        if lengths is not None:  # as long as the test sample it stands for: NaN past that
            past = torch.arange(x.shape[-1], device=x.device) >= lengths.to(x.device)[:, None]
            series = series.masked_fill(past[:, None], float("nan"))
        return {"class": y, "series": series}

    def configure_callbacks(self) -> list:
        return self.new_callbacks(GeneratorPlots())


def denormalize(x: torch.Tensor, datamodule: Any) -> torch.Tensor:
    """x (B, C, L) in the data module's normalised units -> the data's own units, where the
    module normalised with global train statistics (else unchanged)."""
    mean = getattr(datamodule, "norm_mean", None)
    std = getattr(datamodule, "norm_std", None)
    if mean is None or std is None:
        return x
    mean = torch.as_tensor(np.asarray(mean), dtype=x.dtype, device=x.device).reshape(1, -1, 1)
    std = torch.as_tensor(np.asarray(std), dtype=x.dtype, device=x.device).reshape(1, -1, 1)
    return x * std + mean


def series_stats(x: torch.Tensor) -> dict[str, float]:
    """Mean over series (B, C, L) of channel 0's level, spread and beat-to-beat variability:
    mean, SD and RMSSD (root mean square of successive differences, the HRV measure that AF
    raises)."""
    v = x[:, 0].double()
    rmssd = v.diff(dim=1).pow(2).mean(1).sqrt() if v.shape[1] > 1 else v.new_zeros(len(v))
    return {"n": len(v), "mean": float(v.mean()), "sd": float(v.std(1).mean()),
            "rmssd": float(rmssd.mean())}


class GeneratorPlots(L.Callback):
    """After fitting: validation series and generated series per class side by side
    (generated_series.png), and their statistics (generation_stats.json)."""

    def __init__(self, n_plot: int = 5, n_stats: int = 256) -> None:
        self.n_plot, self.n_stats = n_plot, n_stats
        self.dir: Path | None = None
        self.stats: dict[str, dict[str, dict[str, float]]] = {}

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self.dir = run_dir(trainer)  # on every rank: a collective call under DDP

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        dm = trainer.datamodule
        if trainer.global_rank != 0 or trainer.fast_dev_run or dm is None:
            return
        from lightdl.training.plots import plot_generated_series

        xs, ls, ys = [], [], []
        for batch in dm.val_dataloader():
            x, lengths, y = unpack(batch)
            xs.append(x if x.dim() == 3 else x.unsqueeze(1))
            ls.append(lengths if lengths is not None else torch.full_like(y, x.shape[-1]))
            ys.append(y)
        if not xs:
            return
        # Variable lengths: the plots and statistics use the series of the most common length.
        lengths = torch.cat(ls)
        keep = lengths == lengths.mode().values
        length = int(lengths[keep][0])
        real_all = torch.cat([x[..., :length] for x in xs])[keep]
        y_all = torch.cat(ys)[keep]
        model: RNNGenerator = pl_module.model
        names = pl_module.class_names or [str(c) for c in range(model.num_classes)]
        gen = torch.Generator().manual_seed(0)
        real, fake = {}, {}
        self.stats = {}
        was_training = model.training
        model.eval()
        for c in range(model.num_classes):
            r = denormalize(real_all[y_all == c][: self.n_stats], dm)
            y = torch.full((len(r) or self.n_plot,), c, dtype=torch.int64)
            g = denormalize(model.generate(y, length, pl_module.temperature, gen).cpu(), dm)
            real[names[c]], fake[names[c]] = r[: self.n_plot], g[: self.n_plot]
            self.stats[names[c]] = {"real": series_stats(r) if len(r) else {},
                                    "generated": series_stats(g)}
        model.train(was_training)
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "generation_stats.json").write_text(json.dumps(self.stats, indent=2) + "\n")
        plot_generated_series(real, fake, self.stats, self.dir / "generated_series.png")
