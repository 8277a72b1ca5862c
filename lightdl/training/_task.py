"""What every lightdl LightningModule shares: batch layout, optimizer and scheduler set-up,
checkpoint compatibility checks and exact resumption (random-number state in checkpoints)."""

from __future__ import annotations

import inspect
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


# How per-epoch values are logged, from an epoch-end hook or from the epoch's last batch (there
# Lightning's default would be per step); the value is the same on every rank, and batch_size=1
# spares Lightning guessing it from the batch.
EPOCH_LOG = dict(on_step=False, on_epoch=True, sync_dist=True, batch_size=1)
# The Trainer's batch count of each stage's loop (an int, inf, or a list per dataloader).
_NUM_BATCHES = {"train": "num_training_batches", "val": "num_val_batches",
                "test": "num_test_batches"}


def is_last_batch(trainer: L.Trainer, stage: str, batch_idx: int) -> bool:
    """Whether batch `batch_idx` is the last of the `stage` epoch's (known) batches: where
    per-epoch values are logged so that every callback's epoch-end hook sees them."""
    n = getattr(trainer, _NUM_BATCHES[stage])
    if isinstance(n, list):
        n = n[0] if len(n) == 1 else None
    return not trainer.sanity_checking and n is not None and batch_idx + 1 == n


def save_task_hyperparameters(task: L.LightningModule) -> None:
    """`save_hyperparameters`, called from a task's `__init__`. When LightningCLI built the
    task, the model's config stays in (its class_path and init_args with the sizes linked in
    from the data), so that `LightningModule.load_from_checkpoint` and
    `lightdl.training.load_task` rebuild the model from the checkpoint alone; a model passed
    as an object stays out (its weights are in the state_dict; Lightning would pickle the
    whole module). Linked values the task's class does not take (data.num_classes for a
    VAETask) are dropped: loading would pass them back as unknown arguments."""
    from lightning.pytorch.core.mixins.hparams_mixin import _given_hyperparameters

    given = _given_hyperparameters.get()
    from_cli = isinstance(given, dict) and isinstance(given.get("model"), dict)
    frame = inspect.currentframe()
    task.save_hyperparameters(ignore=[] if from_cli else ["model"],
                              frame=frame.f_back if frame is not None else None)
    drop_unknown_args(type(task), task.hparams, keep_private=True)
    model = task.hparams.get("model")
    if isinstance(model, dict) and isinstance(model.get("init_args"), dict):
        drop_unknown_args(model.get("class_path"), model["init_args"])


def drop_unknown_args(cls: type | str | None, kwargs: Any, keep_private: bool = False) -> None:
    """Delete from `kwargs` (a dict or Namespace) the keys that `cls` (a class or its
    import path) takes no argument for; nothing when it takes **kwargs or cannot be found
    (the config parser then reports it). Lightning records every linked value, also one a
    class does not take (data.num_classes for a VAETask or a VAE)."""
    if isinstance(cls, str):
        import importlib

        module, _, name = cls.rpartition(".")
        try:
            cls = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError, ValueError):
            return
    if cls is None:
        return
    try:
        params = inspect.signature(cls).parameters
    except (ValueError, TypeError):
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    for key in [k for k in kwargs if k not in params and not (keep_private and k.startswith("_"))]:
        del kwargs[key]


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
        self._metric_queue: dict[str, list[tuple[torch.Tensor, ...]]] = {}
        self._sums: dict[str, dict[str, torch.Tensor]] = {}
        self._counts: dict[str, int] = {}

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return call_model(self.model, x, lengths)

    def setup(self, stage: str) -> None:
        # Trainer(sync_batchnorm=True) converts every BatchNorm to nn.SyncBatchNorm after this
        # hook; a FusedBatchNorm1d would lose its activation and pooling without a word.
        from lightdl.nn.norm import FusedBatchNorm1d

        strategy = self.trainer.strategy if self._trainer is not None else None
        if getattr(strategy, "_layer_sync", None) is not None and any(
                isinstance(m, FusedBatchNorm1d) for m in self.modules()):
            raise ValueError(
                "sync_batchnorm=True would turn the model's FusedBatchNorm1d layers (BatchNorm "
                "+ activation + pooling in one op) into plain SyncBatchNorm and drop their "
                "activation and pooling; build the model with fused: false to synchronise "
                "BatchNorm statistics across processes")

    def new_callbacks(self, *callbacks: L.Callback) -> list[L.Callback]:
        """For `configure_callbacks`: those of `callbacks` whose kind the trainer does not
        hold yet. `fit` ends with `test` on the same trainer, which asks again; Lightning
        would replace the fit's callback with the new one and say so."""
        have = {type(c) for c in self.trainer.callbacks} if self._trainer is not None else set()
        return [c for c in callbacks if type(c) not in have]

    def _shared(self, batch: Any, stage: str) -> torch.Tensor:
        """Loss of one batch, logging `{stage}/...`; each task defines it."""
        raise NotImplementedError

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        loss = self._shared(batch, "train")
        self._after_batch("train", batch_idx)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._shared(batch, "val")
        self._after_batch("val", batch_idx)

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._shared(batch, "test")
        self._after_batch("test", batch_idx)

    # -- metrics -----------------------------------------------------------------------
    # Per-epoch values are kept by the module and logged once per epoch. Per step, Lightning's
    # `self.log` costs ~0.9 ms (it moves its result metric to the value's device on every
    # call) and a torchmetrics collection update ~0.7 ms (acc + F1 + AUROC, 64 rows): measured
    # inside a running af_lstm fit, against 2.4 ms for the model's own forward. So a step only
    # adds its detached loss sums to tensors and queues its metric inputs; the collection is
    # updated every `_METRIC_FLUSH` batches with the queue concatenated. (Logging the Metric
    # objects from every step, Lightning's shortcut, is worse still: it moves every state on
    # every call, and AUROC keeps every prediction of the epoch.)
    _METRIC_FLUSH = 32

    def accumulate(self, stage: str, batch_size: int, **values: torch.Tensor) -> None:
        """Add one batch's mean values (e.g. loss=...) to `{stage}/<name>`, logged at the end
        of the epoch as the mean over its samples (over all DDP ranks)."""
        sums = self._sums.setdefault(stage, {})
        for name, v in values.items():
            v = v.detach().float() * batch_size
            sums[name] = sums[name] + v if name in sums else v
        self._counts[stage] = self._counts.get(stage, 0) + batch_size

    def update_metrics(self, stage: str, *args: torch.Tensor) -> None:
        """Feed one batch to the `{stage}_metrics` collection (queued, see above)."""
        queue = self._metric_queue.setdefault(stage, [])
        queue.append(tuple(a.detach() for a in args))
        if len(queue) >= self._METRIC_FLUSH:
            self._flush_metrics(stage)
        self._metric_batches[stage] = self._metric_batches.get(stage, 0) + 1

    def _flush_metrics(self, stage: str) -> None:
        queue = self._metric_queue.pop(stage, [])
        if queue:
            getattr(self, f"{stage}_metrics").update(*(torch.cat(a) for a in zip(*queue, strict=True)))

    def _after_batch(self, stage: str, batch_idx: int) -> None:
        # The epoch's values are logged from its last batch, so that callbacks' epoch-end
        # hooks (which Lightning runs before the module's) see them, as they would see values
        # logged from every step; the module's epoch-end hook logs what is left (an epoch of
        # unknown length, or one cut short).
        if is_last_batch(self.trainer, stage, batch_idx):
            self.log_epoch_metrics(stage)

    def log_epoch_metrics(self, stage: str) -> None:
        """Log `{stage}/<metric>` and the accumulated means computed over the batches seen
        since the last call, then reset; a no-op when none were (so a callback may call it
        first)."""
        sums, count = self._sums.pop(stage, None), self._counts.pop(stage, 0)
        if sums:
            # Sample-weighted means over all ranks (Lightning's epoch mean of a value logged
            # with batch_size= and sync_dist=True): sum the sums and the counts, then divide.
            reduce = self.trainer.strategy.reduce
            n = reduce(torch.tensor(float(count), device=self.device), reduce_op="sum")
            means = {f"{stage}/{k}": reduce(v, reduce_op="sum") / n for k, v in sums.items()}
            for name, v in means.items():
                self.log(name, v, prog_bar=name.endswith("/loss"), **EPOCH_LOG)
        metrics = getattr(self, f"{stage}_metrics", None)
        if metrics is None or not self._metric_batches.get(stage):
            return
        self._flush_metrics(stage)
        # compute() gathers the states of all DDP ranks: every rank logs the same numbers.
        self.log_dict({k: v.float() for k, v in metrics.compute().items()},
                      prog_bar=stage != "train", **EPOCH_LOG)
        metrics.reset()
        self._metric_batches[stage] = 0

    def _start_epoch(self, stage: str) -> None:
        # An epoch cut short (max_steps, an interrupt) must not leak into the next one.
        for kept in (self._sums, self._counts, self._metric_queue):
            kept.pop(stage, None)
        self._metric_batches[stage] = 0
        metrics = getattr(self, f"{stage}_metrics", None)
        if metrics is not None:
            metrics.reset()

    def on_validation_epoch_start(self) -> None:
        self._start_epoch("val")

    def on_test_epoch_start(self) -> None:
        self._start_epoch("test")

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
        self._start_epoch("train")
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
