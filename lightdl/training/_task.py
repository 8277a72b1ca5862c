"""What every lightdl LightningModule shares: batch layout, optimizer and scheduler set-up,
checkpoint compatibility checks and exact resumption (random-number state in checkpoints)."""

from __future__ import annotations

import random
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn


def unpack(batch: Any) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """The data modules' batches: (x, y) or (x, lengths, y)."""
    if len(batch) == 2:
        return batch[0], None, batch[1]
    if len(batch) == 3:
        return batch[0], batch[1], batch[2]
    raise ValueError(f"a batch must be (x, y) or (x, lengths, y), got {len(batch)} items")


def call_model(model: nn.Module, x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
    return model(x) if lengths is None else model(x, lengths)


def _rng_state() -> dict:
    # Tensors, ints and tuples only, so checkpoints stay loadable with weights_only=True.
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {"torch": torch.get_rng_state(), "python": random.getstate(),
            "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss),
                      float(gauss))}


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))


def check_state_dict(own: dict[str, torch.Tensor], loaded: dict[str, torch.Tensor],
                     what: str) -> None:
    """Raise one readable ValueError when `loaded` does not fit `own` (other model, other
    sizes), instead of torch's long list from deep inside load_state_dict."""
    missing = [k for k in own if k not in loaded]
    unexpected = [k for k in loaded if k not in own]
    shapes = [f"{k}: checkpoint {tuple(loaded[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own if k in loaded and tuple(loaded[k].shape) != tuple(own[k].shape)]
    if not (missing or unexpected or shapes):
        return

    def few(items: list[str]) -> str:
        return ", ".join(items[:3]) + (f" (+{len(items) - 3} more)" if len(items) > 3 else "")

    parts = []
    if missing:
        parts.append(f"missing {few(missing)}")
    if unexpected:
        parts.append(f"unexpected {few(unexpected)}")
    if shapes:
        parts.append(f"different shapes {few(shapes)}")
    raise ValueError(f"{what} does not match this model (was it saved from another model or "
                     f"configuration?): {'; '.join(parts)}")


class Task(L.LightningModule):
    """Base class: holds `model`, builds the optimizer and scheduler, and makes checkpoints
    resume exactly (the RNG states are saved with them)."""

    def __init__(self, model: nn.Module, optimizer: OptimizerCallable | None = None,
                 scheduler: LRSchedulerCallable | None = None,
                 scheduler_monitor: str = "val/loss") -> None:
        super().__init__()
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
        self.model = model
        self.optimizer = optimizer if optimizer is not None else torch.optim.Adam
        self.scheduler = scheduler
        self.scheduler_monitor = scheduler_monitor
        self._rng_to_restore: dict | None = None
        self._metric_batches: dict[str, int] = {}

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return call_model(self.model, x, lengths)

    def _shared(self, batch: Any, stage: str) -> torch.Tensor:
        """Loss of one batch, logging `{stage}/...`; each task defines it."""
        raise NotImplementedError

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return self._shared(batch, "train")

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._shared(batch, "val")

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._shared(batch, "test")

    # -- metrics -----------------------------------------------------------------------
    # torchmetrics are updated every batch but logged once per epoch, computed here. Logging
    # the Metric objects from every step (Lightning's shortcut) makes Lightning move each
    # metric's whole state on every call: AUROC keeps every prediction of the epoch, so that
    # cost grows through the epoch (measured: 10 of 27 ms per af_cnn training step).
    def update_metrics(self, stage: str, *args: torch.Tensor) -> None:
        """Feed one batch to the `{stage}_metrics` collection."""
        getattr(self, f"{stage}_metrics").update(*args)
        self._metric_batches[stage] = self._metric_batches.get(stage, 0) + 1

    def log_epoch_metrics(self, stage: str) -> None:
        """Log `{stage}/<metric>` computed over the batches seen since the last call, then
        reset; a no-op when none were (so a callback may call it first)."""
        metrics = getattr(self, f"{stage}_metrics", None)
        if metrics is None or not self._metric_batches.get(stage):
            return
        # compute() gathers the states of all DDP ranks: every rank logs the same numbers.
        self.log_dict({k: v.float() for k, v in metrics.compute().items()},
                      prog_bar=stage != "train", sync_dist=True)
        metrics.reset()
        self._metric_batches[stage] = 0

    def on_train_epoch_end(self) -> None:
        self.log_epoch_metrics("train")

    def on_validation_epoch_end(self) -> None:
        self.log_epoch_metrics("val")

    def on_test_epoch_end(self) -> None:
        self.log_epoch_metrics("test")

    def configure_optimizers(self) -> Any:
        params = [p for p in self.parameters() if p.requires_grad]
        optimizer = self.optimizer(params)
        if self.scheduler is None:
            return optimizer
        scheduler = self.scheduler(optimizer)
        config = {"scheduler": scheduler}
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            config["monitor"] = self.scheduler_monitor
        return {"optimizer": optimizer, "lr_scheduler": config}

    def on_train_epoch_start(self) -> None:
        if self.trainer.optimizers:
            self.log("lr", self.trainer.optimizers[0].param_groups[0]["lr"], on_epoch=True,
                     on_step=False, sync_dist=True)

    # -- checkpoints -----------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["lightdl_rng"] = _rng_state()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        if "state_dict" in checkpoint:
            check_state_dict(self.state_dict(), checkpoint["state_dict"], "the checkpoint")
        self._rng_to_restore = checkpoint.get("lightdl_rng")

    def on_train_start(self) -> None:
        # Restored here, after the loaders are built, so the resumed run draws the same
        # dropout masks as the uninterrupted one.
        if self._rng_to_restore is not None:
            _set_rng_state(self._rng_to_restore)
            self._rng_to_restore = None
