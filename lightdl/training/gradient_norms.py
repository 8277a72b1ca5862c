"""`GradientNorms`: per-layer gradient norms over training, the way to see vanishing and
exploding gradients."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch

from lightdl.training._task import EPOCH_LOG, is_last_batch
from lightdl.training.callbacks import run_dir
from lightdl.training.regularization import weight_parameters


class GradientNorms(L.Callback):
    """Measures the L2 norm of every weight's gradient (parameters of 2+ dims: Linear,
    Conv, LSTM/GRU weights) at each optimizer step, after AMP's unscaling and before
    gradient clipping (what backpropagation delivered, not what clipping let through);
    logs the epoch's mean per weight as `grad_norm/<parameter name>` and, after fitting,
    draws them over the epochs in gradient_norms.png, first layer to last: in a deep stack
    of sigmoids the first layers' norms sit orders of magnitude below the last's (vanishing
    gradients); norms that grow without bound are exploding ones (`gradient_clip_val` caps
    them).

    In a config: `trainer.callbacks: [{class_path: lightdl.training.GradientNorms}]`.
    """

    def __init__(self) -> None:
        self.history: list[dict[str, float]] = []
        self._sums: dict[str, torch.Tensor] = {}
        self._steps = 0
        self.dir: Path | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self.dir = run_dir(trainer)  # on every rank: a collective call under DDP

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._sums, self._steps = {}, 0

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: L.LightningModule,
                                 optimizer: torch.optim.Optimizer) -> None:
        for name, p in weight_parameters(pl_module):
            if p.grad is not None:
                norm = p.grad.detach().float().norm()
                self._sums[name] = self._sums[name] + norm if name in self._sums else norm
        self._steps += 1

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        if is_last_batch(trainer, "train", batch_idx):
            self._log(trainer, pl_module)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._log(trainer, pl_module)  # an epoch of unknown length (a no-op otherwise)

    def _log(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self._steps:
            return
        means = {f"grad_norm/{k.removeprefix('model.')}": v / self._steps
                 for k, v in self._sums.items()}
        self._sums, self._steps = {}, 0
        pl_module.log_dict(means, **EPOCH_LOG)
        if not trainer.fast_dev_run:
            self.history = [h for h in self.history if h["epoch"] != trainer.current_epoch]
            self.history.append({"epoch": trainer.current_epoch,
                                 **{k: float(v) for k, v in means.items()}})

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.global_rank != 0 or not self.history or self.dir is None:
            return
        from lightdl.training.plots import plot_gradient_norms

        self.dir.mkdir(parents=True, exist_ok=True)
        plot_gradient_norms(self.history, self.dir / "gradient_norms.png")

    def state_dict(self) -> dict[str, Any]:
        return {"history": self.history}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = list(state_dict.get("history", []))
