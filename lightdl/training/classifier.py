"""`Classifier`: any model producing logits, trained with cross-entropy or BCE."""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn
from torchmetrics.classification import MulticlassConfusionMatrix

from lightdl.training._task import Task, call_model, save_task_hyperparameters, unpack
from lightdl.training.finetune import Backbone, backbone_names, load_pretrained
from lightdl.training.losses import classification_loss
from lightdl.training.metrics import classification_metrics


class Classifier(Task):
    """Trains `model` (logits (B, K), or (B, T, K) for many-to-many) on (x, y) or
    (x, lengths, y) batches and logs loss, accuracy, macro F1 and macro AUROC per stage
    (`train/acc`, `val/f1`, `test/auroc`, ...) and the test confusion matrix.

    Args:
        model: the network (e.g. lightdl.models.CNN1d).
        num_classes: classes (filled in from the data module by the CLI; else read from
            `model.num_classes` or the model's last Linear layer).
        loss: "cross_entropy" or "bce"; label_smoothing; class_weights (one per class).
        optimizer: a torch.optim class and its arguments (default Adam, lr 1e-3).
        scheduler: a torch.optim.lr_scheduler class and its arguments, or None;
            scheduler_monitor: the metric ReduceLROnPlateau watches.
        class_names: for plots and the summary (filled in from the data module).
        init_from: another run's checkpoint (or run folder: its newest best checkpoint) to
            start from. The model's backbone must match it; the rest (the head) is loaded
            when its shapes match, else freshly initialised (another number of classes).
        backbone: the model's children that form the backbone (default: all but `head`;
            e.g. ["blocks"] for CNN2d/CNN1d to transfer only the convolutions).
        reinit_head: True: never load the head from init_from (a new task).
        freeze: "backbone" trains only the head (parameters and BatchNorm statistics of the
            backbone stay as loaded) ...
        unfreeze_after: ... until this epoch, from which the backbone trains too, at
            `backbone_lr_ratio` times the head's learning rate (Lightning's
            BackboneFinetuning). None: frozen for the whole run.
    """

    def __init__(self, model: nn.Module, num_classes: int | None = None,
                 loss: str = "cross_entropy", label_smoothing: float = 0.0,
                 class_weights: list[float] | None = None,
                 optimizer: OptimizerCallable = torch.optim.Adam,
                 scheduler: LRSchedulerCallable | None = None,
                 scheduler_monitor: str = "val/loss",
                 class_names: list[str] | None = None,
                 init_from: str | None = None, backbone: list[str] | None = None,
                 reinit_head: bool | None = None, freeze: str | None = None,
                 unfreeze_after: int | None = None, backbone_lr_ratio: float = 0.1) -> None:
        super().__init__(model, optimizer, scheduler, scheduler_monitor)
        save_task_hyperparameters(self)
        num_classes = num_classes or _infer_classes(model)
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.loss_name = loss
        self.loss_fn = classification_loss(loss, num_classes, label_smoothing, class_weights)
        # A single logit is a binary classifier: metrics see two classes.
        self.num_classes = max(num_classes, 2)
        self.class_names = list(class_names) if class_names else [str(i) for i in range(self.num_classes)]
        self.train_metrics = classification_metrics(self.num_classes, "train")
        self.val_metrics = classification_metrics(self.num_classes, "val")
        self.test_metrics = classification_metrics(self.num_classes, "test")
        self.test_confusion_metric = MulticlassConfusionMatrix(self.num_classes)
        self.test_confusion: torch.Tensor | None = None
        if freeze not in (None, "backbone"):
            raise ValueError(f"freeze must be 'backbone' or None, got {freeze!r}")
        self.backbone_names = backbone_names(model, backbone) if (
            freeze or init_from or backbone) else None
        if unfreeze_after is not None and (unfreeze_after < 0 or freeze is None):
            raise ValueError("unfreeze_after needs freeze='backbone' and an epoch >= 0")
        if not 0 < backbone_lr_ratio <= 1:
            raise ValueError(f"backbone_lr_ratio must be in (0, 1], got {backbone_lr_ratio}")
        self.freeze, self.unfreeze_after, self.backbone_lr_ratio = freeze, unfreeze_after, backbone_lr_ratio
        self.pretrained = load_pretrained(model, init_from, backbone, reinit_head) \
            if init_from else None

    @property
    def backbone(self) -> nn.Module:
        """Everything but the model's head (what `freeze` freezes)."""
        return Backbone(self.model, self.backbone_names or backbone_names(self.model, None))

    def configure_callbacks(self) -> list:
        if self.freeze != "backbone":
            return []
        from lightning.pytorch.callbacks import BackboneFinetuning

        return self.new_callbacks(BackboneFinetuning(
            unfreeze_backbone_at_epoch=self.unfreeze_after if self.unfreeze_after is not None
            else 2**31 - 1,
            lambda_func=lambda epoch: 1.0,  # keep the backbone at its reduced rate
            backbone_initial_ratio_lr=self.backbone_lr_ratio,
            should_align=False,
            train_bn=False,
        ))

    # -- the maths of one batch ------------------------------------------------------
    def _probs(self, logits: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        if logits.shape[-1] == 1:
            p = torch.sigmoid(logits)
            return torch.cat([1 - p, p], -1)
        return torch.sigmoid(logits) if self.loss_name == "bce" else logits.softmax(-1)

    def _step(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(loss, probs (N, K), labels (N,)) for one batch."""
        x, lengths, y = unpack(batch)
        logits = call_model(self.model, x, lengths)
        if logits.dim() == 2:
            return self.loss_fn(logits, y), self._probs(logits), y
        if logits.dim() != 3:
            raise ValueError(f"the model returned logits of shape {tuple(logits.shape)}; "
                             "expected (B, K) or (B, T, K)")
        # Many-to-many: loss on every valid step; a (B,) label applies to all of its steps.
        b, t, k = logits.shape
        steps = torch.arange(t, device=logits.device)
        valid = steps[None] < (lengths.to(logits.device)[:, None] if lengths is not None
                               else torch.full((b, 1), t, device=logits.device))
        per_seq = y.dim() == 1
        y_steps = y[:, None].expand(b, t) if per_seq else y
        loss = self.loss_fn(logits[valid], y_steps[valid])
        probs = self._probs(logits)
        if per_seq:  # one prediction per sequence: the mean of its steps' probabilities
            probs = (probs * valid[..., None]).sum(1) / valid.sum(1, keepdim=True).clamp(min=1)
            return loss, probs, y
        return loss, probs[valid], y[valid]

    def _shared(self, batch: Any, stage: str) -> torch.Tensor:
        loss, probs, y = self._step(batch)
        self.update_metrics(stage, probs, y)
        self.accumulate(stage, len(y), loss=loss)
        if stage == "test":
            self.test_confusion_metric.update(probs, y)
        return loss

    def on_test_epoch_end(self) -> None:
        super().on_test_epoch_end()
        self.test_confusion = self.test_confusion_metric.compute().cpu()
        self.test_confusion_metric.reset()

    def predict_step(self, batch: Any, batch_idx: int) -> dict[str, torch.Tensor]:
        _, probs, y = self._step(batch)
        return {"probs": probs, "pred": probs.argmax(-1), "target": y}


def _infer_classes(model: nn.Module) -> int:
    n = getattr(model, "num_classes", None)
    if isinstance(n, int):
        return n
    last = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if last:
        return last[-1].out_features
    raise ValueError("num_classes was not given and cannot be read from the model")
