"""`L1Penalty`: L1 weight regularisation as a Lightning callback, for any task.

L2 needs no code of ours: it is the optimizer's `weight_decay` (coupled with the gradient
for SGD/Adam, decoupled with AdamW). torch's optimizers have no L1 term, and adding
`strength * sum|w|` to every task's loss would tie it to each task; its gradient,
`strength * sign(w)`, can instead be added to the weights' gradients once per optimizer step.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch

from lightdl.training._task import EPOCH_LOG, is_last_batch


def weight_parameters(module: torch.nn.Module, include_biases: bool = False
                      ) -> list[tuple[str, torch.nn.Parameter]]:
    """The trainable weights: matrices and kernels (2+ dims: Linear, Conv, LSTM/GRU weights,
    embeddings), plus 1-D parameters (biases, norm scales) only when include_biases."""
    return [(n, p) for n, p in module.named_parameters()
            if p.requires_grad and (include_biases or p.dim() >= 2)]


class L1Penalty(L.Callback):
    """Minimises loss + strength * sum|w| over the model's weights: adds the penalty's
    (sub)gradient strength * sign(w) to each weight's gradient after backward, before
    gradient clipping and the optimizer step (after AMP's unscaling, once per step with
    gradient accumulation; under DDP every rank adds the same term to the same averaged
    gradient). Logs `train/l1_penalty` (strength * sum|w| at the epoch's end) and
    `train/small_weights` (share of the penalised weights with |w| < 1e-3: L1 drives
    weights that do not earn their keep towards zero).

    In a config: `trainer.callbacks: [{class_path: lightdl.training.L1Penalty,
    init_args: {strength: 1.0e-4}}]`.

    Args:
        strength: the coefficient lambda (>= 0).
        include_biases: penalise 1-D parameters too (biases, norm scales).
    """

    def __init__(self, strength: float = 1e-4, include_biases: bool = False) -> None:
        if not strength >= 0:
            raise ValueError(f"L1Penalty: strength must be >= 0, got {strength}")
        self.strength = float(strength)
        self.include_biases = include_biases
        self._logged = False

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: L.LightningModule,
                                 optimizer: torch.optim.Optimizer) -> None:
        if self.strength == 0:
            return
        for _, p in weight_parameters(pl_module, self.include_biases):
            if p.grad is not None:
                p.grad.add_(p.detach().sign(), alpha=self.strength)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._logged = False

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        if is_last_batch(trainer, "train", batch_idx):
            self._log(pl_module)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self._logged:  # an epoch of unknown length
            self._log(pl_module)

    def _log(self, pl_module: L.LightningModule) -> None:
        self._logged = True
        params = [p.detach() for _, p in weight_parameters(pl_module, self.include_biases)]
        if not params:
            return
        total = sum(p.abs().sum() for p in params)
        small = sum((p.abs() < 1e-3).sum() for p in params) / sum(p.numel() for p in params)
        pl_module.log("train/l1_penalty", self.strength * total.float(), **EPOCH_LOG)
        pl_module.log("train/small_weights", small.float(), **EPOCH_LOG)
