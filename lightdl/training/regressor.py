"""`Regressor`: any model predicting real values, trained with MSE, MAE or smooth L1."""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn

from lightdl.training._task import Task, call_model, save_task_hyperparameters, unpack
from lightdl.training.losses import regression_loss
from lightdl.training.metrics import regression_metrics


class Regressor(Task):
    """Trains `model` (output (B,) or (B, D); a (B, 1) output is squeezed) on (x, y) or
    (x, lengths, y) batches with float targets, logging loss, MAE, MSE and R2 per stage.

    Args:
        model: the network; its `num_classes` plays the role of the output size D.
        loss: "mse" (L2), "l1" (MAE), "smooth_l1" (with `beta`) or "huber" (delta = `beta`).
        optimizer, scheduler, scheduler_monitor: as for Classifier.
    """

    def __init__(self, model: nn.Module, loss: str = "mse", beta: float = 1.0,
                 optimizer: OptimizerCallable = torch.optim.Adam,
                 scheduler: LRSchedulerCallable | None = None,
                 scheduler_monitor: str = "val/loss") -> None:
        super().__init__(model, optimizer, scheduler, scheduler_monitor)
        save_task_hyperparameters(self)
        self.loss_fn = regression_loss(loss, beta)
        self.train_metrics = regression_metrics("train")
        self.val_metrics = regression_metrics("val")
        self.test_metrics = regression_metrics("test")

    def _step(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x, lengths, y = unpack(batch)
        pred = call_model(self.model, x, lengths)
        if pred.dim() == 2 and pred.shape[1] == 1 and y.dim() == 1:
            pred = pred[:, 0]
        if pred.shape != y.shape:
            raise ValueError(f"the model predicts shape {tuple(pred.shape)} but the targets "
                             f"have shape {tuple(y.shape)}")
        return self.loss_fn(pred, y), pred.float(), y.float()

    def _shared(self, batch: Any, stage: str) -> torch.Tensor:
        loss, pred, y = self._step(batch)
        self.update_metrics(stage, pred, y)
        self.accumulate(stage, len(y), loss=loss)
        return loss

    def predict_step(self, batch: Any, batch_idx: int) -> dict[str, torch.Tensor]:
        _, pred, y = self._step(batch)
        return {"pred": pred, "target": y}
