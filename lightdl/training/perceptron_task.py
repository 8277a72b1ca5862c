"""`PerceptronTask`: trains a Perceptron with Rosenblatt's rule (manual optimisation)."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix

from lightdl.models.perceptron import Perceptron
from lightdl.training._task import save_task_hyperparameters, unpack


class PerceptronTask(L.LightningModule):
    """No loss, no gradients, no optimizer: each training batch applies
    `w <- w + lr (y - y_hat) x`, `b <- b + lr (y - y_hat)` sample by sample, and logs the
    number of mistakes (`train/errors`, 0 once the data are separated) and accuracies.

    Args:
        model: a lightdl.models.Perceptron.
        lr: the learning rate eta.
        num_classes, class_names: filled in from the data module (must be 2 classes).
    """

    def __init__(self, model: Perceptron, lr: float = 0.1, num_classes: int = 2,
                 class_names: list[str] | None = None) -> None:
        super().__init__()
        if not isinstance(model, Perceptron):
            raise TypeError(f"PerceptronTask trains a lightdl.models.Perceptron, got "
                            f"{type(model).__name__}; use Classifier for other models")
        if num_classes != 2:
            raise ValueError(f"a perceptron separates 2 classes, the data have {num_classes}")
        if lr <= 0:
            raise ValueError(f"lr must be > 0, got {lr}")
        save_task_hyperparameters(self)
        self.automatic_optimization = False
        self.model = model
        self.lr = lr
        self.num_classes = 2
        self.class_names = list(class_names) if class_names else ["0", "1"]
        # (keys "fit"/"val"/"test": a ModuleDict key "train" would shadow Module.train)
        self.acc = torch.nn.ModuleDict({s: MulticlassAccuracy(2) for s in ("fit", "val", "test")})
        self.test_confusion_metric = MulticlassConfusionMatrix(2)
        self.test_confusion: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.predict_class(x)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        # The rule updates the weights itself. This optimizer never sees a gradient; stepping
        # it only lets Lightning count steps (checkpoint and logging cadence, resumption).
        return torch.optim.SGD(self.parameters(), lr=0.0)

    def training_step(self, batch: Any, batch_idx: int) -> None:
        x, _, y = unpack(batch)
        errors = self.model.rosenblatt_step(x, y, self.lr)
        self.optimizers().step()  # a no-op (no gradients): counts the step
        self.log("train/errors", float(errors), on_step=False, on_epoch=True, reduce_fx="sum",
                 prog_bar=True, batch_size=len(y))
        self.acc["fit"].update(self.model.predict_class(x), y)
        self.log("train/acc", self.acc["fit"], on_step=False, on_epoch=True)

    def _eval(self, batch: Any, stage: str) -> None:
        x, _, y = unpack(batch)
        pred = self.model.predict_class(x)
        self.acc[stage].update(pred, y)
        self.log(f"{stage}/acc", self.acc[stage], on_step=False, on_epoch=True, prog_bar=True)
        # A 0/1 "loss" (the error rate) so checkpointing on val/loss works as for Classifier.
        self.log(f"{stage}/loss", (pred != y).float().mean(), on_step=False, on_epoch=True,
                 batch_size=len(y))
        if stage == "test":
            self.test_confusion_metric.update(pred, y)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._eval(batch, "val")

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._eval(batch, "test")

    def on_test_epoch_end(self) -> None:
        self.test_confusion = self.test_confusion_metric.compute().cpu()
        self.test_confusion_metric.reset()

    def predict_step(self, batch: Any, batch_idx: int) -> dict[str, torch.Tensor]:
        x, _, y = unpack(batch)
        return {"pred": self.model.predict_class(x), "target": y}
